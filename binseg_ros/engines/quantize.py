"""``binseg quantize``: int8 graphs with explicit Q/DQ nodes, one per subset, in the engine folder.

Each subset's ``matmul`` graph is quantized statically by ONNX Runtime's quantization tool
(``quantize_static``, QDQ format): weights per output channel, activations per tensor, both
int8, the activation ranges calibrated on frames of the *training* split (never the held-out
frames the accuracy is measured on). ONNX Runtime's tool rather than NVIDIA Model Optimizer
because Model Optimizer's ONNX extra pins onnx and onnxruntime-gpu versions that conflict with
this package's; the QuantizeLinear/DequantizeLinear pairs it writes are the explicit
quantization TensorRT 10 builds at int8 and ONNX Runtime runs on the CPU.

What stays float, and why:

- only ``Conv`` is quantized: the input normaliser (thermal in raw counts, whole-image
  statistics), the frequency branch's DFT matmuls (sums over a whole plane, then ``x - low``
  cancels) and the softmax/sigmoid gates need the range and resolution int8 does not have;
- the first convolution of every encoder (it sees the normalised sensor directly) and the
  last one (the logits) keep their precision, as is usual for a network's edges;
- activation ranges are the 99.99th percentile of the calibration histogram, not the
  min/max, so a few extreme pixels do not waste the 256 levels (min/max lost 0.7 to 1.4 IoU
  points per subset on the held-out frames, the percentile at most 0.3).

The quantized graphs' tensors go into the folder's shared ``tensors.bin`` beside the others'
(the existing graphs and their tensors are unchanged), and the manifest lists them as the
``matmul-int8`` form.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
from tqdm import tqdm

from binseg_ros.core.preprocess import prepare_images
from binseg_ros.datasets import load_frame
from binseg_ros.engines.export import onnx_filename, share_tensors
from binseg_ros.engines.manifest import FileRef, Manifest, SubsetEntry
from binseg_ros.errors import InputError
from binseg_ros.forms import GraphForm
from binseg_ros.hashing import sha256_file
from binseg_ros.modalities import Subset

INT8_FORM: GraphForm = "matmul-int8"
SOURCE_FORM: GraphForm = "matmul"
QUANTIZED_OPS = ("Conv",)
CALIBRATION_PERCENTILE = 99.99
CALIBRATION_FRAMES = 48


def calibration_frames(
    data: Path, ids: Sequence[str], size: tuple[int, int], count: int = CALIBRATION_FRAMES
) -> list[dict[str, np.ndarray]]:
    """Network inputs of ``count`` frames spread evenly over ``ids`` (a training split's ids).

    Raises:
        InputError: fewer ids than frames asked for.
    """
    if count < 1 or len(ids) < count:
        raise InputError(f"calibration needs {count} frames and the split has {len(ids)} training ids")
    step = len(ids) // count
    return [prepare_images(load_frame(data, frame_id), size) for frame_id in list(ids)[::step][:count]]


class _Frames(CalibrationDataReader):
    """The calibration frames as ONNX Runtime's calibrator reads them: one feed per call."""

    def __init__(self, subset: Subset, frames: Sequence[dict[str, np.ndarray]]) -> None:
        self._feeds: Iterator[dict[str, np.ndarray]] = iter([{m: frame[m] for m in subset} for frame in frames])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)


def kept_float(model: onnx.ModelProto) -> list[str]:
    """The convolutions left unquantized: every encoder's stem and the network's last."""
    convs = [node for node in model.graph.node if node.op_type == "Conv"]
    stems = [node.name for node in convs if any(".stem." in name for name in node.input)]
    return [*stems, convs[-1].name]


def quantize_subset(manifest: Manifest, subset: Subset, frames: Sequence[dict[str, np.ndarray]], out: Path) -> Path:
    """Write ``subset``'s int8 Q/DQ graph to ``out`` (self-contained) from its ``matmul`` graph."""
    source = manifest.onnx_path(subset, SOURCE_FORM)
    quantize_static(
        str(source),
        str(out),
        _Frames(subset, frames),
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=list(QUANTIZED_OPS),
        per_channel=True,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=kept_float(onnx.load(str(source), load_external_data=False)),
        calibrate_method=CalibrationMethod.Percentile,
        extra_options={
            "WeightSymmetric": True,
            "ActivationSymmetric": False,
            "CalibPercentile": CALIBRATION_PERCENTILE,
        },
        calibration_providers=["CPUExecutionProvider"],
        use_external_data_format=False,
    )
    return out


def quantize_engine_folder(
    manifest: Manifest, frames: Sequence[dict[str, np.ndarray]], progress: bool = True
) -> Manifest:
    """Add the ``matmul-int8`` form of every subset to ``manifest``'s folder; the saved manifest.

    Every graph's tensors are then shared anew in the manifest's order, existing graphs first:
    they keep their offsets, so their files and the start of ``tensors.bin`` come out as they were.
    """
    root = manifest.root
    entries = list(manifest.subsets.values())
    existing = [ref.file for entry in entries for form, ref in entry.onnx.items() if form != INT8_FORM]
    for entry in tqdm(entries, desc="quantize", unit="graph", disable=not progress):
        quantize_subset(manifest, entry.subset, frames, root / onnx_filename(entry.subset, INT8_FORM))
    quantized = [onnx_filename(entry.subset, INT8_FORM) for entry in entries]
    tensors = share_tensors(root, existing + quantized)

    def listed(entry: SubsetEntry) -> SubsetEntry:  # every form's file with its sha256 now
        files = {form: ref.file for form, ref in entry.onnx.items()}
        files[INT8_FORM] = onnx_filename(entry.subset, INT8_FORM)
        return dataclasses.replace(entry, onnx={form: FileRef(f, sha256_file(root / f)) for form, f in files.items()})

    rehashed = {name: listed(entry) for name, entry in manifest.subsets.items()}
    updated = dataclasses.replace(manifest, tensors=FileRef(tensors.name, sha256_file(tensors)), subsets=rehashed)
    updated.save()
    return updated
