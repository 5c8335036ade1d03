"""Torch backend: the reference network itself, on CPU or CUDA.

It runs the checkpoint the manifest lists (after checking its sha256), with the ``fft``
frequency form, so it is also the yardstick the exported graphs are compared against.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from binseg_ros.backends.base import check_arrays
from binseg_ros.engines.manifest import Manifest
from binseg_ros.errors import ManifestError
from binseg_ros.hashing import sha256_file
from binseg_ros.model.checkpoint import load_checkpoint


class TorchBackend:
    name = "torch"

    def __init__(self, manifest: Manifest, device: str = "cpu") -> None:
        weights = manifest.root / manifest.weights.file
        if not weights.is_file() or sha256_file(weights) != manifest.weights.sha256:
            raise ManifestError(f"{manifest.path}: {manifest.weights.file} is missing or does not match its sha256")
        self.manifest = manifest
        self.device = torch.device(device)
        self.net = load_checkpoint(weights)[0].to(self.device)
        self.net.set_frequency_form("fft")

    def run(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        entry = self.manifest.entry(list(inputs))
        subset, arrays = check_arrays(inputs, entry.input_shapes(self.manifest.input_size))
        with torch.inference_mode():
            tensors = {m: torch.from_numpy(arrays[m]).to(self.device) for m in subset}
            probability = torch.sigmoid(self.net(tensors))
        return probability[0, 0].float().cpu().numpy()
