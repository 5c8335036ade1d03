"""The sensor quality gate on real held-out MM5 frames: clean frames pass, every degradation of
:mod:`binseg_ros.degrade` is caught with its reason, and a degraded sensor earns its way back."""

from __future__ import annotations

import re
from itertools import pairwise

import numpy as np
import pytest

from binseg_ros.core.frame import registered_set
from binseg_ros.core.quality import QualityConfig, QualityGate, Reason, measure, measuring_view
from binseg_ros.datasets import load_frame
from binseg_ros.degrade import Degradation, all_degradations, apply
from binseg_ros.errors import ConfigError
from binseg_ros.modalities import MODALITIES, parse_subset
from binseg_ros.training.split import SPLITS, load_split

CAUGHT = [
    ("rgb", "dark", Reason.UNDEREXPOSED),
    ("rgb", "overexposed", Reason.OVEREXPOSED),
    ("rgb", "black", Reason.UNDEREXPOSED),
    ("rgb", "frozen", Reason.FROZEN),
    ("rgb", "noise", Reason.NOISY),
    ("rgb", "blur", Reason.BLURRED),
    ("depth", "holes", Reason.HOLES),
    ("depth", "zeros", Reason.BLIND),
    ("depth", "frozen", Reason.FROZEN),
    ("thermal", "flat", Reason.FLAT),
    ("thermal", "frozen", Reason.FROZEN),
]


@pytest.fixture(scope="module")
def held_out(mm5_root) -> list[dict[str, np.ndarray]]:
    """The split's held-out frames (never seen when the limits were fitted), in sensor units."""
    ids = load_split(SPLITS / "mm5.yaml").held_out_ids()
    return [{m: load_frame(mm5_root, i)[m] for m in MODALITIES} for i in ids]


def degraded(frame: dict[str, np.ndarray], previous: dict[str, np.ndarray], modality: str, kind: str, seed: int = 0):
    """``frame`` with ``modality`` degraded by ``kind`` (``frozen`` repeats ``previous``)."""
    image = apply(Degradation(modality, kind), frame[modality], np.random.default_rng(seed), previous[modality])
    return {**frame, modality: image}


def test_every_degradation_kind_is_checked():
    assert {(m, kind) for m, kind, _ in CAUGHT} == {(d.modality, d.kind) for d in all_degradations()}


def test_clean_held_out_frames_pass_every_check(held_out):
    gate = QualityGate()
    for index, frame in enumerate(held_out):
        result = gate(registered_set(frame))
        assert result.left_out == {}, f"held-out frame {index}"
        assert result.frameset is not None and result.frameset.subset == MODALITIES


@pytest.mark.parametrize(("modality", "kind", "reason"), CAUGHT, ids=[f"{m}:{k}" for m, k, _ in CAUGHT])
def test_each_degradation_is_caught_with_its_reason(held_out, modality, kind, reason):
    for index, (previous, frame) in enumerate(pairwise(held_out)):
        gate = QualityGate(QualityConfig(frozen_frames=1))  # frozen on its first repeat, like the others
        assert gate(registered_set(previous)).left_out == {}
        result = gate(registered_set(degraded(frame, previous, modality, kind, seed=index)))
        assert result.left_out == {modality: reason}, f"held-out frame {index + 1}"
        assert result.frameset is not None
        assert result.frameset.subset == tuple(m for m in MODALITIES if m != modality)
        assert result.frameset.anchor is result.frameset.frames[result.frameset.subset[0]]


