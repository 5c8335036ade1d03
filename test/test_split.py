"""The committed MM5 split: by scene group, reproducible, disjoint, and the demo is held out."""

from __future__ import annotations

import itertools

from binseg_ros.datasets import SAMPLE, list_ids
from binseg_ros.training.split import SPLITS, holdout_split, load_split, scene_groups


def test_committed_split_is_the_rule_applied_to_the_data(mm5_root):
    committed = load_split(SPLITS / "mm5.yaml")
    assert committed == holdout_split(scene_groups(mm5_root))
    train, held = set(committed.train_ids()), set(committed.held_out_ids())
    assert not train & held
    assert train | held == set(list_ids(mm5_root))
    assert 0.15 < len(held) / (len(train) + len(held)) < 0.25


def test_no_scene_straddles_the_split_at_a_boundary(mm5_root):
    """Neighbouring ids on both sides of the split must come from different scenes."""
    split = load_split(SPLITS / "mm5.yaml")
    ids = list_ids(mm5_root)
    side = {i: "held" for i in split.held_out_ids()} | {i: "train" for i in split.train_ids()}
    scene = {i: g.key for g in split.train + split.held_out for i in g.ids}
    for a, b in itertools.pairwise(ids):
        if side[a] != side[b]:
            assert scene[a] != scene[b]


def test_demo_sample_comes_from_held_out_scenes():
    held = set(load_split(SPLITS / "mm5.yaml").held_out_ids())
    assert set(list_ids(SAMPLE)) <= held
