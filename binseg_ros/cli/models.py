"""``binseg export`` and ``binseg profile``: from weights to an engine folder, and what each
modality subset of the network costs.

Export writes one ONNX graph per subset and form plus the manifest the node, the benches and
``binseg build`` read; profile prints the parameter and GFLOP table that the README quotes.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from binseg_ros.cli.args import form_list, parse_size, subset_list

if TYPE_CHECKING:
    from binseg_ros.cli.args import Verbs

LOG = logging.getLogger("binseg")


def register(verbs: Verbs) -> None:
    """Add ``export``, ``quantize`` and ``profile``."""
    export = verbs.add_parser("export", help="export one ONNX graph per modality subset + manifest.yaml")
    export.add_argument("--checkpoint", type=Path, help="weights file (default: fresh untrained weights)")
    export.add_argument("--out", type=Path, default=Path("engines"), help="engines root; writes OUT/<model>/")
    export.add_argument(
        "--size", type=parse_size, default=(240, 320), help="static input HEIGHTxWIDTH (240x320 keeps CPU real-time)"
    )
    export.add_argument(
        "--forms",
        type=form_list,
        help="graph forms (default: all): matmul,fft,matmul-fp16 (any ONNX runtime), kernel (TensorRT plugin nodes)",
    )
    export.add_argument("--subsets", type=subset_list, help="comma list like rgb+depth,thermal (default: all 7)")
    export.add_argument("--seed", type=int, default=0, help="seed for untrained weights")
    export.add_argument("--quiet", action="store_true", help="no progress bar")
    export.set_defaults(func=cmd_export)

    quantize = verbs.add_parser("quantize", help="add int8 Q/DQ graphs (form matmul-int8) to an engine folder")
    quantize.add_argument("--engine-dir", type=Path, help="engine folder (default: the shipped model)")
    quantize.add_argument("--data", type=Path, required=True, help="dataset folder the calibration frames come from")
    quantize.add_argument("--split", type=Path, help="split file whose training ids calibrate (default: the dataset's)")
    quantize.add_argument("--frames", type=int, default=48, help="calibration frames, spread over the training ids")
    quantize.add_argument("--quiet", action="store_true", help="no progress bar")
    quantize.set_defaults(func=cmd_quantize)

    profile = verbs.add_parser("profile", help="parameters and GFLOPs per modality subset")
    profile.add_argument("--checkpoint", type=Path, help="weights file (default: the default architecture)")
    profile.add_argument("--size", type=parse_size, default=(480, 640), help="input HEIGHTxWIDTH")
    profile.set_defaults(func=cmd_profile)


@contextmanager
def _weights(checkpoint: Path | None, seed: int) -> Iterator[Path]:
    """``--checkpoint``, or (its default) freshly initialised weights in a scratch folder that
    is gone after the export, so untrained weights never land next to the engines."""
    if checkpoint is not None:
        yield checkpoint
        return
    import torch

    from binseg_ros.model import BinSegNet, save_checkpoint

    with tempfile.TemporaryDirectory() as scratch:
        torch.manual_seed(seed)
        untrained = save_checkpoint(BinSegNet(), Path(scratch) / "untrained.pt", {"version": "untrained"})
        LOG.warning("no --checkpoint given: exporting freshly initialised (untrained) weights, seed %d", seed)
        yield untrained


def cmd_export(args: argparse.Namespace) -> int:
    """Export the engine folder; print its manifest path and one line per graph."""
    from binseg_ros.engines.export import export_engine_folder
    from binseg_ros.forms import GRAPH_FORMS
    from binseg_ros.modalities import subset_name

    with _weights(args.checkpoint, args.seed) as checkpoint:
        manifest = export_engine_folder(
            checkpoint,
            args.out,
            args.size,
            forms=args.forms or GRAPH_FORMS,
            subsets=args.subsets,
            progress=not args.quiet,
        )
    print(f"wrote {manifest.path} ({len(manifest.subsets)} subsets: {', '.join(manifest.subsets)})")
    for entry in manifest.subsets.values():
        for form, ref in entry.onnx.items():
            print(f"  {subset_name(entry.subset):<20} {form:<7} {ref.file}")
    return 0


def cmd_quantize(args: argparse.Namespace) -> int:
    """Quantize every subset's matmul graph from training frames; print the forms now listed."""
    from binseg_ros.engines.locate import open_engine_folder
    from binseg_ros.engines.quantize import calibration_frames, quantize_engine_folder
    from binseg_ros.training.split import SPLITS, load_split

    manifest = open_engine_folder(args.engine_dir)
    split = load_split(args.split or SPLITS / f"{args.data.name}.yaml")
    frames = calibration_frames(args.data, split.train_ids(), manifest.input_size, args.frames)
    manifest = quantize_engine_folder(manifest, frames, progress=not args.quiet)
    forms = next(iter(manifest.subsets.values())).onnx
    print(f"{manifest.root}: {len(manifest.subsets)} subsets, forms {', '.join(forms)}")
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    """Print the markdown table of parameters and GFLOPs (both frequency forms) per subset."""
    from binseg_ros.modalities import all_subsets
    from binseg_ros.model import BinSegNet, load_checkpoint
    from binseg_ros.model.profile import count_subset

    net = load_checkpoint(args.checkpoint)[0] if args.checkpoint else BinSegNet().eval()
    print(f"| subset | params | GFLOPs fft form ({args.size[0]}x{args.size[1]}) | GFLOPs matmul form |")
    print("|---|---:|---:|---:|")
    for subset in all_subsets():
        fft, matmul = (count_subset(net, subset, args.size, form) for form in ("fft", "matmul"))
        print(f"| {fft.subset} | {fft.params:,} | {fft.gflops:.2f} | {matmul.gflops:.2f} |")
    return 0
