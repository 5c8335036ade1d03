"""``binseg make-bag``: a registered dataset folder → a rosbag2 that looks like a robot's.

Each dataset frame is "in view" for ``hold_s``. Every camera runs its own clock: frame
``k`` of a sensor is captured at ``k / rate + offset`` plus Gaussian jitter, shows the
dataset frame in view at its nominal capture time, and is received (the bag's log time)
``latency`` later. Dropout windows silence one sensor for a while; random frame drops lose
single messages. Images use the encodings camera drivers publish (rgb8, depth 16UC1 mm,
thermal mono16 counts); with ``compressed`` they go out as image_transport would send them
(``sensor_msgs/CompressedImage``): RGB as JPEG on ``<topic>/compressed``, depth as
compressedDepth PNG on ``<topic>/compressedDepth``, thermal as 16-bit PNG on ``<topic>/compressed``.

Degradation windows (``--degrade rgb:dark:1:2``) make a camera publish what a failing sensor
does (:mod:`binseg_ros.degrade`): each image of that camera stamped inside the window is
degraded in sensor units, after rendering into a rig (the camera's own pixels fail), before it
becomes a message. The windows are kept in the bag's metadata (:class:`DegradeSchedule`), so
``binseg evaluate --bag`` scores each one without the flags being repeated.

Ground truth goes on a mono8 mask topic (255 = foreground), one message per distinct image
stamp with that image's label, so whichever modality anchors a set (rgb, or depth or
thermal after a fallback) its mask finds a label with exactly its stamp.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from binseg_ros.bags.io import BagWriter, bag_annotations, compressed_message, image_message
from binseg_ros.bags.rig_render import render_into_rig
from binseg_ros.calibration.model import Rig
from binseg_ros.core.compressed import transport_topic
from binseg_ros.datasets import CAMERA_ENCODING, FolderLayout, LabelMap, camera_frames, load_frame, resize_frame
from binseg_ros.degrade import Degradation, apply
from binseg_ros.errors import BagError, ConfigError, InputError
from binseg_ros.modalities import MODALITIES, image_topic

DEFAULT_TOPICS: dict[str, str] = {m: f"/{image_topic(m)}" for m in MODALITIES}  # the node's topics, root namespace
DEFAULT_GT_TOPIC = "/ground_truth/mask"
START_NS = 1_700_000_000_000_000_000  # a fixed epoch, so a bag is reproducible byte for byte
COMPRESSED_TRANSPORTS = {"rgb": "compressed", "depth": "compressedDepth", "thermal": "compressed"}
DEGRADE_KEY = "binseg.degrade"  # the bag metadata's custom_data entry that holds a DegradeSchedule


@dataclass(frozen=True)
class SensorClock:
    """One camera's timing: rate, capture phase, stamp jitter and transport latency."""

    rate_hz: float = 15.0
    offset_ms: float = 0.0
    jitter_ms: float = 1.0
    latency_ms: float = 5.0

    def __post_init__(self) -> None:
        if self.rate_hz <= 0 or self.jitter_ms < 0 or self.latency_ms < 0:
            raise InputError(f"sensor clock needs rate > 0, jitter >= 0 and latency >= 0, got {self}")


DEFAULT_CLOCKS = {  # a hardware-synchronised rig: same rate, small phase and latency spreads
    "rgb": SensorClock(15.0, 0.0, 1.0, 4.0),
    "depth": SensorClock(15.0, 4.0, 2.0, 7.0),
    "thermal": SensorClock(15.0, 9.0, 3.0, 11.0),
}


def clocks_at(
    rates: Mapping[str, str | float], clocks: Mapping[str, SensorClock] = DEFAULT_CLOCKS
) -> dict[str, SensorClock]:
    """``clocks`` with the rate of each modality named in ``rates`` (Hz) replaced.

    Raises:
        ConfigError: an unknown modality or a rate that is not a number.
    """
    chosen = dict(clocks)
    for modality, rate in rates.items():
        if modality not in chosen:
            raise ConfigError(f"--rates: unknown modality {modality!r}")
        try:
            chosen[modality] = replace(chosen[modality], rate_hz=float(rate))
        except ValueError as exc:
            raise ConfigError(f"--rates: {modality} rate must be a number in Hz, got {rate!r}") from exc
    return chosen


@dataclass(frozen=True)
class Dropout:
    """``modality`` publishes nothing from ``start_s`` to ``end_s`` (seconds from the bag start)."""

    modality: str
    start_s: float
    end_s: float

    @classmethod
    def parse(cls, text: str) -> Dropout:
        """``thermal:2.0:4.5``."""
        try:
            modality, start, end = text.split(":")
            dropout = cls(modality, float(start), float(end))
        except ValueError as exc:
            raise InputError(f"dropout {text!r}: expected MODALITY:START_S:END_S, e.g. thermal:2:4.5") from exc
        if modality not in MODALITIES or not 0 <= dropout.start_s < dropout.end_s:
            raise InputError(f"dropout {text!r}: need a modality in {MODALITIES} and 0 <= start < end")
        return dropout

    def covers(self, modality: str, t: float) -> bool:
        return modality == self.modality and self.start_s <= t < self.end_s


@dataclass(frozen=True)
class DegradeWindow:
    """``degradation`` on every image of its modality stamped from ``start_s`` to ``end_s``
    (seconds from the bag start, as for dropouts)."""

    degradation: Degradation
    start_s: float
    end_s: float

    def __post_init__(self) -> None:
        if not 0 <= self.start_s < self.end_s:
            raise InputError(f"need 0 <= START < END, got START {self.start_s:g} and END {self.end_s:g}")

    @classmethod
    def parse(cls, text: str) -> DegradeWindow:
        """``rgb:dark:1:2.5``; the error names the spec and what is wrong with it."""
        fields = text.split(":")
        try:
            if len(fields) != 4:
                raise InputError("expected MODALITY:KIND:START_S:END_S, e.g. rgb:dark:1:2.5")
            modality, kind, start, end = fields
            try:
                seconds = float(start), float(end)
            except ValueError:
                raise InputError(f"START and END must be seconds, got {start!r} and {end!r}") from None
            return cls(Degradation(modality, kind), *seconds)
        except InputError as exc:
            raise InputError(f"--degrade {text!r}: {exc}") from None

    def covers(self, modality: str, t: float) -> bool:
        return modality == self.degradation.modality and self.start_s <= t < self.end_s

    def __str__(self) -> str:
        return f"{self.degradation}:{self.start_s:g}:{self.end_s:g}"


@dataclass(frozen=True)
class DegradeSchedule:
    """A bag's degradation windows on its stamp axis: what make-bag applies, and what evaluation
    groups masks by. ``origin_ns`` is the stamp the windows' seconds count from."""

    windows: tuple[DegradeWindow, ...] = ()
    origin_ns: int = START_NS

    def __post_init__(self) -> None:
        names = [str(w) for w in self.windows]  # a window's row in the evaluation: one each
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise InputError(f"degradation window {', '.join(twice)} is given twice")

    def covering(self, modality: str, stamp_ns: int) -> list[DegradeWindow]:
        """The windows an image of ``modality`` stamped ``stamp_ns`` lies in."""
        t = (stamp_ns - self.origin_ns) * 1e-9
        return [w for w in self.windows if w.covers(modality, t)]

    def annotation(self) -> str:
        """The schedule as the bag metadata keeps it (JSON; seconds as exact floats)."""
        windows = [{"degradation": str(w.degradation), "start_s": w.start_s, "end_s": w.end_s} for w in self.windows]
        return json.dumps({"origin_ns": self.origin_ns, "windows": windows})

    @classmethod
    def from_bag(cls, bag: str | Path) -> DegradeSchedule:
        """The schedule make-bag kept in ``bag``; an empty one for a bag without windows.

        Raises:
            BagError: the metadata entry is there but not a schedule.
        """
        text = bag_annotations(bag).get(DEGRADE_KEY)
        if text is None:
            return cls()
        try:
            data = json.loads(text)
            windows = tuple(
                DegradeWindow(Degradation(*w["degradation"].split(":", 1)), float(w["start_s"]), float(w["end_s"]))
                for w in data["windows"]
            )
            return cls(windows, int(data["origin_ns"]))
        except (ValueError, KeyError, TypeError) as exc:  # InputError is a ValueError
            raise BagError(f"{bag}: metadata entry {DEGRADE_KEY} is not a degradation schedule ({exc})") from exc


class _Degrader:
    """Applies a schedule to camera images in sensor units. ``frozen`` repeats the first image its
    camera publishes in the window, as a driver that hangs and republishes its last frame."""

    def __init__(self, schedule: DegradeSchedule, seed: int) -> None:
        self.schedule = schedule
        self.rng = np.random.default_rng([seed, 1])  # its own stream: stamps and drops do not change with windows
        self.first: dict[DegradeWindow, np.ndarray] = {}  # window → its first image, what ``frozen`` repeats
        self.degraded: Counter[str] = Counter()

    def __call__(self, modality: str, stamp_ns: int, image: np.ndarray) -> np.ndarray:
        for window in self.schedule.covering(modality, stamp_ns):
            image = apply(window.degradation, image, self.rng, self.first.setdefault(window, image))
            self.degraded[str(window)] += 1
        return image


@dataclass(frozen=True)
class MakeBagConfig:
    hold_s: float = 1 / 15
    clocks: dict[str, SensorClock] = field(default_factory=lambda: dict(DEFAULT_CLOCKS))
    dropouts: tuple[Dropout, ...] = ()
    degrade: DegradeSchedule = DegradeSchedule()
    drop_probability: float = 0.0
    size: tuple[int, int] | None = None  # HEIGHT, WIDTH to resize to; None keeps the dataset's
    topics: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_TOPICS))
    gt_topic: str = DEFAULT_GT_TOPIC
    storage: str = "mcap"
    seed: int = 0
    compressed: bool = False  # image_transport's compressed topics instead of raw images
    rig: Rig | None = None  # render the registered dataset into these cameras (labels stay in the reference)

    def __post_init__(self) -> None:
        if self.hold_s <= 0 or not 0 <= self.drop_probability < 1:
            raise InputError(
                f"need hold_s > 0 and 0 <= drop_probability < 1, got {self.hold_s}, {self.drop_probability}"
            )
        if self.rig is not None and self.size is not None and self.size != self.rig.reference_info.resolution:
            raise ConfigError(
                f"--size {self.size[0]}x{self.size[1]} differs from the rig's reference camera "
                f"({self.rig.reference_info.height}x{self.rig.reference_info.width}); leave --size out with --rig"
            )

    def dataset_frame(self, root: Path, frame_id: str, layout: FolderLayout) -> dict[str, np.ndarray]:
        """One dataset frame as the cameras see it: resized, or rendered into the rig's cameras."""
        frame = load_frame(root, frame_id, layout)
        if self.size is not None:
            frame = resize_frame(frame, self.size)
        if self.rig is not None:
            frame = {**render_into_rig(frame, self.rig), "label": frame["label"]}
        return frame

    def image_topics(self) -> dict[str, str]:
        """Modality → the topic its images go to: ``topics``, or their compressed transport topics."""
        if not self.compressed:
            return dict(self.topics)
        return {m: transport_topic(topic, COMPRESSED_TRANSPORTS[m]) for m, topic in self.topics.items()}

    def camera_message(self, modality: str, array: np.ndarray, stamp: int) -> Any:
        """One camera image as its driver (and, with ``compressed``, image_transport) publishes it."""
        encoding = CAMERA_ENCODING[modality]
        if self.compressed:
            return compressed_message(array, encoding, stamp, COMPRESSED_TRANSPORTS[modality])
        return image_message(array, encoding, stamp)


