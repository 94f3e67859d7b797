"""sparsenet.bench.common: statistics, paired ratios, interleaved timing and the two run sizes."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from sparsenet.bench.common import Settings, Stats, interleaved, ratios, torch_threads


def test_stats_of_values():
    assert Stats.of([3.0, 1.0, 4.0, 1.0, 5.0]) == Stats(3.0, 1.0, 5.0, 5)
    assert Stats.of([2.0, 4.0]) == Stats(3.0, 2.0, 4.0, 2)  # an even count: the mean of the middle two


def test_rate_turns_seconds_into_counts_per_second():
    # 10 samples in 2, 4 or 5 seconds: the fastest run (2 s) is the highest rate
    assert Stats(4.0, 2.0, 5.0, 3).rate(10) == Stats(2.5, 2.0, 5.0, 3)


def test_ratios_pair_repeats():
    # repeat by repeat 6/2, 4/4, 9/3 = 3, 1, 3; the ratio of medians would be 6/3 = 2
    assert ratios([6.0, 4.0, 9.0], [2.0, 4.0, 3.0]) == Stats(3.0, 1.0, 3.0, 3)


def test_interleaved_takes_turns_after_the_warmup():
    calls = []
    seconds = interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeats=3, warmup=2)
    assert calls == ["a", "b"] * 5
    assert {name: len(times) for name, times in seconds.items()} == {"a": 3, "b": 3}
    assert all(t >= 0 for times in seconds.values() for t in times)


def test_torch_threads_sets_and_restores():
    before = torch.get_num_threads()
    wanted = 1 if before != 1 else 2
    with torch_threads(wanted):
        assert torch.get_num_threads() == wanted
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), torch_threads(wanted):
        raise RuntimeError("restored on errors too")
    assert torch.get_num_threads() == before


def test_quick_settings_are_smaller_in_every_size():
    full, quick = Settings.for_mode(False, threads=3), Settings.for_mode(True, threads=3)
    assert not full.quick and quick.quick and full.threads == quick.threads == 3
    assert full == Settings(threads=3)
    for name, value in dataclasses.asdict(full).items():
        if isinstance(value, int) and not isinstance(value, bool) and name not in ("threads", "seed"):
            assert getattr(quick, name) <= value, name
        if isinstance(value, tuple):
            assert set(getattr(quick, name)) <= set(value), name
