"""``binseg bench soak``: one real minute of the fault cycle against segment_node over DDS, and the
judging that turns minutes into goals (memory growth, latency drift, accounting)."""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from rosgraph import ros_environment

from binseg_ros.bench.memory import anonymous_mappings, memory_mib
from binseg_ros.bench.soak import (
    BASELINE_MINUTE,
    CYCLE_S,
    DRIFT_WINDOW,
    SCHEDULE,
    Accounting,
    EpisodeResult,
    Fault,
    MinuteRow,
    Verdict,
    drift,
    episode,
    gap_end,
    growth,
    mapping_growth,
    point_growth,
)
from binseg_ros.bench.soak_judge import EVERY_SENSOR, Observations, Snapshot, judge
from binseg_ros.bench.soak_report import write_report
from binseg_ros.core.gaps import Misses, RecentMisses
from binseg_ros.modalities import MODALITIES


def _row(minute: int, rss: float = 300.0, latency: float = 20.0, swing: float = 0.0) -> MinuteRow:
    """A minute whose per-second RSS swings ``swing`` MiB around ``rss`` and ends on its high side."""
    samples = [rss + (swing if second % 2 else -swing) for second in range(60)]
    return MinuteRow(
        minute,
        samples[-1],
        [latency] * 100,
        masks=100,
        anchors=100,
        counters={"drops.superseded": minute, "masks": 100 * (minute + 1)},  # the node's counters: totals
        rss_samples=samples,
    )


def _accounting(**changes: object) -> Accounting:
    values: dict[str, object] = dict(
        sent=dict.fromkeys(MODALITIES, 100),
        frames_in=dict.fromkeys(MODALITIES, 100),
        frames_in_sets=290,
        sets=100,
        masks_published=95,
        masks_received=95,
        drops={"unmatched": 10, "superseded": 5},
    )
    return Accounting(**{**values, **changes})  # type: ignore[arg-type]


def test_every_fault_is_in_the_cycle_once_with_a_clean_gap_after_it():
    assert sorted(e.fault for e in SCHEDULE) == sorted(Fault)
    ordered = sorted(SCHEDULE, key=lambda e: e.start_s)
    for current, following in zip(ordered, [*ordered[1:], None], strict=True):
        assert current.start_s <= current.end_s < gap_end(current) <= CYCLE_S
        assert following is None or gap_end(current) == following.start_s


def test_memory_growth_compares_window_medians_after_the_baseline_minute():
    length = BASELINE_MINUTE + 2 * DRIFT_WINDOW
    start_up = [_row(m, rss=500.0 if m < BASELINE_MINUTE else 300.0) for m in range(length)]
    assert growth(start_up) == 0.0  # what start-up allocated before the baseline minute ended does not count
    # Buffers filling and draining: 10 MiB swings inside every minute, sampled high at one end
    # and low at the other, yet nothing held for good.
    swinging = [_row(m, swing=5.0 if m < length - 1 else -5.0) for m in range(length)]
    assert growth(swinging) == 0.0
    assert point_growth(swinging) == pytest.approx(295.0 / 305.0 - 1.0)  # what one sample at each end would say
    leaking = [_row(m, rss=300.0 + m, swing=5.0) for m in range(length)]  # 1 MiB a minute
    late, early = np.median([300.0 + m for m in range(length - DRIFT_WINDOW, length)]), 300.0 + BASELINE_MINUTE + 2
    assert growth(leaking) == pytest.approx(late / early - 1.0)
    assert math.isnan(growth(leaking[:-1])) and math.isnan(point_growth(leaking[:BASELINE_MINUTE]))


def test_growth_is_put_on_the_mappings_that_grew():
    rows = [_row(m) for m in range(BASELINE_MINUTE + 3)]
    rows[BASELINE_MINUTE - 1].mappings = {"a [heap]": 100.0, "b [anon]": 6.0, "c [anon]": 8.0}
    rows[-1].mappings = {"a [heap]": 101.0, "b [anon]": 11.5, "c [anon]": 7.0, "d [anon]": 2.0}
    assert mapping_growth(rows) == [("b [anon]", 6.0, 11.5), ("d [anon]", 0.0, 2.0), ("a [heap]", 100.0, 101.0)]
    assert mapping_growth(rows, top=1) == [("b [anon]", 6.0, 11.5)]
    assert mapping_growth(rows[:BASELINE_MINUTE]) == []


