"""sparsenet.runs: where a new run may start, one writer per run folder, and the command a run records."""

import os
import signal
import subprocess
import sys
import time

import pytest

from sparsenet import runs
from sparsenet.errors import RunError


def test_a_new_run_needs_a_missing_or_empty_folder(tmp_path):
    runs.check_new(tmp_path / "missing")
    runs.check_new(tmp_path)
    (tmp_path / runs.LOCK).write_text("12345\n")  # left by a run killed before its first checkpoint
    runs.check_new(tmp_path)


@pytest.mark.parametrize("name", ["config.json", "metrics.jsonl", "curves.png", "best.pt", "thesis.tex", ".hidden"])
def test_any_file_in_the_folder_is_named_and_never_taken_over(tmp_path, name):
    (tmp_path / name).write_text("mine")
    (tmp_path / "zz-later.txt").write_text("mine too")
    with pytest.raises(
        RunError, match=f"it holds {name}\\); a new run needs a new or empty folder: choose another --out"
    ):
        runs.check_new(tmp_path)


def test_a_folder_holding_a_checkpoint_is_a_run_to_resume(tmp_path):
    (tmp_path / runs.CHECKPOINT).write_bytes(b"")
    with pytest.raises(RunError, match=f"already holds a run; continue it with --resume {tmp_path}"):
        runs.check_new(tmp_path)
    (tmp_path / "file").write_text("")
    with pytest.raises(RunError, match="is a file"):
        runs.check_new(tmp_path / "file")


def test_one_writer_at_a_time(tmp_path):
    with runs.RunLock(tmp_path):
        assert (tmp_path / runs.LOCK).read_text() == f"{os.getpid()}\n"
        with pytest.raises(RunError, match=f"being written by pid {os.getpid()}"):
            runs.RunLock(tmp_path).acquire()
    assert not (tmp_path / runs.LOCK).exists()
    with runs.RunLock(tmp_path):  # released: free again
        pass


def hold_lock(folder, seconds: float) -> subprocess.Popen:
    """A process that locks ``folder`` and ends after ``seconds``; returns once it holds the lock."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from sparsenet.runs import RunLock; RunLock(sys.argv[1]).acquire(); "
            "print('locked', flush=True); time.sleep(float(sys.argv[2]))",
            str(folder),
            str(seconds),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline() == "locked\n"
    return holder


def test_the_lock_dies_with_its_holder(tmp_path):
    holder = hold_lock(tmp_path, 60)
    try:
        with pytest.raises(RunError, match=f"being written by pid {holder.pid}"):
            runs.RunLock(tmp_path).acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with runs.RunLock(tmp_path):  # the stale file stays; its lock went with the process
        assert (tmp_path / runs.LOCK).read_text() == f"{os.getpid()}\n"


def test_a_lock_outliving_its_writer_is_waited_for(tmp_path):
    """The writer (pid in the file) is gone but processes it started still hold the lock: they are ending."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    holder = hold_lock(tmp_path, 1.0)
    (tmp_path / runs.LOCK).write_text(f"{gone.pid}\n")
    try:
        with pytest.raises(RunError, match=f"being written by pid {gone.pid}"):
            runs.RunLock(tmp_path, grace=0.3).acquire()
        start = time.monotonic()
        with runs.RunLock(tmp_path, grace=10):
            assert time.monotonic() - start < 5
    finally:
        holder.kill()
        holder.wait()


def test_rank_logs_live_in_the_run_folder(tmp_path):
    assert runs.rank_log(tmp_path, 1) == tmp_path / "logs" / "rank-1.log"


def test_temporary_files_of_killed_writers_are_removed(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    stale = [tmp_path / f".checkpoint.pt.tmp-{gone.pid}", tmp_path / f".curves.png.tmp-{gone.pid}.png"]
    live = tmp_path / f".metrics.jsonl.tmp-{os.getpid()}"
    for path in [*stale, live, tmp_path / "checkpoint.pt"]:
        path.write_text("")
    assert sorted(runs.remove_stale_temporaries(tmp_path)) == sorted(stale)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, "checkpoint.pt"])


@pytest.mark.parametrize(
    "text, expected",
    [
        ('{"command": ["sparsenet", "train", "--seed", "1"]}', ["sparsenet", "train", "--seed", "1"]),
        ('{"config": {}}', None),
        ('{"command": "sparsenet train"}', None),  # not an argv
        ('["command"]', None),
        ("{not json", None),
    ],
)
def test_the_recorded_command_is_the_argv_in_config_json_or_none(tmp_path, text, expected):
    assert runs.recorded_command(tmp_path) is None  # no config.json
    (tmp_path / runs.CONFIG_JSON).write_text(text)
    assert runs.recorded_command(tmp_path) == expected
