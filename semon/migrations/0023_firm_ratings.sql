-- Firm ratings (docs/ratings.md): a month's alerts are found by first_seen. Without an index every ranking would
-- read every alert ever kept (at least 5 years of them); the figures themselves are computed, not stored.
CREATE INDEX alerts_first_seen ON alerts (first_seen);
