# `make repro` and `make test` set up .venv from requirements.txt on first use.
VENV   := .venv
PYTHON := $(VENV)/bin/python
READY  := $(VENV)/.ready
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export DVC_NO_ANALYTICS := 1

.PHONY: repro test bench readme venv clean-venv

repro: $(READY)  ## run the whole pipeline: dvc repro
	dvc repro

test: $(READY)  ## run the test suite
	python -m pytest

bench: $(READY)  ## engine vs the write-ups' DataLoader loop -> reports/bench.json
	python -m stages.bench

readme: $(READY)  ## copy the table of reports/summary.md into README.md
	python -m stages.report --readme README.md

venv: $(READY)

$(READY): requirements.txt
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -r requirements.txt
	touch $@

clean-venv:
	rm -rf $(VENV)
