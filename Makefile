# Two entry points for a fresh machine: `make run` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# Real SCIM applications the tests start (docs/apps.md): Canaille in its own
# environment, Better Auth from npm.
CANAILLE := .venv-apps/canaille
APPS := $(CANAILLE)/.installed-stamp tests/apps/node/node_modules/.installed-stamp

.PHONY: install run test lint bench

$(STAMP): pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[test]'
	touch $(STAMP)

$(CANAILLE)/.installed-stamp: tests/apps/canaille-requirements.txt
	python3 -m venv $(CANAILLE)
	$(CANAILLE)/bin/python -m pip install -q -r tests/apps/canaille-requirements.txt
	touch $@

tests/apps/node/node_modules/.installed-stamp: tests/apps/node/package.json tests/apps/node/package-lock.json
	cd tests/apps/node && npm ci --no-audit --no-fund
	touch $@

install: $(STAMP) $(APPS)

## Run scimsync on the embedded SQLite database (./scimsync.db).
run: $(STAMP)
	$(VENV)/bin/scimsync migrate
	$(VENV)/bin/scimsync serve $(ARGS)

## Run the whole test suite (lint, types, then pytest on SQLite and PostgreSQL).
test: $(STAMP) $(APPS) lint
	bash scripts/ensure-postgres
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy
