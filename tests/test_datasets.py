"""DatasetWriter: all splits replace a dataset folder together, foreign files are never lost,
one writer at a time, leftovers of killed writers are cleaned, and mixed run ids are refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from synthetic import write_stroke_files

from sparsenet import datasets
from sparsenet.datasets import DatasetWriter, check_same_run, dataset_run_id, lock_path, recover
from sparsenet.errors import DatasetError
from sparsenet.manifest import dataset_splits
from sparsenet.shards import MANIFEST, ShardMeta, ShardReader, validate_file

META = ShardMeta((8, 8), 2, ("ink",), ("a", "b"), "test", "test", {"k": 1}, "test")


def write(out: Path, splits=("train", "test"), samples: int = 5, *, fail_in: str = "", **kwargs) -> DatasetWriter:
    """Write a small dataset; sample values depend on ``samples`` so runs differ in content."""
    with DatasetWriter(out, META, samples_per_shard=2, **kwargs) as dataset:
        for split in splits:
            writer = dataset.split(split)
            for i in range(samples):
                writer.add(np.array([[i % 8, samples % 8]]), np.ones((1, 1)), i % 2, f"{split}/{i}")
            if split == fail_in:
                raise RuntimeError("conversion failed")
    return dataset


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file below ``root`` (relative path -> (bytes, inode)); links as their target."""
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_symlink():
            out[str(path.relative_to(root))] = (os.readlink(path).encode(), 0)
        elif path.is_file():
            out[str(path.relative_to(root))] = (path.read_bytes(), path.stat().st_ino)
    return out


def assert_complete(out: Path) -> str:
    """``out`` is one whole dataset: every split's manifest lists exactly its shards, which are valid,
    and all splits share a run id (returned)."""
    splits = dataset_splits(out)
    assert splits
    for split in splits:
        manifest = json.loads((split / MANIFEST).read_text())
        listed = {entry["file"] for entry in manifest["files"]}
        assert {p.name for p in split.glob("shard-*.h5")} == listed
        assert sum(validate_file(split / f)[1] for f in listed) == manifest["samples"]
    run_id = dataset_run_id(out)
    assert run_id
    return run_id


def leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.") and p != lock_path(out))


def test_writes_all_splits_with_one_run_id(tmp_path):
    out = tmp_path / "data"
    dataset = write(out)
    assert dataset.samples == {"train": 5, "test": 5}
    assert assert_complete(out) == dataset.run_id and len(dataset.run_id) == 32
    assert len(ShardReader(out / "train")) == 5 and leftovers(out) == []


def test_replaces_the_whole_dataset(tmp_path):
    out = tmp_path / "data"
    old = write(out, ("train", "val", "test"))
    new = write(out, ("train", "test"), samples=3)
    assert assert_complete(out) == new.run_id != old.run_id
    assert sorted(p.name for p in out.iterdir()) == ["test", "train"] and len(ShardReader(out / "test")) == 3
    assert leftovers(out) == []


def test_a_failure_in_a_later_split_leaves_the_old_dataset(tmp_path):
    out = tmp_path / "data"
    old = write(out)
    before = snapshot(out)
    with pytest.raises(RuntimeError):
        write(out, samples=3, fail_in="test")
    assert snapshot(out) == before and dataset_run_id(out) == old.run_id and leftovers(out) == []
    with pytest.raises(RuntimeError):
        write(tmp_path / "fresh", fail_in="test")
    assert not (tmp_path / "fresh").exists() and leftovers(tmp_path / "fresh") == []


@pytest.mark.parametrize("foreign", ["train/thesis.tex", "notes.txt", "figures/plot.png", ".hidden"])
def test_foreign_files_are_refused(tmp_path, foreign):
    out = tmp_path / "data"
    write(out)
    (out / foreign).parent.mkdir(parents=True, exist_ok=True)
    (out / foreign).write_text("mine")
    before = snapshot(out)
    with pytest.raises(DatasetError) as info:
        write(out, samples=3)
    message = str(info.value)
    named = foreign if foreign.startswith("train/") else foreign.split("/")[0]  # a foreign folder is named whole
    assert message.startswith(f"{out / named}: was not written by sparsenet")
    assert "--overwrite" in message and "another --out" in message
    assert snapshot(out) == before and leftovers(out) == []


def test_overwrite_keeps_foreign_files(tmp_path):
    out = tmp_path / "data"
    write(out)
    (out / "train" / "thesis.tex").write_text("chapter 1")
    (out / "figures").mkdir()
    (out / "figures" / "plot.png").write_bytes(b"\x89PNG")
    (out / "link").symlink_to("figures/plot.png")
    kept = {k: v for k, v in snapshot(out).items() if not k.endswith((".h5", MANIFEST))}
    new = write(out, samples=3, overwrite=True)
    assert {k: v for k, v in snapshot(out).items() if k in kept} == kept  # same bytes, same inodes
    assert sorted(new.kept) == ["figures", "link", "train/thesis.tex"]
    assert assert_complete(out) == new.run_id and len(ShardReader(out / "train")) == 3
    assert leftovers(out) == []


