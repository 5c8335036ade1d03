"""``segment_node``: RGB / depth / thermal images in, masks and diagnostics out.

A thin adapter: messages (``sensor_msgs/Image``, or ``CompressedImage`` with a modality's
``transport`` parameter set to ``compressed`` / ``compressedDepth``) go into the ROS-free
:class:`~binseg_ros.core.runtime.SegmentationRuntime`, which decodes and synchronises them and
runs inference on its own thread, and results become messages again.

The node is an rclpy lifecycle node (:mod:`binseg_ros.ros.lifecycle` says when it is a managed
one): configure opens the engine folder and warms every engine up, activate subscribes and
enables the publishers, deactivate unsubscribes, cleanup frees the engines. Stopping, from any
state, stops the inference thread before anything it publishes with goes away
(:mod:`binseg_ros.ros.shutdown`).
"""

from __future__ import annotations

import traceback
from functools import partial
from typing import Any

import rclpy
from rclpy.exceptions import InvalidHandle
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.impl.rcutils_logger import RcutilsLogger
from rclpy.lifecycle import LifecycleNode, LifecycleNodeMixin, LifecycleState
from rclpy.lifecycle import TransitionCallbackReturn as Result
from rclpy.node import Node
from rclpy.subscription import Subscription
from rclpy.timer import Timer
from sensor_msgs.msg import CompressedImage, Image

from binseg_ros.backends.factory import create_backend
from binseg_ros.core.compressed import transport_topic
from binseg_ros.core.drops import DropReason
from binseg_ros.core.frame import Arrival
from binseg_ros.core.postprocess import overlay
from binseg_ros.core.registration import Registration
from binseg_ros.core.runtime import SegmentationRuntime
from binseg_ros.core.segmenter import Segmentation, Segmenter
from binseg_ros.engines.locate import open_engine_folder
from binseg_ros.engines.manifest import Manifest
from binseg_ros.errors import BinsegError
from binseg_ros.modalities import all_subsets, image_topic
from binseg_ros.ros.calibration_source import CalibrationSource
from binseg_ros.ros.conversions import header, to_image
from binseg_ros.ros.diagnostics import build_diagnostics, calibration_status
from binseg_ros.ros.lifecycle import LifecycleOptions, TransitionRunner
from binseg_ros.ros.log_bridge import forward_package_logs
from binseg_ros.ros.param_updates import watch_parameters
from binseg_ros.ros.params import NodeSettings, declare_settings, warn_unknown_parameters
from binseg_ros.ros.qos import Outputs, subscribe
from binseg_ros.ros.shutdown import init_context, spin_until
from binseg_ros.ros.stop import StopRequested, StopSignals, stop_requested

NAME = "segment_node"
POLL_PERIOD = 0.02  # s: how often a silent sensor's timeout is checked


