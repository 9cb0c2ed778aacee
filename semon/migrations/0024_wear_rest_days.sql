-- Wear baselines know the week (docs/wear.md): each feature has a level on working days (median) and one on rest
-- days (rest_median), its scale is the spread about them. wear_baselines is a cache of the days being judged;
-- rows computed before have no rest-day level and are made again when next needed.
DELETE FROM wear_baselines;
ALTER TABLE wear_baselines ADD COLUMN rest_median double precision[] NOT NULL;
