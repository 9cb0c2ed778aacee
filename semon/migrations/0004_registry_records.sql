-- Registry records (docs/registry-csv.md): who did each inspection or maintenance visit, what they found, and when the
-- equipment was put into service (the first pressure-vessel and boiler-internal inspections count from it).
ALTER TABLE equipment ADD COLUMN commissioning_date date;

ALTER TABLE inspections
    ADD COLUMN person   text NOT NULL DEFAULT '',
    ADD COLUMN defects  text NOT NULL DEFAULT '';   -- "; "-separated, as in the records CSV

ALTER TABLE maintenance_records
    ADD COLUMN result        text NOT NULL DEFAULT 'pass'
                             CHECK (result IN ('pass', 'pass_after_rectification', 'fail')),
    ADD COLUMN organisation  text NOT NULL DEFAULT '',
    ADD COLUMN person        text NOT NULL DEFAULT '',
    ADD COLUMN report_no     text NOT NULL DEFAULT '',
    ADD COLUMN defects       text NOT NULL DEFAULT '';
