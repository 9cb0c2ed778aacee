-- The daily figures per check (docs/compliance-figures.md). 超期未检率 is the periodic inspection's figure alone;
-- maintenance (超期未维保) and every other check have figures of their own. Until now a day kept one "overdue"
-- count, of in-use equipment with ANY check overdue, and one "never_recorded" count, of in-use equipment with a
-- check never recorded and not yet due. Those rows are kept as they were recorded, under names that say what
-- they counted, and nothing is recomputed (the records have changed since); days recorded from now on leave them
-- NULL and keep their counts per check instead, under each (day, district, type, firm) row.
ALTER TABLE compliance_daily RENAME COLUMN overdue TO overdue_any_check;
ALTER TABLE compliance_daily RENAME COLUMN never_recorded TO never_recorded_any_check;
ALTER TABLE compliance_daily ALTER COLUMN overdue_any_check DROP NOT NULL,
                             ALTER COLUMN never_recorded_any_check DROP NOT NULL;
COMMENT ON COLUMN compliance_daily.overdue_any_check IS
    'days recorded before migration 0011 only: in-use equipment with any check overdue; NULL since';
COMMENT ON COLUMN compliance_daily.never_recorded_any_check IS
    'days recorded before migration 0011 only: in-use equipment with a check never recorded and not yet due; NULL since';

-- A key for the rows per check to hang from; existing rows are numbered as they are.
ALTER TABLE compliance_daily ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY;

-- One row per check owed under each compliance_daily row; they go when their day is recorded again.
CREATE TABLE compliance_daily_check (
    daily_id        bigint NOT NULL REFERENCES compliance_daily (id) ON DELETE CASCADE,
    check_name      text NOT NULL,
    owing           integer NOT NULL CHECK (owing > 0),                             -- in-use equipment owing it
    overdue         integer NOT NULL CHECK (overdue BETWEEN 0 AND owing),           -- with it overdue (超期)
    never_recorded  integer NOT NULL CHECK (never_recorded BETWEEN 0 AND owing),    -- with no record of it at all,
                                                                                    -- overdue or not
    PRIMARY KEY (daily_id, check_name)
);
