# Every target sets up .venv first (Python 3.11, pinned by requirements.lock).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export DAGSTER_HOME := $(CURDIR)/dagster_home
# The base of drs.yaml and data/drs_history.duckdb (see README, configuration): the
# checkout, for every target alike (the notebook's kernel runs in notebooks/).
export DRS_HOME ?= $(CURDIR)

.PHONY: setup demo sync simulator notebook dev check-defs lint format typecheck audit unit-tests test lock clean

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)  ## several syncs of the embedded simulator, then what landed
	$(BIN)/drs-pipeline demo

sync: $(STAMP)  ## one sync of the configured projects (embedded simulator if none)
	$(BIN)/drs-pipeline sync

simulator: $(STAMP)  ## the DRS simulator on http://127.0.0.1:8600 (token from DRS_AUTH_TOKEN)
	$(BIN)/drs-pipeline simulator --port 8600

notebook: $(STAMP)  ## Jupyter on http://127.0.0.1:8888, reading the published history
	$(BIN)/jupyter lab --ip 127.0.0.1 --port 8888 --no-browser notebooks/explore_jobs.ipynb

dev: $(STAMP)  ## Dagster UI and daemon on http://127.0.0.1:3000
	$(BIN)/dg dev --host 127.0.0.1 --port 3000

check-defs: $(STAMP)
	$(BIN)/dg check defs

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/nbstripout --verify notebooks/*.ipynb

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: $(STAMP)
	$(BIN)/mypy

# Fails when a pinned package has a known vulnerability. Packages the service cannot
# look up are listed as skipped, not failed: see README, "Dependencies".
audit: $(STAMP)
	$(BIN)/pip-audit -r requirements.lock --no-deps --disable-pip --progress-spinner off

unit-tests: $(STAMP)
	$(BIN)/pytest -n 2 -m "not slow"

test: lint typecheck audit  ## everything CI runs
	$(BIN)/pytest -n 2

lock:  ## re-resolve the pins from pyproject.toml into requirements.lock
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet -e '.[dev]'
	.lock-venv/bin/python -m pip freeze --exclude-editable > requirements.lock
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
