"""The layout of a run folder: every file ``sparsenet train`` writes there, what it holds, and who may write it.

::

    config.json     {"config": TrainConfig fields, "data": the shards' description,
                     "data_identity": the splits' manifest run ids and checksums,
                     "versions": {python, torch, spconv, numpy, sparsenet}, "command": the argv
                     that started the run, "resumed_with": the latest --resume argv (if any)}
    metrics.jsonl   one JSON object per finished epoch: epoch, lr, train/test loss and error,
                    test top-5 error, seconds, samples_per_s, procs, profile (seconds per stage)
    curves.png      loss and error per epoch (from metrics.jsonl)
    confusion.png   test-set confusion matrix of the best epoch so far
    checkpoint.pt   the state after the last finished epoch (epoch 0: the initial weights);
                    ``sparsenet train --resume`` continues from it (sparsenet.checkpoint)
    best.pt         the checkpoint of the epoch with the lowest test error
    logs/rank-N.log standard error of training process N with ``--procs`` > 1 (appended per launch);
                    the full traceback of a failed process is there
    logs/rank-N.failure.json  why process N failed (message, traceback), for the process that started it
    .lock           the pid of the process writing the folder (see :class:`RunLock`)
    eval.txt        written by the make targets: ``sparsenet eval`` of checkpoint.pt

Every file is replaced atomically (a temporary file beside it, then a rename), the
checkpoint first, so an interrupted run holds one consistent state. A new run starts only in
a new or empty folder (:func:`check_new`), and only after its data and network were checked,
so a folder holds either nothing of sparsenet's or a run that ``--resume`` can continue.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path

from sparsenet.errors import RunError

CONFIG_JSON = "config.json"
METRICS = "metrics.jsonl"
CURVES = "curves.png"
CONFUSION = "confusion.png"
CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"
LOGS = "logs"
LOCK = ".lock"
EVAL = "eval.txt"


def recorded_command(run_dir: str | os.PathLike) -> list[str] | None:
    """The argv that started the run in ``run_dir`` (config.json's ``command``), or None if none can be read."""
    try:
        command = json.loads((Path(run_dir) / CONFIG_JSON).read_text(encoding="utf-8")).get("command")
    except (OSError, ValueError, AttributeError):
        return None
    return command if isinstance(command, list) and all(isinstance(a, str) for a in command) else None


def rank_log(run_dir: str | os.PathLike, rank: int) -> Path:
    """``run_dir/logs/rank-<rank>.log``."""
    return Path(run_dir) / LOGS / f"rank-{rank}.log"


def check_new(run_dir: str | os.PathLike) -> None:
    """Raise :class:`RunError` unless ``run_dir`` is missing or an empty folder (a new run's place;
    a lock file left by a run killed before its first checkpoint does not count); the message
    names the first entry found and says how to proceed."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        return
    if not run_dir.is_dir():
        raise RunError(run_dir, "is a file, not a run folder; choose another --out")
    entries = sorted(entry.name for entry in run_dir.iterdir() if entry.name != LOCK)
    if not entries:
        return
    if (run_dir / CHECKPOINT).is_file():
        raise RunError(run_dir, f"already holds a run; continue it with --resume {run_dir} or choose another --out")
    raise RunError(
        run_dir, f"is not empty (it holds {entries[0]}); a new run needs a new or empty folder: choose another --out"
    )


def remove_stale_temporaries(run_dir: str | os.PathLike) -> list[Path]:
    """Delete the temporary files (``.NAME.tmp-PID...``) that writers killed while writing left in
    ``run_dir``, those of processes no longer running; returns them. Call it holding the lock."""
    stale = [p for p in Path(run_dir).glob(".*.tmp-*") if not _running(p.name.rsplit(".tmp-", 1)[1].split(".")[0])]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


class RunLock:
    """One writer per run folder: an exclusive ``flock`` on ``run_dir/.lock``, which holds the writer's pid.

    The kernel drops the lock when the last process holding the file descriptor exits, however it
    ends (``kill -9`` included); processes started with the descriptor (``pass_fds``) hold it too.
    ``acquire`` raises :class:`RunError` naming the pid of the process that holds it; if that
    process has ended, its training processes are ending too, and ``acquire`` waits up to
    ``grace`` seconds for them.
    """

    def __init__(self, run_dir: str | os.PathLike, grace: float = 10.0):
        self.path = Path(run_dir) / LOCK
        self.grace = grace
        self.fd: int | None = None

    def acquire(self) -> RunLock:
        deadline = time.monotonic() + self.grace
        while self.fd is None:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
                os.close(fd)
                if not _running(holder) and time.monotonic() < deadline:
                    time.sleep(0.1)
                    continue
                raise RunError(
                    self.path.parent,
                    f"run folder is being written by pid {holder or 'unknown'}; wait for it or stop it",
                ) from None
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # the holder released and unlinked it between our open and flock: try the new file
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            self.fd = fd
        return self

    def release(self) -> None:
        """Remove the lock file and drop the lock (unlinking first: nobody can lock a stale file)."""
        if self.fd is not None:
            self.path.unlink(missing_ok=True)
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _running(pid: str) -> bool:
    """Whether process ``pid`` (text from a lock file) exists; True when that cannot be told."""
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (ValueError, PermissionError):  # no pid written yet, or another user's process
        return True
    return True
