# One task runner: the README and CI call these targets.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
# Python packages come only from uv.lock (hashes checked), through scripts/deps.sh, which stops
# with a clear message when pyproject.toml and the lock disagree.
DEPS := PYTHON=$(PYTHON) VENV=$(VENV) scripts/deps.sh
LOCKED := pyproject.toml uv.lock scripts/uv-requirements.txt
SUM := $(shell cat $(LOCKED) | cksum | cut -d' ' -f1)
# Two stamps: `make run` installs what running needs (plus the speed extra); test, bench, lint
# and dashboards install every extra.
RUN_STAMP := $(VENV)/.run-$(SUM)
DEV_STAMP := $(VENV)/.dev-$(SUM)

# Pinned npm packages the tests check the doubles against (Figma's OpenAPI spec, a real MCP
# server), installed from the committed lock file into a cache dir.
NPM_DIR ?= .cache/npm
# Where `make bench` writes its results as JSON (git revision, machine, every figure).
BENCH_JSON ?= .cache/bench-results.json
NPM_STAMP := $(NPM_DIR)/.installed-$(shell cat tests/npm/package-lock.json | cksum | cut -d' ' -f1)

.PHONY: run test test-repeat torture bench bench-fleet lint dashboards mixin system-deps bench-deps npm-deps \
	clean speedups clean-speedups lock upgrade test-lowest screenshots bench-dashboard

$(RUN_STAMP): $(LOCKED)
	$(DEPS) sync --extra speed
	rm -f $(VENV)/.run-* $(VENV)/.dev-* && touch $@

$(DEV_STAMP): $(LOCKED)
	$(DEPS) sync --all-extras
	rm -f $(VENV)/.run-* $(VENV)/.dev-* && touch $@ $(RUN_STAMP)

# The runtime dependencies at their lower bounds (pyproject.toml), in .venv-lowest; linters and
# the mypyc build check the locked tooling, not the bounds, so they are left out.
test-lowest: system-deps $(NPM_STAMP)  ## the suite on the oldest releases pyproject.toml allows
	$(DEPS) lowest
	$(VENV)-lowest/bin/python -m pytest --ignore tests/test_lint.py --deselect \
		tests/unit/test_speedups.py::test_mypyc_translates_the_listed_modules_to_c $(PYTEST_ARGS)

lock:  ## after editing pyproject.toml: re-lock what changed, keep every other version
	$(DEPS) lock

# A dependency upgrade is a commit of its own: this re-resolves, then the suite says whether it holds.
upgrade:  ## re-resolve every dependency (and uv) to the newest releases, then run the suite
	$(DEPS) upgrade
	git --no-pager diff --stat -- uv.lock scripts/uv-requirements.txt
	$(MAKE) test

run: $(RUN_STAMP)  ## start the exporter (memory only unless flags/env say otherwise); pass flags with ARGS="..."
	$(BIN)/session-metrics-exporter $(ARGS)

system-deps:
	PYTHON=$(PYTHON) scripts/system-deps.sh

# Only the benchmarks need wrk (and no Prometheus, Node or Chromium).
bench-deps:
	PYTHON=$(PYTHON) scripts/system-deps.sh bench

$(NPM_STAMP): tests/npm/package.json tests/npm/package-lock.json
	mkdir -p $(NPM_DIR)
	cp tests/npm/package.json tests/npm/package-lock.json $(NPM_DIR)/
	cd $(NPM_DIR) && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	rm -f $(NPM_DIR)/.installed-* && touch $@

npm-deps: system-deps $(NPM_STAMP)

# The suite mostly waits (Prometheus evaluations, fault windows, process start-ups), so WORKERS
# pytest-xdist workers overlap those waits: two, one per CPU of the CI machine. `--dist loadfile`
# keeps a file on one worker, so a module's servers and fleets start once. The incident drills
# then run alone: they judge alert timings against a real Prometheus with budgets of seconds, and
# a neighbour compiling with mypyc would eat them. With PYTEST_ARGS, one run of what they select.
# WORKERS=0 runs everything in this one process.
WORKERS ?= 2
DRILLS := tests/integration/drills
test: system-deps $(DEV_STAMP) $(NPM_STAMP)  ## the whole test suite against real redis-server, prometheus and MCP servers
ifeq ($(strip $(PYTEST_ARGS)),)
	$(BIN)/python -m pytest -n $(WORKERS) --dist loadfile --ignore=$(DRILLS)
	$(BIN)/python -m pytest $(DRILLS)
