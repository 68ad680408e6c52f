# kuma-iam — `make run` serves the verifier, the token issuer and tag compliance on an embedded AWS; `make test` runs every check.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
SERVE_ARGS ?=
BIN := $(abspath $(VENV))/bin
# Lambda runs python3.13 and `sam build` wants a matching interpreter on PATH. A pyenv shim may exist
# without working, so each candidate must actually run.
PYTHON313 ?= $(shell for p in python3.13 $$(ls -d $$HOME/.pyenv/versions/3.13*/bin/python3.13 2>/dev/null | sort -V -r) \
	/usr/local/bin/python3.13 /usr/bin/python3.13; do $$p -c 'import sys' >/dev/null 2>&1 && { command -v $$p; break; }; done)
export PATH := $(BIN):$(PATH)
export SAM_CLI_TELEMETRY := 0
PYTEST := $(BIN)/pytest

.PHONY: help install run test lint typecheck validate unit integration build clean
.PHONY: lint-template lint-member-template lint-examples test-sam sam-local-invoke engine engine-stop lock

# checkov lives in its own venv: its pins (boto3 1.35, urllib3 1.26, packaging 23) conflict with
# aws-sam-cli's boto3 pin, and one resolver run for both would downgrade the project's own libraries.
CHECKOV_VERSION := 3.3.30
CHECKOV_VENV := $(VENV)/checkov
CHECKOV := $(abspath $(CHECKOV_VENV))/bin/checkov --framework cloudformation --skip-download --quiet --compact
ENGINE := tools/sam-local/engine.sh

help: ## this list
	@echo "kuma-iam: make <target>"
	@awk 'BEGIN { FS = ":[^#]*## " } /^[a-z][a-z-]*:.*## / { printf "  %-21s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

# pip's output goes to a log; tools/progress.sh says every 10 s what it is doing (README gives the time).
$(VENV)/.installed: pyproject.toml layers/core/requirements.txt
	@test -n "$(PYTHON313)" || { echo "python3.13 not found: install it (e.g. 'pyenv install 3.13' or 'apt-get install python3.13')" >&2; exit 1; }
	@echo "make install: .venv with $(PYTHON313), the project, its command line and dev tools (boto3, rich, moto, aws-sam-cli, mypy...)"
	@echo "  once; usually about a minute (more on a slow network); log: $(VENV)/install.log"
	$(PYTHON313) -m venv $(VENV)
	@tools/progress.sh "upgrading pip" $(VENV)/install.log $(BIN)/python -m pip install --upgrade pip
	@tools/progress.sh "pip install -e .[dev,cli]" $(VENV)/install.log $(BIN)/python -m pip install --editable '.[dev,cli]'
	@touch $@
	@echo "make install: done"

install: $(VENV)/.installed ## make .venv (python3.13) with the project and its dev tools; once

run: install ## the verifier, the token issuer, tag compliance and the token provisioner on an embedded AWS, with commands to try them [SERVE_ARGS=...]
	$(BIN)/kuma-iam serve $(SERVE_ARGS)

test: lint typecheck validate unit integration ## lint, types, template checks, unit and integration tests

lint: install ## ruff check and ruff format --check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install ## mypy --strict
	$(BIN)/mypy

validate: lint-template ## the template checks (as lint-template)

$(CHECKOV_VENV)/.installed: | $(VENV)/.installed
	@echo "make: checkov $(CHECKOV_VERSION) in its own venv, once (about 1 min; log: $(CHECKOV_VENV)/install.log)"
	$(PYTHON313) -m venv $(CHECKOV_VENV)
	@tools/progress.sh "pip install checkov" $(CHECKOV_VENV)/install.log \
		$(CHECKOV_VENV)/bin/python -m pip install --disable-pip-version-check 'checkov==$(CHECKOV_VERSION)'
	@touch $@

# checkov twice: on the template as written (where the skips and their reasons live), and on SAM's
# translation with the optional resources switched on (the generated role, stage and replay table).
lint-template: install $(CHECKOV_VENV)/.installed ## sam validate --lint, cfn-lint, checkov: template.yaml, member template
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
		--set TokenProvisionerClusters=arn:aws:ecs:us-east-1:111111111111:cluster/mesh \
		> .aws-sam/scan/template.json
	$(CHECKOV) --file .aws-sam/scan/template.json
	$(BIN)/python tools/lint-template/translate.py template.yaml \
		--set TokenProvisionerClusters=arn:aws:ecs:us-east-1:111111111111:cluster/mesh \
		--set TokenSigner=control-plane --set ControlPlaneUrl=https://kuma-cp.mesh.internal:5682 \
		--set ControlPlaneTokenSecretArn=arn:aws:secretsmanager:us-east-1:111111111111:secret:kuma-cp/admin-AbCdEf \
		--set ControlPlaneCaSecretArn=arn:aws:secretsmanager:us-east-1:111111111111:secret:kuma-cp/ca-AbCdEf \
		> .aws-sam/scan/template-control-plane.json
	$(CHECKOV) --file .aws-sam/scan/template-control-plane.json
	$(MAKE) --no-print-directory lint-member-template
	$(MAKE) --no-print-directory lint-examples

