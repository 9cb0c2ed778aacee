"""Flask web UI and JSON API (placeholder until the web module lands)."""
