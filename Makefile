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

.PHONY: demo demo-setup test lint format bench clean install

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
demo: demo-setup
	@echo "Starting worker, beat and web server (Ctrl-C stops all of them)..."
	@trap 'kill 0' INT TERM EXIT; \
	$(DEMO_ENV) $(BIN)/celery -A dashboard worker --loglevel=INFO --concurrency=2 & \
	$(DEMO_ENV) $(BIN)/celery -A dashboard beat --loglevel=INFO & \
	$(DEMO_ENV) $(BIN)/python manage.py runserver --noreload 127.0.0.1:8000 & \
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

clean:
	rm -rf var test-artifacts staticfiles
