"""``binseg``: one entry point, one verb per job (export, profile, bench, ...)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from binseg_ros.errors import BinsegError

LOG = logging.getLogger("binseg")


def parse_size(text: str) -> tuple[int, int]:
    """``480x640`` → ``(480, 640)`` (height × width, as in the manifest)."""
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like HEIGHTxWIDTH (e.g. 480x640), got {text!r}") from None
    return height, width


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def cmd_export(args: argparse.Namespace) -> int:
    from binseg_ros.engines.export import export_engine_folder
    from binseg_ros.modalities import subset_name

    checkpoint = args.checkpoint
    if checkpoint is None:
        import torch

        from binseg_ros.model import BinSegNet, save_checkpoint

        torch.manual_seed(args.seed)
        checkpoint = save_checkpoint(BinSegNet(), Path(args.out) / "untrained.pt", {"version": "untrained"})
        LOG.warning("no --checkpoint given: exporting freshly initialised (untrained) weights, seed %d", args.seed)
    manifest = export_engine_folder(
        checkpoint, args.out, args.size, forms=args.forms, subsets=args.subsets, progress=not args.quiet
    )
    print(f"wrote {manifest.path} ({len(manifest.subsets)} subsets: {', '.join(manifest.subsets)})")
    for name, entry in manifest.subsets.items():
        for form, ref in entry.onnx.items():
            print(f"  {subset_name(entry.subset):<20} {form:<7} {ref.file}")
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
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


def cmd_bench_model(args: argparse.Namespace) -> int:
    from binseg_ros.bench.model import run_model_bench

    return run_model_bench(args.engines, args.sizes, args.runs, args.warmup, args.checkpoint)


def cmd_bench_node(args: argparse.Namespace) -> int:
    from binseg_ros.bench.node import run_node_bench
    from binseg_ros.engines.locate import locate_engine_dir

    return run_node_bench(locate_engine_dir(args.engine_dir), args.runs, args.count, args.rate)


def cmd_train(args: argparse.Namespace) -> int:
    from binseg_ros.training.loop import TrainConfig, train

    config = TrainConfig(
        data_root=str(args.data), split_file=str(args.split), out_dir=str(args.out), size=args.size,
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, modality_dropout=not args.no_modality_dropout,
        consistency_weight=args.consistency_weight, seed=args.seed, device=args.device, workers=args.workers,
        limit=args.limit,
    )
    model = train(config, resume=not args.restart, stop_after=args.stop_after)
    print(f"checkpoint: {model}" if model else f"stopped; resume with the same command (state in {args.out})")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    import json

    from binseg_ros.backends.torch import TorchBackend
    from binseg_ros.datasets import load_frame
    from binseg_ros.model import load_checkpoint
    from binseg_ros.training.evaluate import format_table, robustness_table
    from binseg_ros.training.split import load_split

    tables = {}
    ids = load_split(args.split).held_out_ids()
    frames = [load_frame(args.data, frame_id) for frame_id in ids]
    for checkpoint in args.checkpoint:
        net, metadata = load_checkpoint(checkpoint)
        name = str(metadata.get("version", checkpoint.stem))
        tables[name] = robustness_table(TorchBackend(net, args.size, args.device), args.size, frames)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "robustness.json").write_text(json.dumps(tables, indent=2))
    text = format_table(tables)
    (args.out / "robustness.md").write_text(text + "\n")
    print(f"{len(ids)} held-out frames from {args.split}\n{text}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from binseg_ros.demo import run_demo

    return run_demo(args.engine_dir, args.out, args.rate, args.passes, args.cache)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="binseg", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    export = verbs.add_parser("export", help="export one ONNX graph per modality subset + manifest.yaml")
    export.add_argument("--checkpoint", type=Path, help="weights file (default: fresh untrained weights)")
    export.add_argument("--out", type=Path, default=Path("engines"), help="engines root; writes OUT/<model>/")
    export.add_argument(
        "--size", type=parse_size, default=(240, 320), help="static input HEIGHTxWIDTH (240x320 keeps CPU real-time)"
    )
    export.add_argument("--forms", type=_csv, default=["matmul", "fft"], help="frequency forms: matmul,fft")
    export.add_argument("--subsets", type=_csv, help="comma list like rgb+depth,thermal (default: all 7)")
    export.add_argument("--seed", type=int, default=0, help="seed for untrained weights")
    export.add_argument("--quiet", action="store_true", help="no progress bar")
    export.set_defaults(func=cmd_export)

    profile = verbs.add_parser("profile", help="parameters and GFLOPs per modality subset")
    profile.add_argument("--checkpoint", type=Path, help="weights file (default: the default architecture)")
    profile.add_argument("--size", type=parse_size, default=(480, 640), help="input HEIGHTxWIDTH")
    profile.set_defaults(func=cmd_profile)

    from binseg_ros.training.split import SPLITS

    train = verbs.add_parser("train", help="train on a registered RGB/depth/thermal folder (MM5 layout)")
    train.add_argument("--data", type=Path, required=True, help="dataset root (RGB/ Depth/ Thermal/ labels)")
    train.add_argument("--split", type=Path, default=SPLITS / "mm5.yaml", help="split file (scene groups)")
    train.add_argument("--out", type=Path, default=Path("runs/balanced"), help="run folder (log, state, model)")
    train.add_argument("--size", type=parse_size, default=(240, 320), help="training HEIGHTxWIDTH")
    train.add_argument("--epochs", type=int, default=40)
    train.add_argument("--batch-size", type=int, default=8)
    train.add_argument("--lr", type=float, default=2e-3)
    train.add_argument("--no-modality-dropout", action="store_true", help="the baseline: full-modal only")
    train.add_argument("--consistency-weight", type=float, default=0.5)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--device", default="auto", help="auto | cpu | cuda")
    train.add_argument("--workers", type=int, default=0, help="DataLoader workers")
    train.add_argument("--limit", type=int, default=0, help="use only the first N training ids (smoke runs)")
    train.add_argument("--stop-after", type=int, default=0, help="end this run after N epochs (resume later)")
    train.add_argument("--restart", action="store_true", help="ignore saved state in --out")
    train.set_defaults(func=cmd_train)

    evaluate = verbs.add_parser("evaluate", help="robustness table: every modality subset on held-out frames")
    evaluate.add_argument("--checkpoint", type=Path, nargs="+", required=True, help="one or more weights files")
    evaluate.add_argument("--data", type=Path, required=True, help="dataset root (MM5 layout)")
    evaluate.add_argument("--split", type=Path, default=SPLITS / "mm5.yaml", help="split file; held-out ids are used")
    evaluate.add_argument("--size", type=parse_size, default=(240, 320), help="network input HEIGHTxWIDTH")
    evaluate.add_argument("--device", default="cpu")
    evaluate.add_argument("--out", type=Path, default=Path("runs/evaluation"), help="robustness.md / .json here")
    evaluate.set_defaults(func=cmd_evaluate)

    demo = verbs.add_parser("demo", help="run segment_node on the shipped sample, then with thermal cut off")
    demo.add_argument("--engine-dir", type=Path, help="engine folder (default: the installed model)")
    demo.add_argument("--out", type=Path, default=Path("demo_out"), help="where the masks are written")
    demo.add_argument("--rate", type=float, default=10.0, help="camera rate in Hz")
    demo.add_argument("--passes", type=int, default=5, help="times each phase cycles through the sample")
    demo.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "binseg_ros" / "engines",
                      help="where untrained engines are exported when no trained model is installed")
    demo.set_defaults(func=cmd_demo)

    bench = verbs.add_parser("bench", help="benchmarks (latency ratios against a baseline in the same run)")
    bench_verbs = bench.add_subparsers(dest="bench", required=True, metavar="BENCH")
    model = bench_verbs.add_parser("model", help="ONNX Runtime CPU latency per subset vs torch eager")
    model.add_argument("--engines", type=Path, default=Path("build/bench-engines"), help="scratch engines root")
    model.add_argument("--checkpoint", type=Path, help="weights file (default: fresh untrained weights)")
    model.add_argument("--sizes", type=parse_size, nargs="+", default=[(480, 640), (240, 320)])
    model.add_argument("--runs", type=int, default=20, help="timed runs per subset (median reported)")
    model.add_argument("--warmup", type=int, default=3)
    model.set_defaults(func=cmd_bench_model)
    node = bench_verbs.add_parser("node", help="segment_node overhead and latency vs a naive baseline node")
    node.add_argument("--engine-dir", type=Path, help="engine folder (default: the installed model)")
    node.add_argument("--runs", type=int, default=200, help="timed runs per stage (median reported)")
    node.add_argument("--count", type=int, default=100, help="frame sets played end to end")
    node.add_argument("--rate", type=float, default=10.0, help="camera rate in Hz for the end-to-end part")
    node.set_defaults(func=cmd_bench_node)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Our own progress at INFO; other libraries (onnxscript's optimizer is chatty) only warn.
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name in ("binseg", "binseg_ros"):
        logging.getLogger(name).setLevel(logging.DEBUG if args.verbose else logging.INFO)
    try:
        return int(args.func(args))
    except BinsegError as exc:
        print(f"binseg {args.verb}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
