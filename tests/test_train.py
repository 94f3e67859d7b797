"""sparsenet.train / evaluate / predict end to end on tiny synthetic data: train -> checkpoint ->
kill and resume (bit-identical to the uninterrupted run) -> eval -> predict; bad checkpoints."""

import json
import math
import os
import shutil
import sys
import zipfile

import h5py
import numpy as np
import pytest
import torch
from PIL import Image
from synthetic import digit_images, write_digit_shards, write_stroke_files

from preprocess.assamese import convert
from sparsenet import checkpoint as ckpt_io
from sparsenet import train as training
from sparsenet.batch import collate
from sparsenet.checkpoint import CheckpointError
from sparsenet.config import TrainConfig, for_dataset
from sparsenet.errors import DatasetError, RawDataError, RunError
from sparsenet.evaluate import evaluate
from sparsenet.pipeline import inputs, load_network
from sparsenet.predict import predict
from sparsenet.runs import RunLock
from sparsenet.shards import ShardError, ShardMeta, ShardReader, ShardWriter

EPOCHS = 3
# DeepCNet(2, 8) on a 12x12 field, with dropout so that resuming must also restore torch's RNG stream.
MODEL = {"model": "deepcnet", "model_kwargs": {"l": 2, "k": 8, "dropout": 0.2}}


def config(data, out, **changes) -> TrainConfig:
    values = dict(
        MODEL,
        data=str(data),
        out=str(out),
        epochs=EPOCHS,
        batch_size=6,
        lr=0.1,
        lr_decay=0.1,
        augment="affine",
        procs=1,
        eval_batch_size=5,
        seed=3,
    )
    return TrainConfig.from_dict({**values, **changes})


def scored(history: list[dict]) -> list[dict]:
    """metrics rows without their timings (which differ between identical runs)."""
    return [{k: v for k, v in row.items() if k not in training.TIMING_KEYS} for row in history]


@pytest.fixture(scope="module")
def strokes(tmp_path_factory):
    """An Assamese-format dataset: 12 writers x 3 classes of stroke files, converted by preprocess.assamese."""
    root = tmp_path_factory.mktemp("strokes")
    raw = write_stroke_files(root / "raw", writers=12)
    convert(raw, root / "data", scale=8, field=12, train_writers=range(1, 10), test_writers=range(10, 13))
    return root


@pytest.fixture(scope="module")
def reference(strokes):
    """The uninterrupted run."""
    return training.train(config(strokes / "data", strokes / "reference"))


