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

.PHONY: setup test preprocess lint mutate

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

test: setup
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# The masked-MNIST sparsities of the shipped models (models/index.json names these folders).
PREPROCESS_MASKED_MNIST := 0.5 0.9

preprocess: setup
	$(SN) preprocess assamese --out $(DATA)/assamese
	$(SN) preprocess mnist --out $(DATA)/mnist
	$(foreach s,$(PREPROCESS_MASKED_MNIST),$(SN) preprocess masked --dataset mnist --sparsity $(s) --out $(DATA)/masked-mnist-$(s) && ) true
	$(SN) preprocess masked --dataset caltech101 --sparsity 0.5 --out $(DATA)/masked-caltech101-0.5

# ruff (lint + format check, configured in pyproject.toml) and duplicates (a workplace tool, where installed).
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@if command -v duplicates >/dev/null; then duplicates --most 20; else echo "duplicates: not installed here, skipped"; fi

# Mutation testing (issue 16): mutmut, configured in pyproject.toml's [tool.mutmut], mutates the
# numerical core (metrics, augment, optim, the shard reader's checks, the sparsity-invariant layer)
# and runs the fast tests of those modules against each mutant; results stay in mutants/ and
# `mutmut results` lists the survivors (docs/MUTATION.md has the score). MUTANTS picks mutant
# name globs, e.g. MUTANTS='sparsenet.optim.*'; the default is every configured module (hours on 2 cores).
MUTANTS ?=
mutate: setup
	$(BIN)/pip install --quiet -e '.[test,mutate]'
	OMP_NUM_THREADS=1 $(BIN)/mutmut run --max-children 1 $(foreach m,$(MUTANTS),'$(m)')
	$(BIN)/mutmut results | grep -v ": not checked$$" || true  # survivors (and timeouts, crashes)

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
CALTECH_SPARSITIES ?= 0.05 0.1 0.2 0.3 0.4 0.5 0.6 0.7
CALTECH_MODELS ?= sinet-caltech convnet-caltech
CALTECH_ARGS ?=
CALTECH224_SPARSITIES ?= 0.7 0.5

.PHONY: train-assamese train-assamese-long assamese-ablation train-assamese-deepcnet train-assamese-deepcnet-graham assamese-deepcnet-ablation \
	train-mnist train-mnist-dropout train-mnist-dropout-k40 sparsity-sweep caltech-sweep caltech-224

$(DATA)/assamese/test/manifest.json: | setup
	$(SN) preprocess assamese --out $(DATA)/assamese

$(DATA)/mnist/test/manifest.json: | setup
	$(SN) preprocess mnist --out $(DATA)/mnist

$(DATA)/masked-mnist-%/test/manifest.json: | setup
	$(SN) preprocess masked --dataset mnist --sparsity $* --out $(DATA)/masked-mnist-$*

$(DATA)/masked-caltech101-%/test/manifest.json: | setup
	$(SN) preprocess masked --dataset caltech101 --sparsity $* --out $(DATA)/masked-caltech101-$*

# The shortest stem wins, so these shards do not match the rule above.
$(DATA)/masked-caltech101-224-%/test/manifest.json: | setup
	$(SN) preprocess masked --dataset caltech101 --size 224 --sparsity $* --out $(DATA)/masked-caltech101-224-$*

# $(call train-or-resume,DATA_DIR,RUN_DIR,TRAIN OPTIONS): continue RUN_DIR if it has a checkpoint.
train-or-resume = if [ -f $(2)/checkpoint.pt ]; then $(SN) train --resume $(2); else $(SN) train --data $(1) --out $(2) $(3); fi
# $(call train-and-eval,DATA_DIR,RUN_DIR,TRAIN OPTIONS): train-or-resume, then RUN_DIR/eval.txt of the final checkpoint.
train-and-eval = $(call train-or-resume,$(1),$(2),$(3)) && \
	$(SN) eval --checkpoint $(2)/checkpoint.pt --data $(1) > $(2)/eval.txt && cat $(2)/eval.txt
