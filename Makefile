# Every target sets up .venv first (Python 3.11, pinned by requirements.lock), with
# only what it needs: the product for demo, sync, simulator and dev; the notebook's
# extra for notebook; the test tools for setup, lint, typecheck, audit and test.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check -c requirements.lock
# One stamp per set of extras; each is redone when the pins or the package change.
PRODUCT := $(VENV)/.installed-product
NOTEBOOKS := $(VENV)/.installed-notebooks
DEV := $(VENV)/.installed-dev
export DAGSTER_HOME := $(CURDIR)/dagster_home
# The base of drs.yaml and data/drs_history.duckdb (docs/configuration.md): the
# checkout, for every target alike (the notebook's kernel runs in notebooks/).
export DRS_HOME ?= $(CURDIR)

.PHONY: setup demo sync simulator notebook dev check-defs lint format typecheck audit unit-tests test lock clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(PRODUCT): pyproject.toml requirements.lock | $(BIN)/python
	$(PIP) -e .
	touch $@

$(NOTEBOOKS): pyproject.toml requirements.lock | $(BIN)/python
	$(PIP) -e '.[notebooks]'
	touch $@ $(PRODUCT)

$(DEV): pyproject.toml requirements.lock | $(BIN)/python
	$(PIP) -e '.[dev]'
	touch $@ $(PRODUCT)

setup: $(DEV)  ## everything a developer needs: the product and the test tools

demo: $(PRODUCT)  ## several syncs of the embedded simulator, then what landed
	$(BIN)/drs-pipeline demo

sync: $(PRODUCT)  ## one sync of the configured projects (embedded simulator if none)
	$(BIN)/drs-pipeline sync

simulator: $(PRODUCT)  ## the DRS simulator on http://127.0.0.1:8600 (token from DRS_AUTH_TOKEN)
	$(BIN)/drs-pipeline simulator --port 8600

notebook: $(NOTEBOOKS)  ## Jupyter on http://127.0.0.1:8888, reading the published history
	$(BIN)/jupyter lab --ip 127.0.0.1 --port 8888 --no-browser notebooks/explore_jobs.ipynb

dev: $(PRODUCT)  ## Dagster UI and daemon on http://127.0.0.1:3000
	$(BIN)/dg dev --host 127.0.0.1 --port 3000

check-defs: $(PRODUCT)
	$(BIN)/dg check defs

lint: $(DEV)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/nbstripout --verify notebooks/*.ipynb

format: $(DEV)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: $(DEV)
	$(BIN)/mypy

# Fails when a pinned package has a known vulnerability. Packages the service cannot
# look up are listed as skipped, not failed: see docs/operations.md, "Dependencies".
audit: $(DEV)
	$(BIN)/pip-audit -r requirements.lock --no-deps --disable-pip --progress-spinner off

unit-tests: $(DEV)
	$(BIN)/pytest -n 2 -m "not slow"

test: lint typecheck audit  ## everything CI runs
	$(BIN)/pytest -n 2

lock:  ## re-resolve the pins of the product and every extra into requirements.lock
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet -e '.[dev,notebooks]'
	.lock-venv/bin/python -m pip freeze --exclude-editable > requirements.lock
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
