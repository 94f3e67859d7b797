"""Data-parallel training: 2 ranks over gloo on localhost against one process with the same global batch."""

import json
import os
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from synthetic import write_digit_shards

from sparsenet import checkpoint as ckpt_io
from sparsenet import distributed
from sparsenet import runs as run_files
from sparsenet import train as training
from sparsenet.cli import main
from sparsenet.config import TrainConfig
from sparsenet.errors import RunError, SparsenetError

# VGG-C (BatchNorm everywhere) on 12x12 digits placed in its 63x63 field; a batch of 13 splits 6 + 7.
# Few steps: BatchNorm over a handful of samples amplifies float rounding from step to step.
CONFIG = dict(
    model="vgg-plain", epochs=2, batch_size=13, lr=0.05, lr_decay=0.1, augment="shift", seed=5, eval_batch_size=4
)


def spawn_run(config: TrainConfig) -> Path:
    """Train ``config`` in two ranks started by ``distributed.spawn``; each saves its own ``rank<r>.pt``."""
    config.run_dir.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", str(Path(__file__).parent))  # for ddp_rank
        payload = json.dumps({"config": config.to_dict(), "resume": False, "command": ["test"]})
        distributed.spawn("ddp_rank:main", 2, payload, log=partial(run_files.rank_log, config.run_dir))
    return config.run_dir


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_digit_shards(tmp_path_factory.mktemp("ddp-data"), train=26, test=10)


@pytest.fixture(scope="module")
def runs(data, tmp_path_factory):
    """(two-rank run folder with BatchNorm over the global batch, one-process run folder), same data and config."""
    root = tmp_path_factory.mktemp("ddp")
    config = TrainConfig.from_dict(dict(CONFIG, data=str(data), out=str(root / "ddp"), procs=2, sync_batchnorm=True))
    single = training.train(config.replace(out=str(root / "single"), procs=1))
    return spawn_run(config), single


@pytest.fixture(scope="module")
def local_bn_run(data, tmp_path_factory) -> Path:
    """A two-rank run with the default per-rank BatchNorm."""
    config = TrainConfig.from_dict(
        dict(CONFIG, data=str(data), out=str(tmp_path_factory.mktemp("local") / "run"), procs=2)
    )
    return spawn_run(config)


