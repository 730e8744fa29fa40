# The two entry points on a fresh machine are `make demo` and `make test`;
# both run `make install` first, which is quick when nothing changed.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint clean debian-deps

install: $(STAMP) debian-deps

# Go's sumdb/note and sumdb/tlog check our artefacts independently in the tests
# (tests/test_go_interop.py). Installed from Debian when missing and we are root.
debian-deps:
	@if ! command -v go >/dev/null || [ ! -d /usr/share/gocode/src/golang.org/x/mod/sumdb/tlog ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing golang-go and golang-golang-x-mod-dev from Debian"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go golang-golang-x-mod-dev >/dev/null; \
	  else \
	    echo "note: golang-go and golang-golang-x-mod-dev are missing (not root); the Go interop test will be skipped"; \
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
	$(BIN)/mypy ledger kansa dialer_core compliance

test: install lint
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) demo-out .pytest_cache .mypy_cache .ruff_cache
