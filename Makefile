# kpi-pipeline — operators' and developers' entry points. `make help` lists them.
# The Makefile creates its own virtual environment (.venv) from pyproject.toml; nothing else is needed.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The exporter as the Lambda package holds it: runtime dependencies only (no pandas, so no NumPy), for `make bench`.
LAMBDA_VENV  := .venv-lambda
LAMBDA_STAMP := $(LAMBDA_VENV)/.installed
# The peers `make bench` measures the exporter against (pandas, dlt, connectorx, polars): their own environment.
BENCH_VENV  := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed
# The BigQuery emulator the loader's tests use, in its own environment (it pins an older sqlglot).
BQ_VENV  := .venv-bq
BQ_STAMP := $(BQ_VENV)/.installed

# Deployment (README: Deploying on AWS). The Lambda architecture, the stage and its parameters file.
SAM    ?= sam
ARCH   ?= x86_64
STACK   = kpi-pipeline-$(STAGE)
PARAMS  = infra/params/$(STAGE).env
WIF     = infra/params/$(STAGE).gcp-wif.json
ifneq ($(filter deploy destroy,$(MAKECMDGOALS)),)
ifeq ($(STAGE),)
$(error usage: make $(MAKECMDGOALS) STAGE=prod [ARCH=arm64])
endif
endif

.DEFAULT_GOAL := help
.PHONY: help browser qemu install native demo run backfill status clone-plan clone check jp-holidays lint test test-fast bench package deploy destroy clean

help: ## Show the targets and what they do
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "kpi-pipeline needs Python 3.11 or newer: make PYTHON=python3.12 …")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m infra.native
	@touch $(STAMP)

$(LAMBDA_STAMP): pyproject.toml
	$(PYTHON) -m venv $(LAMBDA_VENV)
	$(LAMBDA_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LAMBDA_VENV)/bin/python -m pip install --quiet -e .
	@touch $(LAMBDA_STAMP)

$(BENCH_STAMP): bench/peers.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet -r bench/peers.txt
	@touch $(BENCH_STAMP)

$(BQ_STAMP): tests/bigquery-emulator.txt
	$(PYTHON) -m venv $(BQ_VENV)
	$(BQ_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BQ_VENV)/bin/python -m pip install --quiet -r tests/bigquery-emulator.txt
	@touch $(BQ_STAMP)

browser: ## Headless Chromium (Debian's package) for the test that opens the demo report
	@command -v chromium >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium)

qemu: ## qemu-user (Debian's package), to run the C reader's arm64 build in the tests
	@command -v qemu-aarch64-static >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y qemu-user-static)

install: $(STAMP) ## Create .venv and install the project with its development tools

native: $(STAMP) ## Build the exporter's C reader for this machine (pipeline/sources/_mysql_wire.<machine>.so)
	@$(BIN)/python -m infra.native

demo: $(STAMP) ## The main job on the embedded default: demo shop → lake → warehouse → .kpi/report.html
	$(BIN)/kpi demo
	@echo "kpi is installed in $(BIN): 'source $(BIN)/activate' puts it on your PATH (or run $(BIN)/kpi …)"

run: $(STAMP) ## Export and load what is due: make run [KPI="daily_sales …"] [DATE=2024-03-01] [ENV=production]
	$(BIN)/kpi run $(KPI) $(if $(DATE),--date $(DATE)) $(if $(ENV),--env $(ENV))

backfill: $(STAMP) ## A range, one query per month: make backfill KPI=daily_sales FROM=2024-01-01 TO=2024-12-31 [ENV=…] [VIA=sfn]
	@test -n "$(KPI)" -a -n "$(FROM)" -a -n "$(TO)" || { echo "usage: make backfill KPI=name FROM=2024-01-01 TO=2024-12-31 [VIA=local|sfn]"; exit 2; }
	$(BIN)/kpi backfill $(KPI) --start $(FROM) --end $(TO) $(if $(ENV),--env $(ENV)) $(if $(VIA),--via $(VIA))

status: $(STAMP) ## Newest partition and freshness per KPI; exits 1 when one is stale: make status [ENV=production]
	$(BIN)/kpi status $(if $(ENV),--env $(ENV))

