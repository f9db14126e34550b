# energyarb: `make run` serves the dashboard with a worker and beat; `make test` runs the whole suite.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
MANAGE := $(BIN)/python manage.py
HOST ?= 127.0.0.1
PORT ?= 8000
export DJANGO_SETTINGS_MODULE := energyarb.settings

.PHONY: run test fuzz browser npm lint bench fmt install install-dev worker beat clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python requirements.txt
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# Browser libraries of the dashboard (Chart.js, world-atlas, topojson-client), served as static files; npm ci
# runs when node_modules is missing or older than the lock file.
NODE_STAMP := node_modules/.package-lock.json
$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@
npm: $(NODE_STAMP)

# Embedded defaults: SQLite under var/ and Celery's filesystem transport (no broker server), DEBUG on.
# Set DATABASE_URL / REDIS_URL to use PostgreSQL and Redis instead.
run: export DEBUG ?= 1
run: install $(NODE_STAMP)
	mkdir -p var
	$(MANAGE) migrate --noinput
	$(MANAGE) seed_sites
	$(MANAGE) seed_grid_programs
	$(MANAGE) install_schedules
	$(MANAGE) refresh_data
	$(MANAGE) optimize || true
	$(BIN)/celery -A energyarb worker --beat --queues grid,fleet,default,data,optimizer --concurrency 2 \
		--loglevel INFO --schedule var/celerybeat-schedule & worker=$$!; \
	$(MANAGE) fleet_simulator & simulator=$$!; \
	trap 'kill $$worker $$simulator 2>/dev/null' EXIT INT TERM; \
	$(MANAGE) runserver $(HOST):$(PORT)

worker: install
	$(BIN)/celery -A energyarb worker --queues grid,fleet,default,data,optimizer --loglevel INFO

beat: install
	$(BIN)/celery -A energyarb beat --loglevel INFO

test: install-dev $(NODE_STAMP)
	$(BIN)/python -m pytest -q -p xdist -n 2 --dist loadfile -m "not browser and not fuzz"

# schemathesis against /api/schema/ in process (no server): >= 1,000 cases, as staff and as a customer; prints the
# count. FUZZ_MAX_EXAMPLES=n sets the examples per operation and role.
fuzz: install-dev
	$(BIN)/python -m pytest -q -p no:xdist -p no:logging -m fuzz tests/fuzz

# The dashboard in Debian's Chromium (apt-get install chromium) through Playwright; screenshots in var/screenshots.
browser: install-dev $(NODE_STAMP)
	$(BIN)/python -m pytest -q -m browser tests/browser

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	DEBUG=1 $(BIN)/mypy
	DEBUG=1 $(MANAGE) check
	DEBUG=1 $(MANAGE) makemigrations --check --dry-run

fmt: install-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: install-dev
	for script in bench/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf var staticfiles node_modules
