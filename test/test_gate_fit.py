"""``binseg gate fit`` on a few real MM5 training frames: each limit lands in the gap between
clean and degraded frames, the config it prints passes the clean frames and catches every
degradation kind with its modality, and the gate's cost is reported per modality."""

from __future__ import annotations

import io
import re
from contextlib import redirect_stdout

import pytest

from binseg_ros.cli import main
from binseg_ros.core.quality import LIMITS, QualityConfig, Reason
from binseg_ros.degrade import all_degradations
from binseg_ros.modalities import MODALITIES

FRAMES = 8  # a few seconds; the README's fit uses the whole training split
ROW = re.compile(r"^ {4}(\S+:\S+)((?:\s+\S+){5})$")  # case, then min p1 median p99 max
CONFIG = re.compile(r"^QualityConfig\((.*)\)$")
COST = re.compile(r"(\w+) (\d+\.\d+) ms")


@pytest.fixture(scope="module")
def fit_output(mm5_root) -> list[str]:
    """What ``binseg gate fit`` prints on the first training frames, line by line."""
    printed = io.StringIO()
    with redirect_stdout(printed):
        assert main(["gate", "fit", "--data", str(mm5_root), "--limit", str(FRAMES)]) == 0
    return printed.getvalue().splitlines()


def _printed_config(lines: list[str]) -> QualityConfig:
    match = CONFIG.match(lines[-1])
    assert match, f"the last line is not the config: {lines[-1]!r}"
    values = dict(item.split("=") for item in match.group(1).split(", "))
    return QualityConfig(**{name: type(getattr(QualityConfig, name))(value) for name, value in values.items()})


def test_each_limit_sits_between_the_worst_clean_and_the_mildest_degraded_frame(fit_output):
    config = _printed_config(fit_output)
    blocks = {line.split(":")[0]: index for index, line in enumerate(fit_output) if line.split(":")[0] in LIMITS}
    assert set(blocks) == set(LIMITS), "every fitted limit prints its distributions"
    for name, start in blocks.items():
        rows = {}
        for line in fit_output[start + 2 :]:
            match = ROW.match(line)
            if not match:
                break
            rows[match.group(1)] = [float(v) for v in match.group(2).split()]
        clean = next(values for case, values in rows.items() if case.endswith(":clean"))
        degraded = [values for case, values in rows.items() if not case.endswith(":clean")]
        chosen = getattr(config, name)
        if name.startswith("max_"):
            mildest = min((values[0] for values in degraded), default=1.0)  # no kind: the fraction's far end
            assert clean[-1] < chosen < mildest, name
        else:
            assert max(values[-1] for values in degraded) < chosen < clean[0], name


def test_the_fitted_gate_passes_clean_frames_and_catches_every_kind(fit_output):
    start = fit_output.index(next(line for line in fit_output if line.startswith("through a gate")))
    outcomes = dict(line.split(maxsplit=1) for line in fit_output[start + 1 : -2])
    judged = FRAMES - 1  # each case follows a clean frame
    assert outcomes.pop("clean") == f"passed {judged}/{judged}"
    assert set(outcomes) == {str(d) for d in all_degradations()}
    reasons = {r.value for r in Reason} - {Reason.RECOVERING.value}
    for case, outcome in outcomes.items():
        modality, reason, count = outcome.split()  # one verdict for every frame: no other sensor left out
        assert modality == case.split(":")[0] and reason in reasons and count == f"{judged}/{judged}", case


def test_the_cost_of_judging_and_of_making_the_view_is_printed_per_modality(fit_output):
    start = fit_output.index(next(line for line in fit_output if line.startswith("gate cost per frame")))
    parts = [dict(COST.findall(line)) for line in fit_output[start + 1 : start + 5] if COST.search(line)]
    assert len(parts) == 2, "judging the view and making it, timed apart"
    for part in parts:
        assert tuple(part) == MODALITIES and all(float(ms) > 0 for ms in part.values())


def test_fewer_than_two_frames_are_refused(mm5_root, capsys):
    assert main(["gate", "fit", "--data", str(mm5_root), "--limit", "1"]) == 2
    assert "gate fit needs at least 2 frames" in capsys.readouterr().err
