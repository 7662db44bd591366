# The two commands a user runs first: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Real recorded frames for conformance tests; tests skip cleanly when the folder is absent.
TICKWIRE_RECORDED_DIR ?= $(abspath ../shared/recorded)
export TICKWIRE_RECORDED_DIR

.PHONY: demo test venv clean bench

$(STAMP): pyproject.toml setup.py tickwire/net/_hot.pyx
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/tickwire demo --duration 20

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench: $(STAMP)
	test -x bench/.venv-peers/bin/python || bash bench/setup_peers.sh
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) build *.egg-info
