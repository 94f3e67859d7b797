"""The command line: help texts, preprocess + inspect on small sources, errors as messages."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from sparsenet.cli import main
from sparsenet.sources import ENV_VAR


def run(*args: str, env: dict | None = None):
    return CliRunner().invoke(main, [str(a) for a in args], env=env)


def _commands(group: click.Group, prefix=()):
    for name, command in group.commands.items():
        yield prefix + (name,), command
        if isinstance(command, click.Group):
            yield from _commands(command, prefix + (name,))


@pytest.mark.parametrize("path", [p for p, _ in _commands(main)] + [()], ids=lambda p: " ".join(p) or "main")
def test_help_reads_well(path):
    result = run(*path, "--help")
    assert result.exit_code == 0 and "Usage: " in result.output
    command = main
    for name in path:
        command = command.commands[name]
    assert command.help and command.short_help, f"{' '.join(path) or 'main'} needs a help text and a short help line"
    for param in command.params:
        if isinstance(param, click.Option) and param.name not in ("help", "version"):
            assert param.help, f"{' '.join(path)} {param.opts[0]} has no help"


def test_preprocess_assamese_then_inspect(assamese_tree, tmp_path):
    out = tmp_path / "shards"
    result = run(
        "preprocess",
        "assamese",
        "--source",
        assamese_tree,
        "--out",
        out,
        "--train-writers",
        "1-2,4",
        "--test-writers",
        "3",
        "--field",
        50,
        "--scale",
        40,
    )
    assert result.exit_code == 0, result.output
    assert f"wrote 9 train, 3 test samples to {out}" in result.output and "skipped" in result.output
    result = run("inspect", out, "--render", 4, "--png", tmp_path / "pic.png")
    assert result.exit_code == 0, result.output
    for text in (
        "train: 9 samples in 1 file(s), valid",
        "classes:        3 (N1, N2, N3)",
        "spatial shape:  50 x 50",
        "features:       dx, dy, ink",
        "sites / sample: min",
        "train_writers: [1, 2, 4]",
        "drew 4 samples",
    ):
        assert text in result.output
    assert (tmp_path / "pic.png").stat().st_size > 0


def test_preprocess_mnist_and_masked(mnist_dir, tmp_path):
    result = run("preprocess", "mnist", "--source", mnist_dir, "--out", tmp_path / "m")
    assert result.exit_code == 0 and "wrote 12 train, 6 test samples" in result.output
    result = run(
        "preprocess", "masked", "--dataset", "mnist", "--sparsity", 0.5, "--source", mnist_dir, "--out", tmp_path / "mm"
    )
    assert result.exit_code == 0, result.output
    assert "sites / sample: min 392, median 392, max 392" in run("inspect", tmp_path / "mm" / "test").output


@pytest.mark.parametrize("sparsity", ["1", "-0.1", "half"])
def test_sparsity_must_be_in_unit_interval(mnist_dir, sparsity):
    result = run("preprocess", "masked", "--dataset", "mnist", "--sparsity", sparsity, "--source", mnist_dir)
    assert result.exit_code == 2 and "--sparsity" in result.output


def test_errors_are_messages_not_tracebacks(tmp_path, assamese_tree, stroke_text):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not an hdf5 file")
    result = run("inspect", bad)
    assert result.exit_code == 1 and f"Error: {bad}: not a readable HDF5 file" in result.output
    (assamese_tree / "W1" / "1.1.txt").write_text(stroke_text([[("x", 0), (1, 1)]]))
    result = run("preprocess", "assamese", "--source", assamese_tree, "--out", tmp_path / "out")
    assert result.exit_code == 1 and "W1/1.1.txt, line 5: 'x' is not a finite number" in result.output
    result = run("preprocess", "assamese", "--source", assamese_tree, "--train-writers", "1-x")
    assert result.exit_code == 2 and "not a list of writer ids" in result.output
    assert "Traceback" not in result.output


def test_missing_raw_data_without_network(tmp_path, monkeypatch):
    import urllib.error
    import urllib.request

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    monkeypatch.chdir(tmp_path)
    result = run("preprocess", "mnist", env={ENV_VAR: ""})
    assert result.exit_code == 1
    assert "could not download" in result.output and "--source" in result.output and ENV_VAR in result.output


def test_activity_draws_every_layer_of_deepcnet(tmp_path):
    import numpy as np

    from sparsenet.shards import ShardMeta, ShardWriter

    meta = ShardMeta(spatial_shape=(24, 24), num_classes=2, feature_names=("ink",))
    with ShardWriter(tmp_path / "split", meta) as writer:
        writer.add(np.array([[3, 4], [10, 10], [11, 10]]), np.ones((3, 1)), 1, "a")
    png = tmp_path / "a.png"
    result = run("activity", "--data", tmp_path / "split", "--model-arg", "l=3", "--model-arg", "k=2", "--png", png)
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:4] == b"\x89PNG"
    lines = [line.split()[-3:] for line in result.output.splitlines() if line.rstrip().endswith("active")]
    assert lines[0] == ["24x24", "3", "active"]  # the three input sites, centred in the 24x24 field
    assert lines[-1][:2] == ["1x1", "1"]  # DeepCNet(3, k) ends on a single site


def test_activity_refuses_a_dense_network(tmp_path):
    import numpy as np

    from sparsenet.shards import ShardMeta, ShardWriter

    meta = ShardMeta(spatial_shape=(24, 24), num_classes=2, feature_names=("ink",))
    with ShardWriter(tmp_path / "split", meta) as writer:
        writer.add(np.array([[3, 4]]), np.ones((1, 1)), 0, "a")
    result = run("activity", "--data", tmp_path / "split", "--model", "deepcnet-dense", "--model-arg", "l=3")
    assert result.exit_code != 0 and "needs a sparse network" in result.output


def test_a_library_error_is_one_line_and_a_bug_is_a_traceback(monkeypatch, tmp_path):
    """SparsenetError -> `Error: ...`, exit 1; any other exception propagates (CliRunner keeps it)."""
    from sparsenet import summary
    from sparsenet.errors import ShardError

    monkeypatch.setattr(summary, "summarize", lambda path: (_ for _ in ()).throw(ShardError(path, "bad shard")))
    result = run("inspect", tmp_path)
    assert result.exit_code == 1 and result.output == f"Error: {tmp_path}: bad shard\n"
    monkeypatch.setattr(summary, "summarize", lambda path: (_ for _ in ()).throw(KeyError("a bug")))
    result = run("inspect", tmp_path)
    assert isinstance(result.exception, KeyError) and "Error:" not in result.output
    monkeypatch.setattr(summary, "summarize", lambda path: (_ for _ in ()).throw(ValueError("also a bug")))
    assert isinstance(run("inspect", tmp_path).exception, ValueError)


def test_choices_come_from_the_library():
    """--optimizer, --lr-schedule, --augment, --device, --model and the converters' options list what the
    library accepts, so adding one there needs no CLI edit."""
    from sparsenet import augment, config
    from sparsenet.converters import get_converter
    from sparsenet.models import list_models

    def choices(path, option):
        command = main
        for name in path:
            command = command.commands[name]
        return tuple(next(p for p in command.params if p.name == option).type.choices)

    assert choices(["train"], "optimizer") == config.OPTIMIZERS
    assert choices(["train"], "lr_schedule") == config.SCHEDULES
    assert choices(["train"], "augment") == tuple(augment.AUGMENTATIONS)
    assert choices(["train"], "device") == choices(["eval"], "device") == config.DEVICES
    assert choices(["train"], "model") == tuple(list_models())
    assert choices(["preprocess", "assamese"], "encoding") == get_converter("assamese").choices["encoding"]
    assert choices(["preprocess", "masked"], "dataset") == get_converter("masked").choices["dataset"]