clone-plan: $(STAMP) ## Check masking/ and, with URL=mysql://user@host:3306/, the coverage gate against that server's schema
	$(BIN)/kpi clone plan $(if $(URL),--url $(URL))

clone: $(STAMP) ## Clone production into staging, masked: start the deployed state machine: make clone [RUN=20261128-2134]
	$(BIN)/kpi clone run $(if $(RUN),--run $(RUN))

check: $(STAMP) ## Check every KPI file in queries/ (what CI runs for analysts' pull requests)
	$(BIN)/kpi check

jp-holidays: $(STAMP) ## Write pipeline/core/jp_holiday_table.py again from the installed holidays package (after upgrading it)
	$(BIN)/python -m infra.jp_holidays

lint: $(STAMP) ## ruff (lint and format) and mypy --strict
	$(BIN)/ruff check pipeline tests bench infra
	$(BIN)/ruff format --check pipeline tests bench infra
	$(BIN)/mypy

# Two pytest workers (pytest-xdist): each starts its own moto server and emulator; tests marked with one
# xdist_group (the Lambda package build) stay on one worker. TEST_WORKERS=0 runs in this process.
TEST_WORKERS ?= 2
PYTEST = $(BIN)/pytest $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadgroup)

test: lint native $(BQ_STAMP) browser qemu ## Lint, type-check and run every test on two workers (MariaDB on 127.0.0.1:3306; a BigQuery emulator)
	$(PYTEST)

test-fast: native ## Core, CLI and the embedded-default flows: no infrastructure simulation, no MariaDB (-m "not infra and not mysql")
	$(PYTEST) -m "not infra and not mysql"

bench: native $(LAMBDA_STAMP) $(BENCH_STAMP) ## Exporter against its peers, a 1,000-KPI catalog, a year's backfill, the loader at 1 GB, cold imports, anomaly detection (MariaDB on 127.0.0.1:3306)
	$(BIN)/python -m bench.export_bench --kpi $(LAMBDA_VENV)/bin/kpi --peers-python $(BENCH_VENV)/bin/python
	$(BIN)/python -m bench.catalog_bench --kpi $(LAMBDA_VENV)/bin/kpi
	$(BIN)/python -m bench.backfill_bench --kpi $(LAMBDA_VENV)/bin/kpi
	$(BIN)/python -m bench.load_bench --kpi $(LAMBDA_VENV)/bin/kpi
	$(BIN)/python -m bench.cold_import
	$(BIN)/python -m bench.demo_bench
	$(BIN)/python -m bench.anomaly_bench

package: $(STAMP) ## Lambda zips for ARCH (x86_64|arm64) in build/lambda, checked against their size budgets: make package [ARCH=arm64]
	$(BIN)/python -m infra.package --arch $(ARCH) --compile

deploy: $(STAMP) ## Build the template from queries/ and deploy a stage: make deploy STAGE=prod [ARCH=arm64]
	@test -f $(PARAMS) || { echo "no $(PARAMS): copy infra/params/example.env and fill it in"; exit 2; }
	@command -v $(SAM) >/dev/null || { echo "deploying needs the AWS SAM CLI (README: Deploying on AWS)"; exit 2; }
	@$(BIN)/python -m infra.params $(PARAMS) >/dev/null  # the file checked before minutes of packaging
	$(MAKE) --no-print-directory package ARCH=$(ARCH)
	$(BIN)/python -m infra.build --arch $(ARCH) $(if $(wildcard $(WIF)),--gcp-wif-config $(WIF))
	$(BIN)/python -m infra.params $(PARAMS) -- \
	    $(SAM) deploy --template-file build/template.yaml --stack-name $(STACK) --resolve-s3 \
	    --capabilities CAPABILITY_IAM CAPABILITY_NAMED_IAM --no-fail-on-empty-changeset \
	    --parameter-overrides Stage=$(STAGE) Architecture=$(ARCH)

destroy: ## Delete a stage's stack (asks first; the lake bucket is kept): make destroy STAGE=prod
	$(SAM) delete --stack-name $(STACK)

clean: ## Remove the virtual environment and caches
	rm -rf $(VENV) $(LAMBDA_VENV) $(BENCH_VENV) $(BQ_VENV) build/lambda build/template.yaml .pytest_cache .mypy_cache .ruff_cache