else
	$(BIN)/python -m pytest -n $(WORKERS) --dist loadfile $(PYTEST_ARGS)
endif

# A long randomized fault run (tests/torture/, docs/torture.md): SEED names the schedule (default:
# from the clock, printed first), MINUTES its length, ROUND one round of it, DEPLOYMENT forces one.
# Exits 1 with the report of every failed round; histories and logs stay in .cache/torture/.
torture: system-deps $(DEV_STAMP)  ## random faults under load, judged by the checker: make torture SEED=7 MINUTES=30
	$(BIN)/python -m tests.torture $(if $(SEED),--seed $(SEED)) --minutes $(or $(MINUTES),3) \
		$(if $(ROUND),--round $(ROUND)) $(if $(DEPLOYMENT),--deployment $(DEPLOYMENT))

# Every run on a fresh clone of HEAD; LOAD=1 keeps the CPUs busy beside it. Counts, never retries.
test-repeat:  ## the whole suite N times (default 20) on fresh clones: make test-repeat N=20 [LOAD=1]
	LOAD=$(LOAD) scripts/test-repeat.sh $(or $(N),20)

bench: bench-deps $(DEV_STAMP)  ## benchmarks: ratios against baselines measured in the same run; results also in BENCH_JSON
	$(BIN)/python -m bench --json $(BENCH_JSON)

# Coherence's cost as the fleet grows, with replica processes; the baseline is the last BCAST
# commit (FLEET_BASELINE=<commit> for another), extracted from git into .cache/ in the same run.
bench-fleet: bench-deps $(DEV_STAMP)  ## an idle replica's and Redis's CPU per write, 1-5 replicas, vs the BCAST baseline
	$(BIN)/python -m bench fleet --json $(BENCH_JSON)

bench-dashboard: bench-deps $(DEV_STAMP)  ## what the dashboard and fleet publishing cost the server (part of `make bench`)
	$(BIN)/python -m bench dashboard --json .cache/bench-dashboard.json

# Optional: the hot synchronous modules compiled with mypyc, in place (exporter/app/speedups.py lists
# them and says why only those). Needs gcc and the Python headers; CI and the default install
# never build it, and clean-speedups is pure Python again.
speedups: $(DEV_STAMP)  ## compile the hot modules with mypyc, in place (optional, ≈ 30% off a memory-tier get)
	PYTHONPATH=. $(BIN)/python scripts/build_speedups.py

clean-speedups:  ## remove the mypyc build: pure Python again
	rm -rf build/mypyc
	find exporter -name '*.so' -delete

lint: $(DEV_STAMP)
	$(BIN)/ruff check exporter tests bench grafana mixin
	$(BIN)/ruff format --check exporter tests bench grafana mixin
	$(BIN)/mypy

dashboards: mixin  ## regenerate the committed Grafana dashboard JSON (and the rest of the mixin)

# Rules, dashboards, ServiceMonitor, PrometheusRule and dashboard ConfigMap from mixin/config.yml;
# JOB=... and RUNBOOK_URL=... override it for one run, OUTPUT=dir writes the tree elsewhere.
mixin: $(DEV_STAMP)  ## regenerate everything mixin/config.yml feeds
	$(BIN)/python -m mixin $(if $(JOB),--job '$(JOB)') $(if $(RUNBOOK_URL),--runbook-url '$(RUNBOOK_URL)') $(if $(OUTPUT),--output '$(OUTPUT)')

# The dashboard's pictures in docs/screenshots/ (a redis-server, two replicas, some traffic,
# headless Chromium at desktop and phone width); tests/unit/test_screenshots.py fails when the
# dashboard's files change without them.
screenshots: system-deps $(DEV_STAMP)  ## regenerate docs/screenshots/ after changing exporter/web/static/
	$(BIN)/python scripts/screenshots.py

clean: clean-speedups
	rm -rf $(VENV) $(VENV)-lowest .pytest_cache $(NPM_DIR) .cache/uv
