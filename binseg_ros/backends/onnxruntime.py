"""ONNX Runtime backend: the CPU default, and the reference every other runtime is compared to."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnxruntime as ort

from binseg_ros.core.backend import check_arrays, input_subset
from binseg_ros.engines.manifest import OUTPUT_NAME, Manifest
from binseg_ros.errors import BackendError
from binseg_ros.forms import PORTABLE_FORMS
from binseg_ros.modalities import Subset, subset_name


class OnnxRuntimeBackend:
    """One ``InferenceSession`` per subset, created on first use and kept.

    Sessions are lazy because a robot typically runs one subset for hours and switches only
    when a sensor drops out; creating all seven up front would cost start-up time and memory.
    ``form`` picks the frequency-branch graph (``matmul`` runs on every ONNX Runtime build).
    """

    name = "onnxruntime"

    def __init__(self, manifest: Manifest, form: str = "matmul", intra_op_threads: int = 0) -> None:
        if form not in PORTABLE_FORMS:
            raise BackendError(
                f"the {form!r} graphs hold TensorRT plugin nodes; ONNX Runtime runs {' or '.join(PORTABLE_FORMS)}"
            )
        self.manifest = manifest
        self.form = form
        self._options = ort.SessionOptions()
        self._options.intra_op_num_threads = intra_op_threads
        self._options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # No busy-waiting between runs: on a robot CPU the spinning threads starve the
        # subscription callbacks (and every other process) for no latency gain at our rates.
        self._options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # No per-session arena: it grows by doubling regions and never gives one back, so the one
        # allocation its free chunks cannot fit raises a long-running node's memory for good (a
        # lasting 5-6 MiB step an hour in the soak). Plain malloc reuses what each run frees, at
        # the same latency.
        self._options.enable_cpu_mem_arena = False
        self._sessions: dict[Subset, ort.InferenceSession] = {}

    def session(self, subset: Subset) -> ort.InferenceSession:
        """The (cached) session for a subset; raises ManifestError if the folder lacks it."""
        if subset not in self._sessions:
            path = self.manifest.onnx_path(subset, self.form)
            self._sessions[subset] = ort.InferenceSession(str(path), self._options, providers=["CPUExecutionProvider"])
        return self._sessions[subset]

    def run(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        subset = input_subset(inputs)
        arrays = check_arrays(subset, inputs, self.manifest.entry(subset).input_shapes(self.manifest.input_size))
        (probability,) = self.session(subset).run([OUTPUT_NAME], arrays)
        return probability[0, 0]

    def __repr__(self) -> str:
        loaded = ", ".join(subset_name(s) for s in self._sessions) or "none"
        return f"OnnxRuntimeBackend({self.manifest.root}, form={self.form}, loaded={loaded})"
