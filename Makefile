# Two entry points (see README): `make run` and `make test`. Each creates .venv when missing
# and re-syncs it when a lock file changes; nothing else needs to be installed beyond Python.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.8
LOCK ?= requirements/dev.lock
STAMP := $(VENV)/.synced-$(notdir $(LOCK))
DATA ?= $(or $(GIAMSAT_DATA_DIR),../shared/data)
OUT ?= var

.PHONY: setup run test lint typecheck unit bench lock clean

$(BIN)/uv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(STAMP): $(LOCK) pyproject.toml | $(BIN)/uv
	$(BIN)/uv pip sync --quiet --python $(BIN)/python $(LOCK)
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	rm -f $(VENV)/.synced-* && touch $@

setup: $(STAMP)

# The main job: generate a demo province, ingest it and a real log, and summarise both.
run: setup
	$(BIN)/giamsat demo --data-dir $(DATA) --out $(OUT)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

unit: setup
	$(BIN)/pytest -n 2 -q

test: lint typecheck unit

# Benchmarks run in their own environment: it adds pm4py (AGPL), the peer we compare with.
bench:
	$(MAKE) setup VENV=.venv-bench LOCK=requirements/bench.lock
	.venv-bench/bin/python -m bench.ingest --data-dir $(DATA)
	.venv-bench/bin/python -m bench.simulate
	.venv-bench/bin/python -m bench.features --dask-events 10000000
	.venv-bench/bin/python -m bench.integrity_real --data-dir $(DATA)
	.venv-bench/bin/python -m bench.integrity
	.venv-bench/bin/python -m bench.integrity_entities

# Regenerate the lock files after editing pyproject.toml.
lock: | $(BIN)/uv
	$(BIN)/uv pip compile --quiet pyproject.toml --extra dev --python-version 3.11 -o requirements/dev.lock
	$(BIN)/uv pip compile --quiet pyproject.toml --extra dev --extra bench --python-version 3.11 -o requirements/bench.lock

clean:
	rm -rf $(VENV) $(OUT)
