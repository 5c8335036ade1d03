"""Sensor degradations on real MM5 frames: each kind does to the image what its name says."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from binseg_ros.degrade import KINDS, Degradation, all_degradations, apply
from binseg_ros.errors import InputError
from binseg_ros.training.data import Augment, SegmentationDataset
from binseg_ros.training.split import SPLITS, load_split


@pytest.fixture(scope="module")
def frame(real_frames):
    return real_frames[0]


def degraded(frame, modality: str, kind: str, stale=None) -> np.ndarray:
    return apply(Degradation(modality, kind), frame[modality], np.random.default_rng(0), stale)


def test_every_kind_keeps_the_image_shape_and_dtype(real_frames):
    first, other = real_frames[0], real_frames[1]
    for degradation in all_degradations():
        image = first[degradation.modality]
        out = apply(degradation, image, np.random.default_rng(0), other[degradation.modality])
        assert out.shape == image.shape and out.dtype == image.dtype, degradation


def test_rgb_exposure_faults(frame):
    luminance = frame["rgb"].mean()
    assert degraded(frame, "rgb", "dark").mean() < 0.1 * luminance
    saturated = (degraded(frame, "rgb", "overexposed") == 255).mean()
    assert saturated > 0.5 > (frame["rgb"] == 255).mean()
    assert not degraded(frame, "rgb", "black").any()


def test_rgb_noise_and_blur_change_texture_not_exposure(frame):
    rgb = frame["rgb"].astype(np.float32)
    noisy = degraded(frame, "rgb", "noise").astype(np.float32)
    assert 30 < (noisy - rgb).std() < 70  # clipping at 0 and 255 eats some of it
    blurred = degraded(frame, "rgb", "blur")
    sharpness = cv2.Laplacian(cv2.cvtColor(frame["rgb"], cv2.COLOR_RGB2GRAY), cv2.CV_32F).var()
    assert cv2.Laplacian(cv2.cvtColor(blurred, cv2.COLOR_RGB2GRAY), cv2.CV_32F).var() < 0.1 * sharpness
    assert abs(blurred.mean() - rgb.mean()) < 2


def test_depth_faults(frame):
    valid = frame["depth"] > 0
    holes = degraded(frame, "depth", "holes") > 0
    assert not (holes & ~valid).any()  # holes only remove depth
    assert 0.45 < 1 - holes.sum() / valid.sum() < 0.75  # about 60 % of the valid image gone
    assert not degraded(frame, "depth", "zeros").any()


def test_thermal_flat_field_keeps_the_level(frame):
    flat = degraded(frame, "thermal", "flat")
    assert flat.std() == 0 and abs(float(flat.mean()) - float(frame["thermal"].mean())) < 1


def test_frozen_repeats_the_stale_image_and_needs_one(real_frames):
    first, other = real_frames[0], real_frames[1]
    for modality in KINDS:
        np.testing.assert_array_equal(degraded(first, modality, "frozen", other[modality]), other[modality])
        with pytest.raises(InputError, match="stale image"):
            degraded(first, modality, "frozen")


def test_unknown_kinds_are_refused_with_the_choices():
    with pytest.raises(InputError, match="depth has no degradation 'dark'; expected one of holes, zeros, frozen"):
        Degradation("depth", "dark")
    with pytest.raises(InputError, match="unknown modality 'lidar'"):
        Degradation("lidar", "zeros")


def test_training_degrades_each_modality_independently(mm5_root: Path):
    ids = load_split(SPLITS / "mm5.yaml").train_ids()[:6]
    clean = SegmentationDataset(mm5_root, ids, (96, 128), Augment(degrade=0.0))
    always = SegmentationDataset(mm5_root, ids, (96, 128), Augment(degrade=1.0))
    sometimes = SegmentationDataset(mm5_root, ids, (96, 128), Augment(degrade=0.5))
    changed = {m: 0 for m in ("rgb", "depth", "thermal")}
    for index in range(len(ids)):
        reference, every, some = clean[index], always[index], sometimes[index]
        for modality in changed:
            assert not reference[modality].equal(every[modality]), (index, modality)
            changed[modality] += not reference[modality].equal(some[modality])
        assert reference["target"].equal(every["target"])  # the label is the scene's
    assert all(0 < count < len(ids) for count in changed.values()), changed
