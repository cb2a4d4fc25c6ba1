# Foundation suite. `make run` starts the whole suite on SQLite; `make test` is lint + type check + all tests.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_WORKERS ?= 2

.PHONY: help venv run test lint protos protos-check baseline bench clean

help:
	@echo "make run     start the whole suite on SQLite (Ctrl-C stops it)"
	@echo "make test    lint + type check + all tests"
	@echo "make protos  regenerate gen/ from protos/"
	@echo "make bench   run the benchmarks; results in bench/results/ and docs/performance.md"
	@echo "make clean   remove the venv, build files and local data"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed; set PYTHON=/path/to/python3.11")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

run: venv
	$(BIN)/foundation run

protos: venv
	$(BIN)/python scripts/gen_protos.py

protos-check: venv
	$(BIN)/python scripts/gen_protos.py --check

# Sets the buf breaking-change baseline to the current contracts. Only on purpose, in its own commit.
baseline: venv
	$(BIN)/python scripts/gen_protos.py --third-party-only
	$(BIN)/buf build protos -o protos/baseline.binpb

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python scripts/gen_protos.py --third-party-only
	$(BIN)/buf lint
	$(BIN)/buf format -d --exit-code protos
	$(BIN)/buf breaking --against protos/baseline.binpb
	$(BIN)/python scripts/gen_protos.py --check

test: lint
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadgroup -q

bench: venv
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache .hypothesis data
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
