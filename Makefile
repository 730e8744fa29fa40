# The two entry points on a fresh machine are `make demo` and `make test`;
# both run `make install` first, which is quick when nothing changed.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint clean debian-deps

install: $(STAMP) debian-deps

# What the tests need from Debian, installed when missing and we are root (CI is):
# Go's sumdb/note and sumdb/tlog check our artefacts independently (tests/test_go_interop.py);
# chromium and chromium-driver drive the browser test of the auditors' Datasette
# (tests/test_datasette_browser.py) and print the monthly report to PDF; fonts-noto-cjk
# draws the Japanese in both (and the ✔ ✘ ⏳ marks: fonts-noto-color-emoji); baresip-core is the
# seats' SIP phone (tests/test_sip*.py).
DEBIAN_PACKAGES := golang-go golang-golang-x-mod-dev chromium chromium-driver fonts-noto-cjk fonts-noto-color-emoji poppler-utils baresip-core

debian-deps:
	@missing=""; for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing from Debian:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "note: missing Debian packages:$$missing (not root); the tests that need them are skipped"; \
	  fi; \
	fi

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: install
	$(BIN)/kansa demo --out demo-out

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy ledger contract kansa dialer_core compliance datasette_plugins console
	$(BIN)/marimo check --strict notebooks/monthly_review.py notebooks/verify_ledger.py

test: install lint
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) demo-out .pytest_cache .mypy_cache .ruff_cache