def test_overwrite_never_replaces_a_foreign_file_of_a_new_name(tmp_path):
    out = tmp_path / "data"
    (out / "train").mkdir(parents=True)
    (out / "train" / MANIFEST).write_text("my own notes, not JSON")
    before = snapshot(out)
    with pytest.raises(DatasetError, match="train/manifest.json: was not written by sparsenet but has the name"):
        write(out, overwrite=True)
    assert snapshot(out) == before and leftovers(out) == []


def test_out_is_a_file(tmp_path):
    (tmp_path / "data").write_text("x")
    with pytest.raises(DatasetError, match="is a file, not a dataset folder"):
        write(tmp_path / "data", overwrite=True)
    assert (tmp_path / "data").read_text() == "x"


def test_a_second_writer_is_refused_naming_the_first(tmp_path):
    out = tmp_path / "data"
    with DatasetWriter(out, META) as first:
        first.split("train").add(np.array([[0, 0]]), np.ones((1, 1)), 0)
        with pytest.raises(DatasetError, match=f"another sparsenet process \\(pid {os.getpid()}\\) is writing"):
            write(out)
    assert assert_complete(out) == first.run_id
    write(out)  # the lock is released


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_temporary_folders_are_cleaned_but_user_files_kept(tmp_path):
    out = tmp_path / "data"
    write(out)
    (out / "notes.txt").write_text("mine")
    dead, alive = _dead_pid(), os.getppid()
    stale = tmp_path / f".data.new-{dead}-0123abcd"  # a killed writer's half-built dataset
    (stale / f".train.tmp-{dead}-89abcdef").mkdir(parents=True)
    (stale / f".train.tmp-{dead}-89abcdef" / "shard-00000.h5.part").write_bytes(b"half")
    os.link(out / "notes.txt", stale / "notes.txt")
    (stale / "orphan.txt").write_text("not in data/: must stay")
    running = tmp_path / f".data.new-{alive}-0123abcd"  # a live writer's: not touched
    running.mkdir()
    other = tmp_path / ".data.new-something"  # not our naming: not touched
    other.mkdir()
    with pytest.warns(UserWarning, match="holds files that are not in"):
        write(out, overwrite=True)
    assert (out / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in stale.rglob("*")) == ["orphan.txt"]
    assert running.is_dir() and other.is_dir()


def test_fallback_swap_and_recovery(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "_exchange", lambda a, b: False)
    out = tmp_path / "data"
    write(out)
    (out / "notes.txt").write_text("mine")
    new = write(out, samples=3, overwrite=True)
    assert assert_complete(out) == new.run_id and (out / "notes.txt").read_text() == "mine"
    assert leftovers(out) == []
    # killed between the two renames: no data/, the old dataset aside under a dead pid
    aside = tmp_path / f".data.old-{_dead_pid()}-0123abcd"
    os.rename(out, aside)
    recover(out)
    assert assert_complete(out) == new.run_id and not aside.exists()


def _kill_at(out: Path, target: str, call: int, *, fallback: bool = False) -> None:
    """In a forked child, replace ``out`` and SIGKILL the child at the ``call``-th call of ``target``."""
    pid = os.fork()
    if pid == 0:  # the child: never returns to pytest
        try:
            if fallback:
                datasets._exchange = lambda a, b: False
            module, name = (os, "rename") if target == "rename" else (datasets, target)
            original, calls = getattr(module, name), []

            def dying(*args, **kwargs):
                calls.append(1)
                if len(calls) == call:
                    os.kill(os.getpid(), signal.SIGKILL)
                return original(*args, **kwargs)

            setattr(module, name, dying)
            write(out, samples=3, overwrite=True)
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, "the writer was not killed"


@pytest.mark.parametrize(
    "target, call, fallback",
    [
        ("ShardWriter", 2, False),  # the first split written, the second about to start
        ("_link_tree", 2, False),  # half of the foreign files linked into the new folder
        ("_exchange", 1, False),  # just before the swap
        ("_discard", 1, False),  # swapped, the old dataset not yet removed
        ("rename", 1, True),  # fallback: before moving the old dataset aside
        ("rename", 2, True),  # fallback: between the two renames (no data/ for a moment)
        ("_discard", 1, True),
    ],
)
def test_killed_writer_leaves_old_or_new_never_a_mix(tmp_path, target, call, fallback):
    out = tmp_path / "data"
    old = write(out)
    (out / "notes.txt").write_text("mine")
    (out / "train" / "thesis.tex").write_text("chapter 1")
    _kill_at(out, target, call, fallback=fallback)
    recover(out)  # what the next writer does first
    run_id = assert_complete(out)
    samples = len(ShardReader(out / "train"))
    assert (run_id == old.run_id and samples == 5) or (run_id != old.run_id and samples == 3)
    assert (out / "notes.txt").read_text() == "mine" and (out / "train" / "thesis.tex").read_text() == "chapter 1"
    assert leftovers(out) == []


