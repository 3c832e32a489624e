# layra-rollback: set-up and checks. Every target installs what it needs first.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
export VENV

.PHONY: install sandbox-up sandbox-down demo test test-unit test-e2e test-reliability bench bench-quick clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $@

sandbox-up: install
	bash sandbox/up.sh

sandbox-down:
	bash sandbox/down.sh

demo: sandbox-up
	bash sandbox/demo.sh

# The README's test command: unit cases and the e2e tier on the sandbox (never skipped),
# in two lanes side by side, each driving its own two of the sandbox's four hosts
# (tests/lanes.py; a test file runs whole in one lane).
test: export SANDBOX_HOSTS := 4
test: sandbox-up
	$(PY) tests/lanes.py --durations=15

test-unit: install
	$(PY) -m pytest -m 'not e2e'

test-e2e: sandbox-up
	$(PY) -m pytest -m e2e

# The fault and abuse suite alone (make test runs it too).
test-reliability: sandbox-up
	$(PY) -m pytest -m reliability

# Benchmarks (not tests): ours against the same work by hand, in the same run; prints
# every ratio and its target, writes bench/results/*.json. See README, Performance.
bench: sandbox-up
	$(PY) bench/all.py

bench-quick: sandbox-up
	$(PY) bench/all.py --quick

clean: sandbox-down
	rm -rf $(VENV)
