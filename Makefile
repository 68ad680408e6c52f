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
.PHONY: lint-template lint-member-template test-sam sam-local-invoke engine engine-stop lock

# checkov lives in its own venv: its pins (boto3 1.35, urllib3 1.26, packaging 23) conflict with
# aws-sam-cli's boto3 pin, and one resolver run for both would downgrade the project's own libraries.
CHECKOV_VERSION := 3.3.30
CHECKOV_VENV := $(VENV)/checkov
CHECKOV := $(abspath $(CHECKOV_VENV))/bin/checkov --framework cloudformation --skip-download --quiet --compact
ENGINE := tools/sam-local/engine.sh

help:
	@echo "make run   - the verifier on an embedded AWS (moto server), with copy-paste commands to try it"
	@echo "make test  - lint, types, template validation, unit and integration tests"
	@echo "make build - sam build (the layer gets kuma_iam and its runtime dependencies)"
	@echo "make lint-template - sam validate --lint, cfn-lint and checkov on template.yaml and templates/member-account.yaml"
	@echo "make lock  - re-resolve the layer's dependencies (pyproject.toml) to the newest, pinned with hashes"
	@echo "make test-sam - sam build, then sam local invoke of every event and sam local start-api (Docker)"
	@echo "make test-busy [BUSY=n] - unit and integration tiers beside n busy processes (default: one per core)"
	@echo "make sam-local-invoke [EVENTS=events/verifier/allowed.json] - try functions with sam local invoke"
	@echo "make engine / engine-stop - start or stop the local dockerd and stand-in Lambda image (tools/sam-local)"

$(VENV)/.installed: pyproject.toml layers/core/requirements.txt
	@test -n "$(PYTHON313)" || { echo "python3.13 not found: install it (e.g. 'pyenv install 3.13' or 'apt-get install python3.13')" >&2; exit 1; }
	$(PYTHON313) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --editable '.[dev,cli]'
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

validate: lint-template

$(CHECKOV_VENV)/.installed: | $(VENV)/.installed
	$(PYTHON313) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check 'checkov==$(CHECKOV_VERSION)'
	touch $@

# checkov twice: on the template as written (where the skips and their reasons live), and on SAM's
# translation with the optional resources switched on (the generated role, stage and replay table).
lint-template: install $(CHECKOV_VENV)/.installed
	$(BIN)/sam validate --lint
	$(BIN)/cfn-lint template.yaml
	$(CHECKOV) --file template.yaml
	@mkdir -p .aws-sam/scan
	$(BIN)/python tools/lint-template/translate.py template.yaml \
		--set ReplayProtection=Enabled --set AlarmEmail=alarms@example.com \
		--set ComplianceMode=enforce --set SecurityHub=Enabled --set OrganizationId=o-a1b2c3d4e5 \
		--set ZoneName=zone-1 \
		--set SigningKeySecretArns=arn:aws:secretsmanager:us-east-1:111111111111:secret:kuma-key-AbCdEf \
		--set AdditionalSigningKmsKeyArns=arn:aws:kms:us-east-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab \
		> .aws-sam/scan/template.json
	$(CHECKOV) --file .aws-sam/scan/template.json
	$(MAKE) --no-print-directory lint-member-template

# The member-account template is plain CloudFormation (a StackSet takes no Transform): cfn-lint, then
# checkov as written and with Enforce on (its UntagRole grant), the parameter set by translate.py.
MEMBER_TEMPLATE := templates/member-account.yaml
lint-member-template: install $(CHECKOV_VENV)/.installed
	$(BIN)/cfn-lint $(MEMBER_TEMPLATE)
	$(CHECKOV) --file $(MEMBER_TEMPLATE)
	@mkdir -p .aws-sam/scan
	$(BIN)/python tools/lint-template/translate.py $(MEMBER_TEMPLATE) --set Enforce=Enabled \
		> .aws-sam/scan/member-account.json
	$(CHECKOV) --file .aws-sam/scan/member-account.json

# The layer's runtime dependencies, resolved for Lambda (CPython 3.13, x86_64 manylinux) and pinned with
# hashes: `sam build` installs the layer from this file (tests/unit/test_layer_lock.py keeps it in step).
lock: install
	$(BIN)/uv pip compile pyproject.toml --upgrade --generate-hashes --python-version 3.13 \
		--python-platform x86_64-manylinux_2_28 --custom-compile-command "make lock" \
		--output-file layers/core/requirements.txt

unit: install
	$(PYTEST) tests/unit

integration: install
	$(PYTEST) tests/integration

# The venv is made from PYTHON313 and comes first on PATH, so its python3.13 (with pip) builds the layer.
build: install
	$(BIN)/sam build

engine:
	$(ENGINE) start
	$(ENGINE) image

engine-stop:
	$(ENGINE) stop

# sam local invoke of every event (and start-api once per route) in containers; see tests/sam.
test-sam: install
	$(PYTEST) -m sam tests/sam

EVENTS ?=
sam-local-invoke: install
	tools/sam-local/invoke.sh $(EVENTS)

clean:
	rm -rf .aws-sam $(VENV) .pytest_cache .mypy_cache .ruff_cache

# Opt-in tiers: 5,000 verifications from 16 threads (own process, own embedded AWS; about 50 s), and
# benchmarks as ratios against a baseline measured in the same run (under a minute).
.PHONY: test-load bench
test-load: install
	$(PYTEST) -m load tests/load

bench: install
	PYTHONPATH=tests $(BIN)/python bench/run.py

# The unit and integration tiers while BUSY processes (default: one per core) spin beside them, as on a loaded
# CI runner: a test that passes only on a quiet machine fails here. `make test-busy BUSY=3` loads it more.
BUSY ?= $(shell nproc)
.PHONY: test-busy
test-busy: install
	BUSY=$(BUSY) PYTEST=$(PYTEST) tools/test-busy.sh
