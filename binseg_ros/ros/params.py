"""The node's parameters: one table of name, default, description, choices and range.

Each parameter is declared once, here, with a ``ParameterDescriptor`` that carries its
description and, for numbers, a ``FloatingPointRange`` / ``IntegerRange``: ``ros2 param
describe`` shows the range and rclpy enforces it (NaN and inf are outside every range), so a
value out of range stops the node with a message naming the parameter (every number has a
range). Parameters marked ``live`` may be changed while the node runs
(:mod:`binseg_ros.ros.param_updates`); the others are read-only. A name given to the node that
it does not declare (a typo) is logged with the closest one (:func:`warn_unknown_parameters`).
Defaults that the ROS-free core also needs (the synchroniser's, the thermal units', the quality
gate's limits, the threshold) are not repeated: the table reads them from :class:`~binseg_ros.core.sync.SyncConfig`,
:class:`~binseg_ros.core.messages.ThermalUnits`, :class:`~binseg_ros.core.quality.QualityConfig`
and :data:`~binseg_ros.core.postprocess.DEFAULT_THRESHOLD`. ``config/segment.yaml`` lists the
same values, and a test holds the file to this table.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import InvalidParameterTypeException, ParameterException
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

from binseg_ros.backends.factory import BACKEND_NAMES
from binseg_ros.core.compressed import TRANSPORTS
from binseg_ros.core.messages import ThermalUnits
from binseg_ros.core.postprocess import DEFAULT_THRESHOLD
from binseg_ros.core.quality import QualityConfig
from binseg_ros.core.sync import SyncConfig
from binseg_ros.engines.tensorrt.rules import PRECISIONS
from binseg_ros.errors import ConfigError, ModalityError
from binseg_ros.forms import PORTABLE_FORMS
from binseg_ros.modalities import MODALITIES, NO_SUBSET, Subset, parse_subset

Check = Callable[[Any], "str | None"]
FOREVER = 86_400.0  # s: the top of the time ranges (a day)
MANY = 10_000  # the top of the count ranges


def _subset(allow_empty: bool) -> Check:
    def check(value: Any) -> str | None:
        if allow_empty and value == "":
            return None
        try:
            parse_subset(str(value))
        except ModalityError as exc:
            return str(exc)
        return None

    return check


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: what ``ros2 param describe`` shows and what the node accepts."""

    name: str
    default: str | float | int | bool
    description: str
    choices: tuple[str, ...] = ()
    low: float | None = None  # inclusive range, enforced by rclpy
    high: float | None = None
    check: Check | None = None  # what a choice list or a range cannot say
    live: bool = False  # may be set while the node runs (ros2 param set); else read-only

    @property
    def field(self) -> str:
        """Its :class:`NodeSettings` field: the name with ``_`` for ``.``."""
        return self.name.replace(".", "_")

    def descriptor(self) -> ParameterDescriptor:
        described = f"{self.description} ({' | '.join(self.choices)})" if self.choices else self.description
        descriptor = ParameterDescriptor(description=described, read_only=not self.live)
        if self.low is not None and self.high is not None:
            if isinstance(self.default, int) and not isinstance(self.default, bool):
                descriptor.integer_range = [IntegerRange(from_value=int(self.low), to_value=int(self.high), step=1)]
            else:
                descriptor.floating_point_range = [
                    FloatingPointRange(from_value=float(self.low), to_value=float(self.high), step=0.0)
                ]
        return descriptor

    def problem(self, value: Any) -> str | None:
        """Why ``value`` (already of the right type and in range) cannot be used, if it cannot."""
        if self.choices and value not in self.choices:
            return f"must be one of {', '.join(self.choices)}"
        return self.check(value) if self.check else None


PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("backend", "auto", "inference runtime", BACKEND_NAMES),
    ParamSpec("engine_dir", "", "engine folder with manifest.yaml; empty = the installed default model"),
    ParamSpec("frequency_form", "matmul", "ONNX graph form for onnxruntime", PORTABLE_FORMS),
    ParamSpec("device", "cpu", "torch backend device: cpu | cuda | cuda:N"),
    ParamSpec("precision", "fp16", "tensorrt precision (int8: Q/DQ graphs only)", PRECISIONS),
    ParamSpec("plugin_library", "auto", "tensorrt frequency-branch plugin: auto | none | PATH to the .so"),
    ParamSpec("modalities", "rgb+depth+thermal", "modalities to subscribe to, e.g. rgb+depth", check=_subset(False)),
    ParamSpec("required_modalities", "", "modalities that must be alive to publish; empty = any", check=_subset(True)),
    ParamSpec(
        "threshold", DEFAULT_THRESHOLD, "probability above which a pixel is foreground", low=0.0, high=1.0, live=True
    ),
    ParamSpec(
        "slop", SyncConfig.slop, "max stamp difference (s) between frames of one set", low=1e-4, high=10.0, live=True
    ),
    ParamSpec(
        "max_delay",
        SyncConfig.max_delay,
        "how long (s) after its anchor frame a set waits for, and takes, a later-arriving frame",
        low=0.0,
        high=1.0,
        live=True,
    ),
    ParamSpec(
        "modality_timeout",
        SyncConfig.modality_timeout,
        "a modality with no frame for this long (s) is STALE",
        low=1e-3,
        high=FOREVER,
        live=True,
    ),
    ParamSpec(
        "readmit_frames",
        SyncConfig.readmit_frames,
        "consecutive frames a returning modality needs to be used again",
        low=1,
        high=MANY,
        live=True,
    ),
    ParamSpec(
        "buffer_size",
        SyncConfig.buffer_size,
        "frames buffered per modality while waiting for a match",
        low=1,
        high=MANY,
    ),
    *(
        ParamSpec(
            f"{modality}.transport",
            "raw",
            f"image_transport of the {modality} input: {modality}/image, or its /compressed or /compressedDepth topic",
            TRANSPORTS if modality != "rgb" else TRANSPORTS[:2],  # compressedDepth carries no colour
        )
        for modality in MODALITIES
    ),
    ParamSpec(
        "calibration_file",
        "",
        "rig file registering depth and thermal into the reference camera; empty = inputs already registered",
    ),
    ParamSpec(
        "camera_info_source",
        "file",
        "intrinsics from the rig's camera_info files, or from the camera_info topic beside each image topic",
        ("file", "topics"),
    ),
    ParamSpec("qos.reliability", "best_effort", "input QoS reliability", ("best_effort", "reliable")),
    ParamSpec("qos.depth", 5, "input QoS history depth", low=1, high=MANY),
    ParamSpec("publish_probability", True, "publish ~/probability (32FC1) while it has subscribers", live=True),
    ParamSpec("publish_overlay", True, "publish ~/overlay (rgb8) while it has subscribers", live=True),
    ParamSpec("diagnostics_period", 1.0, "seconds between /diagnostics messages", low=0.01, high=FOREVER),
    ParamSpec("lifecycle", False, "offer the lifecycle_msgs interface (configure, activate, ...) as a managed node"),
    ParamSpec("autostart", True, "with lifecycle: configure and activate at start, without a lifecycle manager"),
    ParamSpec(
        "thermal_gain",
        ThermalUnits.gain,
        "thermal counts = value x gain + offset (maps mono8 / deg C to raw counts)",
        low=-1e6,
        high=1e6,
    ),
    ParamSpec("thermal_offset", ThermalUnits.offset, "see thermal_gain", low=-1e9, high=1e9),
    ParamSpec("quality.enabled", True, "leave out frames of sensors that publish but fail the quality gate"),
    ParamSpec(
        "quality.readmit_frames",
        QualityConfig.readmit_frames,
        "consecutive passing frames a degraded sensor needs to be used again",
        low=1,
        high=MANY,
    ),
    ParamSpec(
        "quality.frozen_frames",
        QualityConfig.frozen_frames,
        "repeats in a row of one image, while other sensors' images change, that make it frozen",
        low=1,
        high=MANY,
    ),
    *(
        ParamSpec(f"quality.{name}", getattr(QualityConfig, name), description, low=0.0, high=high, live=True)
        for name, description, high in (
            ("max_dark_fraction", "rgb is underexposed above this fraction of near-black pixels", 1.0),
            ("max_clipped_fraction", "rgb is overexposed above this fraction of clipped channel samples", 1.0),
            ("max_detail_ratio", "rgb is noisy above this ratio of fine to coarse detail (|Laplacian|)", float(MANY)),
            ("min_detail_ratio", "rgb is blurred below this ratio (under max_detail_ratio)", float(MANY)),
            ("min_valid_fraction", "depth has holes below this fraction of valid pixels", 1.0),
            ("min_thermal_std", "thermal is flat below this standard deviation (raw counts)", 1e6),
            ("max_saturated_fraction", "thermal is saturated above this fraction at its maximum", 1.0),
        )
    ),
)


