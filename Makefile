# `make repro`, `make test` and the rest set up .venv from requirements.txt on first use.
VENV   := .venv
PYTHON := $(VENV)/bin/python
READY  := $(VENV)/.ready
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export DVC_NO_ANALYTICS := 1

.PHONY: repro push test test-fast compare bench readme venv clean-venv

repro: $(READY)  ## pull from the default DVC remote if there is one, then run the pipeline
	python -m mnist_iter.remote pull
	dvc repro

push: $(READY)  ## every cached output and the run cache to the default DVC remote
	python -m mnist_iter.remote push

test: $(READY)  ## the whole suite: unit tests and end-to-end runs of the real pipeline
	python -m pytest

test-fast: $(READY)  ## the unit tests only (no end-to-end dvc runs)
	python -m pytest -m "not slow"

compare: $(READY)  ## variants x experiments: workspace, HEAD and HEAD's experiments
	python -m mnist_iter.compare $(REVS)

bench: $(READY)  ## engine vs the write-ups' loop; each arithmetic's step -> benchmarks/results/
	python -m benchmarks.bench
	python -m benchmarks.arithmetic

readme: $(READY)  ## copy the tables of reports/ into README.md, the recipe keys into docs/parameters.md
	python -m mnist_iter.readme

venv: $(READY)

$(READY): requirements.txt
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -r requirements.txt
	touch $@

clean-venv:
	rm -rf $(VENV)
