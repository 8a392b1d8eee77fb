# softsil_nb: every target does its own set-up on a fresh machine (venv, install, data).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PYTHONHASHSEED := 0

.PHONY: install test check run data docs bench clean-venv

# Create the venv if missing (reused when present); reinstall only when settings.ini or setup.py changed.
$(STAMP): settings.ini setup.py
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip 2>&1 | grep -v 'is ignored' || true
	set -o pipefail; $(BIN)/python -m pip install -q torch==2.14.1 torchvision==0.29.1 -e ".[dev]" 2>&1 | grep -v 'is ignored'
	@touch $(STAMP)

install: $(STAMP)

# The notebooks are the source: fail when nbdev_clean or nbdev_export would change anything.
check: $(STAMP)
	@$(BIN)/python tools/check_nbs.py

test: check
	$(BIN)/python -m pytest -q -n 2 --dist loadfile tests

run: $(STAMP)
	$(BIN)/softsil quick

data: $(STAMP)
	$(BIN)/python -c "from softsil_nb.data import fetch_all; fetch_all()"

bench: $(STAMP)
	$(BIN)/python benchmarks/loss_speed.py

clean-venv:
	rm -rf $(VENV)
