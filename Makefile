# Streamline: one entry point for setting up, testing, synthesizing and linting.
# `make setup` is idempotent: it only reinstalls when pyproject.toml or the npm lock file changed.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CDK := node_modules/.bin/cdk
PY_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
# The AWS SDK clients the local Node.js Lambda runtime provides to functions (its own project, so
# functions see only what AWS's nodejs runtimes bundle, not the CDK CLI's modules).
NODE_RUNTIME := streamline/local/runtime/node
NODE_RUNTIME_STAMP := $(NODE_RUNTIME)/node_modules/.installed
# The dashboard test drives Debian's Chromium (never a browser build Playwright would download);
# the binary itself is the stamp.
CHROMIUM := /usr/bin/chromium

.PHONY: setup demo test chaos test-unit test-infra test-local test-cloud test-engine test-crash test-e2e synth lint format bench clean

setup: $(PY_STAMP) $(NODE_STAMP) $(NODE_RUNTIME_STAMP) $(CHROMIUM)

$(PY_STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(NODE_RUNTIME_STAMP): $(NODE_RUNTIME)/package.json $(NODE_RUNTIME)/package-lock.json
	npm ci --prefix $(NODE_RUNTIME) --no-audit --no-fund --loglevel=error
	touch $@

$(CHROMIUM):
	@command -v apt-get >/dev/null || { echo "make setup: $@ is missing and there is no apt-get;" \
		"install Chromium with this system's package manager" >&2; exit 1; }
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium

# The main job: start the local cloud, deploy, produce ~5,000 events with faults, recover and
# check conservation (README, "What the demo shows"). Flags through ARGS, for example
#   make demo ARGS="--events 1000 --keep-running"
demo: setup
	$(VENV)/bin/streamline demo $(ARGS)

# `make test` measures coverage (COV); the suites on their own do not unless asked:
#   make test-cloud COV=--cov
COV_TEST := --cov --cov-report=

# Unit tests use moto in-process (mock_aws resets moto's global state), so they never share a
# process with the local cloud: each local suite runs in its own pytest session. The three
# cloud suites (tests/local/cloud's session cloud, tests/local/engine's moto servers and the
# crash test's clouds, the end-to-end one) each have their own processes, so they run two at a
# time (-O prints each suite's output when it ends); their tests wait for conditions, never for
# time, so a busy CPU only slows them. Longest first: the two longest start together, and the
# engine suite follows the end-to-end one while the crash test follows the cloud suite
# (measured idle: e2e 4:08 + engine 3:46 beside cloud 6:05 + crash 1:22).
test: COV = $(COV_TEST)
test: setup
	rm -f .coverage .coverage.*
	COVERAGE_FILE=.coverage.unit $(PY) -m pytest -q -n 2 $(COV) tests/unit tests/infra
	$(MAKE) --no-print-directory -j2 -O test-e2e test-cloud test-engine test-crash COV="$(COV)"
	$(PY) -m coverage combine -q
	@mkdir -p tests/.artifacts
	$(PY) -m coverage report > tests/.artifacts/coverage.txt
	@echo "coverage per file: tests/.artifacts/coverage.txt"; tail -1 tests/.artifacts/coverage.txt

test-cloud: setup
	COVERAGE_FILE=.coverage.cloud $(PY) -m pytest -q $(COV) tests/local/cloud

test-unit: setup
	$(PY) -m pytest -q tests/unit

test-infra: setup
	$(PY) -m pytest -q tests/infra

test-local: setup
	$(PY) -m pytest -q tests/local/engine
	$(PY) -m pytest -q tests/local/cloud

# The engines on moto servers of their own.
test-engine: setup
	COVERAGE_FILE=.coverage.engine $(PY) -m pytest -q $(COV) tests/local/engine

# The clouds the crash test starts and SIGKILLs.
test-crash: setup
	COVERAGE_FILE=.coverage.crash $(PY) -m pytest -q $(COV) tests/crash

# The end-to-end tests and a small attack suite share one cloud (tests/conftest.py).
test-e2e: setup
	COVERAGE_FILE=.coverage.e2e $(PY) -m pytest -q $(COV) tests/e2e tests/chaos

# The attack suite at full size: 1,000 malformed records across every entry point beside 1,000
# valid events with duplicates and disorder; figures in tests/.artifacts/chaos.json.
chaos: setup
	CHAOS_RECORDS=1000 CHAOS_VALID=1000 $(PY) -m pytest -q -s tests/chaos

synth: setup
	$(CDK) synth --quiet

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy functions/orderflow stacks app.py streamline
	# Each handler is a top-level module named "handler": one mypy run per function directory.
	for handler in functions/*/handler.py; do MYPYPATH=functions $(PY) -m mypy $$handler || exit 1; done

format: setup
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

# The handlers' overhead, then the whole pipeline on the local cloud (about 3 minutes);
# bench/README.md records both and how to read them.
bench: setup
	$(PY) bench/handlers.py
	$(PY) bench/pipeline.py

clean:
	rm -rf cdk.out .pytest_cache .mypy_cache .ruff_cache .hypothesis .streamline
