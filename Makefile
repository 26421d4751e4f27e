# whisper-api: the human interface. `make help` lists the targets.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
UV     := $(BIN)/uv
# uv's own lines of the lock (version and hashes): what the bootstrap installs with pip.
EXPORT_UV = { echo '\# Written from uv.lock by `make lock`: the pinned uv that installs the lock.'; \
	$(UV) export --frozen --all-extras --no-emit-project --quiet \
	| awk '/^uv==/ {keep=1; print; next} keep && /^ +--hash/ {print; next} {keep=0}'; }
PYTEST_ARGS ?=
# The browser tests drive Debian's Chromium (never a browser downloaded by Playwright).
CHROMIUM ?= /usr/bin/chromium
# The cluster tests start Debian's redis-server (RAM only) on a free loopback port.
REDIS_SERVER ?= /usr/bin/redis-server
# Container builds: podman if installed, else docker; IMAGE names the result.
CONTAINER ?= $(shell command -v podman 2>/dev/null || command -v docker 2>/dev/null)
IMAGE ?= localhost/whisper-api
BASE_IMAGE ?=
CONTAINER_BUILD_FLAGS ?=
# Podman drops HEALTHCHECK from OCI-format images; the docker format keeps it.
_FORMAT = $(if $(findstring podman,$(notdir $(CONTAINER))),--format docker)
_BASE = $(if $(BASE_IMAGE),--build-arg BASE_IMAGE=$(BASE_IMAGE))
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.DEFAULT_GOAL := help
.PHONY: help install lock upgrade lock-check browser redis run test test-fast test-tools deploy-check lint format bench bench-speakers image image-cuda clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-10s %s\n", $$1, $$2}'

# uv itself, pinned with its hashes (requirements-uv.txt, written from uv.lock by `make lock`).
$(UV): requirements-uv.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps \
		--require-hashes -r requirements-uv.txt
	# venv seeds setuptools on Python 3.11; the lock does not hold it, so .venv must not either.
	$(BIN)/python -m pip uninstall --quiet --disable-pip-version-check --yes setuptools
	@touch $@

# Exactly the lock: every package at its locked version and hash, nothing else in .venv.
# --locked stops here (nothing installed) when pyproject.toml changed since the lock.
$(STAMP): $(UV) pyproject.toml uv.lock
	$(UV) sync --locked --all-extras --quiet
	@touch $@

install: $(STAMP) ## create .venv with exactly the lock: the service, its offline models, the dev tools

lock: $(UV) ## after editing pyproject.toml: re-resolve uv.lock, keeping every pin it can
	$(UV) lock
	$(EXPORT_UV) > requirements-uv.txt

upgrade: $(UV) ## move every pin to the newest allowed release, then run the whole suite
	$(UV) lock --upgrade
	$(EXPORT_UV) > requirements-uv.txt
	$(MAKE) test

lock-check: $(STAMP) ## fail when uv.lock is stale for pyproject.toml or .venv differs from it
	$(UV) lock --check --quiet
	$(UV) sync --locked --all-extras --check --quiet

# A file target: apt-get runs only when $(CHROMIUM) is absent.
$(CHROMIUM):
	$(SUDO) apt-get update
	$(SUDO) apt-get install -y chromium

browser: $(CHROMIUM) ## install Debian's chromium for the browser tests (only when missing)

$(REDIS_SERVER):
	$(SUDO) apt-get update
	$(SUDO) apt-get install -y redis-server

redis: $(REDIS_SERVER) ## install Debian's redis-server for the cluster tests (only when missing)

run: $(STAMP) ## start the server on LISTEN:PORT (default 127.0.0.1:3001)
	$(BIN)/whisper-api serve

lint: $(STAMP) lock-check ## ruff (lint and format check) and mypy --strict
	$(BIN)/ruff check app whisper_api tests
	$(BIN)/ruff format --check app whisper_api tests
	$(BIN)/mypy

format: $(STAMP) ## apply ruff's formatting and safe fixes
	$(BIN)/ruff check --fix app whisper_api tests
	$(BIN)/ruff format app whisper_api tests

# Each tool only when missing: nix-instantiate (nix-bin), kubectl for `kubectl kustomize`
# (kubernetes-client; any newer kubectl already on PATH does too), promtool (prometheus),
# redis-sentinel (the failover test).
test-tools: ## Debian tools the deployment and failover tests use (nix-bin, kubernetes-client, prometheus, redis-sentinel)
	@missing=""; \
	command -v nix-instantiate >/dev/null || missing="$$missing nix-bin"; \
	command -v kubectl >/dev/null || missing="$$missing kubernetes-client"; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	command -v redis-sentinel >/dev/null || missing="$$missing redis-sentinel"; \
	[ -z "$$missing" ] || { $(SUDO) apt-get update -qq \
		&& DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; }

# The Kubernetes manifests, the dashboard and the alert rules (deploy/kubernetes/).
DEPLOY_CHECKS := tests/deploy/test_kubernetes.py tests/deploy/test_monitoring.py

deploy-check: $(STAMP) $(REDIS_SERVER) test-tools ## render every Kubernetes variant, validate it offline, test the alert rules, scrape a real server
	$(BIN)/pytest $(DEPLOY_CHECKS) $(PYTEST_ARGS)

test: $(STAMP) $(CHROMIUM) $(REDIS_SERVER) lint test-tools deploy-check ## lint, deploy-check, then the whole suite (real models and browser tests included)
	$(BIN)/pytest $(addprefix --ignore=,$(DEPLOY_CHECKS)) $(PYTEST_ARGS)

test-fast: $(STAMP) $(REDIS_SERVER) test-tools ## the suite without the real-model tests
	$(BIN)/pytest -m 'not real_model' $(PYTEST_ARGS)

bench: $(STAMP) ## the server against faster-whisper called directly (table + test-artifacts/bench.json)
	@mkdir -p test-artifacts
	$(BIN)/whisper-api bench --json test-artifacts/bench.json

bench-speakers: $(STAMP) ## only the speaker-label scenario (DER, counts, CPU per audio minute, an hour)
	@mkdir -p test-artifacts
	$(BIN)/whisper-api bench --only speakers --json test-artifacts/bench-speakers.json

image: ## build the CPU container image (podman or docker; BASE_IMAGE=... to change the base)
	@test -n "$(CONTAINER)" || { echo "make image: install podman or docker" >&2; exit 1; }
	$(CONTAINER) build $(_FORMAT) $(_BASE) $(CONTAINER_BUILD_FLAGS) \
		-f containers/Containerfile -t $(IMAGE):latest .

image-cuda: ## build the NVIDIA CUDA container image (same options)
	@test -n "$(CONTAINER)" || { echo "make image-cuda: install podman or docker" >&2; exit 1; }
	$(CONTAINER) build $(_FORMAT) $(_BASE) $(CONTAINER_BUILD_FLAGS) \
		-f containers/Containerfile.cuda -t $(IMAGE):cuda .

clean: ## remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache test-artifacts
