"""Top-k hits, the Tally's errors, loss, per-class errors and confusion matrix against hand-made logits.

Every expected number below is worked out by hand from the class orders written in ``ORDERS``
(most likely class first), not computed by the code under test.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from sparsenet.metrics import Tally, topk_hits

K = 12  # classes

# Per sample: (true label, classes from most to least likely).
ORDERS = [
    (3, [3, 0, 1, 2, 4, 5, 6, 7, 8, 9, 10, 11]),  # rank 0: top-1 and top-5 hit
    (5, [0, 1, 5, 2, 3, 4, 6, 7, 8, 9, 10, 11]),  # rank 2: top-5 hit, predicted 0
    (7, [1, 2, 3, 4, 7, 0, 5, 6, 8, 9, 10, 11]),  # rank 4: top-5 hit (the last one), predicted 1
    (9, [2, 3, 4, 5, 6, 9, 0, 1, 7, 8, 10, 11]),  # rank 5: top-5 miss, predicted 2
    (11, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]),  # rank 11 (least likely): miss, predicted 0
    (0, [0, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1]),  # rank 0: hit
    (3, [11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0]),  # rank 8: miss, predicted 11
    (0, [5, 0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11]),  # rank 1: top-5 hit, predicted 5
]
TOP1_HITS = [True, False, False, False, False, True, False, False]
TOP5_HITS = [True, True, True, False, False, True, False, True]
PREDICTED = [3, 0, 1, 2, 0, 0, 11, 5]


def logits_and_labels() -> tuple[torch.Tensor, torch.Tensor]:
    """logits [8, 12] with the orders of ``ORDERS`` (unevenly spaced, some negative), labels [8]."""
    logits = torch.empty(len(ORDERS), K)
    values = torch.tensor([7.5, 3.0, 2.9, 1.0, 0.5, -0.2, -1.0, -1.5, -4.0, -4.1, -9.0, -20.0])
    for row, (_, order) in enumerate(ORDERS):
        logits[row, order] = values
    return logits, torch.tensor([label for label, _ in ORDERS])


def test_topk_hits_on_twelve_classes():
    logits, labels = logits_and_labels()
    assert topk_hits(logits, labels, 1).tolist() == TOP1_HITS
    assert topk_hits(logits, labels, 5).tolist() == TOP5_HITS
    assert topk_hits(logits, labels, 12).all()
    assert topk_hits(logits, labels, 2).tolist() == [True, False, False, False, False, True, False, True]


def test_topk_with_k_beyond_the_classes_counts_every_sample():
    logits = torch.tensor([[0.1, 2.0, -1.0], [3.0, 0.0, 1.0]])
    assert topk_hits(logits, torch.tensor([2, 1]), 5).tolist() == [True, True]


def test_tally_errors_confusion_and_per_class_error():
    logits, labels = logits_and_labels()
    tally = Tally(K)
    tally.add(logits[:5], labels[:5], loss_sum=6.0)
    tally.add(logits[5:], labels[5:], loss_sum=2.0)
    assert tally.count == 8
    assert tally.top1_error == pytest.approx(6 / 8)
    assert tally.top5_error == pytest.approx(3 / 8)
    assert tally.top5_hits == 5
    assert tally.loss == pytest.approx(1.0)  # the summed loss over the samples counted
    expected = np.zeros((K, K), dtype=np.int64)  # rows: true class, columns: predicted class
    for (label, _), predicted in zip(ORDERS, PREDICTED):
        expected[label, predicted] += 1
    assert expected[5, 0] == 1 and expected[0, 5] == 1 and expected[3, 11] == 1  # orientation
    np.testing.assert_array_equal(tally.confusion, expected)
    assert tally.confusion.dtype == np.int64
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # classes without samples are NaN without a warning
        per_class = tally.per_class_error()
    # class 0: samples 5 (right) and 7 (wrong); class 3: samples 0 (right) and 6 (wrong);
    # classes 5, 7, 9, 11: one wrong sample each; the others have no sample
    want = {0: 0.5, 3: 0.5, 5: 1.0, 7: 1.0, 9: 1.0, 11: 1.0}
    for k in range(K):
        if k in want:
            assert per_class[k] == pytest.approx(want[k]), k
        else:
            assert math.isnan(per_class[k]), k


def test_a_perfect_and_an_empty_tally():
    logits, labels = logits_and_labels()
    perfect = Tally(K)
    perfect.add(logits, logits.argmax(1))
    assert perfect.top1_error == 0 and perfect.top5_error == 0 and perfect.loss == 0.0  # no loss given: none added
    assert (perfect.per_class_error()[np.unique(logits.argmax(1).numpy())] == 0).all()
    empty = Tally(K)
    assert empty.count == 0 and empty.top1_error == 1.0 and empty.loss == 0.0


def test_tally_survives_the_all_reduce_vector():
    logits, labels = logits_and_labels()
    tally = Tally(K)
    tally.add(logits, labels, loss_sum=123456789.125)  # needs float64 to survive
    vector = tally.to_vector()
    assert vector.dtype == torch.float64 and vector.shape == (2 + K * K,)
    twice = Tally.from_vector(K, vector + vector)  # what two ranks with the same counts add up to
    assert twice.loss_sum == 246913578.25 and twice.top5_hits == 10 and twice.count == 16
    np.testing.assert_array_equal(twice.confusion, 2 * tally.confusion)
    assert twice.top1_error == pytest.approx(tally.top1_error) and twice.top5_error == pytest.approx(3 / 8)
