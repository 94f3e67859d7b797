"""sparsenet.checkpoint: the data identity a checkpoint records, and how resume compares it."""

import hashlib
import json

import pytest
import torch
from synthetic import write_digit_shards

from sparsenet import checkpoint as ckpt_io
from sparsenet import train as training
from sparsenet.config import TrainConfig
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


def one_epoch(data, out) -> TrainConfig:
    values = dict(model="deepcnet", model_kwargs={"l": 2, "k": 4}, epochs=1, batch_size=6, procs=1)
    return TrainConfig.from_dict(dict(values, data=str(data), out=str(out)))


def test_resume_refuses_data_that_was_preprocessed_again(tmp_path):
    data = write_digit_shards(tmp_path / "data")
    run = training.train(one_epoch(data, tmp_path / "run"))
    recorded = ckpt_io.load(run / "checkpoint.pt").data_identity
    assert recorded == ckpt_io.data_identity(data) and recorded["train"]["manifest_sha256"]
    assert json.loads((run / "config.json").read_text())["data_identity"] == recorded
    write_digit_shards(data, seed=1)  # the same folder written again: other samples
    with pytest.raises(CheckpointError, match=f"the data changed.*{data / 'train'}: its manifest.json changed"):
        training.resume(run, epochs=2)
    for split in ("train", "test"):  # a preprocess run that records its id
        manifest = data / split / "manifest.json"
        manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "run_id": "new"}))
    with pytest.raises(CheckpointError, match="preprocess run None became new"):
        training.resume(run, epochs=2)
    assert ckpt_io.load(run / "checkpoint.pt").epoch == 1


def test_checkpoints_without_a_data_record_resume_with_a_warning(tmp_path, capsys):
    data = write_digit_shards(tmp_path / "data")
    run = training.train(one_epoch(data, tmp_path / "run"))
    payload = torch.load(run / "checkpoint.pt", weights_only=True)
    del payload["data_identity"]
    torch.save(payload, run / "checkpoint.pt")
    capsys.readouterr()
    training.resume(run, epochs=2)
    assert "records no data identity" in capsys.readouterr().err
    assert ckpt_io.load(run / "checkpoint.pt").data_identity == ckpt_io.data_identity(data)
