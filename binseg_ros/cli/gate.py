"""``binseg gate fit``: the quality gate's limits, fitted on clean and degraded dataset frames.

Every limit of :class:`~binseg_ros.core.quality.QualityConfig` bounds one metric. The metric
is measured as the gate measures it, on the training split's frames as cameras publish them,
clean and degraded by each :mod:`binseg_ros.degrade` kind the limit is meant to catch
(:data:`FITTED_ON`); the limit goes midway in the gap between the worst clean frame and the
mildest degraded one. A limit no kind exercises (thermal saturation) takes the far end of its
metric's range (a fraction's 1) as its degraded side. Overlapping ranges are an error: that
metric cannot tell the two apart. Then every kind goes through a gate with the fitted limits
(``frozen`` as a repeat of the previous frame while the other sensors move on) and the share
caught, with its reasons, is printed beside the share of clean frames that pass, and the
gate's cost per modality, in two parts: judging the measuring view (metrics and repeat check:
all the gate adds where the engine's input size is the measuring size, since the segmenter
hands it preprocessing's resize) and making that view (the gate's own resize at any other
input size). The printed values are what the defaults in ``core/quality.py`` are.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from binseg_ros.errors import InputError

if TYPE_CHECKING:
    from binseg_ros.cli.args import Verbs
    from binseg_ros.core.quality import QualityConfig

FITTED_ON: dict[str, tuple[str, ...]] = {
    "max_dark_fraction": ("dark", "black"),
    "max_clipped_fraction": ("overexposed",),
    "max_detail_ratio": ("noise",),
    "min_detail_ratio": ("blur",),
    "min_valid_fraction": ("holes",),
    "min_thermal_std": ("flat",),
    "max_saturated_fraction": (),
}
"""The :mod:`binseg_ros.degrade` kinds each limit is fitted against."""

CLEAN = "clean"
Images = dict[str, np.ndarray]
Samples = dict[str, list[dict[str, float]]]  # "modality:case" → the metrics of each frame
Cost = dict[str, dict[str, float]]  # part of the gate's work ("judge", "view") → modality → median ms


def register(verbs: Verbs) -> None:
    """Add ``gate fit``."""
    from binseg_ros.training.split import SPLITS

    gate = verbs.add_parser("gate", help="the sensor quality gate: fit its limits on a dataset")
    actions = gate.add_subparsers(dest="action", required=True, metavar="ACTION")
    fit = actions.add_parser("fit", help="measure clean and degraded frames, print the distributions and the limits")
    fit.add_argument("--data", type=Path, required=True, help="dataset root (MM5 layout)")
    fit.add_argument("--split", type=Path, default=SPLITS / "mm5.yaml", help="split file; its training ids are used")
    fit.add_argument("--limit", type=int, default=0, help="use only the first N training ids (smoke runs)")
    fit.add_argument("--seed", type=int, default=0, help="seed of the random degradations (noise, holes)")
    fit.set_defaults(func=cmd_fit)


def cmd_fit(args: argparse.Namespace) -> int:
    """Measure, fit, check and print; the last line is the config to use as the defaults."""
    from binseg_ros.training.split import load_split

    ids = load_split(args.split).train_ids()
    ids = ids[: args.limit] if args.limit > 0 else ids
    if len(ids) < 2:
        raise InputError(f"gate fit needs at least 2 frames (frozen repeats the previous one), got {len(ids)}")
    samples, cost = _measure_all(args.data, ids, args.seed)
    config = _fit(samples)
    _print_cost(cost, len(ids) - 1)
    print("\nthrough a gate with these limits (each case after a clean frame; frozen at its first repeat):")
    for case, line in _verify(args.data, ids, args.seed, config):
        print(f"  {case:<20} {line}")
    print(f"\n{config}")
    return 0


def _camera_sets(root: Path, ids: Sequence[str], seed: int) -> Iterator[tuple[Images, dict[str, Images]]]:
    """Per frame after the first: the previous frame and each case (clean and every kind) of this
    one, as cameras publish them (uint8 RGB, uint16 depth millimetres, uint16 thermal counts)."""
    from binseg_ros.datasets import camera_frames, load_frame
    from binseg_ros.degrade import all_degradations, apply

    rng = np.random.default_rng(seed)
    previous: Images | None = None
    for frame_id in ids:
        frame = {m: v for m, v in load_frame(root, frame_id).items() if m != "label"}
        if previous is not None:
            cases = {CLEAN: camera_frames(frame)}
            for degradation in all_degradations():
                image = apply(degradation, frame[degradation.modality], rng, previous[degradation.modality])
                cases[str(degradation)] = camera_frames({**frame, degradation.modality: image})
            yield camera_frames(previous), cases
        previous = frame


def _measure_all(root: Path, ids: Sequence[str], seed: int) -> tuple[Samples, Cost]:
    """Metrics per ``modality:case`` (``rgb:clean``, ``rgb:dark``, ...) and the gate's cost on
    the clean frames: judging the view (metrics + repeat check) and making it, timed apart."""
    from binseg_ros.core.quality import measure, measuring_view, same_view
    from binseg_ros.modalities import MODALITIES

    samples: Samples = {}
    times: dict[str, dict[str, list[float]]] = {part: {m: [] for m in MODALITIES} for part in ("judge", "view")}
    for previous, cases in _camera_sets(root, ids, seed):
        for modality in MODALITIES:
            last = measuring_view(modality, previous[modality])
            start = time.perf_counter()
            view = measuring_view(modality, cases[CLEAN][modality])
            viewed = time.perf_counter()
            metrics = measure(modality, view)
            same_view(view, last)
            judged = time.perf_counter()
            times["view"][modality].append(viewed - start)
            times["judge"][modality].append(judged - viewed)
            samples.setdefault(f"{modality}:{CLEAN}", []).append(metrics)
        for case, images in cases.items():
            modality = case.split(":")[0]
            if case != CLEAN:
                samples.setdefault(case, []).append(measure(modality, measuring_view(modality, images[modality])))
    cost = {part: {m: float(np.median(t)) * 1e3 for m, t in per.items()} for part, per in times.items()}
    return samples, cost


def _print_cost(cost: Cost, frames: int) -> None:
    """The gate's cost per modality, judging and viewing apart (see the module doc)."""
    from binseg_ros.core.quality import MEASURE_SIZE

    size = "×".join(map(str, MEASURE_SIZE))
    print(f"\ngate cost per frame (median of {frames} frames at their camera size):")
    for part, what in (
        ("judge", f"judging the {size} view (metrics + repeat check; all it adds at a {size} engine input)"),
        ("view", "making the view (preprocessing's resize there; the gate's own at other input sizes)"),
    ):
        print(f"  {what}:\n    " + ", ".join(f"{m} {ms:.3f} ms" for m, ms in cost[part].items()))


