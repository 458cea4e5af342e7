# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: run test install install-test lock env migrate lint typecheck pytest bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# requirements.lock holds the exact versions the suite passed with (all of them, test tools
# too); pyproject.toml keeps the ranges. To change one, install it into .venv (within its
# range), run the suite, then `make lock` writes what .venv holds.
LOCK := requirements.lock

$(STAMP): pyproject.toml $(LOCK) | $(BIN)/python
	$(BIN)/pip install --quiet -c $(LOCK) -e .
	touch $@

$(TEST_STAMP): pyproject.toml ea/agent/pyproject.toml $(LOCK) | $(BIN)/python
	$(BIN)/pip install --quiet -c $(LOCK) -e '.[test]' -e './ea/agent[test]'
	touch $@ $(STAMP)

lock: | $(BIN)/python
	{ echo "# Exact versions of every dependency, tested together: make lock (pip freeze)."; \
	  $(BIN)/pip freeze --exclude-editable; } > $(LOCK)

install: $(STAMP)

install-test: $(TEST_STAMP)

env: install
	@$(BIN)/python -m bot.envfile

migrate: env
	@$(BIN)/alembic upgrade head

run: migrate
	@$(BIN)/python -m bot

lint: install-test
	$(BIN)/ruff check .

typecheck: install-test
	$(BIN)/mypy .

pytest: install-test
	$(BIN)/pytest -q

test: lint typecheck pytest

bench: install-test
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .pytest_cache .ruff_cache

# New or changed texts: extract their message ids and merge them into every catalog
# (then translate the new entries; tests/test_catalogs.py lists what is missing).
.PHONY: catalogs
catalogs: install
	$(BIN)/pybabel extract -F locales/babel.cfg -k Text -k Plural:1,2 --no-default-keywords \
		--sort-by-file --add-location=file -w 100 -o locales/messages.pot bot handlers
	$(BIN)/pybabel update -i locales/messages.pot -d locales -D messages -w 100 \
		--no-fuzzy-matching --ignore-obsolete