# The member-account template is plain CloudFormation (a StackSet takes no Transform): cfn-lint, then
# checkov as written and with Enforce on (its UntagRole grant), the parameter set by translate.py.
MEMBER_TEMPLATE := templates/member-account.yaml
lint-member-template: install $(CHECKOV_VENV)/.installed ## cfn-lint and checkov on templates/member-account.yaml
	$(BIN)/cfn-lint $(MEMBER_TEMPLATE)
	$(CHECKOV) --file $(MEMBER_TEMPLATE)
	@mkdir -p .aws-sam/scan
	$(BIN)/python tools/lint-template/translate.py $(MEMBER_TEMPLATE) --set Enforce=Enabled \
		> .aws-sam/scan/member-account.json
	$(CHECKOV) --file .aws-sam/scan/member-account.json

# The service stack of examples/ecs (Kong Mesh 1.x's layout, served by the token provisioner): plain
# CloudFormation, cfn-lint and checkov as written (its skips carry their reasons).
EXAMPLE_TEMPLATES := $(wildcard examples/ecs/*.yaml)
lint-examples: install $(CHECKOV_VENV)/.installed ## cfn-lint and checkov on the service stack examples (examples/ecs)
	$(BIN)/cfn-lint $(EXAMPLE_TEMPLATES)
	for template in $(EXAMPLE_TEMPLATES); do $(CHECKOV) --file $$template || exit 1; done

# The layer's runtime dependencies, resolved for Lambda (CPython 3.13, x86_64 manylinux) and pinned with
# hashes: `sam build` installs the layer from this file (tests/unit/test_layer_lock.py keeps it in step).
lock: install ## re-resolve the layer's dependencies to the newest, pinned with hashes
	$(BIN)/uv pip compile pyproject.toml --upgrade --generate-hashes --python-version 3.13 \
		--python-platform x86_64-manylinux_2_28 --custom-compile-command "make lock" \
		--output-file layers/core/requirements.txt

unit: install ## tests/unit: pure code, no sockets
	$(PYTEST) tests/unit

integration: install ## tests/integration: the real handlers on the embedded AWS
	$(PYTEST) tests/integration

# The venv is made from PYTHON313 and comes first on PATH, so its python3.13 (with pip) builds the layer.
build: install ## sam build (the layer gets kuma_iam and its runtime dependencies)
	$(BIN)/sam build

engine: ## start a Docker engine and build the stand-in Lambda image (tools/sam-local)
	$(ENGINE) start
	$(ENGINE) image

engine-stop: ## stop the dockerd that `make engine` started (only that one)
	$(ENGINE) stop

# sam local invoke of every event (and start-api once per route) in containers; see tests/sam.
test-sam: install ## sam build, sam local invoke of every event, start-api per route (Docker)
	$(PYTEST) -m sam tests/sam

EVENTS ?=
sam-local-invoke: install ## try the functions in Lambda containers, answers checked [EVENTS=events/...]
	tools/sam-local/invoke.sh $(EVENTS)

clean: ## remove .venv, build output and caches (.local, the stacks' state, stays)
	rm -rf .aws-sam $(VENV) .pytest_cache .mypy_cache .ruff_cache

# Opt-in tiers (README gives their times): 5,000 verifications from 16 threads (own process, own embedded AWS), and
# the benchmarks' scoreboard: every figure interleaved with its baseline and held to a target.
.PHONY: test-load bench profile
test-load: install ## 5,000 verifications from 16 threads, valid and hostile mixed
	$(PYTEST) -m load tests/load

# Fresh interpreters (cold start, imports, memory) run on the layer's locked packages alone, as Lambda's
# /opt/python holds them, not on the venv (which has more: awscrt, pyOpenSSL change what botocore imports).
BENCH_LAYER := $(VENV)/bench-layer
$(BENCH_LAYER)/.installed: layers/core/requirements.txt | $(VENV)/.installed
	rm -rf $(BENCH_LAYER)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --require-hashes \
		--only-binary=:all: --target $(BENCH_LAYER) -r layers/core/requirements.txt
	touch $@

bench: install $(BENCH_LAYER)/.installed ## the scoreboard: every function against its physical limit (bench/results.json, .png)
	PYTHONPATH=tests:. $(BIN)/python -m bench.run --layer-packages $(BENCH_LAYER)

profile: install ## where a warm verification spends its time, by cProfile (bench/profile.txt)
	PYTHONPATH=tests:. $(BIN)/python -m bench.profile

# The unit and integration tiers while BUSY processes (default: one per core) spin beside them, as on a loaded
# CI runner: a test that passes only on a quiet machine fails here. `make test-busy BUSY=3` loads it more.
BUSY ?= $(shell nproc)
.PHONY: test-busy
test-busy: install ## unit and integration tiers beside BUSY spinning processes (default one per core) [BUSY=n]
	BUSY=$(BUSY) PYTEST=$(PYTEST) tools/test-busy.sh
