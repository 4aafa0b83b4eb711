# The two commands that do all set-up on a fresh machine:
#   make demo   creates .venv, installs, builds the demo stimuli, serves on SQLite
#   make test   creates .venv, installs with dev extras, runs the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 5000
PYTEST_ARGS ?=

.PHONY: demo test install clean bench help

help:
	@echo "make demo    build the demo stimuli and serve the demo study on http://$(HOST):$(PORT)/"
	@echo "make test    install with dev extras and run the test suite"
	@echo "make bench   run the benchmarks in bench/ (prints measured figures)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# torch==2.14.1 / torchvision==0.29.1 are pinned in pyproject.toml (extra "stimuli")
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[stimuli,dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/interp-study demo --host $(HOST) --port $(PORT)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	@for f in bench/*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache test-artifacts
