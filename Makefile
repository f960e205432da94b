# One task runner: the README and CI call these targets.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
SUM := $(shell cat pyproject.toml | cksum | cut -d' ' -f1)
# Two stamps: `make run` installs what running needs (plus the speed extra); test, bench, lint
# and dashboards install the development extras too.
RUN_STAMP := $(VENV)/.run-$(SUM)
DEV_STAMP := $(VENV)/.dev-$(SUM)
# Quiet: no pip version nag, no setuptools warning wall from the editable build.
PIP := PYTHONWARNINGS=ignore PIP_DISABLE_PIP_VERSION_CHECK=1 $(BIN)/pip install -q

$(BIN)/python:
	PYTHON=$(PYTHON) scripts/system-deps.sh venv
	$(PYTHON) -m venv $(VENV)

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(PIP) -e '.[speed]'
	rm -f $(VENV)/.run-* && touch $@

$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(PIP) -e '.[test,speed,bench,lint]'
	rm -f $(VENV)/.run-* $(VENV)/.dev-* && touch $@ $(RUN_STAMP)

run: $(RUN_STAMP)  ## start the exporter (memory only unless flags/env say otherwise); pass flags with ARGS="..."
	$(BIN)/session-metrics-exporter $(ARGS)

system-deps:
	PYTHON=$(PYTHON) scripts/system-deps.sh

test: system-deps $(DEV_STAMP)  ## the whole test suite against real redis-server, prometheus and an MCP server
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: system-deps $(DEV_STAMP)  ## benchmarks: ratios against baselines measured in the same run
	$(BIN)/python -m bench

lint: $(DEV_STAMP)
	$(BIN)/ruff check exporter tests bench grafana
	$(BIN)/mypy

dashboards: $(DEV_STAMP)  ## regenerate the committed Grafana dashboard JSON
	$(BIN)/python -m grafana.dashboards

clean:
	rm -rf $(VENV) .pytest_cache
