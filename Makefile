# Cordée — the two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
APT_PACKAGES := chromium libxml2-utils dovecot-imapd dovecot-lmtpd

.PHONY: run test lint typecheck unit bench system-packages clean diagrams

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Cordée needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP) $@

run: $(STAMP)
	$(BIN)/cordee db upgrade
	$(BIN)/cordee serve

# System packages for the real components the tests start (Chromium, xmllint, Dovecot).
# Installed only when we are root and apt-get exists; otherwise the tests say what is missing.
system-packages:
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v xmllint >/dev/null 2>&1 || missing="$$missing libxml2-utils"; \
	command -v dovecot >/dev/null 2>&1 || missing="$$missing dovecot-imapd dovecot-lmtpd"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing system packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES) >/dev/null; \
	  else \
	    echo "Not root: cannot install$$missing (related tests skip locally, fail under CI=true)"; \
	  fi; \
	fi

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(TEST_STAMP)
	$(BIN)/mypy

unit: $(TEST_STAMP)
	$(BIN)/pytest tests/unit -q

test: system-packages $(TEST_STAMP) lint typecheck
	$(BIN)/pytest -q --cov=bot --cov=workflows --cov-report=term:skip-covered

bench: system-packages $(TEST_STAMP)
	$(BIN)/python -m tests.bench

diagrams: $(STAMP)
	@for wf in $$($(BIN)/cordee workflows list --names); do \
	  $(BIN)/cordee workflows show $$wf --mermaid > workflows/$$wf.mmd; echo "workflows/$$wf.mmd"; \
	done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