@dataclass(frozen=True)
class _Limit:
    """Where one limit's metric lies clean and degraded, and the value chosen between them."""

    name: str
    modality: str
    metric: str
    clean: np.ndarray
    degraded: dict[str, np.ndarray]

    @property
    def fails_above(self) -> bool:
        return self.name.startswith("max_")

    def chosen(self) -> float:
        """Midway between the worst clean value and the mildest degraded one, 3 significant digits.

        Raises:
            InputError: the two overlap, so the metric cannot separate them.
        """
        everything = np.concatenate(list(self.degraded.values())) if self.degraded else None
        if self.fails_above:
            worst, mildest = float(self.clean.max()), 1.0 if everything is None else float(everything.min())
        else:
            worst, mildest = float(self.clean.min()), 0.0 if everything is None else float(everything.max())
        if (mildest <= worst) if self.fails_above else (mildest >= worst):
            raise InputError(
                f"{self.modality} {self.metric} cannot separate clean frames (worst {worst:.4g}) from "
                f"{', '.join(self.degraded)} (mildest {mildest:.4g}): {self.name} has no gap to sit in"
            )
        return float(f"{(worst + mildest) / 2:.3g}")


def _limits(samples: Samples) -> list[_Limit]:
    """Every limit with its metric's values per case, the modality and metric taken from the gate's checks."""
    from binseg_ros.core.quality import CHECKS, LIMITS

    limits = []
    for name in LIMITS:
        modality, metric = next((m, c.metric) for m, checks in CHECKS.items() for c in checks if c.limit == name)
        cases = [f"{modality}:{CLEAN}", *(f"{modality}:{kind}" for kind in FITTED_ON[name])]
        values = {case: np.array([sample[metric] for sample in samples[case]]) for case in cases}
        clean = values.pop(cases[0])
        limits.append(_Limit(name, modality, metric, clean, values))
    return limits


def _row(case: str, values: np.ndarray) -> str:
    quantiles = np.percentile(values, [0, 1, 50, 99, 100])
    return f"    {case:<18}" + "".join(f"{q:>10.4g}" for q in quantiles)


def _fit(samples: Samples) -> QualityConfig:
    """Print each limit's distributions and choice; the config of the chosen limits."""
    from binseg_ros.core.quality import QualityConfig

    chosen: dict[str, Any] = {}  # limit → value: every float field of the config
    for limit in _limits(samples):
        print(f"{limit.name}: {limit.modality} {limit.metric}, fails {'above' if limit.fails_above else 'below'}")
        print(f"    {'case':<18}" + "".join(f"{h:>10}" for h in ("min", "p1", "median", "p99", "max")))
        for case, values in {f"{limit.modality}:{CLEAN}": limit.clean, **limit.degraded}.items():
            print(_row(case, values))
        chosen[limit.name] = limit.chosen()
        print(f"    → {chosen[limit.name]:g}" + ("" if limit.degraded else " (no degrade kind: the range's far end)"))
    return QualityConfig(**chosen)


def _verify(root: Path, ids: Sequence[str], seed: int, config: QualityConfig) -> Iterator[tuple[str, str]]:
    """(case, what a fresh gate with ``config`` made of it over every frame): passed or caught, and why.

    A case is one frame after a clean one, so ``frozen`` cases are judged at their first repeat
    (``frozen_frames=1``); the node waits for ``frozen_frames`` repeats in a row.
    """
    from binseg_ros.core.frame import Arrival, Frame, FrameSet
    from binseg_ros.core.quality import QualityGate
    from binseg_ros.modalities import MODALITIES

    def frameset(images: Images) -> FrameSet:
        frames = {m: Frame(m, 0, Arrival(0), images[m]) for m in MODALITIES}
        return FrameSet(frames["rgb"], frames)

    outcomes: dict[str, Counter[str]] = {}
    for previous, cases in _camera_sets(root, ids, seed):
        for case, images in cases.items():
            gate = QualityGate(replace(config, frozen_frames=1) if case.endswith(":frozen") else config)
            gate(frameset(previous))
            left_out = gate(frameset(images)).left_out
            judged = ", ".join(f"{m} {r.value}" for m, r in left_out.items()) or "passed"
            outcomes.setdefault(case, Counter())[judged] += 1
    for case, counts in outcomes.items():
        total = sum(counts.values())
        yield case, "; ".join(f"{judged} {n}/{total}" for judged, n in counts.most_common())
