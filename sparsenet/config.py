"""Training configuration: one frozen :class:`TrainConfig`, saved as ``RUN_DIR/config.json``.

Every CLI flag of ``sparsenet train`` maps onto a field; :func:`for_dataset` fills in the
defaults of a known dataset (the Assamese sparse VGG, DeepCNet(5, 10) on MNIST, the
sparsity-invariant net on masked MNIST and Caltech-101), recognised by the converter that wrote its shards.
JSON round-trips exactly, and an unknown key is an error naming the valid ones.

Hyperparameter sources: Graham, "Spatially-sparse convolutional neural networks",
arXiv:1409.6070 (lr·exp(−d·epoch), ±2-pixel MNIST shifts); SparseConvNet's
``examples/Assamese_handwriting/VGGplus.py`` (lr 0.1, d 0.05, weight decay 1e-4, Nesterov
SGD); reproductions of both papers (Adam 1e-3 for DeepCNet on MNIST; Adam 5e-3, batch 64
for the sparsity-invariant CNN of Uhrig et al., 3DV 2017, on masked MNIST).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sparsenet.augment import AUGMENTATIONS
from sparsenet.errors import ConfigError

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("constant", "exp", "cosine")
DEVICES = ("auto", "cpu", "cuda")
TRAIN_SPLIT, TEST_SPLIT = "train", "test"
SPLITS = (TRAIN_SPLIT, TEST_SPLIT)


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on (besides the data and library versions)."""

    data: str  # dataset folder holding the shard splits train/ and test/
    out: str  # run folder: config.json, metrics.jsonl, checkpoint.pt, best.pt, plots
    model: str  # a name from sparsenet.models.list_models()
    model_kwargs: dict[str, Any] = field(default_factory=dict)  # extra keywords for models.build
    epochs: int = 20  # epochs: the lr changes, the test split is scored and a checkpoint saved after each
    passes_per_epoch: int = 1  # passes over the training split per epoch (SparseConvNet's Assamese example: 10)
    batch_size: int = 100  # global batch: split over processes, the same for any --procs
    optimizer: str = "sgd"  # "sgd" (momentum, Nesterov) or "adam"
    lr: float = 0.1  # learning rate at epoch 0
    lr_schedule: str = "exp"  # "exp": lr·exp(−lr_decay·epoch); "cosine" to 0 at the end; "constant"
    lr_decay: float = 0.05  # d of the exponential schedule
    momentum: float = 0.9  # SGD momentum (Adam: beta1)
    nesterov: bool = True  # Nesterov momentum for SGD
    weight_decay: float = 1e-4  # L2 penalty, coupled as in torch.optim
    augment: str = "none"  # a name from sparsenet.augment.AUGMENTATIONS; at test time only by `eval --repeats`
    seed: int = 0  # model init, sample order, augmentation and dropout all derive from it
    device: str = "auto"  # "auto" (CUDA if present), "cpu" or "cuda"
    procs: int | str = (
        "auto"  # data-parallel processes `train` starts itself: N, or "auto" (see distributed.resolve_procs)
    )
    sync_batchnorm: bool = False  # with several processes: BatchNorm over the global batch (an all-reduce per layer)
    threads: int | str = "auto"  # torch threads per training process: N, or "auto" (see distributed.resolve_threads)
    loader_workers: int = 0  # DataLoader worker processes per training process
    eval_batch_size: int = 250  # batch size for test-set evaluation

    def __post_init__(self) -> None:
        checks = [
            (self.epochs >= 1, "epochs", "at least 1"),
            (type(self.passes_per_epoch) is int and self.passes_per_epoch >= 1, "passes_per_epoch", "at least 1"),
            (self.batch_size >= 1, "batch_size", "at least 1"),
            (self.eval_batch_size >= 1, "eval_batch_size", "at least 1"),
            (0 < self.lr < math.inf, "lr", "positive and finite"),
            (0 <= self.lr_decay < math.inf, "lr_decay", "zero or positive, finite"),
            (0 <= self.momentum < 1, "momentum", "in [0, 1)"),
            (0 <= self.weight_decay < math.inf, "weight_decay", "zero or positive, finite"),
            (self.loader_workers >= 0, "loader_workers", "zero or positive"),
            (self.optimizer in OPTIMIZERS, "optimizer", f"one of {', '.join(OPTIMIZERS)}"),
            (self.lr_schedule in SCHEDULES, "lr_schedule", f"one of {', '.join(SCHEDULES)}"),
            (self.device in DEVICES, "device", f"one of {', '.join(DEVICES)}"),
            (self.augment in AUGMENTATIONS, "augment", f"one of {', '.join(AUGMENTATIONS)}"),
            (isinstance(self.model_kwargs, dict), "model_kwargs", "a JSON object"),
            (isinstance(self.sync_batchnorm, bool), "sync_batchnorm", "true or false"),
            (self.procs == "auto" or (type(self.procs) is int and self.procs >= 1), "procs", '"auto" or at least 1'),
            (
                self.threads == "auto" or (type(self.threads) is int and self.threads >= 1),
                "threads",
                '"auto" or at least 1',
            ),
        ]
        for ok, name, expected in checks:
            if not ok:
                raise ConfigError(f"config field {name} must be {expected}, got {getattr(self, name)!r}")

    @property
    def run_dir(self) -> Path:
        return Path(self.out)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build a config from plain values; unknown or missing keys raise :class:`ConfigError`."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"unknown config key(s) {', '.join(unknown)}; valid keys: {', '.join(sorted(names))}")
        try:
            return cls(**values)
        except TypeError as err:  # a required key is missing, or a value of a type that cannot be compared
            raise ConfigError(f"incomplete or mistyped config: {err}") from None

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        return cls.from_dict(json.loads(text))

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` applied (validated like a new config)."""
        return self.from_dict({**self.to_dict(), **changes})


# What the masked-image recipes share: Adam at a constant lr, no weight decay, no augmentation.
_MASKED: dict[str, Any] = dict(optimizer="adam", lr_schedule="constant", weight_decay=0.0, augment="none")

# Per-dataset defaults, keyed by :func:`dataset_name`.
DATASET_DEFAULTS: dict[str, dict[str, Any]] = {
    # SparseConvNet's VGGplus recipe (lr 0.1, Nesterov, weight decay 1e-4) shortened to fit a CPU
    # (one epoch = one pass over the training characters); the lr falls by e^-5 over the run as in
    # SparseConvNet. Why these numbers: docs/training.md, "Recipes".
    "assamese": dict(
        model="vgg",
        epochs=250,
        batch_size=100,
        optimizer="sgd",
        lr=0.1,
        lr_schedule="exp",
        lr_decay=0.02,
        weight_decay=1e-4,
        augment="affine",
    ),
    # Graham 2014: DeepCNet(5, 10) on the 96x96 field, ±2-pixel shifts. It has no BatchNorm, and
    # plain SGD stayed at chance where Adam (the seed reproduction's choice) learns.
    "mnist": dict(
        model="deepcnet",
        model_kwargs={"l": 5, "k": 10},
        epochs=20,
        batch_size=100,
        optimizer="adam",
        lr=1e-3,
        lr_schedule="exp",
        lr_decay=0.1,
        weight_decay=0.0,
        augment="shift",
    ),
    # The Uhrig et al. reproduction's Adam 5e-3, batch 64, 10 epochs; but no weight decay: with its
    # 1e-3 the sparsity-invariant net stayed at chance.
    "masked-mnist": dict(model="sinet-mnist", epochs=10, batch_size=64, lr=5e-3, **_MASKED),
    # The Uhrig et al. reproduction's Caltech-101 recipe (Adam 1e-3, batch 128, 15 epochs) without its
    # weight decay of 0.3, at the shards' size (`preprocess masked --size`, 64 by default: 224 x 224 is
    # an order of magnitude slower on a CPU).
    "masked-caltech101": dict(model="sinet-caltech", epochs=15, batch_size=128, lr=1e-3, **_MASKED),
}


def split_reader(data: str | os.PathLike, split: str):
    """A ``ShardReader`` of split folder ``data/split``; a missing folder is a ``ShardError`` saying
    what is expected."""
    from sparsenet.shards import ShardError, ShardReader

    folder = Path(data) / split
    if not folder.is_dir():
        raise ShardError(
            data,
            f"no {split}/ folder; a dataset folder holds the {TRAIN_SPLIT}/ and {TEST_SPLIT}/ "
            "splits that `sparsenet preprocess` writes",
        )
    return ShardReader(folder)


def dataset_name(data: str | os.PathLike) -> str:
    """The dataset of folder ``data``: its training shards' ``dataset`` attribute ("assamese", "masked-mnist")."""
    return split_reader(data, TRAIN_SPLIT).meta.dataset


def for_dataset(data: str | os.PathLike, out: str | os.PathLike | None = None, **overrides: Any) -> TrainConfig:
    """A config for ``data`` with that dataset's defaults, then ``overrides`` (None = keep default).

    The dataset is recognised by :func:`dataset_name`; for an unknown one ``model`` must be
    among the overrides. The default ``model_kwargs`` apply only to the default model.
    ``out`` defaults to ``runs/<dataset>-<model>``.
    """
    name = dataset_name(data)
    defaults = DATASET_DEFAULTS.get(name, {})
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if overrides.get("model", defaults.get("model")) != defaults.get("model"):  # another network: not its kwargs
        defaults = {k: v for k, v in defaults.items() if k != "model_kwargs"}
    values: dict[str, Any] = {"data": str(data), **defaults, **overrides}
    if "model" not in values:
        raise ConfigError(
            f"{data}: no defaults for dataset {name!r} (known: {', '.join(DATASET_DEFAULTS)}); give a model"
        )
    values["out"] = str(out) if out is not None else f"runs/{name}-{values['model']}"
    return TrainConfig.from_dict(values)


def from_file(path: str | os.PathLike) -> TrainConfig:
    """The config in a JSON file: a bare config, or a run's config.json (its ``config`` entry)."""
    try:
        values = json.loads(Path(path).read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{os.fsdecode(path)}: not valid JSON ({err})") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{os.fsdecode(path)}: not a JSON object of config fields")
    try:
        return TrainConfig.from_dict(values.get("config", values))
    except (ValueError, TypeError, AttributeError) as err:
        raise ConfigError(f"{os.fsdecode(path)}: {err}") from None