# $(call sweep,DATASET,SPARSITIES,MODELS,RUN_DIR,TRAIN OPTIONS): each model at each sparsity, then the report.
sweep = for s in $(2); do for m in $(3); do \
	  $(call train-or-resume,$(DATA)/masked-$(1)-$$s,$(4)/$$m-$$s,--model $$m $(5)) || exit 1; \
	done; done; $(SN) report $(4)

# The sparse VGG with the Assamese defaults of sparsenet/config.py (about 30 min on 2 cores with the default --procs auto).
train-assamese: $(DATA)/assamese/test/manifest.json
	$(call train-and-eval,$(DATA)/assamese,$(RUNS)/assamese-vgg,$(TRAIN_ARGS))

# SparseConvNet's own schedule (examples/Assamese_handwriting/VGGplus.py): 100 epochs of 10 passes,
# lr 0.1·exp(-0.05·epoch), batch 108 (4x the passes of train-assamese); about 70 min on 2 cores.
ASSAMESE_LONG_ARGS := --epochs 100 --passes-per-epoch 10 --lr-decay 0.05 --batch-size 108
train-assamese-long: $(DATA)/assamese/test/manifest.json
	$(call train-and-eval,$(DATA)/assamese,$(RUNS)/assamese-vgg-long,$(ASSAMESE_LONG_ARGS) $(TRAIN_ARGS))

# DeepCNet(5, 32) on the same shards (Graham 2014's network for Assamese), Adam; about 25 min.
train-assamese-deepcnet: $(DATA)/assamese/test/manifest.json
	$(call train-and-eval,$(DATA)/assamese,$(RUNS)/assamese-deepcnet,--model deepcnet --model-arg l=5 --model-arg k=32 \
	  --optimizer adam --lr 1e-3 --lr-decay 0.03 --weight-decay 0 --epochs 150 $(TRAIN_ARGS))

# Graham's Assamese DeepCNet(6, 32) (his archived runAssamese.cu) with the ingredients of his later code:
# very leaky ReLUs (1/3), affine distortions of ±0.3 and ±12-cell shifts (affine-wide); plus a
# BatchNorm per convolution (not Graham's) so that Nesterov SGD trains it in 100 epochs; about 25 min.
ASSAMESE_DEEPCNET_ARGS := --model deepcnet --model-arg l=6 --model-arg k=32 --model-arg leak=0.333 \
	--model-arg batchnorm=true --augment affine-wide --epochs 100 --lr-decay 0.05
train-assamese-deepcnet-graham: $(DATA)/assamese/test/manifest.json
	$(call train-and-eval,$(DATA)/assamese,$(RUNS)/assamese-deepcnet-graham,$(ASSAMESE_DEEPCNET_ARGS) $(TRAIN_ARGS))

# What each of Graham's ingredients buys: the recipe above, then with one taken out (leak, wide
# distortions, the sixth level); about 22 min per arm, table in $(RUNS)/deepcnet-ablation/report.md.
deepcnet-arm = $(call train-or-resume,$(DATA)/assamese,$(RUNS)/deepcnet-ablation/$(1),$(ASSAMESE_DEEPCNET_ARGS) $(2))
assamese-deepcnet-ablation: $(DATA)/assamese/test/manifest.json
	$(call deepcnet-arm,full,)
	$(call deepcnet-arm,no-leak,--model-arg leak=0)
	$(call deepcnet-arm,affine,--augment affine)
	$(call deepcnet-arm,l5,--model-arg l=5)
	$(SN) report $(RUNS)/deepcnet-ablation

# The encoding and augmentation ablation of docs/RESULTS.md: three 30-epoch runs of the sparse VGG
# (the lr falls by e^-3.9, as in a shortened full schedule), about 4 min each; table in $(RUNS)/ablation/report.md.
ABLATION_ARGS ?= --epochs 30 --lr-decay 0.13
$(DATA)/assamese-octogram/test/manifest.json: | setup
	$(SN) preprocess assamese --encoding octogram --out $(DATA)/assamese-octogram