def test_this_process_memory_is_read_by_kind_and_by_mapping():
    ballast = np.ones(64 * 2**20 // 8)  # 64 MiB touched: in an anonymous mapping of its own or the heap
    memory, mappings = memory_mib(os.getpid()), anonymous_mappings(os.getpid())
    assert memory["rss"] >= memory["anon"] > 64 and memory["rss"] == pytest.approx(
        memory["anon"] + memory["file"] + memory["shmem"], abs=0.1
    )
    assert max(mappings.values()) >= 64 and sum(mappings.values()) <= memory["anon"] + 1
    assert ballast.sum() > 0
    assert memory_mib(2**22 + 7) == {k: pytest.approx(math.nan, nan_ok=True) for k in memory}
    assert anonymous_mappings(2**22 + 7) == {}


def test_latency_drift_pools_a_window_at_each_end_and_needs_both():
    length = BASELINE_MINUTE + 2 * DRIFT_WINDOW
    assert math.isnan(drift([_row(m) for m in range(length - 1)]))
    steady = [_row(m) for m in range(length)]
    assert drift(steady) == 0.0
    slower = steady[:-DRIFT_WINDOW] + [_row(m, latency=24.0) for m in range(length - DRIFT_WINDOW, length)]
    assert drift(slower) == pytest.approx(0.2)
    silent = steady[:-DRIFT_WINDOW] + [
        MinuteRow(m, 300.0, [], 0, 100, {}) for m in range(length - DRIFT_WINDOW, length)
    ]
    assert drift(silent) == math.inf  # no mask at all in a window is no pass


def test_accounting_finds_a_message_lost_anywhere():
    assert _accounting().balanced
    lost = _accounting(frames_in={**dict.fromkeys(MODALITIES, 100), "thermal": 99})
    assert lost.lost_in_transport == 1 and lost.lost_by_topic() == " (thermal 1)" and not lost.balanced
    assert not _accounting(frames_in_sets=289).balanced  # a frame in no set and under no reason
    assert not _accounting(masks_published=96, masks_received=96).balanced  # a set both masked and dropped
    assert not _accounting(masks_received=94).balanced  # a mask the player never got


def test_recent_misses_cover_the_window_not_the_whole_run():
    recent = RecentMisses(window=2.0)
    for second in range(5):
        counts, span = recent.update(float(second), {"thermal": Misses(missed=10 * second, expected=30 * second)})
    assert counts["thermal"] == Misses(20, 60) and span == 2.0
    counts, _ = recent.update(6.0, {"thermal": Misses(missed=40, expected=210)})  # no miss since second 4
    assert counts["thermal"] == Misses(0, 90)


def _snapshot(at: float, running: str = EVERY_SENSOR, **counters: int) -> Snapshot:
    values = {"running_subset": running, **{k.replace("__", "."): str(v) for k, v in counters.items()}}
    return Snapshot(at, {"segmentation": values})


def _masks(start: float, end: float, rate: float = 30.0) -> list[float]:
    return [start + i / rate for i in range(int((end - start) * rate))]


@pytest.mark.parametrize(("dropped", "survived"), [(4, True), (3, False)])
def test_bad_stamps_are_survived_when_each_is_counted_and_the_node_goes_on(dropped, survived):
    bad = episode(Fault.BAD_STAMPS)
    seen = Observations(
        snapshots=[
            _snapshot(bad.start_s - 0.5, drops__bad_stamp=10),
            _snapshot(bad.start_s + 1.0, drops__bad_stamp=10 + dropped),
            _snapshot(gap_end(bad) - 0.5, drops__bad_stamp=10 + dropped),
        ],
        mask_times=_masks(bad.start_s, gap_end(bad)),
    )
    result = judge(bad, 0, 0.0, seen, running=True, rate=30.0, answers={})
    assert result.survived is survived
    assert result.checks["bad_stamp +4"] is survived and result.checks["masks for half the anchors after it"]


def test_a_dead_sensor_is_survived_only_with_a_fallback_and_every_sensor_back():
    dead = episode(Fault.DEAD)
    masks = _masks(dead.start_s, gap_end(dead))
    fallback = _snapshot(dead.start_s + 1.0, running="rgb+depth")
    back = _snapshot(gap_end(dead) - 0.5)
    assert judge(dead, 0, 0.0, Observations([fallback, back], masks), True, 30.0, {}).survived
    never_back = judge(dead, 0, 0.0, Observations([fallback], masks), True, 30.0, {})
    assert not never_back.checks["back on every sensor"] and not never_back.survived
    nothing_ran = _snapshot(dead.start_s + 1.0, running="")  # no usable modality is no fallback
    no_fallback = judge(dead, 0, 0.0, Observations([nothing_ran, back], masks), True, 30.0, {})
    assert not no_fallback.checks["fell back to rgb+depth"] and not no_fallback.survived


def test_evidence_from_before_a_fault_ended_does_not_count_for_after_it():
    jump = episode(Fault.CLOCK_JUMP)
    early = _snapshot(jump.end_s + 0.2)  # made before the jump reached the node
    stalled = judge(jump, 0, 0.0, Observations([early], _masks(jump.start_s, jump.end_s + 0.5)), True, 30.0, {})
    assert not stalled.checks["back on every sensor"]
    assert not stalled.checks["masks for half the anchors after it"]


def test_the_report_has_goals_faults_minutes_and_a_plot(tmp_path):
    rows = [_row(m) for m in range(BASELINE_MINUTE + 1)]
    rows[BASELINE_MINUTE - 1].mappings, rows[-1].mappings = {"7f00 [anon]": 6.0}, {"7f00 [anon]": 11.5}
    results = [EpisodeResult(m, e.fault, {"node running": True}) for m in range(2) for e in SCHEDULE]
    results[0].checks["bad_stamp +4"] = False
    survived = sum(r.survived for r in results)
    verdict = Verdict(growth(rows), point_growth(rows), drift(rows), len(results), survived, _accounting(), 0)
    assert not verdict.met
    report = write_report(tmp_path, "test", rows, results, verdict).read_text()
    assert f"| every injected fault survived | {len(results) - 1} of {len(results)} | **no** |" in report
    assert "| bad_stamps | 2 | 1 | bad_stamp +4 |" in report
    assert "| `7f00 [anon]` | 6.0 | 11.5 |" in report
    with (tmp_path / "soak_minutes.csv").open() as f:
        header, *minutes = list(csv.reader(f))
    assert len(set(header)) == len(header)  # the node's counters beside the player's own figures
    table = [dict(zip(header, minute, strict=True)) for minute in minutes]
    assert [row["drops.superseded"] for row in table] == [str(m) for m in range(len(rows))]
    assert {row["masks_received"] for row in table} == {"100"} and table[-1]["masks"] == str(100 * len(rows))
    assert (tmp_path / "soak.png").stat().st_size > 0


def test_a_minute_of_every_fault_against_the_node(fast_engine, tmp_path):
    """The real thing, one cycle: the node survives each fault, its counters say what happened,
    and every message the player sent is in a set, a mask or a counted drop."""
    out = tmp_path / "soak"
    command = [sys.executable, "-m", "binseg_ros.cli", "bench", "soak", "--minutes", "1", "--engine-dir"]
    run = subprocess.run(
        [*command, str(fast_engine.root), "--out", str(out)],
        env={**os.environ, **ros_environment()},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    with (out / "soak_episodes.csv").open() as f:
        episodes = list(csv.DictReader(f))
    assert sorted(e["fault"] for e in episodes) == sorted(f.value for f in Fault)
    assert all(e["survived"] == "True" for e in episodes), episodes
    report = (out / "soak.md").read_text()
    assert "0 lost in transport, 0 frames and 0 sets unaccounted" in report
    assert "clean exit on SIGINT | exit 0 | yes" in report
    assert (out / "soak.png").is_file() and "threshold = 0.6" in (out / "node.log").read_text()
    with (out / "soak_minutes.csv").open() as f:
        (minute,) = list(csv.DictReader(f))
    parts = [float(minute[f"rss_{part}_mib"]) for part in ("anon", "file", "shmem")]
    assert all(part > 0 for part in parts) and sum(parts) == pytest.approx(float(minute["rss_mib"]), abs=0.1)
