# The only commands the README and CI use. Each creates .venv and installs what it needs on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test lint check clean sandbox

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "Installing emaildoctor and its development tools into $(VENV) ..."
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-compile -e '.[dev]'
	@touch $(STAMP)

## demo: create the environment and play the Send As denied story against the local sandbox
demo: $(STAMP)
	@$(BIN)/emaildoctor demo

## test: install and run the test suite (SQLite and PostgreSQL stores, sandbox integration tests)
test: $(STAMP)
	@$(BIN)/python -m pytest -q

## lint: ruff and mypy --strict
lint: $(STAMP)
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .
	@$(BIN)/mypy

## check: exactly what CI runs: lint, then the tests
check: lint test

## sandbox: run the local Microsoft 365 + SMTP + Slack sandbox until interrupted
sandbox: $(STAMP)
	@$(BIN)/emaildoctor sandbox --env-file .env.sandbox

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
