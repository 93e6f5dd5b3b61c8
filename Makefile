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
.PHONY: help browser install demo run backfill status check lint test bench clean

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

browser: ## Headless Chromium (Debian's package) for the test that opens the demo report
	@command -v chromium >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium)

install: $(STAMP) ## Create .venv and install the project with its development tools

demo: $(STAMP) ## The main job on the embedded default: demo shop → lake → warehouse → .kpi/report.html
	$(BIN)/kpi demo

run: $(STAMP) ## Export and load what is due: make run [KPI="daily_sales …"] [DATE=2024-03-01] [ENV=production]
	$(BIN)/kpi run $(KPI) $(if $(DATE),--date $(DATE)) $(if $(ENV),--env $(ENV))

backfill: $(STAMP) ## A range, one query per month: make backfill KPI=daily_sales FROM=2024-01-01 TO=2024-12-31 [ENV=…] [VIA=sfn]
	@test -n "$(KPI)" -a -n "$(FROM)" -a -n "$(TO)" || { echo "usage: make backfill KPI=name FROM=2024-01-01 TO=2024-12-31 [VIA=local|sfn]"; exit 2; }
	$(BIN)/kpi backfill $(KPI) --start $(FROM) --end $(TO) $(if $(ENV),--env $(ENV)) $(if $(VIA),--via $(VIA))

status: $(STAMP) ## Newest partition and freshness per KPI; exits 1 when one is stale: make status [ENV=production]
	$(BIN)/kpi status $(if $(ENV),--env $(ENV))

check: $(STAMP) ## Check every KPI file in queries/ (what CI runs for analysts' pull requests)
	$(BIN)/kpi check

lint: $(STAMP) ## ruff (lint and format) and mypy --strict
	$(BIN)/ruff check pipeline tests bench
	$(BIN)/ruff format --check pipeline tests bench
	$(BIN)/mypy

test: lint $(BQ_STAMP) browser ## Lint, type-check and run the tests (MariaDB on 127.0.0.1:3306; a BigQuery emulator)
	$(BIN)/pytest

bench: $(STAMP) $(LAMBDA_STAMP) ## Export speed and memory against pandas, pymysql and the mysql client; a year's backfill against a query per day (MariaDB on 127.0.0.1:3306)
	$(BIN)/python -m bench.export_bench --kpi $(LAMBDA_VENV)/bin/kpi
	$(BIN)/python -m bench.backfill_bench --kpi $(LAMBDA_VENV)/bin/kpi

clean: ## Remove the virtual environment and caches
	rm -rf $(VENV) $(LAMBDA_VENV) $(BQ_VENV) .pytest_cache .mypy_cache .ruff_cache
