# carehub: two commands on a fresh machine.
#   make demo   - set up .venv, run the hub on its embedded defaults, play the sample feed
#   make test   - set up .venv, lint, type-check and run the whole test suite
# Also: make bench (figures printed), make run (the hub as a service),
#   make fuzz (MLLP fuzz run against a real hub: inputs, answers by code, unanswered),
#   make wheel (the release wheel in dist/), make lock (regenerate the hashed lock files).

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
ARGS   ?=

.PHONY: setup demo run test lint typecheck unit bench fuzz wheel lock clean

# Locked installs: every dependency from requirements-dev.lock with its hash checked, then carehub itself
# without resolving again (pip check proves the lock satisfies pyproject.toml). `make lock` regenerates
# both lock files after a change to the dependencies in pyproject.toml.
PIP := $(BIN)/pip --disable-pip-version-check
LOCK_FLAGS := --quiet --generate-hashes --strip-extras --allow-unsafe --no-emit-index-url --no-emit-find-links

$(STAMP): pyproject.toml requirements-dev.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "carehub needs Python >= 3.11")'
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --require-hashes -r requirements-dev.lock
	$(PIP) install --quiet --no-deps -e .
	$(PIP) check
	@touch $(STAMP) $(NATIVE)

# The hot modules (conversion, routing, consent) compiled ahead (mypyc, setup.py; carehub/_native.py lists them): the editable
# install above compiles them beside their sources, and this compiles them again after one changes (an
# edited source runs as Python until then: carehub/_native.py checks the sources against the build's record).
NATIVE := $(VENV)/.native
NATIVE_SOURCES := $(shell sed -n 's/^    "\(carehub\.[a-z0-9_.]*\)",$$/\1/p' carehub/_native.py | tr . / | sed 's/$$/.py/')
$(NATIVE): $(STAMP) setup.py carehub/_native.py $(NATIVE_SOURCES)
	$(PIP) install --quiet --no-deps -e .
	@touch $(NATIVE)

# carehub's own modules compiled ahead (an editable install is never byte-compiled by pip, and where
# PYTHONDONTWRITEBYTECODE is set no run writes a cache): each `carehub` process otherwise compiles every
# module it imports again (measured here: `carehub --help` 2.9 s -> 1.7 s). Only changed files recompile.
PYC := $(VENV)/.compiled
$(PYC): $(STAMP) $(NATIVE) $(shell find carehub bench -name '*.py' 2>/dev/null)
	@$(BIN)/python -m compileall -q carehub bench > /dev/null
	@touch $(PYC)

setup: $(STAMP) $(NATIVE) $(PYC)

demo: setup
	$(BIN)/carehub demo $(ARGS)

run: setup
	$(BIN)/carehub run $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP) $(NATIVE)
	$(BIN)/pytest $(XDIST) -m "not integration" $(ARGS)

# The suite runs in TEST_WORKERS processes (pytest-xdist), a test file per process at a time so its
# module-scoped hub and broker are shared; most tests wait on sockets, subprocesses and group joins,
# so four workers fit on two cores (measured: 6 min 9 s with four, 9 min 11 s with three). Files are
# handed out in collection order, where the files marked slow come first (tests/conftest.py), not
# biggest test count first. TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 4
XDIST := $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder)

test: setup lint typecheck
	$(BIN)/pytest $(XDIST) $(ARGS)

bench: setup
	$(BIN)/python -m bench $(ARGS)

# Bounded: --examples batches of 1-4 frames, at most --max-seconds (defaults 20000 and 240).
fuzz: $(STAMP)
	$(BIN)/python -m tests.adapters.mllp_fuzz $(ARGS)

# The release wheel (config/ and demo/ ride along as package data); install it with deploy/install-wheel.sh.
wheel: $(STAMP)
	$(PIP) wheel --no-deps --wheel-dir dist .

lock:
	$(PYTHON) -m venv .venv-tools
	.venv-tools/bin/pip install --quiet --disable-pip-version-check pip-tools
	.venv-tools/bin/pip-compile $(LOCK_FLAGS) -o requirements.lock pyproject.toml
	.venv-tools/bin/pip-compile $(LOCK_FLAGS) --extra dev -o requirements-dev.lock pyproject.toml

clean:
	rm -rf $(VENV) .venv-tools .mypy_cache .pytest_cache .ruff_cache *.egg-info build dist