@dataclass(frozen=True)
class NodeSettings:
    """Validated parameter values, read at start-up (a live change makes a new one)."""

    backend: str
    engine_dir: str
    frequency_form: str
    device: str
    precision: str
    plugin_library: str
    modalities: Subset
    required_modalities: Subset
    threshold: float
    slop: float
    max_delay: float
    modality_timeout: float
    readmit_frames: int
    buffer_size: int
    rgb_transport: str
    depth_transport: str
    thermal_transport: str
    calibration_file: str
    camera_info_source: str
    qos_reliability: str
    qos_depth: int
    publish_probability: bool
    publish_overlay: bool
    diagnostics_period: float
    lifecycle: bool
    autostart: bool
    thermal_gain: float
    thermal_offset: float
    quality_enabled: bool
    quality_readmit_frames: int
    quality_frozen_frames: int
    quality_max_dark_fraction: float
    quality_max_clipped_fraction: float
    quality_max_detail_ratio: float
    quality_min_detail_ratio: float
    quality_min_valid_fraction: float
    quality_min_thermal_std: float
    quality_max_saturated_fraction: float

    def sync_config(self) -> SyncConfig:
        return SyncConfig(
            slop=self.slop,
            modality_timeout=self.modality_timeout,
            readmit_frames=self.readmit_frames,
            buffer_size=self.buffer_size,
            required=self.required_modalities,
            max_delay=self.max_delay,
        )

    def transport(self, modality: str) -> str:
        """raw | compressed | compressedDepth: which topic and message type ``modality`` arrives on."""
        return str(getattr(self, f"{modality}_transport"))

    def thermal_units(self) -> ThermalUnits:
        return ThermalUnits(self.thermal_gain, self.thermal_offset)

    def quality_config(self) -> QualityConfig | None:
        """The gate's limits, or None with ``quality.enabled`` false.

        Raises:
            ConfigError: limits that contradict each other (min_detail_ratio not below max_detail_ratio).
        """
        if not self.quality_enabled:
            return None
        return QualityConfig(
            max_dark_fraction=self.quality_max_dark_fraction,
            max_clipped_fraction=self.quality_max_clipped_fraction,
            max_detail_ratio=self.quality_max_detail_ratio,
            min_detail_ratio=self.quality_min_detail_ratio,
            min_valid_fraction=self.quality_min_valid_fraction,
            min_thermal_std=self.quality_min_thermal_std,
            max_saturated_fraction=self.quality_max_saturated_fraction,
            readmit_frames=self.quality_readmit_frames,
            frozen_frames=self.quality_frozen_frames,
        )

    def input_qos(self) -> QoSProfile:
        reliability = (
            ReliabilityPolicy.RELIABLE if self.qos_reliability == "reliable" else ReliabilityPolicy.BEST_EFFORT
        )
        return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=self.qos_depth, reliability=reliability)


def _declare(node: Node, spec: ParamSpec) -> Any:
    """Declare one parameter and return its value; a refused value is a ConfigError naming it."""
    try:
        value = node.declare_parameter(spec.name, spec.default, spec.descriptor()).value
    except InvalidParameterTypeException as exc:
        raise ConfigError(f"parameter '{spec.name}': expected a {type(spec.default).__name__} ({exc.args[0]})") from exc
    except ParameterException as exc:  # refused by its descriptor: out of range
        raise ConfigError(
            f"parameter '{spec.name}': must be within [{spec.low:g}, {spec.high:g}] ({exc.args[0]})"
        ) from exc
    problem = spec.problem(value)
    if problem:
        raise ConfigError(f"parameter '{spec.name}' = {value!r}: {problem}")
    return value


def declare_settings(node: Node) -> NodeSettings:
    """Declare every parameter on ``node`` and return the validated values.

    Raises:
        ConfigError: naming the first parameter with a wrong type or value.
    """
    values = {spec.field: _declare(node, spec) for spec in PARAMS}
    values["modalities"] = parse_subset(str(values["modalities"]))
    required = parse_subset(str(values["required_modalities"])) if values["required_modalities"] else NO_SUBSET
    missing = [m for m in required if m not in values["modalities"]]
    if missing:
        raise ConfigError(
            f"parameter 'required_modalities' names {', '.join(missing)}, which 'modalities' does not subscribe to"
        )
    values["required_modalities"] = required
    return NodeSettings(**values)


def warn_unknown_parameters(node: Node) -> list[str]:
    """The names given to ``node`` (``-p``, a params file, ``parameter_overrides``) that it does
    not declare, each logged as a warning with the closest declared name. Undeclared parameters
    stay refused, so without this a typo (``threshhold:=0.9``) would be ignored without a word.
    Call it after the node declared everything (its own and rclpy's, such as ``use_sim_time``)."""
    declared = node.list_parameters([], 0).names
    # rclpy keeps the overrides it was given only here: it has no public accessor for them.
    unknown = sorted(name for name in node._parameter_overrides if not node.has_parameter(name))
    for name in unknown:
        close = difflib.get_close_matches(name, declared, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        node.get_logger().warning(f"unknown parameter '{name}' is ignored{hint}")
    return unknown
