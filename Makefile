# carehub: two commands on a fresh machine.
#   make demo   - set up .venv, run the hub on its embedded defaults, play the sample feed
#   make test   - set up .venv, lint, type-check and run the whole test suite
# Also: make bench (figures printed), make run (the hub as a service),
#   make fuzz (MLLP fuzz run against a real hub: inputs, answers by code, unanswered).

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
ARGS   ?=

.PHONY: setup demo run test lint typecheck unit bench fuzz clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "carehub needs Python >= 3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/carehub demo $(ARGS)

run: $(STAMP)
	$(BIN)/carehub run $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -m "not integration"

test: lint typecheck
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python -m bench $(ARGS)

# Bounded: --examples batches of 1-4 frames, at most --max-seconds (defaults 20000 and 240).
fuzz: $(STAMP)
	$(BIN)/python -m tests.adapters.mllp_fuzz $(ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache *.egg-info
