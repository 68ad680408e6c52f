# kuma-iam — `make run` serves the verifier on an embedded AWS; `make test` runs every check.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
BIN := $(abspath $(VENV))/bin
# Lambda runs python3.13 and `sam build` wants a matching interpreter on PATH. A pyenv shim may exist
# without working, so each candidate must actually run.
PYTHON313 ?= $(shell for p in python3.13 $$(ls -d $$HOME/.pyenv/versions/3.13*/bin/python3.13 2>/dev/null | sort -V -r) \
	/usr/local/bin/python3.13 /usr/bin/python3.13; do $$p -c 'import sys' >/dev/null 2>&1 && { command -v $$p; break; }; done)
export PATH := $(BIN):$(PATH)
export SAM_CLI_TELEMETRY := 0
PYTEST := $(BIN)/pytest

.PHONY: help install run test lint typecheck validate unit integration build clean

help:
	@echo "make run   - the verifier on an embedded AWS (moto server), with copy-paste commands to try it"
	@echo "make test  - lint, types, template validation, unit and integration tests"
	@echo "make build - sam build"

$(VENV)/.installed: pyproject.toml layers/core/requirements.txt
	@test -n "$(PYTHON313)" || { echo "python3.13 not found: install it (e.g. 'pyenv install 3.13' or 'apt-get install python3.13')" >&2; exit 1; }
	$(PYTHON313) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --editable '.[dev]'
	touch $@

install: $(VENV)/.installed

run: install
	$(BIN)/kuma-iam serve

test: lint typecheck validate unit integration

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

validate: install
	$(BIN)/sam validate --lint
	$(BIN)/cfn-lint template.yaml

unit: install
	$(PYTEST) tests/unit

integration: install
	$(PYTEST) tests/integration

build: install
	$(BIN)/sam build

clean:
	rm -rf .aws-sam $(VENV) .pytest_cache .mypy_cache .ruff_cache
