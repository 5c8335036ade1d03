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
from binseg_ros.modalities import CHANNELS, MODALITIES
from binseg_ros.model.checkpoint import load_checkpoint
from binseg_ros.model.network import BinSegNet


class TorchBackend:
    """Runs a :class:`BinSegNet` at a fixed input size (like the static-shape engines)."""

    name = "torch"

    def __init__(self, net: BinSegNet, input_size: tuple[int, int], device: str = "cpu") -> None:
        self.input_size = input_size
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()
        self.net.set_frequency_form("fft")

    @classmethod
    def from_manifest(cls, manifest: Manifest, device: str = "cpu") -> TorchBackend:
        """The checkpoint an engine folder was exported from, after checking its sha256."""
        weights = manifest.root / manifest.weights.file
        if not weights.is_file() or sha256_file(weights) != manifest.weights.sha256:
            raise ManifestError(f"{manifest.path}: {manifest.weights.file} is missing or does not match its sha256")
        return cls(load_checkpoint(weights)[0], manifest.input_size, device)

    def run(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        height, width = self.input_size
        expected = {m: (1, CHANNELS[m], height, width) for m in MODALITIES}
        subset, arrays = check_arrays(inputs, expected)
        with torch.inference_mode():
            tensors = {m: torch.from_numpy(arrays[m]).to(self.device) for m in subset}
            probability = torch.sigmoid(self.net(tensors))
        return probability[0, 0].float().cpu().numpy()
