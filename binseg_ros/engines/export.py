"""``binseg export``: one static-shape ONNX graph per modality subset, plus the manifest.

Each graph is exported with the dynamo exporter, constant-folded (the DFT matrices and
spectral gains of the matmul form become initialisers, so runtimes see plain MatMuls), and
checked with ``onnx.checker`` (``full_check=True``) before it is listed in the manifest.
The ``kernel`` form carries the frequency branch as TensorRT plugin nodes
(:mod:`binseg_ros.engines.kernel_export`); only ``binseg build`` consumes it. The ``-fp16``
forms come from a copy of the network in fp16 (:meth:`BinSegNet.to_half`): fp16 weights and
activations, fp32 inputs, output and the layers that need it, as explicit casts in the graph.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

import onnx
import onnxscript.optimizer
import torch
from onnx.external_data_helper import set_external_data
from tqdm import tqdm

from binseg_ros.engines.kernel_export import TRANSLATION_TABLE
from binseg_ros.engines.manifest import OUTPUT_NAME, FileRef, Manifest, SubsetEntry
from binseg_ros.errors import InputError
from binseg_ros.forms import GRAPH_FORMS, GraphForm, frequency_form, is_half
from binseg_ros.hashing import sha256_file
from binseg_ros.modalities import CHANNELS, Subset, all_subsets, parse_subset, subset_name
from binseg_ros.model.checkpoint import load_checkpoint
from binseg_ros.model.network import MIN_SIZE, BinSegNet, SubsetGraph

LOG = logging.getLogger(__name__)
OPSET = 20
"""Opset 20 is the first with the DFT-20 the ``fft`` form needs; TensorRT 10.x parses it."""

WEIGHTS_NAME = "weights.pt"
TENSORS_NAME = "tensors.bin"
CARD_NAME = "model_card.md"  # written by `binseg train`, see training/card.py
_EMBED_BELOW = 1024  # bytes: tiny tensors stay in the graph file
_ALIGN = 64
# Constant folding limits (elements): large enough to fold the 160×81 / 120×120 DFT matrices
# and the per-channel spectral gains of the biggest plane.
_FOLD_INPUT_LIMIT = 1 << 21
_FOLD_OUTPUT_LIMIT = 1 << 23


def check_size(size: Sequence[int]) -> tuple[int, int]:
    """Validate an ``(height, width)`` input size for export."""
    if len(size) != 2 or min(size) < MIN_SIZE:
        raise InputError(f"input size must be (height, width) with both ≥ {MIN_SIZE}, got {tuple(size)}")
    return int(size[0]), int(size[1])


def onnx_filename(subset: Subset, form: GraphForm) -> str:
    """``rgb_depth.matmul.onnx``: file names without ``+`` for tools that dislike it."""
    return f"{'_'.join(subset)}.{form}.onnx"


def export_subset_onnx(
    net: BinSegNet, subset: Subset | str, size: Sequence[int], form: GraphForm, path: str | Path
) -> Path:
    """Export one subset in one form to a self-contained, checked ONNX file.

    ``net`` is in the form's precision: fp32, or fp16 (:meth:`BinSegNet.to_half`) for a
    ``-fp16`` form; the graph's inputs and output are fp32 either way.
    """
    subset = parse_subset(subset)
    height, width = check_size(size)
    if form not in GRAPH_FORMS:
        raise ValueError(f"unknown graph form {form!r}; expected one of {GRAPH_FORMS}")
    if (net.compute_dtype() == torch.float16) != is_half(form):
        raise ValueError(f"the {form!r} graph needs the network in {'fp16' if is_half(form) else 'fp32'}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    net.set_frequency_form(frequency_form(form))
    graph = SubsetGraph(net, subset).eval()
    example = tuple(torch.zeros(1, CHANNELS[m], height, width) for m in subset)
    with torch.no_grad():
        program = torch.onnx.export(
            graph,
            example,
            input_names=list(subset),
            output_names=[OUTPUT_NAME],
            opset_version=OPSET,
            dynamo=True,
            verbose=False,
            custom_translation_table=TRANSLATION_TABLE,  # type: ignore[arg-type]  # torch types keys as plain callables
        )
    assert program is not None  # dynamo=True always returns an ONNXProgram
    onnxscript.optimizer.optimize(
        program.model, input_size_limit=_FOLD_INPUT_LIMIT, output_size_limit=_FOLD_OUTPUT_LIMIT
    )
    # The exporter annotates every node with Python stack traces (absolute paths of this
    # machine): two thirds of the graph file, and it would make the sha256 machine-dependent.
    for node in program.model.graph.all_nodes():
        node.metadata_props.clear()
    program.save(path, external_data=False)
    onnx.checker.check_model(str(path), full_check=True)
    return path


def share_tensors(root: Path, graphs: Sequence[str]) -> Path:
    """Move the graphs' initialisers into one external-data file, each distinct tensor once.

    The 7 subsets x 2 forms share most weights (the decoder is in every graph, each encoder
    in four), so one deduplicated ``tensors.bin`` plus small graph files is a fraction of
    14 self-contained files — small enough to ship in the repository. ONNX Runtime, the
    TensorRT parser and ``onnx.checker`` read external data relative to the graph file.

    A graph may already keep its tensors in ``tensors.bin`` (a folder gaining graphs, see
    :mod:`binseg_ros.engines.quantize`): the new file is written beside the old one, which every
    graph is read from, and replaces it at the end. Graphs shared before in the same order keep
    their offsets, so their files come out as they were.
    """
    blob_path = root / TENSORS_NAME
    partial = blob_path.with_name(f".{TENSORS_NAME}.partial")
    stored: dict[tuple[str, int, tuple[int, ...]], tuple[int, int]] = {}
    with partial.open("wb") as blob:
        for name in graphs:
            model = onnx.load(root / name)
            for tensor in model.graph.initializer:
                raw = tensor.raw_data  # the exporter writes raw_data; typed-field tensors stay embedded
                if len(raw) < _EMBED_BELOW:
                    continue
                key = (hashlib.sha256(raw).hexdigest(), tensor.data_type, tuple(tensor.dims))
                if key not in stored:
                    blob.write(b"\0" * (-blob.tell() % _ALIGN))
                    stored[key] = (blob.tell(), len(raw))
                    blob.write(raw)
                offset, length = stored[key]
                set_external_data(tensor, TENSORS_NAME, offset, length)
                tensor.ClearField("raw_data")
                tensor.data_location = onnx.TensorProto.EXTERNAL
            onnx.save(model, root / name)
    partial.replace(blob_path)
    for name in graphs:
        onnx.checker.check_model(str(root / name), full_check=True)
    return blob_path


def export_engine_folder(
    checkpoint: str | Path,
    out_root: str | Path,
    size: Sequence[int],
    forms: Iterable[GraphForm] = GRAPH_FORMS,
    subsets: Iterable[Subset | str] | None = None,
    progress: bool = True,
) -> Manifest:
    """Export every subset × form of a checkpoint into ``out_root/<model name>/``.

    The checkpoint is copied into the folder as ``weights.pt`` so the torch backend and the
    manifest's sha256 refer to the same file the graphs came from; the training run's model
    card, when there is one next to the checkpoint, comes along as ``model_card.md``.
    """
    net, metadata = load_checkpoint(checkpoint)
    size = check_size(size)
    forms = tuple(forms)
    chosen = [parse_subset(s) for s in subsets] if subsets is not None else all_subsets()
    root = Path(out_root) / net.config.name
    root.mkdir(parents=True, exist_ok=True)
    weights = root / WEIGHTS_NAME
    if Path(checkpoint).resolve() != weights.resolve():
        shutil.copyfile(checkpoint, weights)
        card = Path(checkpoint).parent / CARD_NAME
        if card.is_file():
            shutil.copyfile(card, root / CARD_NAME)

    half = copy.deepcopy(net).to_half() if any(is_half(form) for form in forms) else None
    jobs = [(subset, form) for subset in chosen for form in forms]
    for subset, form in tqdm(jobs, desc="export", unit="graph", disable=not progress):
        source = half if is_half(form) and half is not None else net
        path = export_subset_onnx(source, subset, size, form, root / onnx_filename(subset, form))
        LOG.info("exported %s (%s) to %s", subset_name(subset), form, path)
    tensors = share_tensors(root, [onnx_filename(subset, form) for subset, form in jobs])
    entries: dict[str, SubsetEntry] = {}
    for subset, form in jobs:
        name = onnx_filename(subset, form)
        entry = entries.setdefault(subset_name(subset), SubsetEntry(subset, {}))
        entry.onnx[form] = FileRef(name, sha256_file(root / name))

    manifest = Manifest(
        root=root,
        model=net.config.name,
        version=str(metadata.get("version", "untrained")),
        weights=FileRef(WEIGHTS_NAME, sha256_file(weights)),
        tensors=FileRef(TENSORS_NAME, sha256_file(tensors)),
        input_size=size,
        normalization=net.config.normalization.to_dict(),
        opset=OPSET,
        subsets=entries,
    )
    manifest.save()
    return manifest
