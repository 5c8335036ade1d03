"""The TensorRT plan cache: which serialized engine may be reused, and when it must be rebuilt.

A plan is only valid for the GPU model, compute capability and TensorRT flavour and version
that built it, at its precision, from exactly one ONNX file and, where the graph has plugin
nodes, with the plugin library that built it; a TensorRT-RTX plan built ahead of time for a
compute capability serves every GPU of that capability, since TensorRT-RTX compiles its
kernels for the actual GPU when it loads the plan. Each (subset, form, precision) has one slot
in the cache folder: ``<slot>.plan`` plus ``<slot>.json`` holding the :class:`PlanKey` it was
built for and the plan's sha256. A lookup returns the plan only when the key matches and the
bytes are intact; otherwise it logs why (which key fields changed, or that the file is
corrupt) and the caller rebuilds. Nothing here imports TensorRT, so the rules are tested on
any machine.

The timing cache is shared by all slots built on the same GPU and TensorRT flavour and
version: it records kernel timings, not graphs, so rebuilding another subset or precision
reuses it (TensorRT-RTX keeps none).

The cache of a model lives in :func:`default_plan_dir` unless a folder is given.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from binseg_ros.engines.manifest import Manifest
from binseg_ros.engines.tensorrt.rules import Precision, require_precision
from binseg_ros.engines.tensorrt.targets import AHEAD_OF_TIME, BuildTarget
from binseg_ros.errors import BackendError
from binseg_ros.modalities import Subset

LOG = logging.getLogger(__name__)
PLAN_CACHE_ENV = "BINSEG_PLAN_CACHE"


@dataclass(frozen=True)
class PlanKey:
    """Everything a serialized engine depends on besides the bytes of TensorRT itself."""

    gpu_name: str  # the GPU that built it, or AHEAD_OF_TIME (TensorRT-RTX, no GPU involved)
    compute_capability: str  # "8.7", "9.0", "11.0"
    tensorrt_flavour: str  # "tensorrt" | "tensorrt_rtx"
    tensorrt_version: str
    precision: Precision
    onnx_sha256: str  # of the graph file and its external weights, see model_digest
    # The sha256 of the plugin library that built a plan with plugin nodes (the kernel graphs),
    # None for a plan without any. Such a plan fixes the plugin's workspace size and holds no
    # plugin fields, so it runs correctly only with the kernels of the library that built it.
    # The default lets a record written before this field serve its plugin-free plan.
    plugin_sha256: str | None = None

    @classmethod
    def for_target(
        cls, target: BuildTarget, precision: Precision, onnx_sha256: str, plugin_sha256: str | None = None
    ) -> PlanKey:
        """The key of a plan built for ``target`` from one graph at one precision, with the
        plugin library ``plugin_sha256`` where the graph has plugin nodes."""
        flavour = target.flavour
        platform = (target.gpu_name, target.compute_capability, flavour.name, flavour.version)
        return cls(*platform, precision, onnx_sha256, plugin_sha256)

    @classmethod
    def from_record(cls, fields: dict[str, Any]) -> PlanKey:
        """The key a plan record on disk holds. The record is input from a file, so its
        precision is checked here; a key made in this process has a checked one already.

        Raises:
            BackendError: an unknown precision. TypeError: missing or unknown fields.
        """
        key = cls(**fields)
        require_precision(key.precision)
        return key

    def accepts(self, built_for: PlanKey) -> bool:
        """Whether a plan built for ``built_for`` may be used where this key was made: the same
        key, or one built ahead of time for this compute capability (and everything else equal)."""
        return built_for == self or (
            built_for.gpu_name == AHEAD_OF_TIME and dataclasses.replace(built_for, gpu_name=self.gpu_name) == self
        )

    def changes(self, other: PlanKey) -> list[str]:
        """``["tensorrt_version 10.3.0 -> 10.7.0", ...]``: the fields that differ from ``other``."""
        mine, theirs = dataclasses.asdict(self), dataclasses.asdict(other)
        return [f"{name} {theirs[name]} -> {mine[name]}" for name in mine if mine[name] != theirs[name]]


@dataclass(frozen=True)
class PlanCache:
    """A folder of plans, one slot per (subset, form, precision), plus the timing caches."""

    root: Path

    def plan_path(self, slot: str) -> Path:
        """``<root>/<slot>.plan``."""
        return self.root / f"{slot}.plan"

    def _record_path(self, slot: str) -> Path:
        """``<root>/<slot>.json``: the key the plan was built for and its sha256."""
        return self.root / f"{slot}.json"

    def timing_cache_path(self, key: PlanKey) -> Path:
        """``<root>/timing.<16 hex>.cache``, one per (GPU, compute capability, TensorRT flavour and version)."""
        platform = f"{key.gpu_name}|{key.compute_capability}|{key.tensorrt_flavour}|{key.tensorrt_version}"
        return self.root / f"timing.{hashlib.sha256(platform.encode()).hexdigest()[:16]}.cache"

    def load(self, slot: str, key: PlanKey) -> bytes | None:
        """The slot's plan if it was built for ``key`` and is intact, else ``None`` (logged)."""
        plan, record = self.plan_path(slot), self._record_path(slot)
        if not plan.is_file() or not record.is_file():
            LOG.info("no cached plan for %s: building", slot)
            return None
        try:
            stored = json.loads(record.read_text())
            built_for = PlanKey.from_record(stored["key"])
            expected_sha = str(stored["plan_sha256"])
        except (OSError, ValueError, KeyError, TypeError, BackendError) as error:
            LOG.warning("plan record %s is unreadable (%s): rebuilding %s", record, error, slot)
            return None
        if not key.accepts(built_for):
            LOG.warning(
                "cached plan %s was built for another target (%s): rebuilding", slot, "; ".join(key.changes(built_for))
            )
            return None
        data = plan.read_bytes()
        if hashlib.sha256(data).hexdigest() != expected_sha:
            LOG.warning("cached plan %s is corrupt (sha256 mismatch, %d bytes): rebuilding", plan, len(data))
            return None
        return data

    def store(self, slot: str, key: PlanKey, plan: bytes) -> Path:
        """Write the plan and its record atomically (a crash mid-write leaves the old slot or none)."""
        record = {"key": dataclasses.asdict(key), "plan_sha256": hashlib.sha256(plan).hexdigest()}
        write_atomic(self.plan_path(slot), plan)
        write_atomic(self._record_path(slot), json.dumps(record, indent=2).encode())
        return self.plan_path(slot)

    def invalidate(self, slot: str, reason: str) -> None:
        """Drop a slot whose plan TensorRT refused to deserialize, so the next load rebuilds it."""
        LOG.warning("dropping cached plan %s: %s", slot, reason)
        for path in (self.plan_path(slot), self._record_path(slot)):
            path.unlink(missing_ok=True)


def model_digest(manifest: Manifest, subset: Subset, form: str) -> str:
    """sha256 over a graph file's and its external data's sha256s.

    The graph alone is not enough: a re-export of retrained weights can leave every graph
    file byte-identical (same structure, same offsets into ``tensors.bin``).
    """
    graph = manifest.entry(subset).onnx[form].sha256
    return hashlib.sha256(f"{graph}:{manifest.tensors.sha256}".encode()).hexdigest()


def slot_name(subset_file_stem: str, precision: Precision) -> str:
    """``rgb_depth.kernel.fp16``: the ONNX file's stem (subset and form) and the precision."""
    return f"{subset_file_stem}.{precision}"


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a reader sees the old file or the new one, whole.

    The bytes are flushed to disk before the rename: a power cut on a robot must not leave a
    renamed but empty plan or timing cache behind.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(handle.name, path)


def default_plan_dir(manifest: Manifest) -> Path:
    """``$BINSEG_PLAN_CACHE/<model>``, default ``~/.cache/binseg_ros/plans/<model>``."""
    root = Path(os.environ.get(PLAN_CACHE_ENV, Path.home() / ".cache" / "binseg_ros" / "plans"))
    return root / manifest.model
