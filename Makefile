# Two commands matter: `make demo` and `make test`. Both install into .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.8
HOME_DIR ?= $(CURDIR)/.demo-home

export UV_PYTHON_DOWNLOADS := never
export UV_COMPILE_BYTECODE := 1

.PHONY: install demo test test-fast lint bench ui mlflow clean

install: $(VENV)/.installed

# Re-run only when the lock or the project metadata changes (idempotent).
$(VENV)/.installed: requirements.lock pyproject.toml setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	test -x $(BIN)/uv || $(BIN)/python -m pip install -q "uv==$(UV_VERSION)"
	$(BIN)/uv pip install -q --python $(BIN)/python -r requirements.lock
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	touch $@

demo: install
	$(BIN)/trade-pipeline --home "$(HOME_DIR)" demo

test: install
	$(BIN)/ruff check trade_pipeline trade_pipeline_tests benchmarks
	$(BIN)/python -m pytest -n 2 --timeout 600 trade_pipeline_tests

test-fast: install
	$(BIN)/python -m pytest -n 2 -m "not slow" trade_pipeline_tests

lint: install
	$(BIN)/ruff check trade_pipeline trade_pipeline_tests benchmarks
	$(BIN)/ruff format --check trade_pipeline trade_pipeline_tests benchmarks

bench: install
	$(BIN)/trade-pipeline bench all --json

ui: install
	mkdir -p "$(HOME_DIR)/dagster"
	DAGSTER_HOME="$(HOME_DIR)/dagster" $(BIN)/dagster instance concurrency set duckdb_writer 1
	DAGSTER_HOME="$(HOME_DIR)/dagster" TRADE_PIPELINE_HOME="$(HOME_DIR)" \
		$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

# MLflow on PostgreSQL: MLFLOW_BACKEND_STORE_URI and PGPASSWORD from the environment; binds
# 127.0.0.1:5000 (see docs/DEPLOYMENT.md).
mlflow: install
	PATH="$(CURDIR)/$(BIN):$$PATH" deploy/mlflow/run-server.sh

clean:
	rm -rf $(VENV) .demo-home .pytest_cache .ruff_cache
