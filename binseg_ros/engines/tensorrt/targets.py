"""What a plan is built with and for, without importing TensorRT: the flavour of TensorRT and
what it can do, and the target (this machine's GPU, or a compute capability ahead of time).

Two flavours share one Python API (Builder, OnnxParser, IBuilderConfig, Runtime):

- ``tensorrt`` (10.x, 11.x): every NVIDIA GPU, Jetson included (JetPack 6 = 10.3, JetPack 7
  = 10.13 and 10.16, x86 = 11.x). It builds on the GPU the plan runs on, takes the plugin
  library, parses ONNX ``DFT`` from 11.2 on, and is strongly typed only from 11 on.
- ``tensorrt_rtx`` (TensorRT for RTX 1.x): GPUs of the compute capabilities it names (7.5,
  8.0, 8.6, 8.9, 12.0, 12.1 in 1.7: not Jetson, not 9.0). It builds *ahead of time* for a
  named compute capability without a GPU, and compiles the kernels for the actual GPU when
  the engine is loaded, so one plan serves every GPU of that capability. Strongly typed
  only, no plugin layers, no ``DFT``, INT8 weight-only, and its timing cache is a no-op.

Where both are installed, the full ``tensorrt`` is used: it runs on every NVIDIA GPU and takes
the plugin. ``BINSEG_TENSORRT=tensorrt_rtx`` chooses TensorRT-RTX instead (to build RTX plans
ahead of time on a machine that has both).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from binseg_ros.errors import BackendError

FlavourName = Literal["tensorrt", "tensorrt_rtx"]
FLAVOURS: tuple[FlavourName, ...] = ("tensorrt", "tensorrt_rtx")
"""In the order they are preferred where both import."""
FLAVOUR_ENV = "BINSEG_TENSORRT"
MIN_MAJOR: dict[FlavourName, int] = {"tensorrt": 10, "tensorrt_rtx": 1}
STRONGLY_TYPED_MAJOR = 11  # of full TensorRT
DFT_VERSION = (11, 2)  # full TensorRT's first ONNX DFT importer
AHEAD_OF_TIME = "ahead of time"
"""The ``gpu_name`` of a plan built for a compute capability rather than on a GPU."""


@dataclass(frozen=True)
class Flavour:
    """The TensorRT this process builds and runs with: its package and version."""

    name: FlavourName
    version: str

    def __str__(self) -> str:
        return f"{'TensorRT-RTX' if self.rtx else 'TensorRT'} {self.version}"

    @property
    def rtx(self) -> bool:
        return self.name == "tensorrt_rtx"

    @property
    def release(self) -> tuple[int, int]:
        """``(major, minor)``: ``"10.3.0.30"`` -> ``(10, 3)``.

        Raises:
            BackendError: a version that does not start with two numbers.
        """
        match = re.match(r"(\d+)\.(\d+)", self.version)
        if match is None:
            raise BackendError(f"cannot read the {self.name} version {self.version!r}")
        return int(match[1]), int(match[2])

    @property
    def strongly_typed(self) -> bool:
        """No FP16/INT8 builder flags: a layer runs in the type its ONNX tensors have."""
        return self.rtx or self.release[0] >= STRONGLY_TYPED_MAJOR

    @property
    def takes_plugins(self) -> bool:
        return not self.rtx

    @property
    def parses_dft(self) -> bool:
        return not self.rtx and self.release >= DFT_VERSION

    @property
    def builds_ahead_of_time(self) -> bool:
        """Builds for a named compute capability, with or without a GPU."""
        return self.rtx

    @property
    def keeps_timing_cache(self) -> bool:
        """TensorRT-RTX's timing-cache calls are deprecated no-ops."""
        return not self.rtx


@dataclass(frozen=True)
class BuildTarget:
    """What plans are built for: this machine's GPU, or (``gpu_name`` :data:`AHEAD_OF_TIME`)
    a compute capability with no GPU involved."""

    flavour: Flavour
    gpu_name: str
    compute_capability: str  # "8.9"

    @property
    def ahead_of_time(self) -> bool:
        return self.gpu_name == AHEAD_OF_TIME

    def __str__(self) -> str:
        if self.ahead_of_time:
            return f"{self.flavour}, ahead of time for compute capability {self.compute_capability}"
        return f"{self.flavour}, {self.gpu_name} (compute capability {self.compute_capability})"


def require_compute_capability(text: str) -> str:
    """``"8.9"`` as given on the command line, checked for its form (major.minor).

    Raises:
        BackendError: anything else, such as ``sm_89`` or ``89``.
    """
    if re.fullmatch(r"\d{1,2}\.\d", text) is None:
        raise BackendError(f"a compute capability is written major.minor, like 8.9; got {text!r}")
    return text


def capability_member(compute_capability: str) -> str:
    """``"8.9"`` -> ``"SM89"``, ``"12.1"`` -> ``"SM121"``: TensorRT-RTX's ``ComputeCapability`` name."""
    return "SM" + compute_capability.replace(".", "")


def member_capability(member: str) -> str:
    """``"SM89"`` -> ``"8.9"``, ``"SM121"`` -> ``"12.1"`` (the minor version is one digit)."""
    digits = member.removeprefix("SM")
    return f"{digits[:-1]}.{digits[-1]}"


def check_capability(flavour: Flavour, compute_capability: str, targets: tuple[str, ...], where: str) -> None:
    """Refuse a compute capability a flavour that names its targets (TensorRT-RTX) cannot build for.

    ``targets``: the capabilities the installed flavour names; ``where``: what has the capability.

    Raises:
        BackendError: the capability is not one of ``targets``.
    """
    if flavour.builds_ahead_of_time and compute_capability not in targets:
        raise BackendError(
            f"{flavour} does not build for compute capability {compute_capability} ({where}): it targets "
            f"{', '.join(targets)}; for other GPUs, build on the GPU itself with TensorRT 10.x/11.x"
        )


def ahead_of_time_target(flavour: Flavour, compute_capability: str, targets: tuple[str, ...]) -> BuildTarget:
    """The target of ``binseg build --compute-capability``.

    Raises:
        BackendError: a flavour that builds on the local GPU only (full TensorRT), or a
            capability it does not target.
    """
    if not flavour.builds_ahead_of_time:
        raise BackendError(
            f"{flavour} builds plans for the GPU of the machine it runs on only: build on the target without "
            "--compute-capability, or install TensorRT for RTX (tensorrt_rtx) to build ahead of time"
        )
    check_capability(flavour, compute_capability, targets, "asked for")
    return BuildTarget(flavour, AHEAD_OF_TIME, compute_capability)
