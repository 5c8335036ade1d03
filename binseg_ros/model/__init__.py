"""The network in PyTorch: the reference for every exported or compiled form of it."""

from __future__ import annotations

from binseg_ros.model.checkpoint import load_checkpoint, save_checkpoint
from binseg_ros.model.config import ModelConfig
from binseg_ros.model.network import BinSegNet, SubsetGraph

__all__ = ["BinSegNet", "ModelConfig", "SubsetGraph", "load_checkpoint", "save_checkpoint"]
