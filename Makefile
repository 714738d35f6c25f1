# Two commands on a fresh machine: `make demo` and `make test` (see README).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# The embedded demo: SQLite everywhere, Celery's filesystem broker, all under var/.
DEMO_ENV := DJANGO_DEBUG=1 \
	MAGNETIQ_DEV_URL=sqlite:///$(CURDIR)/var/targets/dev.sqlite3 \
	MAGNETIQ_STAGING_URL=sqlite:///$(CURDIR)/var/targets/staging.sqlite3 \
	MAGNETIQ_PRODUCTION_URL=sqlite:///$(CURDIR)/var/targets/production.sqlite3

.PHONY: demo demo-setup test lint format bench clean install screenshots

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo-setup: $(STAMP)
	mkdir -p var/targets
	$(DEMO_ENV) $(BIN)/python manage.py demo_setup

## Serve the dashboard on http://127.0.0.1:8000 with a worker and beat; Ctrl-C stops all.
# The trap stops only the three main processes, then waits for them: a prefork worker
# whose pool children get SIGTERM directly (kill 0) can hang in its warm shutdown.
demo: demo-setup
	@echo "Starting worker, beat and web server (Ctrl-C stops all of them)..."
	@pids=""; trap 'trap - INT TERM EXIT; kill $$pids 2>/dev/null || true; wait' INT TERM EXIT; \
	$(DEMO_ENV) $(BIN)/celery -A dashboard worker --loglevel=INFO --concurrency=2 & pids="$$pids $$!"; \
	$(DEMO_ENV) $(BIN)/celery -A dashboard beat --loglevel=INFO & pids="$$pids $$!"; \
	$(DEMO_ENV) $(BIN)/python manage.py runserver --noreload 127.0.0.1:8000 & pids="$$pids $$!"; \
	wait

## The whole suite against the real PostgreSQL, Redis and Chromium on this machine.
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[test,bench]"
	for script in benchmarks/*_bench.py; do echo "== $$script"; $(BIN)/python $$script; done

## Run the browser journeys, then copy README's screenshots (viewport-sized PNGs) to docs/screenshots/.
SCREENSHOTS := overview graph request-run audit-log
screenshots: $(STAMP)
	$(BIN)/python -m pytest tests/browser/test_demo_tour.py tests/browser/test_approval_journey.py \
		tests/browser/test_graph_journey.py tests/browser/test_environments_journey.py \
		tests/browser/test_audit_journey.py
	mkdir -p docs/screenshots
	for name in $(SCREENSHOTS); do cp test-artifacts/tour-$$name.png docs/screenshots/$$name.png; done

clean:
	rm -rf var test-artifacts staticfiles
