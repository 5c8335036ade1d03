"""The ROS-free segmentation runtime: messages → synchroniser → latest-wins worker → segmenter.

The node and the bag evaluator hand it image messages, raw or compressed
(:meth:`SegmentationRuntime.ingest`), and publish what it returns; it owns every counter the
diagnostics report, so nothing is dropped without being counted. It also owns the quality
gate (:mod:`binseg_ros.core.quality`), which remembers the stream of sets the segmenter takes,
so both adapters gate alike, at its default limits unless told otherwise. With
``threaded=False`` sets are segmented inline in the caller's thread, which the bag evaluator
uses for deterministic, as-fast-as-possible runs. :meth:`SegmentationRuntime.reconfigure`
changes the threshold, the synchroniser's timing and the gate's limits while it runs (the
node's live parameters).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from binseg_ros.core.compressed import CompressedMessage, compressed_to_frame, is_compressed
from binseg_ros.core.drops import DropReason
from binseg_ros.core.frame import NS_PER_S, Arrival, Frame, FrameSet
from binseg_ros.core.gaps import RecentMisses
from binseg_ros.core.messages import ConversionError, ImageMessage, ThermalUnits, to_frame
from binseg_ros.core.quality import QualityConfig, QualityGate, Reason
from binseg_ros.core.segmenter import NothingLeft, Register, Segmentation, Segmenter
from binseg_ros.core.stats import LatencyWindow, RateMeter
from binseg_ros.core.sync import Health, Misses, SyncConfig, Synchronizer
from binseg_ros.core.worker import LatestWinsWorker
from binseg_ros.errors import ConfigError
from binseg_ros.modalities import MODALITIES, NO_SUBSET, Subset, canonical

LOG = logging.getLogger(__name__)
RECENT_S = 5.0
"""Seconds over which a sensor's bad stamps are recent: diagnostics warn while there are any,
and stop once its driver stamps well again."""
MISS_WINDOW_S = 2.0
"""Seconds over which a sensor's missed sets are recent: two statuses at the default 1 s period,
so every miss is in one; short, so a sensor that returned from the dead is OK again soon."""


@dataclass(frozen=True)
class RuntimeStatus:
    """A snapshot for diagnostics: health, rates, latency, and every counter."""

    health: dict[str, Health]
    active: Subset  # alive and admitted by the synchroniser
    running: Subset  # active and not left out by the quality gate: what the next mask uses
    degraded: dict[str, str]  # modality → the failure the quality gate left it out for, until readmitted
    last_subset: Subset
    required_missing: Subset
    frames_in: dict[str, int]
    input_rate: dict[str, float]
    output_rate: float
    sets: int
    frames_in_sets: int
    masks: int
    latency_p50: float
    latency_p95: float
    drops: dict[str, int]
    sanitized: dict[str, int]
    degraded_frames: dict[str, int]  # "<modality>.<reason>" → frames the quality gate left out
    published: dict[str, int]
    mismatched: dict[str, tuple[tuple[int, int], tuple[int, int]]]  # modality → (expected, got) size, last seen
    misses: dict[str, Misses]  # modality → sets it had no frame for, of those it was expected in
    recent_misses: dict[str, Misses]  # of those, in the last miss_span seconds
    miss_span: float  # seconds recent_misses cover: MISS_WINDOW_S or a little more (0 at the first status)
    bad_stamps: dict[str, int]  # modality → images dropped as bad_stamp, in all
    recent_bad_stamps: dict[str, int]  # modality → of those, in the last RECENT_S seconds
    clock_jumps: dict[str, int]  # modality → times its stamps went back and it started afresh


class SegmentationRuntime:
    """Feeds frames through sync and inference; calls ``publish`` for every result."""

    def __init__(
        self,
        segmenter: Segmenter,
        sync_config: SyncConfig,
        publish: Callable[[Segmentation], None],
        thermal: ThermalUnits = ThermalUnits(),
        threaded: bool = True,
        quality: QualityConfig | None = QualityConfig(),
    ) -> None:
        """With a segmenter that registers sets (a calibrated rig), each camera is held to its own
        image size (see :class:`~binseg_ros.core.sync.Synchronizer`). ``quality``: the gate's
        limits; None turns the gate off."""
        self.segmenter = segmenter
        self.sync_config = sync_config
        self.thermal = thermal
        self._publish = publish
        resolutions = segmenter.register.resolutions if segmenter.register is not None else None
        self.sync = Synchronizer(sync_config, self._on_set, resolutions)
        # Counters are written from the subscription and the inference threads and read by
        # diagnostics; one lock keeps a snapshot from racing a new key being inserted.
        self._counter_lock = threading.Lock()
        self._drops: Counter[str] = Counter()  # rejected before sync (conversion) or set-level
        self._sanitized: Counter[str] = Counter()  # frames used after fixing (e.g. NaN depth)
        self._published: Counter[str] = Counter()  # optional outputs actually sent, by name
        self._degraded: Counter[str] = Counter()  # frames in sets the quality gate left out
        self.gate = QualityGate(quality, sync_config.required) if quality is not None else None
        self._gated: dict[str, Reason] = {}  # the gate's degraded modalities after the last set
        self._input_rates = {m: RateMeter() for m in MODALITIES}
        self._bad_stamps = {m: RateMeter(RECENT_S) for m in MODALITIES}
        self._reconfigure_lock = threading.Lock()
        self._recent_misses = RecentMisses(MISS_WINDOW_S)
        self._warned_slow: set[str] = set()  # sensors too slow for the modality_timeout, told so
        self._output_rate = RateMeter()
        self.latency = LatencyWindow()
        self.masks = 0
        self.last_subset: Subset = NO_SUBSET
        self._worker = LatestWinsWorker(self._process, self._dropped) if threaded else None

    # -- inputs ------------------------------------------------------------------------
    def ingest(self, modality: str, msg: ImageMessage | CompressedMessage, arrival: Arrival) -> ConversionError | None:
        """An image message (``sensor_msgs/Image`` or ``CompressedImage``) from a subscription or
        a bag: converted and offered, or counted under its reason and returned for the caller to log."""
        try:
            if is_compressed(msg):
                frame, repair = compressed_to_frame(modality, msg, arrival, self.thermal)
            else:
                frame, repair = to_frame(modality, cast(ImageMessage, msg), arrival, self.thermal)
        except ConversionError as exc:
            self.reject(modality, exc.reason)
            # Without its traceback: the traceback holds this frame, whose caller keeps the
            # returned error, a cycle that would keep the message until a full collection.
            return exc.with_traceback(None)
        if repair is not None:
            self._count(self._sanitized, repair.value)
        self.offer(frame)
        return None

    def offer(self, frame: Frame) -> None:
        """A frame already decoded (tests and benches; messages go through :meth:`ingest`)."""
        self._input_rates[frame.modality].tick(frame.arrival.monotonic)
        self.sync.push(frame)

    def reject(self, modality: str, reason: DropReason) -> None:
        """A message that could not become a frame; counted under ``reason`` (and bad stamps per
        sensor too, since diagnostics name the sensor whose driver stamps wrong)."""
        now = time.monotonic()
        self._input_rates[modality].tick(now)
        if reason is DropReason.BAD_STAMP:
            self._bad_stamps[modality].tick(now)
        self._count(self._drops, reason.value)

    def reconfigure(
        self, sync: SyncConfig | None = None, threshold: float | None = None, quality: QualityConfig | None = None
    ) -> None:
        """New settings while running (None: unchanged), checked before any is applied. Each is
        swapped whole, and the synchroniser under its lock, so a push, a poll or the set being
        segmented sees the old settings or the new ones, never a mix. The quality limits change
        nothing where the gate was turned off, and the required modalities cannot change: the gate
        was made for them.

        Raises:
            ConfigError: a threshold outside [0, 1]; other required modalities.
        """
        with self._reconfigure_lock:
            if sync is not None and sync.required != self.sync_config.required:
                raise ConfigError("the required modalities cannot change while running")
            if threshold is not None:
                self.segmenter.threshold = threshold
            if sync is not None:
                if sync.modality_timeout != self.sync_config.modality_timeout:
                    self._warned_slow.clear()  # judge every sensor against the new timeout
                self.sync.reconfigure(sync)
                self.sync_config = sync
            if quality is not None and self.gate is not None:
                self.gate.config = quality

    def use_registration(self, register: Register) -> None:
        """Register every set from now on (a rig calibration completed while running): the
        synchroniser then holds each camera to the size its calibration gives."""
        self.sync.expect_resolutions(register.resolutions)
        self.segmenter.register = register

    def note_published(self, output: str) -> None:
        """An optional output (probability, overlay) that was actually sent."""
        self._count(self._published, output)

    def _count(self, counter: Counter[str], key: str) -> None:
        with self._counter_lock:
            counter[key] += 1

    def poll(self, now_ns: int) -> None:
        """Call periodically with the node clock: lets a dead sensor time out."""
        self.sync.poll(now_ns)

    def finish(self) -> None:
        """End of an offline input: whatever the synchroniser still holds is counted."""
        self.sync.flush()

    # -- outputs -----------------------------------------------------------------------
    def status(self, now_ns: int) -> RuntimeStatus:
        mono = time.monotonic()
        active = self.sync.active(now_ns)
        p50, p95 = self.latency.percentiles(50, 95)
        with self._counter_lock:
            drops, sanitized, published = dict(self._drops), dict(self._sanitized), dict(self._published)
            degraded_frames, gated = dict(self._degraded), {m: r.value for m, r in self._gated.items()}
        running = canonical(m for m in active if m not in gated)
        misses = self.sync.misses()
        self._warn_slow(self.sync.intervals())
        with self._counter_lock:
            recent_misses, miss_span = self._recent_misses.update(mono, misses)
        return RuntimeStatus(
            health=self.sync.health(now_ns),
            active=active,
            running=running,
            degraded=gated,
            last_subset=self.last_subset,
            required_missing=canonical(m for m in self.sync_config.required if m not in running),
            frames_in={m: self._input_rates[m].total for m in MODALITIES},
            input_rate={m: meter.rate(mono) for m, meter in self._input_rates.items()},
            output_rate=self._output_rate.rate(mono),
            sets=self.sync.emitted,
            frames_in_sets=self.sync.frames_emitted,
            masks=self.masks,
            latency_p50=p50,
            latency_p95=p95,
            drops=dict(self.sync.drop_counts() + Counter(drops)),
            sanitized=sanitized,
            degraded_frames=degraded_frames,
            published=published,
            mismatched=dict(self.sync.mismatched),
            misses=misses,
            recent_misses=recent_misses,
            miss_span=miss_span,
            bad_stamps={m: meter.total for m, meter in self._bad_stamps.items()},
            recent_bad_stamps={m: meter.count(mono) for m, meter in self._bad_stamps.items()},
            clock_jumps=self.sync.jumps(),
        )

    def _warn_slow(self, intervals: dict[str, float]) -> None:
        """Warn once about each sensor for which ``modality_timeout`` is not above two of its frame
        periods: one late or lost frame then makes it STALE, and it flaps out of the sets. The
        timeout is not stretched for it: users set it as how long a silent sensor is trusted."""
        timeout = self.sync_config.modality_timeout
        for modality, interval_ns in intervals.items():
            interval = interval_ns / NS_PER_S
            if 2 * interval >= timeout and modality not in self._warned_slow:
                self._warned_slow.add(modality)
                LOG.warning(
                    "%s sends a frame every %.2f s: modality_timeout %g s is not above two of its frame periods, "
                    "so one late or lost frame makes it STALE and leaves it out of the sets until readmitted; "
                    "set modality_timeout above %.2f s",
                    modality,
                    interval,
                    timeout,
                    2 * interval,
                )

    def close(self) -> None:
        if self._worker is not None:
            self._worker.stop()

    # -- internals -----------------------------------------------------------------------
    def _on_set(self, frameset: FrameSet) -> None:
        if self._worker is None:
            self._process(frameset)
        else:
            self._worker.submit(frameset)

    def _dropped(self, _frameset: FrameSet, reason: DropReason) -> None:
        """A set the worker will never segment: superseded, or still waiting when it stopped."""
        self._count(self._drops, reason.value)

    def _note_gate(self, left_out: dict[str, Reason]) -> None:
        """Count the frames the gate left out of a set and keep its view of who is degraded."""
        with self._counter_lock:
            for modality, reason in left_out.items():
                self._degraded[f"{modality}.{reason.value}"] += 1
            if self.gate is not None:
                self._gated = self.gate.degraded()

    def _process(self, frameset: FrameSet) -> None:
        try:
            result = self.segmenter(frameset, self.gate)
            self._note_gate(result.left_out)
            self._publish(result)
        except NothingLeft as nothing:  # every frame degraded (or a required one): no mask, counted
            self._note_gate(nothing.left_out)
            self._count(self._drops, DropReason.DEGRADED.value)
            return
        except Exception:  # a failing engine or publisher must not end the node: count, log, go on
            self._note_gate({})  # the gate may have judged the set before the failure: keep its view current
            self._count(self._drops, DropReason.INFERENCE_ERROR.value)
            LOG.exception("segmentation of the set anchored at %d ns failed", frameset.anchor.stamp_ns)
            return
        done = time.monotonic()
        self.masks += 1
        self.last_subset = result.subset
        self.latency.add(done - frameset.last_received)
        self._output_rate.tick(done)
