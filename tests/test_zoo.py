"""Shipped models: `sparsenet export` writes small checkpoints and models/index.json; every shipped
model is intact and reproduces its indexed test error on shards rebuilt from the raw data."""

import json
import shlex
import subprocess
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from synthetic import write_digit_shards

from sparsenet import checkpoint as ckpt_io
from sparsenet import train as training
from sparsenet import zoo
from sparsenet.cli import main
from sparsenet.config import TrainConfig
from sparsenet.evaluate import evaluate
from sparsenet.shards import ShardReader

REPO = Path(__file__).resolve().parents[1]
SHIPPED = zoo.read_index(REPO / "models")
ENSEMBLES = zoo.read_ensembles(REPO / "models")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("zoo")
    data = write_digit_shards(root / "digits")
    config = TrainConfig(
        data=str(data),
        out=str(root / "run"),
        model="deepcnet",
        model_kwargs={"l": 2, "k": 4},
        epochs=1,
        batch_size=6,
        augment="shift",
        procs=1,
    )
    return training.train(config)


def test_export_drops_the_optimizer_and_indexes_the_measured_error(run, tmp_path):
    entry = zoo.export(
        run / "checkpoint.pt",
        tmp_path / "models" / "tiny.pt",
        dataset="mnist",
        data=Path(json.loads((run / "config.json").read_text())["config"]["data"]),
        repeats=3,
    )
    shipped = ckpt_io.load(tmp_path / "models" / "tiny.pt")
    assert shipped.optimizer == {} and shipped.epoch == 1
    original = ckpt_io.load(run / "checkpoint.pt")
    assert all(torch.equal(shipped.model[k], v) for k, v in original.model.items())
    assert entry["sha256"] == zoo.sha256(tmp_path / "models" / "tiny.pt")
    assert entry["top1_error"] == evaluate(run / "checkpoint.pt", plot=False)["top1_error"]
    assert entry["repeats"] == 3 and 0 <= entry["repeated_top1_error"] <= 1
    assert zoo.read_index(tmp_path / "models") == [entry]
    again = zoo.export(run / "checkpoint.pt", tmp_path / "models" / "tiny.pt", dataset="mnist", data=entry["data"])
    assert zoo.read_index(tmp_path / "models") == [again]  # replaced, not duplicated