def assert_identical_ranks(run: Path) -> None:
    rank0, rank1 = (torch.load(run / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
    saved = ckpt_io.load(run / "checkpoint.pt").model  # written by rank 0 only
    assert all(torch.equal(saved[key], rank0[key]) for key in rank0)


@pytest.mark.slow
def test_ranks_hold_identical_parameters(runs):
    assert_identical_ranks(runs[0])


@pytest.mark.slow
def test_ranks_with_local_batchnorm_hold_identical_parameters_and_statistics(local_bn_run):
    """Each rank normalises with its own share's statistics; the running statistics are averaged
    over ranks at the end of every epoch, so the ranks (and the checkpoint) still agree exactly."""
    assert_identical_ranks(local_bn_run)
    history = ckpt_io.load(local_bn_run / "checkpoint.pt").history
    assert [row["procs"] for row in history] == [2, 2]
    assert history[-1]["train_loss"] < history[0]["train_loss"]


@pytest.mark.slow
def test_batchnorm_statistics_are_averaged_over_ranks_not_copied_from_one(tmp_path):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", str(Path(__file__).parent))
        distributed.spawn("ddp_rank:average", 2, str(tmp_path), log=partial(run_files.rank_log, tmp_path))
    for r in (0, 1):
        state = torch.load(tmp_path / f"rank{r}.pt", weights_only=True)
        assert torch.equal(state["running_mean"], torch.full((3,), 1.5))  # ranks held 1 and 2
        assert torch.equal(state["running_var"], torch.full((3,), 3.0))
        assert state["num_batches_tracked"].item() == r  # integer counters are left alone


def assert_close_runs(a: ckpt_io.Checkpoint, b: ckpt_io.Checkpoint) -> None:
    for key, value in a.model.items():
        torch.testing.assert_close(b.model[key], value, rtol=1e-4, atol=1e-5)
    for row_a, row_b in zip(a.history, b.history, strict=True):
        for key in ("train_loss", "test_loss", "train_error", "test_error", "lr"):
            assert row_b[key] == pytest.approx(row_a[key], rel=1e-4, abs=1e-6), (row_a["epoch"], key)


@pytest.mark.slow
def test_two_ranks_match_one_process_with_the_same_global_batch(runs):
    ddp, single = runs
    two, one = ckpt_io.load(ddp / "checkpoint.pt"), ckpt_io.load(single / "checkpoint.pt")
    assert [row["procs"] for row in two.history] == [2, 2] and [row["procs"] for row in one.history] == [1, 1]
    assert any("running_var" in key for key in one.model)  # BatchNorm statistics are compared too
    assert_close_runs(one, two)


@pytest.mark.slow
def test_a_two_rank_run_resumes_in_one_process(runs):
    ddp, single = runs
    training.resume(ddp, epochs=3, procs=1)
    training.resume(single, epochs=3)
    assert_close_runs(ckpt_io.load(single / "checkpoint.pt"), ckpt_io.load(ddp / "checkpoint.pt"))


def test_share_splits_a_global_batch():
    batch = list(range(7))
    shares = [distributed.share(batch, r, 2) for r in range(2)]
    assert shares == [[0, 1, 2], [3, 4, 5, 6]]
    assert sum((distributed.share(batch, r, 3) for r in range(3)), []) == batch


def default_sigint() -> None:
    """In the child before exec: Ctrl-C's default action, which a background parent may have switched off."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def train_command(data: Path, run: Path) -> list[str]:
    """``sparsenet train`` of a tiny DeepCNet for 1000 epochs in two processes."""
    return [
        sys.executable,
        "-c",
        "from sparsenet.cli import main; main()",
        *("train", "--data", str(data), "--out", str(run)),
        *[
            "--model",
            "deepcnet",
            "--model-arg",
            "l=2",
            "--model-arg",
            "k=4",
            "--epochs",
            "1000",
            "--batch-size",
            "8",
            "--procs",
            "2",
        ],
    ]


def wait_for_an_epoch(process: subprocess.Popen, run: Path) -> None:
    deadline = time.monotonic() + 120
    while not (run / "metrics.jsonl").is_file() or not (run / "metrics.jsonl").read_text():
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.2)


@pytest.mark.slow
def test_ctrl_c_stops_every_rank_and_leaves_a_resumable_run(tmp_path):
    data = write_digit_shards(tmp_path / "data")
    run = tmp_path / "run"
    command = train_command(data, run)
    process = subprocess.Popen(
        command,
        start_new_session=True,
        preexec_fn=default_sigint,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for_an_epoch(process, run)
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole process group
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 1 and f"continue with `sparsenet train --resume {run}`" in stderr, stderr
    assert "epoch 1/1000" in stderr and "Traceback" not in stderr  # rank 0's lines reach the user
    assert "epoch 1/1000" in run_files.rank_log(run, 0).read_text() and run_files.rank_log(run, 1).is_file()
    with pytest.raises(ProcessLookupError):
        os.killpg(process.pid, 0)  # no rank is left behind
    done = ckpt_io.load(run / "checkpoint.pt").epoch
    assert 1 <= done < 1000
    training.resume(run, epochs=done + 1, procs=1)
    assert ckpt_io.load(run / "checkpoint.pt").epoch == done + 1


def test_per_rank_batchnorm_needs_two_samples_per_process(data, tmp_path):
    config = TrainConfig.from_dict(dict(CONFIG, data=str(data), out=str(tmp_path / "run"), procs=2, batch_size=3))
    with pytest.raises(ValueError, match="per-rank BatchNorm needs at least 2"):
        training.train(config)


def test_auto_is_recorded_as_the_process_count_it_resolved_to(data, tmp_path):
    run = training.train(
        TrainConfig.from_dict(dict(CONFIG, data=str(data), out=str(tmp_path / "run"), procs="auto", epochs=1))
    )
    assert (
        ckpt_io.load(run / "checkpoint.pt").config.procs == 1
    )  # a batch of 13 leaves no 16 samples for a second process
    assert json.loads((run / "config.json").read_text())["config"]["procs"] == 1


def test_checkpoints_from_before_per_rank_batchnorm_resume_synced(data, tmp_path):
    run = training.train(
        TrainConfig.from_dict(dict(CONFIG, data=str(data), out=str(tmp_path / "run"), procs=1, epochs=1))
    )
    payload = torch.load(run / "checkpoint.pt", weights_only=True)
    old = json.loads(payload["config"])
    del old["sync_batchnorm"]
    payload["config"] = json.dumps(old)
    torch.save(payload, run / "checkpoint.pt")
    assert ckpt_io.load(run / "checkpoint.pt").config.sync_batchnorm is True


def processes_naming(marker: str) -> list[int]:
    """Pids of the processes (ours excepted) whose command line holds ``marker``."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if marker.encode() in cmdline.read_bytes() and int(cmdline.parent.name) != os.getpid():
                found.append(int(cmdline.parent.name))
        except OSError:  # ended meanwhile
            pass
    return found


def alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie has exited and closed its files)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_killing_the_parent_leaves_no_rank_running(tmp_path, sig):
    data = write_digit_shards(tmp_path / "data")
    run = tmp_path / f"run-{sig.name}-{os.getpid()}"  # in every rank's command line (the payload)
    with open(tmp_path / "stderr.txt", "w") as stderr:
        process = subprocess.Popen(
            train_command(data, run), start_new_session=True, stdout=subprocess.DEVNULL, stderr=stderr
        )
    try:
        wait_for_an_epoch(process, run)
        pids = processes_naming(str(run))
        assert len(pids) == 3  # the parent and two ranks
        with pytest.raises(RunError, match=f"being written by pid {process.pid}"):
            training.resume(run, procs=1, epochs=ckpt_io.load(run / "checkpoint.pt").epoch + 1)
        process.send_signal(sig)  # the parent only, not its process group
        process.wait(timeout=10)
        deadline = time.monotonic() + 10
        while any(map(alive, pids)) or processes_naming(str(run)):
            assert time.monotonic() < deadline, [pid for pid in pids if alive(pid)]
            time.sleep(0.2)
    finally:
        for pid in processes_naming(str(run)):
            os.kill(pid, signal.SIGKILL)
    state = ckpt_io.load(run / "checkpoint.pt")
    assert state.epoch >= 1 and len((run / "metrics.jsonl").read_text().splitlines()) <= state.epoch
    training.resume(run, epochs=state.epoch + 1, procs=1)
    resumed = ckpt_io.load(run / "checkpoint.pt")
    assert resumed.epoch == state.epoch + 1 and resumed.history[: state.epoch] == state.history


@pytest.mark.parametrize("kind", ["shard", "bug"])
def test_a_failing_rank_is_reported_once_and_logged_in_full(tmp_path, kind, capfd):
    with pytest.MonkeyPatch.context() as patch, pytest.raises(distributed.RankFailed) as failed:
        patch.setenv("PYTHONPATH", str(Path(__file__).parent))
        distributed.spawn("ddp_rank:fail", 2, kind, log=partial(run_files.rank_log, tmp_path))
    message, log = str(failed.value), run_files.rank_log(tmp_path, 1)
    assert f"training process 1 of 2; full log: {log}" in message
    if kind == "shard":
        assert message.startswith("data/train/shard-00000.h5: content checksum mismatch") and "\n" not in message
    else:
        assert message.count("Traceback") == 1 and "ZeroDivisionError: division by zero" in message
    assert (
        "Traceback" in log.read_text() and ("ShardError" if kind == "shard" else "ZeroDivisionError") in log.read_text()
    )
    assert "Traceback" not in capfd.readouterr().err  # the ranks' output went to their logs


def test_threads_never_oversubscribe_the_usable_cores(monkeypatch):
    monkeypatch.setattr(distributed, "usable_cores", lambda: 8)
    assert [distributed.resolve_threads("auto", procs, sparse=False) for procs in (1, 2, 3, 16)] == [8, 4, 2, 1]
    assert distributed.resolve_threads("auto", 1, sparse=True) == 1  # spconv's CPU kernels use one thread
    assert distributed.resolve_threads(3, 2, sparse=True) == 3


def test_a_rank_failure_reaches_the_user_as_one_line(tmp_path):
    """Both ranks diverge (and one may lose its peer); the user reads the cause once, the logs keep the rest."""
    data = write_digit_shards(tmp_path / "data")
    run = tmp_path / "run"
    command = [*train_command(data, run), "--lr", "1e10", "--optimizer", "sgd"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("loss became") == 1 and "lower --lr (it was 1e+10)" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and f"full log: {run / 'logs'}/rank-" in result.stderr
    assert any("Traceback" in run_files.rank_log(run, r).read_text() for r in (0, 1))
    assert ckpt_io.load(run / "checkpoint.pt").epoch == 0  # the run can be resumed (with the same lr, to no avail)


@pytest.mark.slow
def test_a_rank_that_crashes_stops_the_others_with_one_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))  # for ddp_rank
    start = time.monotonic()
    with pytest.raises(Exception, match="rank 1") as failure:
        distributed.spawn("ddp_rank:crash", 2, str(tmp_path), log=partial(run_files.rank_log, tmp_path))
    assert time.monotonic() - start < 60
    # a bug (not a SparsenetError) in a rank: named once, with that rank's traceback once
    assert isinstance(failure.value, SparsenetError) and str(failure.value).count("Traceback") == 1
    pid = int((tmp_path / "rank0.pid").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # rank 0, blocked in a collective, was stopped and reaped


@pytest.mark.slow
def test_a_crashed_rank_is_one_error_line_from_the_cli(data, tmp_path, monkeypatch):
    """Rank 1 dies as it starts (a sitecustomize on its PYTHONPATH exits for RANK=1): `sparsenet train
    --procs 2` ends with one `Error: ...` line, not a traceback."""
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(
        'import os\nif os.environ.get("RANK") == "1":\n    os._exit(3)\n'
    )
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "site"))
    args = ["train", "--data", str(data), "--out", str(tmp_path / "run"), "--model", "deepcnet"]
    args += ["--model-arg", "l=2", "--model-arg", "k=4", "--batch-size", "8", "--procs", "2", "--epochs", "1"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.exception
    assert result.output.startswith("Error: ") and "rank 1" in result.output and result.output.count("\n") == 1


@pytest.mark.parametrize(
    "device,cores,gpus,batch,expected",
    [
        ("cpu", 4, 0, 100, 4),  # one per core
        ("cpu", 8, 0, 40, 2),  # no more than leave 16 samples each
        ("cpu", 2, 0, 32, 2),
        ("cpu", 2, 0, 31, 1),
        ("cpu", 1, 0, 100, 1),
        ("cuda", 16, 3, 100, 3),  # one per GPU
        ("cuda", 16, 0, 100, 1),
    ],
)
def test_auto_procs_follows_cores_gpus_and_batch_size(monkeypatch, device, cores, gpus, batch, expected):
    monkeypatch.setattr(distributed, "usable_cores", lambda: cores)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    assert distributed.resolve_procs("auto", torch.device(device), batch) == expected
    assert distributed.resolve_procs(3, torch.device(device), batch) == 3


def test_auto_starts_two_processes_where_two_cores_and_the_batch_allow(data, tmp_path, monkeypatch):
    """`--procs auto` on two usable cores with a batch of 32: the run is spawned in 2 ranks, recorded as 2."""
    monkeypatch.setattr(distributed, "usable_cores", lambda: 2)
    started = []
    monkeypatch.setattr(
        distributed, "spawn", lambda target, world, payload, **_: started.append((target, world, payload))
    )
    config = TrainConfig.from_dict(
        dict(CONFIG, data=str(data), out=str(tmp_path / "run"), procs="auto", batch_size=32, device="cpu")
    )
    training.train(config)
    [(target, world, payload)] = started
    assert (target, world) == ("sparsenet.train:run_rank", 2)
    assert json.loads(payload)["config"]["procs"] == 2


@pytest.mark.slow
def test_synced_batchnorm_normalises_with_the_statistics_of_the_global_batch(tmp_path, monkeypatch):
    """Two ranks holding 2 and 3 rows: outputs use the mean and biased variance of all 5 rows; the running
    variance moves towards their unbiased variance (as torch's BatchNorm on one process)."""
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))  # for ddp_rank
    distributed.spawn("ddp_rank:synced", 2, str(tmp_path), log=partial(run_files.rank_log, tmp_path))
    rows = torch.tensor([[0.0, 1.0, 4.0], [2.0, -1.0, 3.0], [5.0, 5.0, -2.0]])
    parts = [rows[:2], 2 * rows]
    union = torch.cat(parts)
    mean, biased, unbiased = union.mean(0), union.var(0, unbiased=False), union.var(0, unbiased=True)
    for r, part in enumerate(parts):
        state = torch.load(tmp_path / f"rank{r}.pt", weights_only=True)
        torch.testing.assert_close(state["out"], (part - mean) / torch.sqrt(biased + 1e-5))
        torch.testing.assert_close(state["running_mean"], 0.5 * mean)
        torch.testing.assert_close(state["running_var"], 0.5 + 0.5 * unbiased)
