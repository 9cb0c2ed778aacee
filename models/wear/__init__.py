"""Wear models (docs/wear.md): each equipment against its own normal, one fleet model per equipment type.

What a benchmark or a notebook calls without the scheduler:

- features: `WEAR_FEATURES`, `feature_names(type)`, `daily_sums(conn, ...)`, `recent_sums(conn, ...)`, `Sums`;
  `COMPONENT_OF_SIMULATED_WEAR` (the simulators' wear kinds to the components alerts name);
- baseline (pure): `day_table(sums, first_day, end_day)`, `span_days(...)`, `own_baselines(...)`, `reference(...)`,
  `deviations(...)`;
- model (pure): `fit(table, first_target, ...)` -> (WearModel, validation figures), `WearModel.score(z, own)`,
  `WearModel.normalised(z, own)`, `high(scores, u, threshold)`, `explain(type, u)`, `training_set(...)`,
  `dumps` / `loads`;
- store: `save_model`, `ModelCache`; scoring: `judge` (arrays), `score_ends` (scores, alerts);
  jobs: `training_table`, `train_type`, `train_job`, `score_job`.
"""
