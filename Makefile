# One task runner: the README and CI call these targets.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
# Pinned npm packages the tests check the doubles against (Figma's OpenAPI spec, a real MCP
# server), installed from the committed lock file into a cache dir.
NPM_DIR ?= .cache/npm
NPM_STAMP := $(NPM_DIR)/.installed-$(shell cat tests/npm/package-lock.json | cksum | cut -d' ' -f1)

.PHONY: run test bench lint dashboards mixin system-deps npm-deps clean

$(STAMP): pyproject.toml
	PYTHON=$(PYTHON) scripts/system-deps.sh venv
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,speed,bench,lint]'
	rm -f $(VENV)/.installed-* && touch $@

run: $(STAMP)  ## start the exporter (memory only unless flags/env say otherwise); pass flags with ARGS="..."
	$(BIN)/session-metrics-exporter $(ARGS)

system-deps:
	PYTHON=$(PYTHON) scripts/system-deps.sh

$(NPM_STAMP): tests/npm/package.json tests/npm/package-lock.json
	mkdir -p $(NPM_DIR)
	cp tests/npm/package.json tests/npm/package-lock.json $(NPM_DIR)/
	cd $(NPM_DIR) && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	rm -f $(NPM_DIR)/.installed-* && touch $@

npm-deps: system-deps $(NPM_STAMP)

test: system-deps $(STAMP) $(NPM_STAMP)  ## the whole test suite against real redis-server, prometheus and MCP servers
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: system-deps $(STAMP)  ## benchmarks: ratios against baselines measured in the same run
	$(BIN)/python -m bench

lint: $(STAMP)
	$(BIN)/ruff check exporter tests bench grafana mixin
	$(BIN)/mypy

dashboards: mixin  ## regenerate the committed Grafana dashboard JSON (and the rest of the mixin)

# Rules, dashboards, ServiceMonitor, PrometheusRule and dashboard ConfigMap from mixin/config.yml;
# JOB=... and RUNBOOK_URL=... override it for one run, OUTPUT=dir writes the tree elsewhere.
mixin: $(STAMP)  ## regenerate everything mixin/config.yml feeds
	$(BIN)/python -m mixin $(if $(JOB),--job '$(JOB)') $(if $(RUNBOOK_URL),--runbook-url '$(RUNBOOK_URL)') $(if $(OUTPUT),--output '$(OUTPUT)')

clean:
	rm -rf $(VENV) .pytest_cache $(NPM_DIR)
