-- A complete registry (docs/registry-csv.md): use units (使用单位) as entities, contacts for firms and districts, and the
-- equipment's subtype, maker and model, and the monitor fitted to it.

CREATE TABLE use_units (
    id              serial PRIMARY KEY,
    name            text NOT NULL UNIQUE,
    address         text NOT NULL DEFAULT '',
    contact_person  text NOT NULL DEFAULT '',
    contact_phone   text NOT NULL DEFAULT '',
    credit_code     text NOT NULL DEFAULT ''      -- 统一社会信用代码, 18 characters when given
);

-- maintenance_firms.phone stays the 24 h on-duty phone (TSG T5002); the CSV and API call it duty_phone.
ALTER TABLE maintenance_firms
    ADD COLUMN contact_person  text NOT NULL DEFAULT '',
    ADD COLUMN contact_phone   text NOT NULL DEFAULT '',
    ADD COLUMN address         text NOT NULL DEFAULT '',
    ADD COLUMN licence_no      text NOT NULL DEFAULT '';

ALTER TABLE districts
    ADD COLUMN admin_code  text NOT NULL DEFAULT '',   -- 行政区划代码, six digits when given
    ADD COLUMN authority   text NOT NULL DEFAULT '',   -- the market-supervision bureau that inspects it
    ADD COLUMN phone       text NOT NULL DEFAULT '',
    ADD COLUMN email       text NOT NULL DEFAULT '';

-- equipment.use_unit (text) is kept and mirrors use_units.name: the pages and older code read it, and the
-- registry writes both together. A monitor is fitted when monitor_vendor is not empty.
ALTER TABLE equipment
    ADD COLUMN subtype         text,
    ADD COLUMN use_unit_id     integer REFERENCES use_units (id),
    ADD COLUMN manufacturer    text NOT NULL DEFAULT '',
    ADD COLUMN model           text NOT NULL DEFAULT '',
    ADD COLUMN monitor_vendor  text NOT NULL DEFAULT '',
    ADD COLUMN monitor_model   text NOT NULL DEFAULT '',
    ADD CONSTRAINT equipment_subtype CHECK (subtype IS NULL OR (type, subtype) IN (
        ('elevator', 'traction'), ('elevator', 'hydraulic'), ('escalator', 'escalator'),
        ('escalator', 'moving_walk'), ('boiler', 'steam'), ('boiler', 'hot_water'),
        ('pressure_vessel', 'pressure_vessel')));
CREATE INDEX equipment_use_unit ON equipment (use_unit_id);

-- Existing free-text use units become entities.
INSERT INTO use_units (name) SELECT DISTINCT use_unit FROM equipment WHERE use_unit <> '';
UPDATE equipment e SET use_unit_id = u.id FROM use_units u WHERE u.name = e.use_unit;
