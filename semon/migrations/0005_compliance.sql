-- Compliance (docs/compliance.md): what the rules need from the registry and the records, the rule table itself, and
-- due-soon reminders. The rule table's rows are written from config by models/compliance.sync_rules; the
-- defaults seeded here are config.yaml's, so a database nobody has synced yet still answers.

-- TSG 21-2016: the periodic interval of a pressure vessel depends on its safety grade (1-5).
ALTER TABLE equipment
    ADD COLUMN safety_grade              smallint CHECK (safety_grade BETWEEN 1 AND 5),
    ADD COLUMN on_demand_maintenance     boolean NOT NULL DEFAULT false,          -- 按需维保 enrolment
    ADD COLUMN maintenance_cycle_days    integer CHECK (maintenance_cycle_days > 0), -- the firm's approved cycle
    ADD COLUMN governor_install_date     date;   -- when the governor was replaced; NULL: the lift's install date

-- A failed record opens a rectification deadline; NULL means the default (compliance_rectification_days).
ALTER TABLE inspections ADD COLUMN rectify_by date;
ALTER TABLE maintenance_records ADD COLUMN rectify_by date;

-- The latest maintenance visit of any kind resets the 15-day clock: this index finds it without a sort.
CREATE INDEX maintenance_records_latest ON maintenance_records (equipment_id, performed_on DESC);

CREATE TABLE compliance_rules (
    equipment_type      text NOT NULL,
    check_name          text NOT NULL,
    months              integer NOT NULL DEFAULT 0 CHECK (months >= 0),
    days                integer NOT NULL DEFAULT 0 CHECK (days >= 0),
    first_months        integer CHECK (first_months > 0),        -- first one, counted from commissioning
    grade3_months       integer CHECK (grade3_months > 0),       -- safety grade 3 and worse
    old_months          integer CHECK (old_months > 0),          -- once the governor is old
    old_after_years     integer CHECK (old_after_years > 0),
    on_demand           boolean NOT NULL DEFAULT false,          -- 按需维保 may replace the interval
    due_soon_days       integer NOT NULL DEFAULT 30,
    rectification_days  integer NOT NULL DEFAULT 30,
    PRIMARY KEY (equipment_type, check_name),
    CHECK (months > 0 OR days > 0)
);
INSERT INTO compliance_rules (equipment_type, check_name, months, days, first_months, grade3_months, old_months,
                              old_after_years, on_demand, due_soon_days) VALUES
    ('elevator',        'periodic_inspection',         12, 0,  NULL, NULL, NULL, NULL, false, 30),
    ('escalator',       'periodic_inspection',         12, 0,  NULL, NULL, NULL, NULL, false, 30),
    ('elevator',        'maintenance',                 0,  15, NULL, NULL, NULL, NULL, true, 3),
    ('escalator',       'maintenance',                 0,  15, NULL, NULL, NULL, NULL, true, 3),
    ('elevator',        'governor_calibration',        24, 0,  NULL, NULL, 12,   15,   false, 30),
    ('elevator',        'rescue_drill',                6,  0,  NULL, NULL, NULL, NULL, false, 30),
    ('escalator',       'rescue_drill',                6,  0,  NULL, NULL, NULL, NULL, false, 30),
    ('boiler',          'periodic_inspection',         12, 0,  NULL, NULL, NULL, NULL, false, 30),
    ('boiler',          'internal_inspection',         24, 0,  12,   NULL, NULL, NULL, false, 30),
    ('boiler',          'water_quality_test',          3,  0,  NULL, NULL, NULL, NULL, false, 30),
    ('pressure_vessel', 'periodic_inspection',         72, 0,  36,   36,   NULL, NULL, false, 30),
    ('boiler',          'safety_valve_calibration',    12, 0,  NULL, NULL, NULL, NULL, false, 30),
    ('pressure_vessel', 'safety_valve_calibration',    12, 0,  NULL, NULL, NULL, NULL, false, 30),
    ('boiler',          'pressure_gauge_verification', 6,  0,  NULL, NULL, NULL, NULL, false, 30),
    ('pressure_vessel', 'pressure_gauge_verification', 6,  0,  NULL, NULL, NULL, NULL, false, 30);

-- Due-soon reminders, each (equipment, check, due date, days before) sent once; a new record gives a new
-- due date and so a new series.
CREATE TABLE compliance_reminders (
    id              bigserial PRIMARY KEY,
    equipment_id    integer NOT NULL REFERENCES equipment (id),
    check_name      text NOT NULL,
    due_on          date NOT NULL,
    days_before     integer NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (equipment_id, check_name, due_on, days_before)
);

-- The outbox carries reminders too, and a second recipient: the use unit (NULL use_unit: the firm).
ALTER TABLE notifications
    ALTER COLUMN alert_id DROP NOT NULL,
    ADD COLUMN reminder_id bigint REFERENCES compliance_reminders (id),
    ADD COLUMN use_unit text,
    ADD CONSTRAINT notifications_subject CHECK (alert_id IS NOT NULL OR reminder_id IS NOT NULL),
    DROP CONSTRAINT notifications_event_check,
    ADD CONSTRAINT notifications_event_check
        CHECK (event IN ('raised', 'repeated', 'resolved', 'escalated', 'reminder'));
