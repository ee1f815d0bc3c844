# Two entry points for a fresh machine: `make run` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test lint bench

$(STAMP): pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

## Run scimsync on the embedded SQLite database (./scimsync.db).
run: $(STAMP)
	$(VENV)/bin/scimsync migrate
	$(VENV)/bin/scimsync serve $(ARGS)

## Run the whole test suite (lint, types, then pytest on SQLite and PostgreSQL).
test: $(STAMP) lint
	bash scripts/ensure-postgres
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy
