"""``binseg evaluate --bag``: the node's pipeline run offline over a bag, in bag time.

Messages go, in the order the recorder received them, through the same conversion
(:meth:`~binseg_ros.core.runtime.SegmentationRuntime.ingest`), synchroniser, fallback, preprocessing, backend and
postprocessing as ``segment_node``; the clock is the bag's receive time, so health,
timeouts and fallbacks happen exactly where they happened on the robot. Sets are segmented
inline (nothing is superseded), so the run is deterministic and as fast as the backend.

Accounting: every image message is either part of an emitted set or counted under a drop
reason (including ``undecodable`` and ``end_of_input``), and every mask is either scored
or counted as ``no_ground_truth`` / ``ground_truth_size_mismatch``.
:attr:`BagEvaluation.accounting_balanced` checks that nothing vanished.

A bag made with degradation windows (``make-bag --degrade``) keeps them in its metadata; the
evaluation scores each window over the masks made while it degraded its sensor, next to the
clean masks (no sensor degraded), whether the set used the degraded image or the quality gate
left it out: the window's score is what the robot delivered during it.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from binseg_ros.backends.factory import create_backend
from binseg_ros.bags.groundtruth import GroundTruth, nearest_stamp
from binseg_ros.bags.io import bag_span, bag_topics, read_messages, require_images
from binseg_ros.bags.make import DEFAULT_TOPICS, DegradeSchedule
from binseg_ros.calibration.model import Rig
from binseg_ros.core.backend import Backend
from binseg_ros.core.drops import DropReason, unaccounted
from binseg_ros.core.frame import Arrival, seconds_to_ns
from binseg_ros.core.messages import ThermalUnits, stamp_ns
from binseg_ros.core.postprocess import overlay
from binseg_ros.core.quality import QualityConfig
from binseg_ros.core.registration import Registration
from binseg_ros.core.runtime import SegmentationRuntime
from binseg_ros.core.segmenter import Segmentation, Segmenter
from binseg_ros.core.sync import SyncConfig
from binseg_ros.engines.manifest import Manifest
from binseg_ros.errors import BagError
from binseg_ros.metrics import FrameScore, score_frame, summarize, to_uint8
from binseg_ros.modalities import Subset, subset_name

STAGES = ("sync_wait", "register", "preprocess", "inference", "postprocess", "total")
THUMB_WIDTH = 200


@dataclass(frozen=True)
class FrameRecord:
    """One published mask: when, from which subset, how good, how slow."""

    stamp: int  # ns, the anchor's header stamp (= the mask's)
    time_s: float  # since the bag start
    subset: Subset
    timings: dict[str, float]  # STAGES → seconds
    score: FrameScore | None  # None: no usable ground truth
    mask: np.ndarray = field(repr=False)  # mono8, as the node would publish it
    prediction: np.ndarray | None = field(default=None, repr=False)  # probability as uint8 (what metrics see)
    thumbnail: np.ndarray | None = field(default=None, repr=False)  # overlay, RGB, THUMB_WIDTH wide
    truth_thumbnail: np.ndarray | None = field(default=None, repr=False)
    windows: tuple[str, ...] = ()  # the degradation windows it was made in (see BagEvaluator.run)


@dataclass
class BagEvaluation:
    bag: Path
    backend: str
    input_size: tuple[int, int]
    duration_s: float
    wall_s: float
    scoring_s: float  # of wall_s: pysodmetrics and report thumbnails (the rest: reading + the pipeline)
    frames_in: dict[str, int]
    frames_in_sets: int
    sets: int
    drops: dict[str, int]
    degraded_frames: dict[str, int]  # "<modality>.<reason>": frames in sets that the quality gate left out
    mask_skips: dict[str, int]
    ground_truth: str
    records: list[FrameRecord]
    degrade: DegradeSchedule  # the bag's degradation windows (none: an empty schedule)

    @property
    def masks(self) -> int:
        return len(self.records)

    @property
    def scored(self) -> list[FrameRecord]:
        return [r for r in self.records if r.score is not None]

    @property
    def accounting_balanced(self) -> bool:
        """Every image used or dropped with a reason; every set masked or dropped with one."""
        vanished = unaccounted(sum(self.frames_in.values()), self.frames_in_sets, self.sets, self.masks, self.drops)
        return vanished == (0, 0) and self.masks == len(self.scored) + sum(self.mask_skips.values())

    def overall(self) -> dict[str, float]:
        """The metrics over every scored mask; {} when none was scored (as the replay's live metrics)."""
        scored = self.scored
        return summarize([r.score for r in scored]) if scored else {}  # type: ignore[misc]

    def per_subset(self) -> dict[str, dict[str, float]]:
        """The robustness table straight from the bag: metrics per active subset."""
        groups: dict[str, list[FrameScore]] = defaultdict(list)
        for record in self.scored:
            groups[subset_name(record.subset)].append(record.score)  # type: ignore[arg-type]
        return {name: _row(scores) for name, scores in groups.items()}

    def per_window(self) -> dict[str, dict[str, float]]:
        """Metrics per degradation window over the masks made in it (a mask in two windows counts
        in both), and over the ``clean`` masks (in none); {} for a bag without windows."""
        if not self.degrade.windows:
            return {}
        groups: dict[str, list[FrameScore]] = {"clean": [], **{str(w): [] for w in self.degrade.windows}}
        for record in self.scored:
            for name in record.windows or ("clean",):
                groups[name].append(record.score)  # type: ignore[arg-type]
        return {name: _row(scores) for name, scores in groups.items()}

    def latency_ms(self) -> dict[str, dict[str, float]]:
        """p50/p95/p99 per stage, in milliseconds."""
        out = {}
        for stage in STAGES:
            values = np.array([r.timings[stage] for r in self.records]) * 1e3
            out[stage] = {
                f"p{q}": float(np.percentile(values, q)) if len(values) else float("nan") for q in (50, 95, 99)
            }
        return out


def _row(scores: list[FrameScore]) -> dict[str, float]:
    """A table row: the metrics of ``scores`` and their count (the count alone when there are none)."""
    return {**(summarize(scores) if scores else {}), "frames": float(len(scores))}


@dataclass
class _BagClock:
    now_ns: int = 0  # bag time: the receive time of the message being processed
    scoring_s: float = 0.0  # wall time spent scoring masks (not the pipeline's)


class BagEvaluator:
    """Runs one bag through a :class:`SegmentationRuntime` driven by the bag's clock."""

    def __init__(
        self,
        backend: Backend,
        input_size: tuple[int, int],
        sync: SyncConfig = SyncConfig(),
        topics: Mapping[str, str] | None = None,
        thermal: ThermalUnits = ThermalUnits(),
        threshold: float = 0.5,
        name: str = "",
        keep_predictions: bool = False,
        rig: Rig | None = None,
        quality: QualityConfig | None = QualityConfig(),
    ) -> None:
        """``rig``: the cameras' calibration when the bag holds unregistered images (each set is
        then registered into the reference camera after sync, as the node does). ``quality``: the
        quality gate's limits, as the node's defaults unless given; None turns the gate off."""
        self.backend = backend
        self.name = name or type(backend).__name__
        self.keep_predictions = keep_predictions
        self.input_size = input_size
        self.sync = sync
        self.topics = dict(topics or DEFAULT_TOPICS)
        self.thermal = thermal
        self.threshold = threshold
        self.registration = Registration(rig, output_size=input_size) if rig is not None else None
        self.quality = quality

    @classmethod
    def for_engines(
        cls,
        manifest: Manifest,
        backend: str,
        form: str,
        sync: SyncConfig,
        topics: Mapping[str, str],
        keep_predictions: bool = False,
        rig: Rig | None = None,
        quality: QualityConfig | None = QualityConfig(),
    ) -> BagEvaluator:
        """An evaluator on an opened engine folder's model, named after backend, form and model version."""
        return cls(
            create_backend(backend, manifest, form),
            manifest.input_size,
            sync,
            topics,
            name=f"{backend} ({form}), {manifest.model} {manifest.version}",
            keep_predictions=keep_predictions,
            rig=rig,
            quality=quality,
        )

    def run(self, bag: str | Path, truth: GroundTruth, progress: bool = True) -> BagEvaluation:
        """The evaluation of ``bag``; with degradation windows, each mask is put in the windows
        that degraded the image its sensor sent nearest the mask's stamp (within the slop)."""
        bag = Path(bag)
        self._check(bag, truth)
        by_topic = {topic: modality for modality, topic in self.topics.items()}
        start, end, count = bag_span(bag, by_topic)
        degrade = DegradeSchedule.from_bag(bag)
        records: list[FrameRecord] = []
        clock = _BagClock()
        mask_skips: Counter[str] = Counter()

        def publish(result: Segmentation) -> None:
            scoring = time.perf_counter()
            records.append(self._record(result, clock.now_ns, start, truth, mask_skips))
            clock.scoring_s += time.perf_counter() - scoring

        runtime = SegmentationRuntime(
            Segmenter(self.backend, self.input_size, self.threshold, self.registration),
            self.sync,
            publish,
            self.thermal,
            threaded=False,
            quality=self.quality,
        )
        frames_in: Counter[str] = Counter()
        sent: dict[str, list[int]] = defaultdict(list)  # modality → stamps of its decoded images
        began = time.perf_counter()
        bar = tqdm(total=count, desc=f"evaluate {bag.name}", unit="msg", disable=not progress)
        for message in read_messages(bag, by_topic):
            bar.update()
            modality = by_topic[message.topic]
            frames_in[modality] += 1
            clock.now_ns = message.log_time
            if message.msg is None:
                runtime.reject(modality, DropReason.UNDECODABLE)
                continue
            runtime.ingest(modality, message.msg, Arrival(message.log_time))
            sent[modality].append(stamp_ns(message.msg.header))
        bar.close()
        runtime.finish()
        status = runtime.status(clock.now_ns)
        return BagEvaluation(
            bag=bag,
            backend=self.name,
            input_size=self.input_size,
            duration_s=(end - start) * 1e-9,
            wall_s=time.perf_counter() - began,
            scoring_s=clock.scoring_s,
            frames_in=dict(frames_in),
            frames_in_sets=status.frames_in_sets,
            sets=status.sets,
            drops=status.drops,
            degraded_frames=status.degraded_frames,
            mask_skips=dict(mask_skips),
            ground_truth=truth.source,
            records=_in_windows(records, degrade, sent, seconds_to_ns(self.sync.slop)),
            degrade=degrade,
        )

    def _check(self, bag: Path, truth: GroundTruth) -> None:
        """Refuse a bag without the image topics or with one that holds no images, or ground truth without a mask."""
        available = bag_topics(bag)
        missing = [t for t in self.topics.values() if t not in available]
        if missing:
            raise BagError(f"{bag} has no topic {', '.join(missing)}; it has {', '.join(sorted(available)) or 'none'}")
        require_images(bag, available, self.topics.values())
        if not len(truth):
            raise BagError(f"no ground truth: {truth.source} holds no usable mask")

    def _record(
        self, result: Segmentation, now_ns: int, start: int, truth: GroundTruth, skips: Counter[str]
    ) -> FrameRecord:
        frameset = result.frameset
        stamp = frameset.anchor.stamp_ns
        timings = {"sync_wait": (now_ns - frameset.first_arrival_ns) * 1e-9, **result.timings}
        timings["total"] = sum(timings[s] for s in STAGES[:-1])
        label = truth.lookup(stamp)
        score = thumb = truth_thumb = None
        if label is None:
            skips[DropReason.NO_GROUND_TRUTH.value] += 1
        elif label.shape != result.probability.shape:
            skips[DropReason.GROUND_TRUTH_SIZE_MISMATCH.value] += 1
        else:
            score = score_frame(result.probability, label)
            background = frameset.background().data
            height = round(label.shape[0] * THUMB_WIDTH / label.shape[1])
            thumb = cv2.resize(overlay(background, result.mask), (THUMB_WIDTH, height), interpolation=cv2.INTER_AREA)
            truth_thumb = cv2.resize(
                label.astype(np.uint8) * 255, (THUMB_WIDTH, height), interpolation=cv2.INTER_NEAREST
            )
        prediction = to_uint8(result.probability) if self.keep_predictions else None
        return FrameRecord(
            stamp, (stamp - start) * 1e-9, frameset.subset, timings, score, result.mask, prediction, thumb, truth_thumb
        )


def _in_windows(
    records: list[FrameRecord], schedule: DegradeSchedule, sent: dict[str, list[int]], tolerance_ns: int
) -> list[FrameRecord]:
    """``records`` with the windows each was made in: those that degraded the image its sensor
    sent nearest the mask's stamp, within ``tolerance_ns`` (a silent sensor sent none). The
    image, not the set: a set the quality gate or the synchroniser left the image out of was
    still made while the sensor was degraded."""
    if not schedule.windows:
        return records
    stamps = {modality: sorted(values) for modality, values in sent.items()}

    def windows(stamp: int) -> tuple[str, ...]:
        nearest = {m: nearest_stamp(values, stamp, tolerance_ns) for m, values in stamps.items()}
        return tuple(str(w) for m, near in nearest.items() if near is not None for w in schedule.covering(m, near))

    return [replace(record, windows=windows(record.stamp)) for record in records]
