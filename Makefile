# The two front doors (README): `make study` and `make test`. Each sets up .venv on first use.
# `make lab` opens JupyterLab on the notebooks with the project's environment as the kernel.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1
export PYTHONHASHSEED := 0
DEBIAN_FMNIST := /usr/share/datasets/fashion-mnist

.PHONY: study test lab data setup clean-venv

study: data
	dvc repro
	@echo "Report: reports/report.html   Metrics: reports/metrics.json (dvc metrics show)"

test: $(STAMP)
	pytest -q $(PYTEST_ARGS)

lab: $(STAMP)
	jupyter lab notebooks $$([ "$$(id -u)" = 0 ] && echo --allow-root)

setup: $(STAMP)

# Re-installs when pyproject.toml changes. The pins keep pip off the local torch 2.13.0+cpu wheel.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

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