assamese-ablation: $(DATA)/assamese/test/manifest.json $(DATA)/assamese-octogram/test/manifest.json
	$(call train-or-resume,$(DATA)/assamese,$(RUNS)/ablation/direction-affine,$(ABLATION_ARGS) --augment affine)
	$(call train-or-resume,$(DATA)/assamese-octogram,$(RUNS)/ablation/octogram-affine,$(ABLATION_ARGS) --augment affine)
	$(call train-or-resume,$(DATA)/assamese,$(RUNS)/ablation/direction-none,$(ABLATION_ARGS) --augment none)
	$(SN) report $(RUNS)/ablation

# DeepCNet(5, 10) on MNIST in a 96x96 field, ±2-pixel shifts.
train-mnist: $(DATA)/mnist/test/manifest.json
	$(call train-and-eval,$(DATA)/mnist,$(RUNS)/mnist-deepcnet,$(TRAIN_ARGS))

# DeepCNet(5, 60) with dropout 0.5 on the last four layers' inputs (Graham 2014), 40 epochs; about 35 min.
MNIST_DROPOUT := [0,0,0,0.5,0.5,0.5,0.5]
train-mnist-dropout: $(DATA)/mnist/test/manifest.json
	$(call train-and-eval,$(DATA)/mnist,$(RUNS)/mnist-deepcnet-dropout,--model-arg l=5 --model-arg k=60 \
	  --model-arg 'dropout=$(MNIST_DROPOUT)' --lr-decay 0.05 --epochs 40 $(TRAIN_ARGS))

# The same at k = 40 (1.8 MB, under the 2 MiB of models/), 30 epochs; about 13 min.
train-mnist-dropout-k40: $(DATA)/mnist/test/manifest.json
	$(call train-and-eval,$(DATA)/mnist,$(RUNS)/mnist-deepcnet40-dropout,--model-arg l=5 --model-arg k=40 \
	  --model-arg 'dropout=$(MNIST_DROPOUT)' --lr-decay 0.07 --epochs 30 $(TRAIN_ARGS))

# Masked MNIST at each sparsity: the sparsity-invariant CNN against its ConvNet twin
# (Uhrig et al. 3DV 2017, Table 3); table and plot in $(RUNS)/sparsity-sweep/report.md, sparsity.png.
sparsity-sweep: $(foreach s,$(SWEEP_SPARSITIES),$(DATA)/masked-mnist-$(s)/test/manifest.json)
	$(call sweep,mnist,$(SWEEP_SPARSITIES),$(SWEEP_MODELS),$(RUNS)/sparsity-sweep,$(SWEEP_ARGS))

# The same on masked Caltech-101 at 64x64 (`preprocess masked --size`), 15 epochs per run (~2.5 min each; ~40 min in all).
caltech-sweep: $(foreach s,$(CALTECH_SPARSITIES),$(DATA)/masked-caltech101-$(s)/test/manifest.json)
	$(call sweep,caltech101,$(CALTECH_SPARSITIES),$(CALTECH_MODELS),$(RUNS)/caltech-sweep,$(CALTECH_ARGS))

# The same at the published 224x224, sparsities 0.7 and 0.5 (~1 hour per run; ~4 hours in all).
caltech-224: $(foreach s,$(CALTECH224_SPARSITIES),$(DATA)/masked-caltech101-224-$(s)/test/manifest.json)
	$(call sweep,caltech101-224,$(CALTECH224_SPARSITIES),$(CALTECH_MODELS),$(RUNS)/caltech-224,$(CALTECH_ARGS))

# --- benchmarks (issue 5) ---------------------------------------------------------------
# bench: the real run, a few minutes on 2 cores; nothing else should run meanwhile. Writes
# docs/BENCHMARKS.md and docs/bench/ (plots, results.json); docs/bench/analysis.md is hand-written.
# bench-quick: tiny synthetic data, seconds; checks that every case runs, its numbers mean nothing.
.PHONY: bench bench-quick

bench: $(DATA)/assamese/test/manifest.json $(DATA)/mnist/test/manifest.json
	$(SN) bench --data $(DATA) --out docs/BENCHMARKS.md

bench-quick: setup
	$(SN) bench --quick --out $(RUNS)/bench-quick/BENCHMARKS.md