@dataclass(frozen=True)
class BagSummary:
    path: Path
    duration_s: float
    frames: int  # dataset frames shown
    written: dict[str, int]  # topic → messages
    silenced: dict[str, int]  # modality → messages suppressed by dropout windows
    dropped: dict[str, int]  # modality → messages lost to random drops
    degraded: dict[str, int]  # degradation window → images degraded in it (0: the window missed the bag)


def _schedule(config: MakeBagConfig, duration_s: float, rng: np.random.Generator) -> list[tuple[int, str, int, int]]:
    """(log time ns, modality, stamp ns, dataset frame index) for every capture, unsorted."""
    events = []
    for modality in MODALITIES:
        clock = config.clocks[modality]
        stamps_seen = -1
        count = int(np.ceil(duration_s * clock.rate_hz))
        for k in range(count):
            nominal = k / clock.rate_hz + clock.offset_ms * 1e-3
            if nominal >= duration_s:
                break
            jitter = float(np.clip(rng.normal(0.0, clock.jitter_ms), -3 * clock.jitter_ms, 3 * clock.jitter_ms))
            stamp = START_NS + round((nominal + jitter * 1e-3) * 1e9)
            stamp = max(stamp, stamps_seen + 1)  # a driver never stamps backwards
            stamps_seen = stamp
            log_time = stamp + round(clock.latency_ms * 1e6)
            # The epsilon keeps k / rate == k * hold from flooring to k - 1 in floating point.
            events.append((log_time, modality, stamp, int(nominal / config.hold_s + 1e-9)))
    return events


def make_bag(
    root: str | Path,
    ids: Sequence[str],
    out: str | Path,
    config: MakeBagConfig = MakeBagConfig(),
    layout: FolderLayout = FolderLayout(),
    labels: LabelMap = LabelMap(),
    progress: bool = True,
) -> BagSummary:
    """Write ``ids`` of the dataset at ``root`` as a bag at ``out``."""
    if not ids:
        raise BagError("make-bag needs at least one dataset frame")
    rng = np.random.default_rng(config.seed)
    duration = len(ids) * config.hold_s
    events = sorted(_schedule(config, duration, rng))
    frames: dict[int, dict[str, np.ndarray]] = {}
    written: Counter[str] = Counter()
    silenced: Counter[str] = Counter()
    dropped: Counter[str] = Counter()
    labelled: set[int] = set()
    topics = config.image_topics()
    degrade = _Degrader(config.degrade, config.seed)
    with BagWriter(out, config.storage) as bag:
        if config.degrade.windows:
            bag.annotate(DEGRADE_KEY, config.degrade.annotation())
        for log_time, modality, stamp, index in tqdm(events, desc="make-bag", unit="msg", disable=not progress):
            t = (stamp - START_NS) * 1e-9
            if any(d.covers(modality, t) for d in config.dropouts):
                silenced[modality] += 1
                continue
            if config.drop_probability and rng.random() < config.drop_probability:
                dropped[modality] += 1
                continue
            if index not in frames:  # log order is capture order give or take a latency: keep a few
                frames = {i: f for i, f in frames.items() if i >= index - 2}
                frames[index] = config.dataset_frame(Path(root), ids[index], layout)
            frame = frames[index]
            image = degrade(modality, stamp, frame[modality])
            array = camera_frames({**frame, modality: image})[modality]
            bag.write(topics[modality], log_time, config.camera_message(modality, array, stamp))
            written[topics[modality]] += 1
            if stamp not in labelled:
                truth = (labels.binary(frame["label"]) > 0).astype(np.uint8) * 255
                bag.write(config.gt_topic, log_time, image_message(truth, "mono8", stamp))
                written[config.gt_topic] += 1
                labelled.add(stamp)
    degraded = {str(w): degrade.degraded[str(w)] for w in config.degrade.windows}
    return BagSummary(Path(out), duration, len(ids), dict(written), dict(silenced), dict(dropped), degraded)