def test_one_passing_frame_does_not_readmit_a_degraded_sensor(held_out):
    gate = QualityGate(QualityConfig(readmit_frames=3))
    frames = iter(held_out)
    assert gate(registered_set(next(frames))).left_out == {}
    dark = degraded(next(frames), held_out[0], "rgb", "dark")
    assert gate(registered_set(dark)).left_out == {"rgb": Reason.UNDEREXPOSED}
    assert gate(registered_set(next(frames))).left_out == {"rgb": Reason.RECOVERING}
    assert gate.degraded() == {"rgb": Reason.UNDEREXPOSED}
    assert gate(registered_set(degraded(next(frames), held_out[0], "rgb", "dark"))).left_out == {
        "rgb": Reason.UNDEREXPOSED
    }  # failing again starts the count over
    assert gate(registered_set(next(frames))).left_out == {"rgb": Reason.RECOVERING}
    assert gate(registered_set(next(frames))).left_out == {"rgb": Reason.RECOVERING}
    readmitted = gate(registered_set(next(frames)))
    assert readmitted.left_out == {} and gate.degraded() == {}
    assert readmitted.frameset is not None and readmitted.frameset.subset == MODALITIES


def test_a_driver_that_republishes_each_image_is_not_frozen_until_it_sticks(held_out):
    """Thermal content at a third of the rate it is published (each image sent three times) is
    a live sensor; the same image beyond ``frozen_frames`` repeats while RGB and depth change is not."""
    gate = QualityGate(QualityConfig(frozen_frames=3))
    stuck = held_out[0]["thermal"]
    for index, frame in enumerate(held_out[1:10]):
        republished = {**frame, "thermal": held_out[1 + 3 * (index // 3)]["thermal"]}
        assert gate(registered_set(republished)).left_out == {}, index
    results = [gate(registered_set({**frame, "thermal": stuck})).left_out for frame in held_out[10:14]]
    assert results == [{}, {}, {}, {"thermal": Reason.FROZEN}]


def test_a_scene_where_every_image_repeats_is_not_frozen(held_out):
    """A static scene through noiseless sensors (a simulator, a player looping a frame)."""
    gate = QualityGate()
    for _ in range(5):
        assert gate(registered_set(held_out[0])).left_out == {}


def test_nothing_is_kept_when_every_frame_or_a_required_one_fails(held_out):
    previous, frame = held_out[0], held_out[1]
    blind = frame
    for modality, kind in (("rgb", "black"), ("depth", "zeros"), ("thermal", "flat")):
        blind = degraded(blind, previous, modality, kind)
    everything = QualityGate()
    everything(registered_set(previous))
    result = everything(registered_set(blind))
    assert result.frameset is None
    assert result.left_out == {"rgb": Reason.UNDEREXPOSED, "depth": Reason.BLIND, "thermal": Reason.FLAT}
    required = QualityGate(required=parse_subset("rgb"))
    required(registered_set(previous))
    assert required(registered_set(degraded(frame, previous, "rgb", "dark"))).frameset is None


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ({"max_dark_fraction": 1.5}, "quality.max_dark_fraction must be within [0, 1]"),
        ({"min_detail_ratio": 3.0, "max_detail_ratio": 2.0}, "quality.min_detail_ratio must be >= 0 and below"),
        ({"min_thermal_std": -1.0}, "quality.min_thermal_std must be >= 0"),
        ({"readmit_frames": 0}, "quality.readmit_frames must be >= 1"),
    ],
)
def test_limits_that_cannot_work_are_refused(limits, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        QualityConfig(**limits)


def test_new_limits_given_to_a_running_gate_judge_the_next_set(held_out):
    """A live change: the same clean set passes, then fails under a dark limit tightened below
    its own dark fraction, and passes once more under the old limits (after the readmission)."""
    gate = QualityGate(QualityConfig(readmit_frames=1))
    frame = held_out[0]
    assert gate(registered_set(frame)).left_out == {}
    dark = measure("rgb", measuring_view("rgb", frame["rgb"]))["dark_fraction"]
    assert dark > 0, "the held-out frame has no near-black pixel to tighten the limit below"
    strict = QualityConfig(max_dark_fraction=dark / 2, readmit_frames=1, frozen_frames=10)
    gate.config = strict
    assert gate(registered_set(held_out[1] | {"rgb": frame["rgb"]})).left_out == {"rgb": Reason.UNDEREXPOSED}
    gate.config = QualityConfig(readmit_frames=1, frozen_frames=10)
    assert gate(registered_set(held_out[2] | {"rgb": frame["rgb"]})).left_out == {}
