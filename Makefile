# qflowui — the two commands: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
export QFLOWUI_PORT ?= $(PORT)

.PHONY: run test test-py312 compose-test install install-dev lint format bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --disable-pip-version-check -q -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --disable-pip-version-check -q -r requirements-dev.txt
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# honcho (the process manager of `make run`) is a development tool: requirements-dev.txt pins
# it, and `make run` installs just it from there (the image does not need it).
$(BIN)/honcho: requirements-dev.txt | $(VENV)/.installed
	$(BIN)/pip install --disable-pip-version-check -q "$$(grep -i '^honcho==' requirements-dev.txt)"
	touch $@

## run: web server, Celery worker and Celery beat on http://127.0.0.1:$(PORT) (Ctrl-C stops all)
run: install $(BIN)/honcho
	@mkdir -p var
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput -v 0
	$(BIN)/python manage.py ensure_demo_user
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho start -f Procfile

## test: lint, format check, Django checks, migrations check and the whole pytest suite
test: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python manage.py check
	$(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/pytest

## test-py312: the same on Python 3.12, in its own venv (.venv312); PYTHON312 names the interpreter
PYTHON312 ?= python3.12
test-py312:
	$(MAKE) test PYTHON=$(PYTHON312) VENV=.venv312

## compose-test: the Docker demo end to end (compose.demo.yml): build, start, all healthy,
## sign in, executions listed, a run submitted; then `down -v`. Needs a Docker engine.
compose-test: install
	$(BIN)/python tests/compose/demo_stack.py

lint: install-dev
	$(BIN)/ruff check .

format: install-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: install-dev
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .venv312 var .pytest_cache .ruff_cache
