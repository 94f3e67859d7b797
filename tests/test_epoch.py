"""sparsenet.epoch: a diverged run stops with its epoch and step; the first-batch check before a run."""

import json

import pytest
import torch
from synthetic import write_digit_shards

from sparsenet import checkpoint as ckpt_io
from sparsenet import train as training
from sparsenet.config import TrainConfig
from sparsenet.epoch import check_first_batch
from sparsenet.errors import ConfigError, RunError
from sparsenet.pipeline import build_network, dataset
from sparsenet.shards import ShardReader


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return write_digit_shards(tmp_path_factory.mktemp("epoch") / "digits")


def config(data, out, **changes) -> TrainConfig:
    values = dict(model="vgg-plain", data=str(data), out=str(out), epochs=1, batch_size=4, procs=1, seed=1)
    return TrainConfig.from_dict({**values, **changes})


def strict_json(line: str):
    def refuse(token):
        raise ValueError(f"not JSON: {token}")

    return json.loads(line, parse_constant=refuse)


def test_a_diverged_run_stops_naming_epoch_and_step(digits, tmp_path):
    run = tmp_path / "run"
    diverging = config(digits, run, model="deepcnet", model_kwargs={"l": 2, "k": 8}, epochs=3, batch_size=6, lr=1e10)
    with pytest.raises(RunError, match=r"loss became (nan|inf) at epoch \d+, step \d+; lower --lr \(it was 1e\+10\)"):
        training.train(diverging)
    for saved in run.glob("*.pt"):  # the epoch-0 checkpoint; no best.pt of NaN weights
        state = ckpt_io.load(saved)
        assert all(torch.isfinite(v).all() for v in state.model.values()), saved
    for line in (run / "metrics.jsonl").read_text().splitlines():
        strict_json(line)


def test_batch_size_one_with_batchnorm_is_refused_before_the_run_folder(digits, tmp_path):
    with pytest.raises(ConfigError, match=r"^batch size 1 leaves BatchNorm one value per channel; use >= 2$"):
        training.train(config(digits, tmp_path / "run", batch_size=1))
    assert not (tmp_path / "run").exists()


def test_the_first_batch_check_leaves_the_network_as_it_was(digits, tmp_path):
    cfg = config(digits, tmp_path / "run")
    reader = ShardReader(digits / "train")
    torch.manual_seed(0)
    network, field = build_network(cfg, ckpt_io.data_info(reader.meta))
    before = {k: v.clone() for k, v in network.state_dict().items()}
    check_first_batch(cfg, network, dataset(reader, field), procs=1)
    assert all(torch.equal(network.state_dict()[k], v) for k, v in before.items())
    assert any("running_mean" in k for k in before)  # BatchNorm statistics were at stake
