"""``sparsenet train / eval / predict`` through click: a tiny run, resume, JSON output, and the errors."""

import json

import pytest
from click.testing import CliRunner
from synthetic import write_digit_shards

from sparsenet.cli import main

MODEL = ["--model", "deepcnet", "--model-arg", "l=2", "--model-arg", "k=4"]
TINY = [*MODEL, "--epochs", "1", "--batch-size", "6", "--procs", "1"]


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return write_digit_shards(tmp_path_factory.mktemp("cli") / "digits")


@pytest.fixture(scope="module")
def run(digits):
    """A one-epoch run made with the CLI."""
    out = digits.parent / "run"
    result = CliRunner().invoke(main, ["train", "--data", str(digits), "--out", str(out), *TINY])
    assert result.exit_code == 0, result.output
    assert f"run folder: {out}" in result.output
    return out


def invoke(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_train_records_the_command_line_options(run):
    config = json.loads((run / "config.json").read_text())["config"]
    assert config["model_kwargs"] == {"l": 2, "k": 4} and config["batch_size"] == 6 and config["procs"] == 1
    assert config["augment"] == "shift"  # the MNIST default: the shards were written by preprocess.mnist


def test_resume_continues_and_config_repeats(run, digits):
    result = invoke("train", "--resume", run, "--epochs", 2)
    assert result.exit_code == 0, result.output
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2
    again = digits.parent / "again"
    result = invoke("train", "--config", run / "config.json", "--out", again)
    assert result.exit_code == 0, result.output
    assert (again / "metrics.jsonl").read_text().count("\n") == 2  # epochs=2 came from the config


def test_train_refuses_a_folder_with_a_users_file_and_batch_size_one(digits, tmp_path):
    (tmp_path / "thesis.tex").write_text("chapter 1")
    result = invoke("train", "--data", digits, "--out", tmp_path, *TINY)
    assert result.exit_code == 1 and "holds thesis.tex); a new run needs a new or empty folder" in result.output
    assert [p.name for p in tmp_path.iterdir()] == ["thesis.tex"] and (
        tmp_path / "thesis.tex"
    ).read_text() == "chapter 1"
    result = invoke(
        "train", "--data", digits, "--out", tmp_path / "bs1", "--model", "vgg-plain", "--epochs", 1, "--batch-size", 1
    )
    assert result.exit_code == 1, result.output
    assert result.output == "Error: batch size 1 leaves BatchNorm one value per channel; use >= 2\n"
    assert not (tmp_path / "bs1").exists()


def test_threads_option_is_recorded(digits, tmp_path):
    result = invoke("train", "--data", digits, "--out", tmp_path / "run", *TINY, "--threads", 2)
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "run" / "config.json").read_text())["config"]["threads"] == 2
    assert invoke("train", "--data", digits, "--threads", 0).exit_code == 2


def test_eval_prints_errors_and_json(run):
    text = invoke("eval", "--checkpoint", run)
    assert text.exit_code == 0, text.output
    assert "test error: top-1" in text.output and "confusion matrix:" in text.output
    result = invoke("eval", "--checkpoint", run / "checkpoint.pt", "--json")
    assert result.exit_code == 0, result.output
    values = json.loads(result.output)
    assert 0 <= values["top1_error"] <= 1 and values["samples"] == 24
    assert set(values["per_class_error"]) == {"horizontal", "vertical", "diagonal"}
    both = invoke("eval", "--checkpoint", run / "checkpoint.pt", "--checkpoint", run / "best.pt")
    assert both.exit_code == 0, both.output
    assert both.output.startswith(f"ensemble of {run / 'checkpoint.pt'} + {run / 'best.pt'} on ")


def test_predict_prints_the_top_classes(run, tmp_path):
    from PIL import Image
    from synthetic import digit_images

    Image.fromarray(digit_images(1)[0][0]).save(tmp_path / "digit.png")
    result = invoke("predict", "--checkpoint", run, "--top", 2, tmp_path / "digit.png")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == str(tmp_path / "digit.png") and len(lines) == 3 and lines[1].strip().startswith("1.")
    assert json.loads(invoke("predict", "--checkpoint", run, "--json", tmp_path / "digit.png").output)[0]["top"]


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["train", "--model", "deepcnet"], 2, "give --data DIR"),
        (["train", "--data", "no/such/dir"], 2, "does not exist"),
        (["train", "--data", "{tmp}", *TINY], 1, "no train/ folder; a dataset folder holds"),
        (["train", "--data", "{digits}", "--model", "resnet"], 2, "'resnet' is not one of"),
        (["train", "--data", "{digits}", "--procs", "0"], 2, "neither 'auto' nor a whole number"),
        (["train", "--data", "{digits}", "--model-arg", "l5"], 2, "is not KEY=VALUE"),
        (["train", "--data", "{digits}", "--out", "{tmp}/x", *TINY, "--model-arg", "l=1"], 1, "network takes 6x6"),
        (
            ["train", "--data", "{digits}", "--out", "{tmp}/y", *TINY, "--model-arg", "depth=3"],
            1,
            "unexpected keyword argument 'depth'",
        ),
        (["train", "--data", "{digits}", "--out", "{run}", *TINY], 1, "already holds a run"),
        (["train", "--resume", "{run}", "--lr", "0.5"], 1, "cannot change lr"),
        (["train", "--resume", "{tmp}"], 1, "no such checkpoint file"),
        (["eval", "--checkpoint", "{tmp}/garbage.pt"], 1, "not a torch checkpoint"),
        (["eval", "--checkpoint", "{tmp}"], 1, "run folder without best.pt or checkpoint.pt"),
        (["predict", "--checkpoint", "{run}", "{tmp}/garbage.pt"], 1, "not an image file"),
        (["predict", "--checkpoint", "{run}"], 2, "Missing argument"),
    ],
    ids=lambda v: v if isinstance(v, str) and " " in v else None,
)
def test_errors_are_one_line_messages(run, digits, tmp_path, args, code, message):
    (tmp_path / "garbage.pt").write_bytes(b"garbage")
    result = invoke(*(a.format(tmp=tmp_path, digits=digits, run=run) for a in args))
    assert result.exit_code == code, result.output
    assert message in result.output
    assert "Traceback" not in result.output
