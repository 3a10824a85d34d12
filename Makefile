# The two commands of the README: `make run` and `make test`.
# Both create .venv when it is missing and (re)install the project when
# pyproject.toml changed, so a fresh clone needs nothing else.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
ARGS   ?=

.PHONY: run test lint typecheck pytest bench clean kannel chromium

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamp files record which install is current; pyproject.toml edits redo it.
$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@ $(VENV)/.installed-run

run: $(VENV)/.installed-run
	$(BIN)/ussd-service serve $(ARGS)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

pytest: $(VENV)/.installed-test kannel chromium
	$(BIN)/pytest $(ARGS)

# tests/kannel run a real Kannel (bearerbox, smsbox; fakesmsc from kannel-extras).
# As root the Debian packages are installed when missing; otherwise say which.
KANNEL_PACKAGES := kannel kannel-extras
FAKESMSC ?= /usr/lib/kannel/test/fakesmsc
kannel:
	@if ! command -v bearerbox >/dev/null 2>&1 && [ ! -x /usr/sbin/bearerbox ] \
	   || [ ! -x $(FAKESMSC) ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing $(KANNEL_PACKAGES) for tests/kannel"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	      apt-get install -y -qq --no-install-recommends $(KANNEL_PACKAGES) >/dev/null; \
	  else \
	    echo "tests/kannel need Kannel: install the Debian packages $(KANNEL_PACKAGES)" \
	      "(sudo apt-get install $(KANNEL_PACKAGES)), or run make test as root" >&2; \
	    exit 1; \
	  fi; \
	fi

# tests/web drive a real browser: Playwright with Debian's Chromium (Playwright's
# own browser download is not used). As root the package is installed when missing.
CHROMIUM ?= /usr/bin/chromium
chromium:
	@if [ ! -x $(CHROMIUM) ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing chromium for tests/web"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	      apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
	  else \
	    echo "tests/web need a browser: install the Debian package chromium" \
	      "(sudo apt-get install chromium), or run make test as root" >&2; \
	    exit 1; \
	  fi; \
	fi

test: lint typecheck pytest

bench: $(VENV)/.installed-test
	$(BIN)/python -m bench $(ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
