-- The daily figures per maintenance firm as well (docs/compliance-figures.md), so that a scope narrowed to some
-- firms (semon/scope.py) counts only their equipment in the trend as in every other figure. Equipment without a
-- firm has none (NULL), and days recorded before this migration have none either: they stay counted by district
-- and type, and a scope of firms does not see them.
ALTER TABLE compliance_daily ADD COLUMN firm_id integer REFERENCES maintenance_firms (id);
ALTER TABLE compliance_daily DROP CONSTRAINT compliance_daily_pkey;
-- A primary key cannot hold the NULL of "no firm"; one row per day, district, type and firm (or none) all the same.
CREATE UNIQUE INDEX compliance_daily_grain ON compliance_daily (day, district_id, type, COALESCE(firm_id, 0));
