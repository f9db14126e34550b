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

# The Django plugin types `settings.X` from energyarb/settings.py, but a module reading a setting depends on
# django.conf only: its cached result would outlive a change of the setting's type. A cache per settings file.
MYPY_SETTINGS_KEY = $(shell sha1sum energyarb/settings.py | cut -c1-12)

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	DEBUG=1 $(BIN)/mypy --cache-dir .mypy_cache/settings-$(MYPY_SETTINGS_KEY)
	DEBUG=1 $(MANAGE) check
	DEBUG=1 $(MANAGE) makemigrations --check --dry-run

fmt: install-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: install-dev
	for script in bench/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf var staticfiles node_modules

# ---- Containers (docs/deployment.md): one image, a compose stack, Kubernetes manifests ------------------------
# The Debian client (/usr/bin/docker, package docker.io) has BuildKit built in; another client needs buildx.
DOCKER ?= $(if $(wildcard /usr/bin/docker),/usr/bin/docker,docker)
COMPOSE ?= docker-compose
IMAGE ?= energyarb:latest
# Local bases from Debian's packages (no image registry needed); BASE_IMAGE=python:3.11-slim uses the official one.
BASE_IMAGE ?= energyarb-local/python:3.11-bookworm
POSTGRES_IMAGE ?= energyarb-local/postgres:15-bookworm
REDIS_IMAGE ?= energyarb-local/redis:7-bookworm
# pip and npm in the build trust this CA bundle (a build secret, never in the image); the host's index is mirrored.
CA_BUNDLE ?= $(wildcard /etc/ssl/certs/ca-certificates.crt)
PIP_INDEX_URL ?= $(shell python3 -m pip config get global.index-url 2>/dev/null | grep -E '^https?://')
K8S_VERSION ?= 1.37.0
K8S_OVERLAYS := $(notdir $(wildcard deploy/k8s/overlays/*))
DEPLOY_BIN := .venv-deploy/bin
comma := ,

.PHONY: deploy-lint base-images image compose-smoke

.venv-deploy/.installed: requirements-deploy.txt
	$(PYTHON) -m venv .venv-deploy
	$(DEPLOY_BIN)/pip install --quiet -r requirements-deploy.txt
	touch $@

# Offline checks: hadolint, yamllint, every overlay rendered by kustomize and validated against Kubernetes'
# schemas (--strict: unknown fields fail), checkov on the Dockerfiles and the rendered manifests.
deploy-lint: .venv-deploy/.installed
	$(DEPLOY_BIN)/hadolint Dockerfile deploy/docker/*.Dockerfile
	$(DEPLOY_BIN)/yamllint --strict .yamllint.yaml deploy/
	rm -rf var/k8s && mkdir -p var/k8s
	for overlay in $(K8S_OVERLAYS); do kubectl kustomize deploy/k8s/overlays/$$overlay > var/k8s/$$overlay.yaml || exit 1; done
	$(DEPLOY_BIN)/kubernetes-validate --strict --quiet --kubernetes-version $(K8S_VERSION) var/k8s/*.yaml
	$(DEPLOY_BIN)/checkov --config-file deploy/checkov.yaml --framework kubernetes --directory var/k8s
	$(DEPLOY_BIN)/checkov --config-file deploy/checkov.yaml --framework dockerfile \
		$(foreach file,Dockerfile $(wildcard deploy/docker/*.Dockerfile),--file $(file))

base-images:
	DOCKER=$(DOCKER) deploy/docker/base-images.sh

image: $(if $(filter energyarb-local/%,$(BASE_IMAGE)),base-images)
	mkdir -p var
	DOCKER_BUILDKIT=1 $(DOCKER) build --progress=plain --build-arg BASE_IMAGE=$(BASE_IMAGE) \
		$(if $(CA_BUNDLE),--secret id=cacert$(comma)src=$(CA_BUNDLE)) \
		$(if $(PIP_INDEX_URL),--build-arg PIP_INDEX_URL=$(PIP_INDEX_URL)) -t $(IMAGE) . > var/image-build.log 2>&1 \
		|| { tail -40 var/image-build.log; echo "FAIL: docker build (whole log: var/image-build.log)"; exit 1; }
	$(DOCKER) image inspect -f 'image $(IMAGE): {{.Size}} bytes' $(IMAGE)

# The compose stack end to end through the API (deploy/compose/smoke.py), then everything removed; <= 10 min.
compose-smoke: image
	ENERGYARB_IMAGE=$(IMAGE) POSTGRES_IMAGE=$(POSTGRES_IMAGE) REDIS_IMAGE=$(REDIS_IMAGE) COMPOSE="$(COMPOSE)" DOCKER=$(DOCKER) \
		SMOKE_TIMEOUT_S=600 $(PYTHON) deploy/compose/smoke.py