class SegmentNode(LifecycleNode):
    """The segmentation node: managed with ``lifecycle: true``, else plain (:mod:`binseg_ros.ros.lifecycle`)."""

    def __init__(self, **kwargs: Any) -> None:
        # The lifecycle part is set up after the parameters, which say whether it offers services.
        Node.__init__(self, NAME, **kwargs)
        settings = declare_settings(self)
        self.mode = LifecycleOptions.of(settings)
        LifecycleNodeMixin.__init__(self, enable_communication_interface=self.mode.managed)
        self.transitions = TransitionRunner(self)
        self.runtime: SegmentationRuntime | None = None  # configured: the engines, warm
        self.live = watch_parameters(self, settings, lambda: self.runtime)  # ros2 param set
        self._parameters_checked = False  # unknown parameter names warned about (once, at first activate)
        self.calibration: CalibrationSource | None = None
        self.backend_name = ""
        self._model = ""  # what configure loaded, for the log line activate writes
        self._outputs: Outputs | None = None
        self._owned: list[Subscription] = []  # the calibration source's camera_info subscriptions
        self._image_subs: dict[str, Subscription] = {}  # active: inputs and timers
        self._timers: list[Timer] = []
        self.unpublished = 0  # results the inference thread could not publish (their publisher had gone)
        self.finished = False  # the shutdown transition ran

    @property
    def settings(self) -> NodeSettings:
        """The parameters as now set: start-up values, and live ones as ``ros2 param set`` left them."""
        return self.live.current

    def start(self) -> None:
        """Configure and activate now, unless a lifecycle manager is to do it.

        Raises:
            BinsegError: what made configure or activate fail (an engine folder, a backend, a parameter).
        """
        if self.mode.waits_for_manager:
            self.get_logger().info("unconfigured: waiting for configure and activate (lifecycle_msgs)")
            return
        self.transitions.quiet = True  # a failure is raised, and logged once by whoever catches it
        try:
            for trigger in (self.trigger_configure, self.trigger_activate):
                if trigger() != Result.SUCCESS:
                    raise self.transitions.failure or RuntimeError("a lifecycle transition failed")
        finally:
            self.transitions.quiet = False

    # -- transitions -------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> Result:
        return self.transitions.run("configure", self._configure, undo=self._release)

    def on_activate(self, state: LifecycleState) -> Result:
        result = self.transitions.run("activate", self._activate, undo=self._deactivate)
        return super().on_activate(state) if result == Result.SUCCESS else result

    def on_deactivate(self, state: LifecycleState) -> Result:
        self._deactivate()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> Result:
        self._release()
        return Result.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> Result:
        self._deactivate()
        self._release()
        self.finished = True
        return Result.SUCCESS

    def on_error(self, state: LifecycleState) -> Result:
        """After an unexpected failure: free everything, back to unconfigured."""
        self._deactivate()
        self._release()
        return Result.SUCCESS

    def _configure(self) -> None:
        """Open and verify the engine folder, load every engine the modalities may need and warm it up."""
        s = self.settings
        sync, quality = s.sync_config(), s.quality_config()
        manifest = open_engine_folder(s.engine_dir)
        backend = create_backend(
            s.backend, manifest, s.frequency_form, s.device, precision=s.precision, plugin_library=s.plugin_library
        )
        self.backend_name = backend.name
        known = set(self.subscriptions)
        image_topics = {m: self.resolve_topic_name(image_topic(m)) for m in s.modalities}
        self.calibration = CalibrationSource(
            self, s.calibration_file, s.camera_info_source, image_topics, self._calibrated, s.input_qos(),
            manifest.input_size,
        )  # fmt: skip
        self._owned = [sub for sub in self.subscriptions if sub not in known]
        segmenter = Segmenter(backend, manifest.input_size, s.threshold, self.calibration.registration())
        subsets = [subset for subset in all_subsets() if set(subset) <= set(s.modalities)]
        self.get_logger().info(f"warming up {len(subsets)} engine(s) of {manifest.root} on {backend.name}")
        for subset in subsets:  # every engine a fallback may need, before the first frame
            segmenter.warm_up(subset)
        self._outputs = outputs = Outputs.advertise(self)
        self.runtime = SegmentationRuntime(
            segmenter, sync, partial(self._publish, outputs), s.thermal_units(), quality=quality
        )
        self._model = _describe(manifest, backend.name)

    def _activate(self) -> None:
        """Subscribe to the images and start the timers; the publishers are enabled by the caller."""
        runtime, calibration, outputs = self.runtime, self.calibration, self._outputs
        assert runtime is not None and calibration is not None and outputs is not None  # configure built them
        self._image_subs = {m: self._subscribe(m, runtime, calibration) for m in self.settings.modalities}
        self._timers = [
            self.create_timer(POLL_PERIOD, partial(self._poll, runtime)),
            self.create_timer(self.settings.diagnostics_period, partial(self._publish_diagnostics, runtime, outputs)),
        ]
        self.get_logger().info(f"{self._model}; subscribed to {', '.join(self.topics().values())}")
        if not self._parameters_checked:  # qos_overrides.* exist once their topics do: after the first subscribe
            warn_unknown_parameters(self)
            self._parameters_checked = True

    def _deactivate(self) -> None:
        """Unsubscribe and stop the timers: no input, no output, engines kept."""
        for sub in self._image_subs.values():
            self.destroy_subscription(sub)
        for timer in self._timers:
            self.destroy_timer(timer)
        self._image_subs, self._timers = {}, []

    def _release(self) -> None:
        """Stop the inference thread (its in-flight set finishes, a waiting one is dropped), then
        destroy the publishers it used and free the engines; safe on a partly configured node."""
        if self.runtime is not None:
            self.runtime.close()
        for sub in self._owned:
            self.destroy_subscription(sub)
        for publisher in self._outputs.publishers() if self._outputs is not None else ():
            self.destroy_lifecycle_publisher(publisher)
        self.runtime, self.calibration, self._outputs, self._owned = None, None, None, []

    # -- data path ---------------------------------------------------------------------
    def _subscribe(self, modality: str, runtime: SegmentationRuntime, calibration: CalibrationSource) -> Subscription:
        """``<modality>/image`` (raw), or the ``/compressed`` or ``/compressedDepth`` topic of that
        name after remapping, as an image_transport subscriber resolves it."""
        transport = self.settings.transport(modality)
        callback = partial(self._on_image, runtime, calibration, modality)
        if transport == "raw":
            return subscribe(self, Image, image_topic(modality), callback, self.settings.input_qos())
        topic = transport_topic(self.resolve_topic_name(image_topic(modality)), transport)
        return subscribe(self, CompressedImage, topic, callback, self.settings.input_qos())

    def topics(self) -> dict[str, str]:
        return {m: sub.topic_name for m, sub in self._image_subs.items()}

    def _now(self) -> int:
        return int(self.get_clock().now().nanoseconds)

    def _calibrated(self, registration: Registration) -> None:
        """Every camera_info arrived: register from now on."""
        if self.runtime is not None:
            self.runtime.use_registration(registration)

    def _on_image(
        self, runtime: SegmentationRuntime, calibration: CalibrationSource, modality: str, msg: Image | CompressedImage
    ) -> None:
        if not calibration.complete:  # the rig's intrinsics are not all known yet: count, publish nothing
            runtime.reject(modality, DropReason.CALIBRATION_INCOMPLETE)
            return
        error = runtime.ingest(modality, msg, Arrival(self._now()))
        if error is not None:
            self.get_logger().warning(f"dropped {modality} image: {error}", throttle_duration_sec=5.0)

    def _poll(self, runtime: SegmentationRuntime) -> None:
        runtime.poll(self._now())

    def _publish(self, outputs: Outputs, result: Segmentation) -> None:
        """Runs on the inference thread. A publisher (or the context) already gone is counted, not raised:
        the thread is stopped before either goes, so this is only a last guard."""
        try:
            self._send(outputs, result)
        except (_rclpy.RCLError, InvalidHandle):
            self.unpublished += 1

    def _send(self, outputs: Outputs, result: Segmentation) -> None:
        """The mask; optional outputs only while someone listens."""
        runtime = self.runtime
        if runtime is None or not outputs.mask.is_activated:  # deactivated: nothing goes out, nothing is counted
            return
        anchor = result.frameset.anchor
        out = header(anchor.stamp_ns, anchor.frame_id)
        outputs.mask.publish(to_image(result.mask, "mono8", out))
        s = self.settings
        if s.publish_probability and outputs.probability.get_subscription_count() > 0:
            outputs.probability.publish(to_image(result.probability, "32FC1", out))
            runtime.note_published("probability")
        if s.publish_overlay and outputs.overlay.get_subscription_count() > 0:
            background = result.frameset.background().data
            outputs.overlay.publish(to_image(overlay(background, result.mask), "rgb8", out))
            runtime.note_published("overlay")

    def _publish_diagnostics(self, runtime: SegmentationRuntime, outputs: Outputs) -> None:
        status = runtime.status(self._now())
        name = self.get_fully_qualified_name()
        array = build_diagnostics(
            status, name, self.get_clock().now().to_msg(), self.settings.modalities, self.topics(), self.backend_name
        )
        if self.settings.calibration_file and self.calibration is not None:
            array.status.append(
                calibration_status(name, self.calibration.description, self.calibration.missing, status)
            )
        outputs.diagnostics.publish(array)

    def close(self) -> None:
        """Stop inference, then destroy the node (the context is the caller's to shut down)."""
        self._deactivate()
        self._release()
        if self.unpublished:
            self.get_logger().warning(f"{self.unpublished} result(s) not published: their publisher had gone")
        self.destroy_node()


