"""``binseg bench soak``: ``segment_node`` for many minutes at a camera rate with three sensors,
the same cycle of faults every minute (:data:`binseg_ros.bench.soak.SCHEDULE`), and the node's
memory, latency and every counter sampled at each minute's end.

The player publishes messages built once (only the header changes per tick), so its own cost
stays small and steady beside the node's. Latency is the player's: mask received minus RGB
published, DDS both ways included. Each fault is judged from the node's ``/diagnostics`` (the
counters just before it and at the end of the clean gap after it), the masks that came back and
the answers of its parameter service; the accounting at the end, once the node has gone quiet,
follows every image the player sent into a set or a counted drop, and every set into a mask or a
counted drop. Judging and reporting are :mod:`binseg_ros.bench.soak`'s.
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections import Counter, defaultdict, deque
from pathlib import Path

import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.srv import SetParameters
from rclpy.parameter import Parameter
from rclpy.task import Future
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from tqdm import tqdm

from binseg_ros.bench.memory import anonymous_mappings, memory_mib
from binseg_ros.bench.soak import (
    CLOCK_JUMP_S,
    CYCLE_S,
    FLAP_PERIOD_S,
    MALFORMED,
    SCHEDULE,
    SOAK_THRESHOLD,
    Accounting,
    EpisodeResult,
    Fault,
    MinuteRow,
    Verdict,
    drift,
    episode,
    gap_end,
    growth,
    point_growth,
)
from binseg_ros.bench.soak_judge import Observations, Snapshot, judge
from binseg_ros.bench.soak_report import write_report
from binseg_ros.core.frame import NS_PER_S
from binseg_ros.core.postprocess import DEFAULT_THRESHOLD
from binseg_ros.datasets import CAMERA_ENCODING, SAMPLE, camera_frames, list_ids, load_frame
from binseg_ros.engines.manifest import Manifest
from binseg_ros.modalities import MODALITIES
from binseg_ros.ros.conversions import to_image
from binseg_ros.ros.malformed import malformed_image
from binseg_ros.ros.player import FramePlayer, status_values
from binseg_ros.ros.process import NodeProcess

QUIET_S = 3.0  # after the last tick: sensors time out, buffers empty, a last /diagnostics goes out
FUTURE_S = 1000  # the far-future bad stamp, seconds ahead


def _stamp(ns: int) -> Time:
    return Time(sec=ns // NS_PER_S, nanosec=ns % NS_PER_S)


class SoakPlayer(FramePlayer):
    """The three cameras, the fault cycle, and what comes back (masks, diagnostics, parameter answers)."""

    def __init__(self, frames: list[dict[str, np.ndarray]], rate: float) -> None:
        super().__init__(name="binseg_soak_player")
        self.sets = [{m: to_image(f[m], CAMERA_ENCODING[m], Header()) for m in MODALITIES} for f in frames]
        rgb = frames[0]["rgb"]
        self.black = to_image(np.zeros_like(rgb), CAMERA_ENCODING["rgb"], Header())
        self.small = to_image(np.ascontiguousarray(rgb[::2, ::2]), CAMERA_ENCODING["rgb"], Header())
        self.rate = rate
        self.start = time.monotonic()
        self.sent: Counter[str] = Counter()
        self.anchors: dict[tuple[int, int], float] = {}  # RGB stamp → publish time, until its mask comes
        self.anchors_per_minute: Counter[int] = Counter()
        self.latencies: defaultdict[int, list[float]] = defaultdict(list)  # minute → ms
        self.rss: defaultdict[int, list[float]] = defaultdict(list)  # minute → the node's RSS (MiB) each second
        self.seen = Observations()
        self.extra: deque[tuple[str, Image]] = deque()  # injected messages, one per tick after the camera images
        self.parameter_answers: dict[tuple[int, str], Future] = {}  # (minute, request) → its future
        self.parameter_service = self.create_client(SetParameters, f"/{self.target}/set_parameters")

    # -- what comes back ---------------------------------------------------------------
    def _on_mask(self, msg: Image) -> None:
        now = time.monotonic()
        self.seen.mask_times.append(now)
        sent = self.anchors.pop((msg.header.stamp.sec, msg.header.stamp.nanosec), None)
        if sent is not None:
            self.latencies[self._minute(now)].append((now - sent) * 1e3)

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        """The target node's statuses only: another node may publish on ``/diagnostics`` too."""
        ours = {part: status_values(s) for s in msg.status if (part := self._part(s.name)) is not None}
        if ours:
            self.seen.snapshots.append(Snapshot(time.monotonic(), ours))

    def _part(self, status_name: str) -> str | None:
        """``/segment_node: rgb`` → ``rgb`` for the target node's statuses, else None."""
        node, _, part = status_name.rpartition(": ")
        return part if node.rpartition("/")[2] == self.target else None

    # -- the cycle ---------------------------------------------------------------------
    def run(self, minutes: float, node: NodeProcess) -> tuple[list[MinuteRow], list[EpisodeResult]]:
        """Play ``minutes`` of the cycle, a row and the judged episodes per minute; stops early if the node exits."""
        rows: list[MinuteRow] = []
        results: list[EpisodeResult] = []

        def close_minutes(upto: int) -> None:
            """Sample and judge every whole minute before ``upto`` not yet done."""
            while len(rows) < upto:
                rows.append(self._sample(len(rows), node))
                results.extend(self._judge(len(rows) - 1, node, CYCLE_S))

        total_s = minutes * 60.0
        self.parameter_service.wait_for_service(timeout_sec=10.0)
        self.start = time.monotonic()
        tick, previous, sampled = 0, -1.0, -1
        with tqdm(total=math.ceil(total_s), unit="s", desc="soak") as bar:
            while (t := tick / self.rate) < total_s:
                self.spin_for(max(0.0, self.start + t - time.monotonic()))
                minute, t_in = int(t // CYCLE_S), t % CYCLE_S
                close_minutes(minute)
                if node.process.poll() is not None:
                    return rows, results
                self._tick(tick, minute, previous if t_in >= previous else -1.0, t_in)
                previous = t_in
                tick += 1
                if int(t) != sampled:  # the first tick of each second
                    sampled = int(t)
                    self.rss[minute].append(memory_mib(node.process.pid)["rss"])
                bar.update(int(t) - bar.n)
            self.spin_for(max(0.0, self.start + total_s - time.monotonic()))
            bar.update(bar.total - bar.n)
        last = math.ceil(total_s / CYCLE_S) - 1
        close_minutes(last)
        rows.append(self._sample(last, node))
        results += self._judge(last, node, total_s - last * CYCLE_S)
        return rows, results

    def _tick(self, index: int, minute: int, previous: float, t_in: float) -> None:
        """One set of the three cameras at cycle time ``t_in``, then any one-shot fault due since ``previous``."""
        frame = self.sets[index % len(self.sets)]
        jumped = t_in >= episode(Fault.CLOCK_JUMP).start_s
        ns = self.get_clock().now().nanoseconds - (int(CLOCK_JUMP_S * NS_PER_S) if jumped else 0)
        for modality in MODALITIES:
            msg = self._image(modality, frame, t_in)
            if msg is None:
                continue
            msg.header.stamp, msg.header.frame_id = _stamp(ns), f"{modality}_{index}"
            self._send(modality, msg)
            if msg is self.small:
                self.seen.odd_sized[minute] += 1
            elif modality == "rgb":
                self.anchors[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = time.monotonic()
                self.anchors_per_minute[minute] += 1
        for e in SCHEDULE:
            if previous < e.start_s <= t_in:
                self._begin(e.fault, minute, frame)
            if e.end_s > e.start_s and previous < e.end_s <= t_in:
                self._end(e.fault, minute)
        if self.extra:
            self._send(*self.extra.popleft())

    def _image(self, modality: str, frame: dict[str, Image], t_in: float) -> Image | None:
        """What the camera publishes at ``t_in``: its frame, a faulty one, or nothing."""
        if modality == "thermal" and episode(Fault.DEAD).covers(t_in):
            return None
        flap = episode(Fault.FLAPPING)
        if modality == "thermal" and flap.covers(t_in) and (t_in - flap.start_s) % FLAP_PERIOD_S >= FLAP_PERIOD_S / 2:
            return None
        if modality == "rgb" and episode(Fault.DEGRADED).covers(t_in):
            return self.black
        if modality == "rgb" and episode(Fault.RESOLUTION).covers(t_in):
            return self.small
        return frame[modality]

    def _send(self, modality: str, msg: Image) -> None:
        self.pubs[modality].publish(msg)
        self.sent[modality] += 1

    def _begin(self, fault: Fault, minute: int, frame: dict[str, Image]) -> None:
        """Start ``fault``. Its extra messages go out one per tick, as a driver would send them: a
        burst longer than the node's input queue (``qos.depth``) would be overwritten inside DDS
        before the node could see, let alone count, it."""
        now = self.get_clock().now().nanoseconds
        if fault is Fault.BAD_STAMPS:
            second = now // NS_PER_S
            for bad in (
                Time(sec=-5),
                Time(),
                Time(sec=second, nanosec=NS_PER_S + 1),
                _stamp(now + FUTURE_S * NS_PER_S),
            ):
                rgb = copy.deepcopy(frame["rgb"])
                rgb.header.stamp, rgb.header.frame_id = bad, "bad_stamp"
                self.extra.append(("rgb", rgb))
        elif fault is Fault.MALFORMED:
            header = Header(stamp=_stamp(now), frame_id="malformed")
            self.extra.extend(("thermal", malformed_image(kind, header)) for kind in MALFORMED)
        elif fault is Fault.PARAMETERS:
            self._ask(minute, "change", Parameter("threshold", value=SOAK_THRESHOLD))
            self._ask(minute, "nan", Parameter("modality_timeout", value=math.nan))

    def _end(self, fault: Fault, minute: int) -> None:
        if fault is Fault.PARAMETERS:
            self._ask(minute, "restore", Parameter("threshold", value=DEFAULT_THRESHOLD))

    def _ask(self, minute: int, name: str, parameter: Parameter) -> None:
        """One ``SetParameters`` call, as ``ros2 param set`` makes it; its answer is judged later."""
        request = SetParameters.Request(parameters=[parameter.to_parameter_msg()])
        self.parameter_answers[(minute, name)] = self.parameter_service.call_async(request)

    def _accepted(self, minute: int, name: str) -> bool | None:
        """Whether the call was accepted; None without an answer."""
        future = self.parameter_answers.get((minute, name))
        if future is None or not future.done() or future.result() is None:
            return None
        return bool(future.result().results[0].successful)

    # -- sampling and judging ------------------------------------------------------------
    def _minute(self, at: float) -> int:
        return int((at - self.start) // CYCLE_S)

    def _sample(self, minute: int, node: NodeProcess) -> MinuteRow:
        """The minute's row; anchors older than the minute never got a mask, and are forgotten."""
        t0 = self.start + minute * CYCLE_S
        stale = [k for k, sent in self.anchors.items() if sent < t0]
        for key in stale:
            del self.anchors[key]
        last = self.seen.before(t0 + CYCLE_S)
        return MinuteRow(
            minute=minute,
            rss_mib=(memory := memory_mib(node.process.pid))["rss"],
            rss_parts={k: v for k, v in memory.items() if k != "rss"},
            latencies_ms=self.latencies.pop(minute, []),
            rss_samples=self.rss.pop(minute, []),
            mappings=anonymous_mappings(node.process.pid),
            masks=self.seen.masks_between(t0, t0 + CYCLE_S),
            anchors=self.anchors_per_minute[minute],
            counters=last.counters() if last is not None else {},
        )

    def _judge(self, minute: int, node: NodeProcess, until: float) -> list[EpisodeResult]:
        """Each episode of ``minute`` whose clean gap ended by ``until`` seconds into it."""
        t0 = self.start + minute * CYCLE_S
        answers = {name: self._accepted(minute, name) for name in ("change", "nan", "restore")}
        running = node.process.poll() is None
        return [judge(e, minute, t0, self.seen, running, self.rate, answers) for e in SCHEDULE if gap_end(e) <= until]

    def account(self) -> Accounting:
        """Once the node has gone quiet: what became of every message (from its last diagnostics)."""
        self.spin_for(QUIET_S)
        last = self.seen.snapshots[-1].counters() if self.seen.snapshots else {}
        return Accounting(
            sent=dict(self.sent),
            frames_in={m: last.get(f"frames_in.{m}", 0) for m in MODALITIES},
            frames_in_sets=last.get("frames_in_sets", 0),
            sets=last.get("sets", 0),
            masks_published=last.get("masks", 0),
            masks_received=len(self.seen.mask_times),
            drops={k.removeprefix("drops."): v for k, v in last.items() if k.startswith("drops.")},
        )


def run_soak(manifest: Manifest, minutes: float, rate: float, out: Path) -> int:
    """``binseg bench soak``: the run, the report in ``out``; 0 when every goal is met, else 1.

    A node that does not come up raises :class:`binseg_ros.errors.NodeError` (from the player's wait).
    """
    import rclpy

    from binseg_ros.ros.process import use_local_ros_environment

    env = use_local_ros_environment()  # before rclpy.init(): the player must find the node on this host
    out.mkdir(parents=True, exist_ok=True)
    frames = [camera_frames(load_frame(SAMPLE, i)) for i in list_ids(SAMPLE)]
    node = NodeProcess(manifest.root, env, log=out / "node.log")
    rclpy.init()
    player = SoakPlayer(frames, rate)
    exit_code: int | None = None
    try:
        player.wait_for_target(timeout=60.0)
        rows, results = player.run(minutes, node)
        accounting = player.account()
        snapshots = player.seen.snapshots
        player_backend = snapshots[-1].statuses["segmentation"].get("backend") if snapshots else "?"
    finally:
        exit_code = node.stop()
        player.destroy_node()
        rclpy.try_shutdown()
    survived = sum(r.survived for r in results)
    verdict = Verdict(growth(rows), point_growth(rows), drift(rows), len(results), survived, accounting, exit_code)
    height, width = frames[0]["rgb"].shape[:2]
    header = (
        f"{minutes:g} min at {rate:g} Hz, three {width}x{height} sensors, model {manifest.model} "
        f"({manifest.version}) at {manifest.input_size[1]}x{manifest.input_size[0]}, backend {player_backend}, "
        f"{os.cpu_count()} CPU cores, {time.strftime('%Y-%m-%d %H:%M')}"
    )
    report = write_report(out, header, rows, results, verdict)
    print(f"\n{header}")
    for goal, measured, ok in verdict.lines():
        print(f"{'met' if ok else 'NOT MET':>7}  {goal}: {measured}")
    print(f"report: {report}")
    return 0 if verdict.met else 1
