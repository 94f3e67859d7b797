"""sparsenet.checkpoint: the data identity a checkpoint records, and how resume compares it."""

import hashlib
import json

import pytest

from sparsenet import checkpoint as ckpt_io
from sparsenet.errors import CheckpointError


def dataset(root, **run_ids):
    """A dataset folder whose splits hold only a manifest.json (with ``run_ids[split]``, if given)."""
    for split in ("train", "test"):
        (root / split).mkdir(parents=True, exist_ok=True)
        manifest = {"format": "sparsenet.shard", "files": []}
        if split in run_ids:
            manifest["run_id"] = run_ids[split]
        (root / split / "manifest.json").write_text(json.dumps(manifest))
    return root


def test_data_identity_holds_each_splits_run_id_and_manifest_checksum(tmp_path):
    data = dataset(tmp_path, train="r1", test="r1")
    identity = ckpt_io.data_identity(data)
    assert set(identity) == {"train", "test"}
    for split in ("train", "test"):
        expected = hashlib.sha256((data / split / "manifest.json").read_bytes()).hexdigest()
        assert identity[split] == {"run_id": "r1", "manifest_sha256": expected}
    (data / "test" / "manifest.json").unlink()
    assert ckpt_io.data_identity(data)["test"] == {"run_id": None, "manifest_sha256": None}


def test_a_changed_run_id_or_manifest_is_refused_naming_the_split(tmp_path, capsys):
    data = dataset(tmp_path, train="r1", test="r1")
    recorded = ckpt_io.data_identity(data)
    ckpt_io.check_identity(recorded, ckpt_io.data_identity(data), "run/checkpoint.pt", data)
    dataset(tmp_path, train="r1", test="r2")
    with pytest.raises(
        CheckpointError, match=f"run/checkpoint.pt: the data changed.*{data / 'test'}: preprocess run r1 became r2"
    ):
        ckpt_io.check_identity(recorded, ckpt_io.data_identity(data), "run/checkpoint.pt", data)
    dataset(tmp_path, train="r1", test="r1")
    (data / "train" / "manifest.json").write_text((data / "train" / "manifest.json").read_text() + "\n")
    with pytest.raises(CheckpointError, match=f"{data / 'train'}: its manifest.json changed"):
        ckpt_io.check_identity(recorded, ckpt_io.data_identity(data), "run/checkpoint.pt", data)
    assert capsys.readouterr().err == ""


def test_a_checkpoint_without_the_record_gets_a_warning_not_an_error(tmp_path, capsys):
    data = dataset(tmp_path)
    ckpt_io.check_identity(None, ckpt_io.data_identity(data), "old.pt", data)
    assert capsys.readouterr().err.startswith("warning: old.pt records no data identity")
