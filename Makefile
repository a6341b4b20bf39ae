# Horenso: the README documents two commands, `make run` and `make test`.
# Everything else here is what those two need (venv, dependencies, .env) plus `make lint`.

SHELL := /bin/bash
.DEFAULT_GOAL := run

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LINT_PATHS := bot tests bench migrations tools
PYTEST_ARGS ?=

.PHONY: run test install lint env

## run: set everything up, then start the bot (`python -m bot` = `python -m bot serve`)
run: install env
	exec $(BIN)/python -m bot

## test: set everything up, then run pytest (extra options: make test PYTEST_ARGS='-k foo -x').
## The database under test comes from TEST_DATABASE_URL (a temporary SQLite file when unset).
test: install env
	$(BIN)/pytest $(PYTEST_ARGS)

## install: the setup step alone (venv + `pip install -e '.[dev]'` when pyproject.toml changed)
install: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Re-run pip only when pyproject.toml is newer than the stamp (or the venv is new).
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e '.[dev]'
	touch $@

## env: create .env from .env.example if it is missing (never overwrites an existing .env)
env:
	@if [ ! -f .env ]; then cp .env.example .env; echo "created .env from .env.example: fill in the Slack tokens"; fi

## lint: ruff lint + format check
lint: install
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
