# Two commands do all set-up on a fresh machine (only Python 3.11+ and pip needed):
#   make run    one snapshot run on the embedded defaults (simulator + SQLite + local Parquet)
#   make test   the whole test suite (SQLite, and PostgreSQL when Debian's server binaries are installed)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint dev bench clean

# Bytecode is compiled at install: where PYTHONDONTWRITEBYTECODE is set (as on our machines) every Dagster run
# process would otherwise compile its imports again (importing the definitions: 12.3 s -> 4.7 s).
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check uv
	$(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/python -m pipelines.run_once

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

dev: $(STAMP)
	DAGSTER_HOME=$${DAGSTER_HOME:-$(CURDIR)/data/dagster_home} $(BIN)/dagster dev -w workspace.yaml

clean:
	rm -rf data .pytest_cache .ruff_cache
