"""The load tool's counting, pure: sequence checks, latency percentiles, the timeline."""

from __future__ import annotations

import pytest

from client_sdk.load._tally import LatencyHistogram, SequenceTally, Timeline


def test_a_tally_tells_lost_duplicated_and_out_of_order() -> None:
    tally = SequenceTally()
    for seq in (0, 1, 3, 2, 3, 5):
        tally.add(seq)
    assert tally.duplicated == 1  # the second 3
    assert tally.out_of_order == 1  # 2 after 3
    assert tally.lost(published=6) == 1  # 4 never came
    assert tally.lost(published=4) == 0  # 5 is beyond what was published: not counted


def test_percentiles_are_within_one_bucket_and_never_above_the_max() -> None:
    histogram = LatencyHistogram()
    for ms in range(1, 101):
        histogram.add(float(ms))
    p50 = histogram.percentile(0.5)
    p99 = histogram.percentile(0.99)
    assert p50 is not None
    assert p99 is not None
    assert p50 == pytest.approx(50, rel=0.06)
    assert p99 == pytest.approx(99, rel=0.06)
    assert histogram.percentile(1.0) == 100.0
    assert LatencyHistogram().percentile(0.5) is None


def test_histograms_and_timelines_merge_across_the_wire() -> None:
    a, b = LatencyHistogram(), LatencyHistogram()
    a.add(1.0)
    b.add(3.0)
    b.add(0.0)  # a clock a little behind: counted in the lowest bucket
    merged = LatencyHistogram.from_wire(a.to_wire())
    merged.merge(LatencyHistogram.from_wire(b.to_wire()))
    assert merged.count == 3
    assert merged.max_ms == 3.0
    first, second = Timeline(), Timeline()
    first.add(10, 2.0)
    second.add(10, 4.0)
    second.add(11, 1.0)
    timeline = Timeline.from_wire(first.to_wire())
    timeline.merge(Timeline.from_wire(second.to_wire()))
    assert timeline.seconds == {10: [2, 6.0, 4.0], 11: [1, 1.0, 1.0]}
