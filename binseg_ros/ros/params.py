"""The node's parameters: one table of name, default, description and check.

Declared read-only with descriptions (``ros2 param describe`` shows them) and validated at
start-up: a bad value stops the node with a message naming the parameter. The same table
is what the test of ``config/segment.yaml`` compares the file against.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.exceptions import ParameterException
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

from binseg_ros.backends.factory import BACKEND_NAMES
from binseg_ros.errors import BinsegError, ModalityError
from binseg_ros.modalities import Subset, parse_subset
from binseg_ros.engines.plans import PRECISIONS
from binseg_ros.forms import PORTABLE_FORMS

Check = Callable[[object], str | None]


class ParameterError(BinsegError, ValueError):
    """A parameter value the node cannot start with."""


def _one_of(*choices: str) -> Check:
    return lambda v: None if v in choices else f"must be one of {', '.join(choices)}"


def _positive(v: object) -> str | None:
    return None if v > 0 else "must be > 0"  # type: ignore[operator]


def _unit_interval(v: object) -> str | None:
    return None if 0.0 <= v <= 1.0 else "must be within [0, 1]"  # type: ignore[operator]


def _subset(allow_empty: bool) -> Check:
    def check(v: object) -> str | None:
        if allow_empty and v == "":
            return None
        try:
            parse_subset(str(v))
        except ModalityError as exc:
            return str(exc)
        return None

    return check


@dataclass(frozen=True)
class ParamSpec:
    name: str
    default: str | float | int | bool
    description: str
    check: Check | None = None


PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("backend", "auto", "inference runtime: auto | onnxruntime | torch | tensorrt", _one_of(*BACKEND_NAMES)),
    ParamSpec("engine_dir", "", "engine folder with manifest.yaml; empty = the installed default model"),
    ParamSpec("frequency_form", "matmul", "ONNX graph form for onnxruntime: matmul | fft", _one_of(*PORTABLE_FORMS)),
    ParamSpec("device", "cpu", "torch backend device: cpu | cuda | cuda:N"),
    ParamSpec("precision", "fp16", "tensorrt precision: fp16 | fp32 | int8 (Q/DQ graphs only)", _one_of(*PRECISIONS)),
    ParamSpec("plugin_library", "auto", "tensorrt frequency-branch plugin: auto | none | PATH to the .so"),
    ParamSpec("modalities", "rgb+depth+thermal", "modalities to subscribe to, e.g. rgb+depth", _subset(False)),
    ParamSpec("required_modalities", "", "modalities that must be alive to publish; empty = any", _subset(True)),
    ParamSpec("threshold", 0.5, "probability above which a pixel is foreground", _unit_interval),
    ParamSpec("slop", 0.05, "max stamp difference (s) between frames of one set", _positive),
    ParamSpec("modality_timeout", 0.5, "a modality with no frame for this long (s) is STALE", _positive),
    ParamSpec("readmit_frames", 3, "consecutive frames a returning modality needs to be used again", _positive),
    ParamSpec("buffer_size", 10, "frames buffered per modality while waiting for a match", _positive),
    ParamSpec("qos.reliability", "best_effort", "input QoS reliability: best_effort | reliable",
              _one_of("best_effort", "reliable")),
    ParamSpec("qos.depth", 5, "input QoS history depth", _positive),
    ParamSpec("publish_probability", True, "publish ~/probability (32FC1) while it has subscribers"),
    ParamSpec("publish_overlay", True, "publish ~/overlay (rgb8) while it has subscribers"),
    ParamSpec("diagnostics_period", 1.0, "seconds between /diagnostics messages", _positive),
    ParamSpec("thermal_gain", 1.0, "thermal counts = value x gain + offset (maps mono8 / deg C to raw counts)"),
    ParamSpec("thermal_offset", 0.0, "see thermal_gain"),
)


@dataclass(frozen=True)
class NodeSettings:
    """Validated parameter values, read once at start-up."""

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
    modality_timeout: float
    readmit_frames: int
    buffer_size: int
    qos_reliability: str
    qos_depth: int
    publish_probability: bool
    publish_overlay: bool
    diagnostics_period: float
    thermal_gain: float
    thermal_offset: float

    def input_qos(self) -> QoSProfile:
        reliability = ReliabilityPolicy.RELIABLE if self.qos_reliability == "reliable" else ReliabilityPolicy.BEST_EFFORT
        return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=self.qos_depth, reliability=reliability)


def declare_settings(node: Node) -> NodeSettings:
    """Declare every parameter on ``node`` and return the validated values.

    Raises:
        ParameterError: naming the first parameter with a wrong type or value.
    """
    values: dict[str, object] = {}
    for spec in PARAMS:
        descriptor = ParameterDescriptor(description=spec.description, read_only=True)
        try:
            value = node.declare_parameter(spec.name, spec.default, descriptor).value
        except ParameterException as exc:
            raise ParameterError(
                f"parameter '{spec.name}': expected a {type(spec.default).__name__} ({exc})"
            ) from exc
        problem = spec.check(value) if spec.check else None
        if problem:
            raise ParameterError(f"parameter '{spec.name}' = {value!r}: {problem}")
        values[spec.name.replace(".", "_")] = value
    values["modalities"] = parse_subset(str(values["modalities"]))
    required = parse_subset(str(values["required_modalities"])) if values["required_modalities"] else ()
    missing = [m for m in required if m not in values["modalities"]]
    if missing:
        raise ParameterError(
            f"parameter 'required_modalities' names {', '.join(missing)}, which 'modalities' does not subscribe to"
        )
    values["required_modalities"] = required
    return NodeSettings(**values)  # type: ignore[arg-type]
