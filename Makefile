# Two commands on a fresh machine: `make demo` and `make test` (see README).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# The embedded demo: SQLite everywhere, Celery's filesystem broker, all under var/.
# MAGNETIQ_TENANT_URL is the tenants fleet's URL template: each target fills in {target}.
DEMO_ENV := DJANGO_DEBUG=1 \
	MAGNETIQ_DEV_URL=sqlite:///$(CURDIR)/var/targets/dev.sqlite3 \
	MAGNETIQ_STAGING_URL=sqlite:///$(CURDIR)/var/targets/staging.sqlite3 \
	MAGNETIQ_PRODUCTION_URL=sqlite:///$(CURDIR)/var/targets/production.sqlite3 \
	MAGNETIQ_TENANT_URL='sqlite:///$(CURDIR)/var/targets/tenants/{target}.sqlite3'

.PHONY: demo demo-setup demo-fix-tenant test lint format bench clean install screenshots

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo-setup: $(STAMP)
	mkdir -p var/targets/tenants
	$(DEMO_ENV) $(BIN)/python manage.py demo_setup

## The demo's halted fleet rollout: drop the table made by hand on tenant initech (then press Resume).
demo-fix-tenant: $(STAMP)
	$(DEMO_ENV) $(BIN)/python manage.py demo_targets --fix-tenant

## Serve the dashboard on http://127.0.0.1:8000 with two workers and beat; Ctrl-C stops all.
# Migrations run on the `runs` queue (processes: Alembic's context is process-global),
# status reads, mail and the reaper on the `io` queue (threads). On Ctrl-C or TERM the
# trap asks every process to stop, gives them 3 s, kills what is left (a prefork
# worker can hang in its warm shutdown) and exits 0, so make prints no "Error 143".
demo_alive = alive=""; for p in $$pids; do kill -0 $$p 2>/dev/null && alive=1; done; [ -z "$$alive" ]
DEMO_STOP := trap - INT TERM EXIT; exec 2>/dev/null; kill $$pids || true; \
	for _ in 1 2 3 4; do sleep 0.5; $(demo_alive) && break; done; kill -QUIT $$pids || true; \
	for _ in 1 2; do sleep 0.5; $(demo_alive) && break; done; \
	for p in $$pids; do pkill -9 -P $$p || true; kill -9 $$p || true; done; wait || true; exit 0
demo: demo-setup
	@echo "Starting the runs worker, the io worker, beat and the web server (Ctrl-C stops all of them)..."
	@pids=""; trap '$(DEMO_STOP)' INT TERM EXIT; \
	$(DEMO_ENV) $(BIN)/celery -A dashboard worker -Q runs --pool=prefork --concurrency=2 -n runs@%h --loglevel=INFO & pids="$$pids $$!"; \
	$(DEMO_ENV) $(BIN)/celery -A dashboard worker -Q io --pool=threads --concurrency=4 -n io@%h --loglevel=INFO & pids="$$pids $$!"; \
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
SCREENSHOTS := overview control-room graph request-review request-run audit-log rollout-halted
screenshots: $(STAMP)
	$(BIN)/python -m pytest tests/browser/test_demo_tour.py tests/browser/test_approval_journey.py \
		tests/browser/test_graph_journey.py tests/browser/test_environments_journey.py \
		tests/browser/test_audit_journey.py tests/browser/test_rollout_journey.py
	mkdir -p docs/screenshots
	for name in $(SCREENSHOTS); do cp test-artifacts/tour-$$name.png docs/screenshots/$$name.png; done

clean:
	rm -rf var test-artifacts staticfiles
