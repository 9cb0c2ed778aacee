"""The registry: equipment, their inspection and maintenance records, maintenance firms, districts and use units,
imported from and exported to CSV (docs/registry-csv.md); the same fields validate the JSON API (web/registry.py).

fields: each column's parsing, storage and rules; csvfiles: reading and writing the files; upsert: the SQL that
writes rows; importer and exporter: the files in and out."""
