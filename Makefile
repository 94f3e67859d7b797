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

# --- training ---------------------------------------------------------------------------
# Headline numbers come from the final checkpoint.pt: best.pt is picked on the test set, so its
# error is optimistically biased (there is no validation split for Assamese or MNIST).
# Each run folder ends up with config.json, metrics.jsonl, curves.png, confusion.png,
# checkpoint.pt, best.pt and eval.txt. Re-running a target after an interruption continues
# the run from its last finished epoch. TRAIN_ARGS adds `sparsenet train` options to a new run.
RUNS ?= runs
TRAIN_ARGS ?=
SWEEP_SPARSITIES ?= 0.1 0.3 0.5 0.7 0.9
SWEEP_MODELS ?= sinet-mnist convnet-mnist
SWEEP_ARGS ?=

.PHONY: train-assamese train-mnist sparsity-sweep

$(DATA)/assamese/test/manifest.json: | setup
	$(SN) preprocess assamese --out $(DATA)/assamese

$(DATA)/mnist/test/manifest.json: | setup
	$(SN) preprocess mnist --out $(DATA)/mnist

$(DATA)/masked-mnist-%/test/manifest.json: | setup
	$(SN) preprocess masked --dataset mnist --sparsity $* --out $(DATA)/masked-mnist-$*

# $(call train-or-resume,DATA_DIR,RUN_DIR,TRAIN OPTIONS): continue RUN_DIR if it has a checkpoint.
train-or-resume = if [ -f $(2)/checkpoint.pt ]; then $(SN) train --resume $(2); else $(SN) train --data $(1) --out $(2) $(3); fi

# The sparse VGG with the Assamese defaults of sparsenet/config.py (about 30 min on 2 cores with the default --procs auto).
train-assamese: $(DATA)/assamese/test/manifest.json
	$(call train-or-resume,$(DATA)/assamese,$(RUNS)/assamese-vgg,$(TRAIN_ARGS))
	$(SN) eval --checkpoint $(RUNS)/assamese-vgg/checkpoint.pt --data $(DATA)/assamese > $(RUNS)/assamese-vgg/eval.txt && cat $(RUNS)/assamese-vgg/eval.txt

# DeepCNet(5, 10) on MNIST in a 96x96 field, ±2-pixel shifts.
train-mnist: $(DATA)/mnist/test/manifest.json
	$(call train-or-resume,$(DATA)/mnist,$(RUNS)/mnist-deepcnet,$(TRAIN_ARGS))
	$(SN) eval --checkpoint $(RUNS)/mnist-deepcnet/checkpoint.pt --data $(DATA)/mnist > $(RUNS)/mnist-deepcnet/eval.txt && cat $(RUNS)/mnist-deepcnet/eval.txt

# Masked MNIST at each sparsity: the sparsity-invariant CNN against its ConvNet twin
# (Uhrig et al. 3DV 2017, Table 3); table and plot in $(RUNS)/sparsity-sweep/report.md, sparsity.png.
sparsity-sweep: $(foreach s,$(SWEEP_SPARSITIES),$(DATA)/masked-mnist-$(s)/test/manifest.json)
	for s in $(SWEEP_SPARSITIES); do for m in $(SWEEP_MODELS); do \
	  $(call train-or-resume,$(DATA)/masked-mnist-$$s,$(RUNS)/sparsity-sweep/$$m-$$s,--model $$m $(SWEEP_ARGS)) || exit 1; \
	done; done
	$(SN) report $(RUNS)/sparsity-sweep

# --- benchmarks (issue 5) ---------------------------------------------------------------
# bench: the real run, a few minutes on 2 cores; nothing else should run meanwhile. Writes
# docs/BENCHMARKS.md and docs/bench/ (plots, results.json); docs/bench/analysis.md is hand-written.
# bench-quick: tiny synthetic data, seconds; checks that every case runs, its numbers mean nothing.
.PHONY: bench bench-quick

bench: $(DATA)/assamese/test/manifest.json $(DATA)/mnist/test/manifest.json
	$(SN) bench --data $(DATA) --out docs/BENCHMARKS.md

bench-quick: setup
	$(SN) bench --quick --out $(RUNS)/bench-quick/BENCHMARKS.md
