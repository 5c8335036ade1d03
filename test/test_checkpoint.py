"""Checkpoints: round trip, safe loading, clear errors."""

from __future__ import annotations

import pytest
import torch

from binseg_ros.errors import CheckpointError
from binseg_ros.model import BinSegNet, ModelConfig, load_checkpoint, save_checkpoint
from binseg_ros.model.normalization import Normalization


def test_round_trip_restores_config_weights_and_metadata(tmp_path):
    torch.manual_seed(2)
    config = ModelConfig(decoder_widths=(16, 16, 24, 24), normalization=Normalization(thermal_min_std=32.0))
    net = BinSegNet(config)
    path = save_checkpoint(net, tmp_path / "sub" / "w.pt", {"version": "1.2", "epochs": 3})
    loaded, metadata = load_checkpoint(path)
    assert loaded.config == config and not loaded.training
    assert metadata == {"version": "1.2", "epochs": 3}
    for (name, a), (_, b) in zip(net.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_missing_file_and_foreign_files_are_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="is not a binseg_ros checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="cannot be read safely"):
        load_checkpoint(tmp_path / "junk.pt")


class _Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickled_code_is_refused(tmp_path):
    """weights_only loading: a checkpoint carrying a callable is rejected, not executed."""
    path = tmp_path / "evil.pt"
    torch.save({"format": 1, "payload": _Payload()}, path)
    with pytest.raises(CheckpointError, match="cannot be read safely"):
        load_checkpoint(path)


def test_weights_that_do_not_fit_the_config(tmp_path):
    path = save_checkpoint(BinSegNet(), tmp_path / "w.pt")
    blob = torch.load(path, weights_only=True)
    blob["config"]["decoder_widths"] = [16, 16, 16, 16]
    torch.save(blob, path)
    with pytest.raises(CheckpointError, match="does not match its model config"):
        load_checkpoint(path)