def test_check_same_run(tmp_path):
    write(tmp_path / "a")
    write(tmp_path / "b")
    runs = [tmp_path / "a" / "train", tmp_path / "b" / "test"]
    with pytest.raises(DatasetError, match="b/test: comes from run .* but .*a/train from run .*different conversions"):
        check_same_run(runs)
    for split in ("train", "test"):  # manifests written before run ids: one legacy run
        manifest = tmp_path / "a" / split / MANIFEST
        manifest.write_text(json.dumps({k: v for k, v in json.loads(manifest.read_text()).items() if k != "run_id"}))
    assert dataset_run_id(tmp_path / "a") is None
    with pytest.raises(DatasetError, match="recorded no run id"):
        check_same_run([tmp_path / "b" / "train", tmp_path / "a" / "train"])
    (tmp_path / "a" / "test" / MANIFEST).write_text("{not json")
    with pytest.raises(DatasetError, match="test/manifest.json: is not a valid JSON manifest"):
        dataset_run_id(tmp_path / "a")


def _cli() -> list[str]:
    return [str(Path(sys.executable).with_name("sparsenet")), "preprocess", "assamese"]


def _start_and_wait_for_writer(args: list[str], out: Path) -> tuple[subprocess.Popen, float]:
    """Start ``args``; return it once its temporary dataset folder exists (or it ended), and when that was."""
    run = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while run.poll() is None and not any(out.parent.glob(f".{out.name}.new-{run.pid}-*")):
        time.sleep(0.001)
    return run, time.monotonic()


@pytest.mark.slow
def test_sigkill_of_preprocess_at_random_moments(tmp_path):
    """SIGKILL ``sparsenet preprocess`` at random moments while its DatasetWriter replaces a dataset
    (between creating its temporary folder and exiting): old or new, never a mix; user files intact."""
    raw = write_stroke_files(tmp_path / "raw", writers=45)
    for text in sorted(raw.glob("W*/*.txt")):  # 30 classes instead of 3: a longer window to kill in
        c, w = (int(n) for n in text.name.split(".")[:2])
        for extra in range(c + 3, 31, 3):
            (text.parent / f"{extra}.{w}.txt").write_bytes(text.read_bytes())
    out = tmp_path / "data"
    args = [*_cli(), "--source", str(raw), "--out", str(out), "--train-writers", "1-36", "--test-writers", "37-45"]
    subprocess.run([*args, "--scale", "40"], check=True, capture_output=True)
    (out / "train" / "thesis.tex").write_text("chapter 1")
    run, started = _start_and_wait_for_writer([*args, "--overwrite"], out)
    assert run.wait() == 0
    window = time.monotonic() - started
    rng = np.random.default_rng(0)
    for delay in rng.uniform(0, window, size=6):
        run, _ = _start_and_wait_for_writer([*args, "--overwrite", "--scale", str(rng.choice([40, 64]))], out)
        time.sleep(delay)
        run.send_signal(signal.SIGKILL)
        run.wait()
        recover(out)
        assert_complete(out)
        params = {json.loads((s / MANIFEST).read_text())["params"]["scale"] for s in dataset_splits(out)}
        assert len(params) == 1 and (out / "train" / "thesis.tex").read_text() == "chapter 1"
        assert leftovers(out) == []


def test_cli_refuses_a_second_writer_and_foreign_files(tmp_path):
    raw = write_stroke_files(tmp_path / "raw", writers=4)
    out = tmp_path / "data"
    args = [*_cli(), "--source", str(raw), "--out", str(out), "--train-writers", "1-3", "--test-writers", "4"]
    with DatasetWriter(out, META) as holder:
        holder.split("train").add(np.array([[0, 0]]), np.ones((1, 1)), 0)
        busy = subprocess.run(args, capture_output=True, text=True)
    assert busy.returncode == 1 and f"(pid {os.getpid()}) is writing" in busy.stderr and "Traceback" not in busy.stderr
    (out / "thesis.tex").write_text("mine")
    refused = subprocess.run(args, capture_output=True, text=True)
    assert refused.returncode == 1 and "thesis.tex: was not written by sparsenet" in refused.stderr
    done = subprocess.run([*args, "--overwrite"], capture_output=True, text=True)
    assert done.returncode == 0 and "kept thesis.tex" in done.stdout and (out / "thesis.tex").read_text() == "mine"
    assert_complete(out)


def test_an_empty_split_is_refused_by_its_final_name(tmp_path):
    out = tmp_path / "data"
    empty = f"{out / 'val'}: no samples for this split; nothing was changed"
    with pytest.raises(DatasetError, match=empty), DatasetWriter(out, META) as dataset:
        dataset.split("train").add(np.array([[0, 0]]), np.ones((1, 1)), 0)
        dataset.split("val")
    assert not out.exists() and leftovers(out) == []
