# softsil_nb: every target does its own set-up on a fresh machine (venv, install, data).
SHELL := /bin/bash
PYTHON ?= python3
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# KaTeX shows the docs' math; its files are bundled into the site (npm, pinned in tools/docs/package*.json)
KATEX := tools/docs/node_modules/katex/package.json
export PYTHONHASHSEED := 0

.PHONY: install test check system-deps run data docs browser bench clean-venv

# Create the venv if missing (reused when present); reinstall only when settings.ini or setup.py changed.
$(STAMP): settings.ini setup.py
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	set -o pipefail; $(BIN)/python -m pip install -q torch==2.14.1 torchvision==0.29.1 -e ".[dev]" 2>&1 | (grep -v 'is ignored' || true)
	@touch $(STAMP)

install: $(STAMP)

# The notebooks are the source: fail when nbdev_clean or nbdev_export would change anything.
check: $(STAMP)
	@$(BIN)/python tools/check_nbs.py

# System packages the tests use: Debian's package lists (for `apt-get download` of two datasets).
system-deps:
	@if command -v apt-get >/dev/null && ! ls /var/lib/apt/lists/*_Packages* >/dev/null 2>&1; then \
	  echo "apt-get update (package lists for the Debian-packaged datasets)"; $(SUDO) apt-get update -qq; fi

test: check system-deps browser $(KATEX)
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n 2 --dist loadfile tests

run: $(STAMP)
	$(BIN)/softsil quick

data: $(STAMP)
	$(BIN)/python -c "from softsil_nb.data import fetch_all; fetch_all()"

# Docs: the notebooks, executed, as a static site in _site/ (MkDocs + Material, pinned in settings.ini's
# dev_requirements; tools/docs/hooks.py makes the pages). KaTeX (npm, pinned in tools/docs/package*.json) goes to
# tools/docs/node_modules/, and from there into the site, so the pages load nothing from outside.
$(KATEX): tools/docs/package.json tools/docs/package-lock.json
	@command -v npm >/dev/null || { echo "npm is needed for KaTeX: apt-get install nodejs npm"; exit 1; }
	npm ci --prefix tools/docs --no-audit --no-fund --loglevel=error
	@touch $(KATEX)

docs: $(STAMP) $(KATEX)
	$(BIN)/python -m mkdocs build -q -d _site

# Headless Chromium for the docs test (Debian's package; Playwright drives it, its own browser download is not used).
browser:
	@command -v chromium >/dev/null || { \
	  if command -v apt-get >/dev/null && { [ "$$(id -u)" = 0 ] || command -v sudo >/dev/null; }; then \
	    echo "installing Debian's chromium (for tests/test_docs.py)"; \
	    $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; \
	  else echo "tests/test_docs.py needs Chromium: install Debian's chromium package (apt-get install chromium) as root"; exit 1; fi; }

bench: $(STAMP)
	$(BIN)/python benchmarks/loss_speed.py

clean-venv:
	rm -rf $(VENV)
