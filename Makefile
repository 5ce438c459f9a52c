# The two front doors (README): `make study` and `make test`. Each sets up .venv on first use.
# `make lab` opens JupyterLab on the notebooks with the project's environment as the kernel.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
# Every package, transitive ones included, pinned with its hashes; `make lock` regenerates it.
LOCK := requirements.lock
UV_VERSION := 0.13.9
LOCK_COMPILE := uv pip compile pyproject.toml --extra test --python-version 3.11 \
	--python-platform x86_64-manylinux_2_28 --generate-hashes --no-header -o $(LOCK)
export PATH := $(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1
export PYTHONHASHSEED := 0
DEBIAN_FMNIST := /usr/share/datasets/fashion-mnist

.PHONY: study test test-slow lab data setup lock clean-venv weights

# SEEDS=N: the study for N training seeds (DVC experiments), then reports/seeds/ (README, "Seeds").
study: data
	python -m ood.pipeline.params  # the whole params.yaml, before any stage (each stage checks what it reads)
	python -m ood.pipeline.recipe check  # the shipped weights it loads: there, intact, made by its recipe
ifdef SEEDS
	python -m ood.pipeline.seeds run $(SEEDS)
	dvc repro  # the one-seed report again, with the spread just measured (the rest is cached)
	@echo "Seed report: reports/seeds/report.html   Tables: reports/seeds/tables.md, tables.tex"
else
	dvc repro
	@echo "Report: reports/report.html   Metrics: reports/metrics.json (dvc metrics show)"
endif

# The shipped classifier and segmenter (weights/, params.yaml's `weights:`), retrained by their recipes
# (their params.yaml sections) for WEIGHT_SEEDS training seeds (default 0 1 2); resumes where it stopped.
weights: data
	python -m ood.pipeline.recipe train classifier --seeds $(or $(WEIGHT_SEEDS),0 1 2)
	python -m ood.pipeline.recipe train segmenter --seeds $(or $(WEIGHT_SEEDS),0 1 2)

test: $(STAMP)
	pytest -q $(PYTEST_ARGS)

test-slow: $(STAMP)
	pytest -q -m slow $(PYTEST_ARGS)

lab: $(STAMP)
	jupyter lab notebooks $$([ "$$(id -u)" = 0 ] && echo --allow-root)

setup: $(STAMP)

# Re-installs when pyproject.toml or the lock changes: every package from the lock, hash-checked
# (its pins keep pip off the local torch 2.13.0+cpu wheel), then the project itself.
$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

# Re-resolves the lock after pyproject.toml's dependencies change (needs the registry): keeps the
# locked versions that still fit; LOCK_ARGS=--upgrade moves all to the newest, LOCK_ARGS='-P fsspec'
# one package. Then writes the header tests/test_lock.py checks (`make test` fails on a stale lock).
lock:
	[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv==$(UV_VERSION)
	$(BIN)/$(LOCK_COMPILE) $(LOCK_ARGS) >/dev/null
	$(BIN)/python tests/test_lock.py --write-header '$(LOCK_COMPILE)  (uv $(UV_VERSION))'

# Raw data, checksum-verified. Fashion-MNIST comes from Debian's dataset-fashion-mnist package when
# apt can install it (offline mirror), else from the official download.
data: $(STAMP)
	@if [ ! -d $(DEBIAN_FMNIST) ] && [ ! -f data/fashion-mnist/train-images-idx3-ubyte ] \
	    && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  echo "Installing Debian's dataset-fashion-mnist (offline Fashion-MNIST mirror)..."; \
	  (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null) \
	    || echo "apt could not install it; falling back to the official download."; \
	fi
	python -m ood.data download --root data

clean-venv:
	rm -rf $(VENV)
