"""``evaluate`` against errors and losses computed here from the network's own outputs: the plain test
pass, and test-time augmentation as the mean of softmax probabilities over the plain pass and R - 1
copies, copy r of sample i shifted by the draw of ``(TTA_SEED, r, i)`` (applied here by hand).
``compare`` against the same outputs of two networks, and McNemar's test against the binomial by hand."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from synthetic import write_digit_shards

from sparsenet.augment import AUGMENTATIONS
from sparsenet.batch import collate
from sparsenet.cli import main
from sparsenet.evaluate import TTA_SEED, compare, evaluate, mcnemar
from sparsenet.pipeline import inputs, load_network
from sparsenet.shards import ShardReader

MODEL = dict(model="deepcnet", model_kwargs={"l": 2, "k": 4}, augment="shift")


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    return write_digit_shards(tmp_path_factory.mktemp("tta"), train=6, test=15)


@pytest.fixture(scope="module")
def checkpoint(digits, tmp_path_factory, untrained_checkpoint) -> Path:
    """An untrained DeepCNet(2, 4) with a confident last layer (probabilities far from uniform)."""
    return untrained_checkpoint(digits, tmp_path_factory.mktemp("run") / "checkpoint.pt", scale=40.0, **MODEL)


def probabilities_by_hand(checkpoint: Path, digits: Path, repeats: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(softmax of every pass [R, N, K], labels [N]): pass 0 plain, pass r > 0 each sample moved by the
    whole-cell shift drawn from ``default_rng((TTA_SEED, r, index))``."""
    network, field, _ = load_network(checkpoint, torch.device("cpu"))
    reader = ShardReader(digits / "test")
    height, width = reader.meta.spatial_shape
    offset = np.array([(field[0] - height) // 2, (field[1] - width) // 2])
    passes = []
    for r in range(repeats):
        samples = []
        for i in range(len(reader)):
            sample = reader[i]
            shift = np.zeros(2)
            if r:
                a, shift = AUGMENTATIONS["shift"].draw(np.random.default_rng((TTA_SEED, r, i)))
                assert (a == np.eye(2)).all()
            coords = sample.coords + offset + shift.astype(np.int32)
            assert (coords >= 0).all() and (coords < field).all()  # the digits never reach the field's edge
            samples.append(replace(sample, coords=coords.astype(np.int32)))
        batch = collate(samples, field)
        with torch.no_grad():
            passes.append(torch.softmax(network(*inputs(network, batch)).double(), dim=1))
    return torch.stack(passes), batch.labels


def errors(p: torch.Tensor, labels: torch.Tensor) -> tuple[float, float, float]:
    """(loss: mean -log p[label], top-1 error, top-2 error) of probabilities [N, K]."""
    picked = p[torch.arange(len(labels)), labels]
    top1 = (p.argmax(1) != labels).double().mean().item()
    top2 = 1 - (p.topk(2, dim=1).indices == labels[:, None]).any(1).double().mean().item()
    return -picked.log().mean().item(), top1, top2


def test_the_plain_pass_matches_the_networks_outputs(checkpoint, digits):
    result = evaluate(checkpoint, digits, plot=False)
    p, labels = probabilities_by_hand(checkpoint, digits, 1)
    loss, top1, _ = errors(p[0], labels)
    assert result["samples"] == len(labels) == 15 and result["repeats"] == 1
    assert result["loss"] == pytest.approx(loss, rel=1e-5)
    assert result["top1_error"] == pytest.approx(top1)
    assert result["top5_error"] == 0.0  # 3 classes: every label is among the 5 most likely
    predicted = p[0].argmax(1)
    for k, name in enumerate(("horizontal", "vertical", "diagonal")):
        members = labels == k
        assert result["per_class_error"][name] == pytest.approx((predicted[members] != k).double().mean().item())


@pytest.mark.parametrize("repeats", [2, 4])
def test_repeats_average_the_probabilities_of_differently_shifted_copies(checkpoint, digits, repeats):
    result = evaluate(checkpoint, digits, plot=False, repeats=repeats)
    p, labels = probabilities_by_hand(checkpoint, digits, repeats)
    for r in range(1, repeats):  # the copies are really distorted, each differently
        assert not torch.allclose(p[r], p[0], atol=1e-3)
        assert all(not torch.allclose(p[r], p[s], atol=1e-3) for s in range(1, r))
    loss, top1, _ = errors(p.mean(0), labels)
    assert result["loss"] == pytest.approx(loss, rel=1e-5)
    assert result["top1_error"] == pytest.approx(top1)
    geometric = torch.softmax(p.log().mean(0), dim=1)  # averaging log-probabilities instead: clearly different
    assert abs(errors(geometric, labels)[0] - loss) > 1e-3
    assert abs(errors(p[:1].mean(0), labels)[0] - loss) > 1e-3  # and so is the plain pass alone


def test_each_copy_of_a_sample_draws_its_own_shift():
    """The draws behind the copies: over 20 samples x 3 copies, many different shifts, and copy r of a
    sample differs from copy s for most samples."""
    shifts = np.array(
        [
            [AUGMENTATIONS["shift"].draw(np.random.default_rng((TTA_SEED, r, i)))[1] for i in range(20)]
            for r in (1, 2, 3)
        ]
    )
    assert len({tuple(s) for s in shifts.reshape(-1, 2)}) > 8
    assert (np.abs(shifts[0] - shifts[1]).sum(1) > 0).mean() > 0.5


def test_an_ensemble_of_one_network_twice_is_that_network(checkpoint, digits):
    alone = evaluate(checkpoint, digits, plot=False)
    twice = evaluate([checkpoint, checkpoint], digits, plot=False)
    assert twice["loss"] == pytest.approx(alone["loss"], rel=1e-6) and twice["top1_error"] == alone["top1_error"]
    assert math.isfinite(twice["loss"])


def test_repeats_below_one_are_refused(checkpoint, digits):
    with pytest.raises(ValueError, match="repeats must be at least 1"):
        evaluate(checkpoint, digits, plot=False, repeats=0)


def test_mcnemar_counts_the_disagreements_and_matches_the_binomial_by_hand():
    # 7 samples only A gets right, 2 only B, 5 both, 3 neither
    a = np.array([1] * 7 + [0] * 2 + [1] * 5 + [0] * 3, bool)
    b = np.array([0] * 7 + [1] * 2 + [1] * 5 + [0] * 3, bool)
    tail = sum(math.comb(9, k) for k in range(3)) / 2**9  # P(X <= 2), X ~ Binomial(9, 1/2)
    assert mcnemar(a, b) == {"only_a": 7, "only_b": 2, "p_value": pytest.approx(2 * tail)}
    assert mcnemar(b, a) == {"only_a": 2, "only_b": 7, "p_value": pytest.approx(2 * tail)}
    assert mcnemar(a, a) == {"only_a": 0, "only_b": 0, "p_value": 1.0}
    with pytest.raises(ValueError, match="scored on"):
        mcnemar(a, b[:-1])


def test_compare_pairs_the_two_networks_outputs_sample_by_sample(checkpoint, digits, tmp_path, untrained_checkpoint):
    other = untrained_checkpoint(digits, tmp_path / "other.pt", scale=40.0, seed=1, **MODEL)
    right = []
    for path in (checkpoint, other):
        p, labels = probabilities_by_hand(path, digits, 1)
        right.append((p[0].argmax(1) == labels).numpy())
    only_a, only_b = int((right[0] & ~right[1]).sum()), int((right[1] & ~right[0]).sum())
    assert only_a + only_b > 0, "the two networks must disagree somewhere for this test to mean anything"
    result = compare(checkpoint, other, digits)
    assert (result["only_a"], result["only_b"], result["samples"]) == (only_a, only_b, 15)
    assert result["top1_error"] == pytest.approx([1 - r.mean() for r in right])
    assert result["p_value"] == pytest.approx(mcnemar(*right)["p_value"])
    cli = CliRunner().invoke(main, ["compare", "--checkpoint", str(checkpoint), "--checkpoint", str(other)])
    assert cli.exit_code == 0 and f"right only by A: {only_a}   right only by B: {only_b}" in cli.output
    cli = CliRunner().invoke(main, ["compare", "--checkpoint", str(checkpoint)])
    assert cli.exit_code == 2 and "exactly twice" in cli.output