def test_run_leaves_config_metrics_plots_and_checkpoints(reference, strokes):
    names = {p.name for p in reference.iterdir()}
    assert {"config.json", "metrics.jsonl", "curves.png", "confusion.png", "checkpoint.pt", "best.pt"} <= names
    assert not [n for n in names if ".tmp" in n]
    rows = [json.loads(line) for line in (reference / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    for key in (
        "train_loss",
        "train_error",
        "test_loss",
        "test_error",
        "test_top5_error",
        "lr",
        "seconds",
        "samples_per_s",
    ):
        assert all(isinstance(r[key], float) and math.isfinite(r[key]) for r in rows), key
    assert rows[1]["lr"] == pytest.approx(0.1 * math.exp(-0.1))
    profile = rows[0]["profile"]
    assert set(profile) == {"data", "forward", "backward", "step", "load", "augment", "collate"}
    assert profile["load"] + profile["augment"] + profile["collate"] == pytest.approx(profile["data"])
    assert profile["augment"] > 0  # the run augments (affine)
    record = json.loads((reference / "config.json").read_text())
    # threads="auto" is recorded as the count it resolved to: one for a sparse network
    assert TrainConfig.from_dict(record["config"]) == config(strokes / "data", strokes / "reference", threads=1)
    assert {"torch", "spconv", "numpy", "python", "sparsenet"} <= set(record["versions"])
    assert record["data"]["converter"] == "assamese" and record["data"]["dataset"] == "assamese"
    last, best = ckpt_io.load(reference / "checkpoint.pt"), ckpt_io.load(reference / "best.pt")
    assert last.epoch == EPOCHS and scored(last.history) == scored(rows)
    assert best.best_error == min(r["test_error"] for r in rows)
    assert best.epoch == 1 + int(np.argmin([r["test_error"] for r in rows]))
    for png in ("curves.png", "confusion.png"):
        assert (reference / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_training_learns_the_synthetic_digits(tmp_path):
    data = write_digit_shards(tmp_path / "digits")
    run = training.train(config(data, tmp_path / "run", epochs=6, augment="shift", model_kwargs={"l": 2, "k": 8}))
    rows = ckpt_io.load(run / "checkpoint.pt").history
    assert rows[-1]["train_loss"] < 0.8 * rows[0]["train_loss"]
    assert min(r["test_error"] for r in rows) < 0.3  # chance is 2/3


class Killed(KeyboardInterrupt):
    pass


def kill_at(monkeypatch, target, name, calls: int) -> None:
    """Make ``target.name`` raise :class:`Killed` on its ``calls``-th call (as a SIGINT would)."""
    original, count = getattr(target, name), [0]

    def wrapper(*args, **kwargs):
        count[0] += 1
        if count[0] == calls:
            raise Killed
        return original(*args, **kwargs)

    monkeypatch.setattr(target, name, wrapper)


def assert_same_run(run, reference) -> None:
    resumed, uninterrupted = ckpt_io.load(run / "checkpoint.pt"), ckpt_io.load(reference / "checkpoint.pt")
    assert scored(resumed.history) == scored(uninterrupted.history)
    for key, value in uninterrupted.model.items():
        assert torch.equal(resumed.model[key], value), key  # bit-identical on the CPU
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert scored(rows) == scored(uninterrupted.history)


def test_resume_after_a_kill_in_mid_epoch_repeats_the_uninterrupted_run(strokes, reference, tmp_path, monkeypatch):
    run = tmp_path / "run"
    kill_at(monkeypatch, torch.optim.SGD, "step", 9)  # 4 steps per epoch: in the middle of epoch 3
    with pytest.raises(training.Interrupted) as stop:
        training.train(config(strokes / "data", run))
    assert stop.value.run_dir == run
    assert ckpt_io.load(run / "checkpoint.pt").epoch == 2
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2
    monkeypatch.undo()
    with pytest.raises(ValueError, match="already holds a run"):
        training.train(config(strokes / "data", run))
    assert training.resume(run) == run
    assert_same_run(run, reference)


def test_resume_after_a_kill_between_checkpoint_and_metrics(strokes, reference, tmp_path, monkeypatch):
    run = tmp_path / "run"
    kill_at(monkeypatch, training, "_write_metrics", 3)  # calls: start, after epoch 1, after epoch 2
    with pytest.raises(training.Interrupted):
        training.train(config(strokes / "data", run))
    assert ckpt_io.load(run / "checkpoint.pt").epoch == 2
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 1  # behind the checkpoint
    monkeypatch.undo()
    training.resume(run)
    assert_same_run(run, reference)


def test_a_kill_before_the_first_epoch_ends_is_resumable(strokes, reference, tmp_path, monkeypatch):
    run = tmp_path / "run"
    kill_at(monkeypatch, torch.optim.SGD, "step", 2)
    with pytest.raises(training.Interrupted):
        training.train(config(strokes / "data", run))
    assert ckpt_io.load(run / "checkpoint.pt").epoch == 0
    monkeypatch.undo()
    training.resume(run)
    assert_same_run(run, reference)


def test_resume_extends_and_refuses_other_changes(strokes, reference, tmp_path):
    with pytest.raises(ValueError, match="cannot change lr"):
        training.resume(reference, lr=0.5)
    with pytest.raises(ValueError, match="already at epoch 3"):
        training.resume(reference, epochs=2)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        training.resume(tmp_path)


def test_evaluate_matches_the_training_metrics(reference, strokes):
    best = ckpt_io.load(reference / "best.pt")
    row = best.history[-1]
    result = evaluate(reference, strokes / "data", confusion_png=strokes / "eval-confusion.png")
    assert result["checkpoint"] == str(reference / "best.pt") and result["epoch"] == best.epoch
    assert result["samples"] == 9
    assert result["top1_error"] == pytest.approx(row["test_error"], abs=1e-12)
    assert result["top5_error"] == 0.0  # 3 classes
    assert result["loss"] == pytest.approx(row["test_loss"], rel=1e-6)
    assert set(result["per_class_error"]) == {"C1", "C2", "C3"}
    assert np.mean(list(result["per_class_error"].values())) == pytest.approx(result["top1_error"])
    assert (strokes / "eval-confusion.png").read_bytes()[:4] == b"\x89PNG"


def test_evaluate_defaults_to_the_runs_data(reference, strokes):
    assert evaluate(reference / "checkpoint.pt")["data"] == str(strokes / "data" / "test")


def shard_probabilities(checkpoint, split, sample_id) -> torch.Tensor:
    """The network's class probabilities for one shard sample, bypassing predict's raw-input path."""
    network, field, ckpt = load_network(checkpoint, torch.device("cpu"))
    reader = ShardReader(split)
    sample = next(s for s in reader if s.sample_id == sample_id)
    offset = ((field[0] - reader.meta.spatial_shape[0]) // 2, (field[1] - reader.meta.spatial_shape[1]) // 2)
    sample = type(sample)(sample.coords + np.array(offset, dtype=np.int32), sample.features, sample.label)
    with torch.no_grad():
        return torch.softmax(network(*inputs(network, collate([sample], field))), 1)[0]


def test_predict_stroke_files_as_the_shards_were_made(reference, strokes):
    files = [strokes / "raw" / "W11" / "2.11.txt", strokes / "raw" / "W10" / "1.10.txt"]
    results = predict(reference, files, top=5)
    assert [r["input"] for r in results] == [str(f) for f in files]
    for result, sample_id in zip(results, ("W11/2.11.txt", "W10/1.10.txt")):
        assert len(result["top"]) == 3 and [g["name"] for g in result["top"]] != []
        expected = shard_probabilities(reference, strokes / "data" / "test", sample_id)
        got = {g["class"]: g["probability"] for g in result["top"]}
        assert got == pytest.approx({k: float(p) for k, p in enumerate(expected)}, abs=1e-6)
        assert [g["probability"] for g in result["top"]] == sorted(got.values(), reverse=True)


def test_predict_images_like_mnist_shards(tmp_path):
    data = write_digit_shards(tmp_path / "digits")
    run = training.train(config(data, tmp_path / "run", epochs=1, augment="none", model_kwargs={"l": 2, "k": 4}))
    images, _ = digit_images(24, seed=1)  # the test split's images
    Image.fromarray(images[4]).save(tmp_path / "digit.png")
    Image.fromarray(255 - images[4]).save(tmp_path / "paper.png")  # dark ink on white: inverted on reading
    results = predict(run, [tmp_path / "digit.png", tmp_path / "paper.png"], top=2)
    expected = shard_probabilities(run, data / "test", "test/4")
    for result in results:
        assert len(result["top"]) == 2
        for guess in result["top"]:
            assert guess["probability"] == pytest.approx(float(expected[guess["class"]]), abs=1e-6)
    (tmp_path / "blank.png").write_bytes(b"")
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(tmp_path / "blank.png")
    with pytest.raises(RawDataError, match="blank"):
        predict(run, [tmp_path / "blank.png"])
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(RawDataError, match="not an image file"):
        predict(run, [tmp_path / "text.png"])


def test_for_dataset_uses_the_dataset_defaults(strokes, tmp_path):
    cfg = for_dataset(strokes / "data")
    assert (cfg.model, cfg.augment, cfg.optimizer, cfg.out) == ("vgg", "affine", "sgd", "runs/assamese-vgg")
    digits = write_digit_shards(tmp_path / "digits")
    assert for_dataset(digits).model_kwargs == {"l": 5, "k": 10}
    other = for_dataset(digits, tmp_path / "run", model="vgg-plain", epochs=2)
    assert (other.model, other.model_kwargs, other.epochs, other.augment) == ("vgg-plain", {}, 2, "shift")
    with pytest.raises(ValueError, match="unknown config key.*colour"):
        TrainConfig.from_dict({**cfg.to_dict(), "colour": 1})


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda p, good: p.unlink(), "no such checkpoint file"),
        (lambda p, good: p.write_bytes(b"\0" * 64), "not a torch checkpoint"),
        (lambda p, good: p.write_bytes(good[: len(good) // 2]), "not a torch checkpoint|corrupt or truncated"),
        (lambda p, good: torch.save({"weights": torch.zeros(2)}, p), "not a sparsenet checkpoint"),
        (lambda p, good: torch.save({"format": "sparsenet.checkpoint", "version": 99}, p), "version 99"),
        (
            lambda p, good: torch.save({"format": "sparsenet.checkpoint", "version": 1, "model": {}}, p),
            "entries missing: config",
        ),
        (
            lambda p, good: torch.save({"format": "sparsenet.checkpoint", "evil": zipfile.ZipInfo("x")}, p),
            "refusing to load",
        ),
    ],
    ids=["missing", "garbage", "truncated", "foreign", "version", "incomplete", "pickled-object"],
)
def test_bad_checkpoints_are_named_with_their_problem(reference, tmp_path, damage, message):
    path = tmp_path / "bad.pt"
    good = (reference / "best.pt").read_bytes()
    path.write_bytes(good)
    damage(path, good)
    with pytest.raises(CheckpointError, match=message) as error:
        evaluate(path)
    assert str(path) in str(error.value)


def test_checkpoints_that_do_not_fit_the_network_or_data(reference, strokes, tmp_path):
    state = ckpt_io.load(reference / "best.pt")
    state.config = state.config.replace(model_kwargs={"l": 2, "k": 4})
    state.save(tmp_path / "narrow.pt")
    with pytest.raises(CheckpointError, match="weights do not fit model 'deepcnet'"):
        evaluate(tmp_path / "narrow.pt")
    digits = write_digit_shards(tmp_path / "digits")
    with pytest.raises(CheckpointError, match="was trained on data with feature_names"):
        evaluate(reference / "best.pt", digits)


def test_cosine_runs_refuse_a_new_length_on_resume(strokes, tmp_path):
    run = training.train(config(strokes / "data", tmp_path / "cosine", epochs=1, lr_schedule="cosine"))
    with pytest.raises(ValueError, match="cosine schedule is fitted to 1 epochs"):
        training.resume(run, epochs=2)


def test_eval_keeps_the_runs_own_confusion_matrix(reference, strokes):
    before = (reference / "confusion.png").read_bytes()
    result = evaluate(reference / "checkpoint.pt", strokes / "data")
    assert result["confusion_png"] == str(reference / "eval-checkpoint-confusion.png")
    assert (reference / "confusion.png").read_bytes() == before


def test_repeated_testing_averages_augmented_copies_deterministically(reference, strokes):
    plain = evaluate(reference / "checkpoint.pt", strokes / "data")
    repeated = evaluate(reference / "checkpoint.pt", strokes / "data", repeats=3)
    assert repeated["repeats"] == 3 and repeated["samples"] == plain["samples"]
    assert repeated["loss"] != pytest.approx(plain["loss"], rel=1e-6)  # the distorted copies count
    again = evaluate(reference / "checkpoint.pt", strokes / "data", repeats=3)
    assert (again["loss"], again["top1_error"]) == (repeated["loss"], repeated["top1_error"])


def test_an_ensemble_predicts_the_mean_of_its_members_probabilities(reference, strokes, tmp_path):
    other = training.train(config(strokes / "data", tmp_path / "other", seed=4))
    members = [reference / "checkpoint.pt", other / "checkpoint.pt"]
    result = evaluate(members, strokes / "data", plot=False)
    assert result["checkpoints"] == [str(m) for m in members] and result["checkpoint"] == str(members[0])
    probabilities, labels = [], None
    for member in members:  # independently: each network's softmax over the plain test split, averaged
        network, field, _ = load_network(member, torch.device("cpu"))
        reader = ShardReader(strokes / "data" / "test")
        batch = collate([reader[i] for i in range(len(reader))], spatial_shape=field)
        with torch.no_grad():
            probabilities.append(torch.softmax(network(*inputs(network, batch)), dim=1))
        labels = batch.labels
    mean = torch.stack(probabilities).mean(0)
    assert result["loss"] == pytest.approx(-mean[torch.arange(len(labels)), labels].log().mean().item(), rel=1e-5)
    assert result["top1_error"] == pytest.approx((mean.argmax(1) != labels).float().mean().item())
    alone = evaluate(members[0], strokes / "data", plot=False)
    assert evaluate([members[0]] * 2, strokes / "data", plot=False)["loss"] == pytest.approx(alone["loss"], rel=1e-6)


def test_repeated_testing_needs_a_run_trained_with_augmentation(strokes, tmp_path):
    run = training.train(config(strokes / "data", tmp_path / "plain", epochs=1, augment="none"))
    with pytest.raises(ValueError, match="without augmentation"):
        evaluate(run / "checkpoint.pt", repeats=2)


@pytest.mark.parametrize("name", ["config.json", "metrics.jsonl", "curves.png", "best.pt", "thesis.tex"])
def test_a_new_run_never_takes_over_a_folder_with_files(strokes, tmp_path, name):
    (tmp_path / name).write_text("the user's own")
    with pytest.raises(RunError, match=f"holds {name}.*choose another --out"):
        training.train(config(strokes / "data", tmp_path))
    assert [p.name for p in tmp_path.iterdir()] == [name]
    assert (tmp_path / name).read_text() == "the user's own"


def test_bad_data_is_refused_before_the_run_folder_is_made(strokes, tmp_path):
    data = shutil.copytree(strokes / "data", tmp_path / "data")
    shard = sorted((data / "test").glob("shard-*.h5"))[-1]
    original = shard.read_bytes()
    with h5py.File(shard, "r+") as f:  # the last test shard: old code met it after the first epoch
        f["features"][0, 0] = np.nan
    with pytest.raises(ShardError, match=shard.name):
        training.train(config(data, tmp_path / "run"))
    assert not (tmp_path / "run").exists()
    shard.write_bytes(original)
    assert training.train(config(data, tmp_path / "run", epochs=1)) == tmp_path / "run"  # not "holds a run"
    for split, run_id in (("train", "run-a"), ("test", "run-b")):  # splits of two preprocess runs
        manifest = data / split / "manifest.json"
        manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "run_id": run_id}))
    with pytest.raises(DatasetError, match="different conversions"):
        training.train(config(data, tmp_path / "other"))
    assert not (tmp_path / "other").exists()


def test_one_writer_per_run_folder(reference, tmp_path):
    with RunLock(reference), pytest.raises(RunError, match=f"being written by pid {os.getpid()}"):
        training.resume(reference, epochs=4)
    assert ckpt_io.load(reference / "checkpoint.pt").epoch == EPOCHS


def test_threads_are_recorded_and_may_change_on_resume(strokes, tmp_path):
    run = training.train(config(strokes / "data", tmp_path / "run", epochs=1, threads=2))
    assert json.loads((run / "config.json").read_text())["config"]["threads"] == 2
    training.resume(run, epochs=2, threads="auto")
    assert ckpt_io.load(run / "checkpoint.pt").config.threads == 1  # auto: one thread for a sparse network


@pytest.mark.parametrize("procs", [1, 2])
def test_config_json_keeps_the_command_that_started_the_run(strokes, tmp_path, monkeypatch, procs):
    start = ["sparsenet", "train", "--data", str(strokes / "data"), "--seed", "3"]
    monkeypatch.setattr(sys, "argv", start)
    run = training.train(config(strokes / "data", tmp_path / "run", epochs=1, procs=procs))
    record = json.loads((run / "config.json").read_text())
    assert record["command"] == start and "resumed_with" not in record  # the ranks' restart is not a resume
    again = ["sparsenet", "train", "--resume", str(run), "--epochs", "2"]
    monkeypatch.setattr(sys, "argv", again)
    training.resume(run, epochs=2)
    record = json.loads((run / "config.json").read_text())
    assert record["command"] == start and record["resumed_with"] == again


def test_a_data_folder_name_that_is_not_utf8_is_shown(tmp_path):
    data = write_digit_shards(tmp_path / os.fsdecode(b"digits-\xff"))
    run = training.train(config(data, tmp_path / "run", epochs=1, augment="none", model_kwargs={"l": 2, "k": 4}))
    result = evaluate(run, data, confusion_png=tmp_path / "confusion.png")
    assert (tmp_path / "confusion.png").read_bytes()[:4] == b"\x89PNG"
    assert result["data"] == str(data / "test")


def write_split(folder, *, classes=("a", "b", "c"), features=("intensity",), shape=(12, 12)) -> None:
    """Six one-site samples with the given class names, feature names and field."""
    meta = ShardMeta(shape, len(classes), features, classes, "synthetic", "mnist", {}, "mnist")
    with ShardWriter(folder, meta) as writer:
        for i in range(6):
            writer.add(np.array([[i, i]]), np.ones((1, len(features))), i % len(classes), f"s{i}")


@pytest.mark.parametrize(
    "test_split",
    [
        dict(classes=("a", "b", "d")),
        dict(classes=("b", "a", "c")),
        dict(classes=("a", "b", "c", "d")),
        dict(features=("red",)),
        dict(features=("intensity", "mask")),
        dict(shape=(12, 14)),
    ],
    ids=["class-name", "class-order", "class-count", "feature-name", "feature-count", "field"],
)
def test_a_test_split_that_does_not_match_the_training_split_is_refused(tmp_path, test_split):
    write_split(tmp_path / "data" / "train")
    write_split(tmp_path / "data" / "test", **test_split)
    with pytest.raises(ShardError, match="test/shard-00000.h5: does not match .*train/shard-00000.h5"):
        training.train(config(tmp_path / "data", tmp_path / "run"))
    assert not (tmp_path / "run").exists()


@pytest.mark.cuda
def test_a_short_training_run_on_the_gpu(tmp_path):
    """One epoch of DeepCNet(2, 8) on the GPU (spconv's CUDA kernels): finite losses, a checkpoint whose
    weights evaluate on the CPU as they did on the GPU."""
    data = write_digit_shards(tmp_path / "digits", train=24, test=12)
    run = training.train(config(data, tmp_path / "run", epochs=1, device="cuda", augment="shift"))
    [row] = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert math.isfinite(row["train_loss"]) and math.isfinite(row["test_loss"])
    on_cpu = evaluate(run / "checkpoint.pt", device="cpu", plot=False)
    assert on_cpu["top1_error"] == pytest.approx(row["test_error"], abs=1.5 / 12)  # a borderline sample may flip
    assert on_cpu["loss"] == pytest.approx(row["test_loss"], rel=1e-3)