def _describe(manifest: Manifest, backend: str) -> str:
    height, width = manifest.input_size
    return f"model {manifest.model} {manifest.version} at {height}x{width} on {backend}"


def main(args: list[str] | None = None) -> int:
    """Run the node to its end (:mod:`binseg_ros.ros.segment_node` is the entry point).

    Exit 0 after SIGINT, SIGTERM or the lifecycle shutdown transition; 1 after one FATAL line
    when the node cannot start.
    """
    signals = StopSignals.install()  # again where the entry point did: a caller may start here
    if stop_requested():  # a signal came while this module was imported
        return 0
    logger = rclpy.logging.get_logger(NAME)
    forward_package_logs(logger)
    node: SegmentNode | None = None
    context = None
    try:
        context = init_context(args)
        node = running = SegmentNode(context=context)
        running.start()
        spin_until(running, lambda: running.finished)
    except StopRequested:
        pass
    except Exception as exc:  # noqa: BLE001 - one FATAL line for a bug too (see _report)
        if not stop_requested():  # else the stop signal, as the code it interrupted reported it
            return _report(logger, exc)
    finally:
        signals.hold()
        if node is not None:
            node.close()
        if context is not None:
            rclpy.try_shutdown(context=context)
    return 0


def _report(logger: RcutilsLogger, exc: Exception) -> int:
    """One FATAL line and exit code 1. A BinsegError says what to fix; anything else is a bug, still
    reported in one line (logs on a robot are read and alerted on line by line) with where it was
    raised; its traceback goes to the debug level."""
    if isinstance(exc, BinsegError):
        logger.fatal(f"cannot start: {exc}")
        return 1
    logger.debug("".join(traceback.format_exception(exc)))
    logger.fatal(f"stopped by an unexpected error: {type(exc).__name__}: {exc} ({_where(exc)})")
    return 1


def _where(exc: BaseException) -> str:
    """``file:line in function`` of the innermost frame, to find a bug from its one log line."""
    frame = traceback.extract_tb(exc.__traceback__)[-1]
    return f"{frame.filename}:{frame.lineno} in {frame.name}"
