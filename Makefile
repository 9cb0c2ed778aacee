# semon: `make demo` runs the whole service on a simulated fleet; `make test` runs the test suite.
SHELL := /bin/bash
.DEFAULT_GOAL := help

help:
	@echo "make demo   set up TimescaleDB, Mosquitto and Python, then run semon on a simulated fleet"
	@echo "make test   set up the same way and run the test suite against the real services"
	@echo "make bench  set up the same way and run the ingest benchmarks (about 6 minutes; bench/RESULTS.md)"
	@echo "make bench-simulate  run the simulator benchmark: the load scenario for 5 minutes (bench/RESULTS.md)"
	@echo "make bench-compliance  compliance status of 100,000 equipment with 1,000,000 records (about 1 minute)"
	@echo "make bench-detection  telemetry fault rules against the evaluation scenario's ground truth, and their cost (about 10 minutes)"
	@echo "make bench-field  the rules' false alarms over a simulated month of the evaluation fleet, engine only (about 10 minutes)"
	@echo "make bench-alerts  an alert storm (10,000 alerts, 50 firms) grouped and delivered to a local webhook receiver (about 1 minute)"
	@echo "make bench-wear  the wear models against the simulators' wear and a z-score baseline, and their cost (about 45 minutes)"
	@echo "make lint   ruff"
	@echo "make stop   stop the TimescaleDB and Mosquitto that semon started"

setup:
	@scripts/setup-python.sh

demo: setup
	@scripts/demo.sh

test: setup
	@scripts/test.sh $(ARGS)

bench: setup
	@scripts/bench.sh

# Not part of `make bench`: it would take that past 10 minutes. It needs Mosquitto only, no database.
bench-simulate: setup
	@. scripts/lib.sh && ensure_debs mosquitto && "$$VENV/bin/python" bench/simulate.py

# Not part of `make bench` either. It needs TimescaleDB only (started here if needed, stopped if it was).
bench-compliance: setup
	@db_state=$$(scripts/timescaledb.sh start) || exit 1; .venv/bin/python bench/compliance.py; rc=$$?; \
	if [ "$$db_state" = started ]; then scripts/timescaledb.sh stop; fi; exit $$rc

# Not part of `make bench` either. It needs TimescaleDB (started here if needed, stopped if it was) and Mosquitto.
bench-detection: setup
	@. scripts/lib.sh && ensure_debs mosquitto && db_state=$$(scripts/timescaledb.sh start) || exit 1; \
	"$$VENV/bin/python" bench/detection.py; rc=$$?; \
	if [ "$$db_state" = started ]; then scripts/timescaledb.sh stop; fi; exit $$rc

# Not part of `make bench` either. Engine only: no database, no broker (bench/field.py).
bench-field: setup
	@.venv/bin/python bench/field.py

# Not part of `make bench` either. It needs TimescaleDB (started here if needed, stopped if it was) and Mosquitto.
bench-wear: setup
	@. scripts/lib.sh && ensure_debs mosquitto && db_state=$$(scripts/timescaledb.sh start) || exit 1; \
	"$$VENV/bin/python" bench/wear.py; rc=$$?; \
	if [ "$$db_state" = started ]; then scripts/timescaledb.sh stop; fi; exit $$rc

# Not part of `make bench` either. It needs TimescaleDB only (started here if needed, stopped if it was).
bench-alerts: setup
	@db_state=$$(scripts/timescaledb.sh start) || exit 1; .venv/bin/python bench/alerts.py; rc=$$?; \
	if [ "$$db_state" = started ]; then scripts/timescaledb.sh stop; fi; exit $$rc

lint: setup
	@.venv/bin/ruff check .

stop: setup
	@scripts/mosquitto.sh stop
	@scripts/timescaledb.sh stop

.PHONY: help setup demo test bench bench-simulate bench-compliance bench-detection bench-field bench-wear bench-alerts lint stop
