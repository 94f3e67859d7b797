# sparsenet — `make train-assamese` (set up, preprocess, train, evaluate) and `make test`.
# Raw data: SPARSENET_RAW=/path/to/folder (assamese/, mnist/, caltech101/) or downloads.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SN := $(BIN)/sparsenet
DATA ?= data
# An embedded default: the shared local copy of the raw datasets, when it is there.
export SPARSENET_RAW ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data))
STAMP := $(VENV)/.installed

.PHONY: setup test preprocess lint

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

test: setup
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

preprocess: setup
	$(SN) preprocess assamese --out $(DATA)/assamese
	$(SN) preprocess mnist --out $(DATA)/mnist
	$(SN) preprocess masked --dataset mnist --sparsity 0.9 --out $(DATA)/masked-mnist-0.9
	$(SN) preprocess masked --dataset caltech101 --sparsity 0.5 --out $(DATA)/masked-caltech101-0.5

lint: setup
	duplicates --most 20
