# kpi-pipeline — operators' and developers' entry points. `make help` lists them.
# The Makefile creates its own virtual environment (.venv) from pyproject.toml; nothing else is needed.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The exporter as the Lambda package holds it: runtime dependencies only (no pandas, so no NumPy), for `make bench`.
LAMBDA_VENV  := .venv-lambda
LAMBDA_STAMP := $(LAMBDA_VENV)/.installed
# The BigQuery emulator the loader's tests use, in its own environment (it pins an older sqlglot).
BQ_VENV  := .venv-bq
BQ_STAMP := $(BQ_VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install demo check lint test bench clean

help: ## Show the targets and what they do
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "kpi-pipeline needs Python 3.11 or newer: make PYTHON=python3.12 …")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	@touch $(STAMP)

$(LAMBDA_STAMP): pyproject.toml
	$(PYTHON) -m venv $(LAMBDA_VENV)
	$(LAMBDA_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LAMBDA_VENV)/bin/python -m pip install --quiet -e .
	@touch $(LAMBDA_STAMP)

$(BQ_STAMP): tests/bigquery-emulator.txt
	$(PYTHON) -m venv $(BQ_VENV)
	$(BQ_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BQ_VENV)/bin/python -m pip install --quiet -r tests/bigquery-emulator.txt
	@touch $(BQ_STAMP)

install: $(STAMP) ## Create .venv and install the project with its development tools

demo: $(STAMP) ## Run the main job on the embedded default (today: check the examples and show their SQL)
	$(BIN)/kpi check
	$(BIN)/kpi list
	$(BIN)/kpi render daily_sales --date 2024-03-01
	$(BIN)/kpi render hourly_orders --date 2024-03-01T09 --dialect duckdb

check: $(STAMP) ## Check every KPI file in queries/ (what CI runs for analysts' pull requests)
	$(BIN)/kpi check

lint: $(STAMP) ## ruff (lint and format) and mypy --strict
	$(BIN)/ruff check pipeline tests bench
	$(BIN)/ruff format --check pipeline tests bench
	$(BIN)/mypy

test: lint $(BQ_STAMP) ## Lint, type-check and run the tests (MariaDB on 127.0.0.1:3306; a BigQuery emulator)
	$(BIN)/pytest

bench: $(STAMP) $(LAMBDA_STAMP) ## Export speed and memory against pandas, plain pymysql and the mysql client (MariaDB on 127.0.0.1:3306)
	$(BIN)/python -m bench.export_bench --kpi $(LAMBDA_VENV)/bin/kpi

clean: ## Remove the virtual environment and caches
	rm -rf $(VENV) $(LAMBDA_VENV) $(BQ_VENV) .pytest_cache .mypy_cache .ruff_cache
