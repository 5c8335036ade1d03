from __future__ import annotations

import pytest

from binseg_ros.errors import ModalityError
from binseg_ros.modalities import all_subsets, parse_subset, subset_name


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("rgb+depth+thermal", ("rgb", "depth", "thermal")),
        ("thermal,rgb", ("rgb", "thermal")),
        (" depth ", ("depth",)),
        (["thermal", "depth"], ("depth", "thermal")),
    ],
)
def test_parse_subset_is_canonical(spec, expected):
    assert parse_subset(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty modality subset"),
        ([], "empty modality subset"),
        ("rgb+lidar", "unknown modality 'lidar'"),
        ("RGB", "unknown modality 'RGB'"),
        ("rgb+rgb", "names a modality twice"),
    ],
)
def test_parse_subset_errors_name_the_problem(spec, message):
    with pytest.raises(ModalityError, match=message):
        parse_subset(spec)


def test_all_subsets_are_the_seven_nonempty_ones():
    subsets = all_subsets()
    assert len(subsets) == len(set(subsets)) == 7
    assert subsets[0] == ("rgb", "depth", "thermal")
    assert all(parse_subset(s) == s for s in subsets)
    assert subset_name(parse_subset(("thermal", "rgb"))) == "rgb+thermal"
    assert subset_name(parse_subset("depth+rgb")) == "rgb+depth"
