# Two commands do all set-up: `make run` and `make test`. Both create .venv when missing
# and reuse it afterwards; the stamp files re-install only when pyproject.toml changes.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The suite is mostly single-threaded: two pytest-xdist workers, each test file on one worker
# (module fixtures are built once). PYTEST_WORKERS= runs it in one process.
PYTEST_WORKERS ?= -n 2 --dist loadfile
PYTEST_ARGS ?=

.PHONY: run test lint format bench clean help

help:
	@echo "make run   - create .venv, install ckrun, run the main job on the embedded synthetic CK+"
	@echo "make test  - create .venv, install ckrun with dev extras, run the test suite"
	@echo "make lint  - ruff check"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/ckrun run

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest $(PYTEST_WORKERS) $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check ckrun tests bench
	$(BIN)/ruff format --check ckrun tests bench

format: $(VENV)/.installed-dev
	$(BIN)/ruff format ckrun tests bench
	$(BIN)/ruff check --fix ckrun tests bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