def test_an_ensemble_of_shipped_models_is_indexed_with_its_measured_error(run, tmp_path):
    models = tmp_path / "models"
    data = Path(json.loads((run / "config.json").read_text())["config"]["data"])
    other = training.train(
        TrainConfig.from_dict(
            {**ckpt_io.load(run / "checkpoint.pt").config.to_dict(), "out": str(tmp_path / "other"), "seed": 9}
        )
    )
    for source, name in ((run, "a.pt"), (other, "b.pt")):
        zoo.export(source / "checkpoint.pt", models / name, dataset="mnist", data=data)
    result = CliRunner().invoke(
        main,
        [
            "export-ensemble",
            "pair",
            "a.pt",
            "b.pt",
            "--models",
            str(models),
            "--dataset",
            "mnist",
            "--data",
            str(data),
            "--repeats",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    entry = json.loads(result.output)
    assert zoo.read_ensembles(models) == [entry] and entry["files"] == ["a.pt", "b.pt"]
    assert entry["top1_error"] == evaluate([models / "a.pt", models / "b.pt"], data, plot=False)["top1_error"]
    assert entry["repeats"] == 2 and 0 <= entry["repeated_top1_error"] <= 1
    zoo.export(run / "checkpoint.pt", models / "a.pt", dataset="mnist", data=data)
    assert zoo.read_ensembles(models) == [entry]  # re-exporting a member keeps the ensemble
    result = CliRunner().invoke(
        main,
        ["export-ensemble", "bad", "a.pt", "c.pt", "--models", str(models), "--dataset", "mnist", "--data", str(data)],
    )
    assert result.exit_code == 1 and "two or more of its models (listed: a.pt, b.pt); got a.pt, c.pt" in result.output


def test_export_refuses_a_model_over_the_size_limit(run, tmp_path, monkeypatch):
    monkeypatch.setattr(zoo, "MAX_BYTES", 1000)
    result = CliRunner().invoke(
        main,
        [
            "export",
            "--checkpoint",
            str(run / "checkpoint.pt"),
            "--out",
            str(tmp_path / "big.pt"),
            "--dataset",
            "mnist",
            "--data",
            str(tmp_path.parent),
        ],
    )
    assert result.exit_code == 1 and "shipped models are at most 1,000" in result.output
    assert not (tmp_path / "big.pt").exists() and not (tmp_path / "index.json").exists()


def test_the_index_lists_the_shipped_files():
    assert SHIPPED, "models/index.json lists no model"
    assert sorted(e["file"] for e in SHIPPED) == sorted(p.name for p in (REPO / "models").glob("*.pt"))


@pytest.mark.parametrize("entry", SHIPPED, ids=[e["file"] for e in SHIPPED])
def test_shipped_model_is_intact_and_small(entry):
    path = REPO / "models" / entry["file"]
    assert path.stat().st_size == entry["bytes"] <= zoo.MAX_BYTES
    assert zoo.sha256(path) == entry["sha256"]
    assert ckpt_io.load(path).config.model == entry["model"]
    assert entry["command"].startswith("sparsenet train")


def preprocess_command(dataset: str, out: Path) -> list[str]:
    """The `make preprocess` conversion of ``dataset`` (default options) into ``out``."""
    if dataset.startswith("masked-"):
        name, sparsity = dataset[len("masked-") :].rsplit("-", 1)
        return ["preprocess", "masked", "--dataset", name, "--sparsity", sparsity, "--out", str(out)]
    return ["preprocess", dataset, "--out", str(out)]


def rebuilt_shards(entry: dict, raw_data: Path, folder: Path, files: list[str]) -> Path:
    """``entry``'s shards converted afresh from the raw data into ``folder``, checked to be the conversion
    ``files`` saw."""
    shards = folder / Path(entry["data"]).name
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SPARSENET_RAW", str(raw_data))
        result = CliRunner().invoke(main, preprocess_command(entry["dataset"], shards))
    assert result.exit_code == 0, result.output
    for file in files:
        model = ckpt_io.load(REPO / "models" / file)
        assert (
            ckpt_io.data_info(ShardReader(shards / "test").meta)["params"] == model.data["params"]
        )  # the same conversion
    return shards


def eval_json(files: list[str], shards: Path) -> dict:
    """`sparsenet eval --json` of the shipped ``files`` (an ensemble when several) on ``shards``."""
    members = [arg for file in files for arg in ("--checkpoint", str(REPO / "models" / file))]
    result = CliRunner().invoke(
        main, ["eval", *members, "--data", str(shards), "--json", "--confusion", str(shards.parent / "confusion.png")]
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_make_preprocess_builds_the_shards_of_every_shipped_model():
    """The index's ``data`` is the folder `make preprocess` leaves, converted as the tests convert it."""
    dry_run = subprocess.run(
        ["make", "-n", "preprocess", "DATA=data", "SN=sparsenet"], cwd=REPO, check=True, capture_output=True, text=True
    ).stdout
    for entry in SHIPPED + ENSEMBLES:
        assert shlex.join(preprocess_command(entry["dataset"], Path(entry["data"]))) in dry_run, entry


@pytest.mark.realdata
@pytest.mark.parametrize("entry", SHIPPED, ids=[e["file"] for e in SHIPPED])
def test_shipped_model_reproduces_its_test_error(entry, raw_data, tmp_path):
    shards = rebuilt_shards(entry, raw_data, tmp_path, [entry["file"]])
    assert eval_json([entry["file"]], shards)["top1_error"] == entry["top1_error"]
    assert shlex.split(entry["command"])[:2] == ["sparsenet", "train"]


@pytest.mark.realdata
@pytest.mark.parametrize("entry", ENSEMBLES, ids=[e["name"] for e in ENSEMBLES])
def test_shipped_ensemble_reproduces_its_test_error(entry, raw_data, tmp_path):
    shards = rebuilt_shards(entry, raw_data, tmp_path, entry["files"])
    assert eval_json(entry["files"], shards)["top1_error"] == entry["top1_error"]


def shipped(dataset: str) -> dict:
    entry = next((e for e in SHIPPED if e["dataset"] == dataset), None)
    if entry is None:
        pytest.skip(f"no shipped {dataset} model")
    return entry


@pytest.mark.realdata
def test_shipped_assamese_model_predicts_raw_stroke_files(raw_data, tmp_path):
    """`sparsenet predict` out of the box: test writer 40's raw files, classes named as the shards name them."""
    from sparsenet.sources import iter_members

    entry = shipped("assamese")
    files = []
    for name, content in iter_members(raw_data / "assamese", lambda n: "/W40/" in n and n.endswith(".txt")):
        files.append(tmp_path / name.rsplit("/", 1)[1])
        files[-1].write_bytes(content)
    model = ckpt_io.load(REPO / "models" / entry["file"])
    names = ckpt_io.class_names(model.data)
    result = CliRunner().invoke(
        main, ["predict", "--checkpoint", str(REPO / "models" / entry["file"]), "--json", *map(str, files)]
    )
    assert result.exit_code == 0, result.output
    predictions = json.loads(result.output)
    truth = {f"{i + 1}.40.txt": name for i, name in enumerate(names)}  # file k.40.txt is class k (1-based)
    correct = sum(p["top"][0]["name"] == truth[Path(p["input"]).name] for p in predictions)
    assert len(predictions) == len(names) == 183 and correct >= 0.9 * len(names)
