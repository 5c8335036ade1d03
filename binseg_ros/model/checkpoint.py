"""Weights files: config + state dict, loadable with ``torch.load(weights_only=True)``.

``weights_only=True`` means a checkpoint can only hold tensors and plain Python values, so
loading a file from elsewhere cannot execute code. The architecture is rebuilt from the
stored :class:`ModelConfig`, which also carries the input normalisation.
"""

from __future__ import annotations

from pathlib import Path

import torch

from binseg_ros.errors import CheckpointError
from binseg_ros.model.config import ModelConfig
from binseg_ros.model.network import BinSegNet

FORMAT_VERSION = 1


def save_checkpoint(net: BinSegNet, path: str | Path, metadata: dict[str, object] | None = None) -> Path:
    """Write ``net``'s config and weights; ``metadata`` holds plain values (epochs, metrics...)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    torch.save(
        {"format": FORMAT_VERSION, "config": net.config.to_dict(), "state_dict": state, "metadata": metadata or {}},
        path,
    )
    return path


def load_checkpoint(path: str | Path) -> tuple[BinSegNet, dict[str, object]]:
    """Rebuild the network from a checkpoint; returns it in eval mode, with its metadata.

    Raises:
        CheckpointError: the file is missing, not a checkpoint of this format, or its weights
            do not fit the stored config.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or unsafe pickles
        raise CheckpointError(f"checkpoint {path} cannot be read safely: {exc}") from exc
    if not isinstance(blob, dict) or blob.get("format") != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path} is not a binseg_ros checkpoint (format {FORMAT_VERSION})")
    try:
        net = BinSegNet(ModelConfig.from_dict(blob["config"]))
        net.load_state_dict(blob["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"checkpoint {path} does not match its model config: {exc}") from exc
    return net.eval(), dict(blob.get("metadata", {}))
