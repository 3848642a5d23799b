# Two commands on a fresh machine: `make run` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint docs bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip==25.3
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[test]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

## Start the server on SQLite with a demo merchant (its test key and a first curl are printed).
run: export QUITTANCE_ENV ?= development
run: export QUITTANCE_BASE_URL ?= http://$(HOST):$(PORT)
run: $(STAMP)
	$(BIN)/quittance demo
	$(BIN)/quittance serve --host $(HOST) --port $(PORT)

## Run the whole suite (database tests run on SQLite, and on PostgreSQL when it is reachable).
test: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

## Regenerate the documents rendered from code.
docs: $(STAMP)
	$(BIN)/quittance statuses > docs/invoice-statuses.md

## Run the benchmark by hand (not part of the suite).
bench: $(STAMP)
	$(BIN)/python bench/invoices.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache quittance.db quittance.db-*
