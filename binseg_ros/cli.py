"""``binseg``: one entry point, one verb per job (export, profile, bench, ...)."""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
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


def _add_dataset_args(parser: argparse.ArgumentParser) -> None:
    """Folder layout and label mapping, for MM5 (the defaults) or a user's own data."""
    parser.add_argument("--folders", type=_csv, default=[],
                        help="folder names, e.g. rgb=color,depth=depth,thermal=ir,labels=masks (default: MM5's)")
    parser.add_argument("--depth-scale", type=float, help="metres per depth count (default 0.001: uint16 mm)")
    parser.add_argument("--suffix", help="image file suffix (default .png)")
    parser.add_argument("--positive-labels", type=_csv, default=[],
                        help="label ids that are foreground, e.g. 3,7 (default: every id > 0)")


def _add_bag_args(parser: argparse.ArgumentParser) -> None:
    """What a bag run needs beyond the bag: engines, backend, topics, ground truth, sync."""
    from binseg_ros.sync import SyncConfig

    parser.add_argument("--engine-dir", type=Path, help="engine folder (default: the installed model)")
    parser.add_argument("--backend", default="onnxruntime", help="onnxruntime | torch")
    parser.add_argument("--form", default="matmul", help="ONNX graph form: matmul | fft")
    parser.add_argument("--topics", type=_kv, default={}, help="image topics, e.g. rgb=/cam/color (default /<m>/image)")
    parser.add_argument("--gt-topic", default="/ground_truth/mask", help="ground-truth mask topic in the bag (mono8)")
    parser.add_argument("--gt-dir", type=Path, help="ground truth as PNGs named <stamp_ns>.png instead of a topic")
    parser.add_argument("--slop", type=float, default=SyncConfig.slop, help="as the node's parameter")
    parser.add_argument("--modality-timeout", type=float, default=SyncConfig.modality_timeout,
                        help="as the node's parameter")


def _layout(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from dataclasses import replace

    from binseg_ros.datasets import FolderLayout

    fields: dict[str, object] = {}
    for item in args.folders:
        key, _, value = item.partition("=")
        if key not in ("rgb", "depth", "thermal", "labels") or not value:
            raise BinsegError(f"--folders entry {item!r}: expected rgb=, depth=, thermal= or labels=NAME")
        fields[key] = value
    if args.depth_scale is not None:
        fields["depth_scale_m"] = args.depth_scale
    if args.suffix is not None:
        fields["suffix"] = args.suffix
    return replace(FolderLayout(), **fields)


def _labels(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from binseg_ros.datasets import LabelMap

    try:
        return LabelMap(frozenset(int(v) for v in args.positive_labels) or None)
    except ValueError as exc:
        raise BinsegError(f"--positive-labels must be integers, got {args.positive_labels}") from exc


def cmd_export(args: argparse.Namespace) -> int:
    from binseg_ros.engines.export import export_engine_folder
    from binseg_ros.modalities import subset_name
    from binseg_ros.forms import FREQUENCY_FORMS

    with tempfile.TemporaryDirectory() as scratch:
        checkpoint = args.checkpoint
        if checkpoint is None:
            import torch

            from binseg_ros.model import BinSegNet, save_checkpoint

            torch.manual_seed(args.seed)
            checkpoint = save_checkpoint(BinSegNet(), Path(scratch) / "untrained.pt", {"version": "untrained"})
            LOG.warning("no --checkpoint given: exporting freshly initialised (untrained) weights, seed %d", args.seed)
        manifest = export_engine_folder(
            checkpoint,
            args.out,
            args.size,
            forms=args.forms or FREQUENCY_FORMS,
            subsets=args.subsets,
            progress=not args.quiet,
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


def cmd_bench_frequency(args: argparse.Namespace) -> int:
    from binseg_ros.bench.frequency import run_frequency_bench

    return run_frequency_bench(args.runs, args.warmup, args.channels)


def cmd_bench_gpu_network(args: argparse.Namespace) -> int:
    from binseg_ros.bench.gpu_network import run_gpu_network_bench

    return run_gpu_network_bench(args.checkpoint, args.size, args.runs, args.warmup)


def cmd_build(args: argparse.Namespace) -> int:
    from binseg_ros.engines.locate import locate_engine_dir
    from binseg_ros.engines.tensorrt_build import run_build

    return run_build(locate_engine_dir(args.engine_dir), args.precision, args.cache, args.subsets, args.plugin_library)


def cmd_train(args: argparse.Namespace) -> int:
    from binseg_ros.training.loop import TrainConfig, train

    config = TrainConfig(
        data_root=str(args.data), split_file=str(args.split), out_dir=str(args.out), size=args.size,
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, modality_dropout=not args.no_modality_dropout,
        consistency_weight=args.consistency_weight, seed=args.seed, device=args.device, workers=args.workers,
        limit=args.limit, layout=_layout(args), labels=_labels(args),
    )
    model = train(config, resume=not args.restart, stop_after=args.stop_after)
    print(f"checkpoint: {model}" if model else f"stopped; resume with the same command (state in {args.out})")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    if args.bag is not None:
        return cmd_evaluate_bag(args)
    if not args.checkpoint or args.data is None:
        raise BinsegError("evaluate needs --bag B, or --checkpoint and --data for the held-out robustness table")
    import json

    from binseg_ros.backends.torch import TorchBackend
    from binseg_ros.datasets import load_frame
    from binseg_ros.model import load_checkpoint
    from binseg_ros.training.card import CARD_NAME, add_evaluation
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
    for checkpoint in args.checkpoint:
        card = checkpoint.parent / CARD_NAME
        if card.is_file():
            add_evaluation(card, text, len(ids), args.split)
            print(f"added the table to {card}")
    print(f"{len(ids)} held-out frames from {args.split}\n{text}")
    return 0


def _kv(text: str) -> dict[str, str]:
    pairs = {}
    for item in _csv(text):
        key, _, value = item.partition("=")
        if not value:
            raise argparse.ArgumentTypeError(f"expected KEY=VALUE pairs, got {item!r}")
        pairs[key] = value
    return pairs


def cmd_make_bag(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from binseg_ros.bags.make import DEFAULT_CLOCKS, DEFAULT_TOPICS, Dropout, MakeBagConfig, make_bag
    from binseg_ros.datasets import list_ids
    from binseg_ros.training.split import load_split

    layout = _layout(args)
    if args.frames == "all":
        ids = list_ids(args.data, layout)
    else:
        split = load_split(args.split)
        ids = split.held_out_ids() if args.frames == "held-out" else split.train_ids()
    ids = ids[: args.limit or None]
    clocks = dict(DEFAULT_CLOCKS)
    for modality, rate in args.rates.items():
        if modality not in clocks:
            raise BinsegError(f"--rates: unknown modality {modality!r}")
        clocks[modality] = replace(clocks[modality], rate_hz=float(rate))
    config = MakeBagConfig(
        hold_s=args.hold, clocks=clocks, dropouts=tuple(Dropout.parse(d) for d in args.dropout),
        drop_probability=args.drop_probability, size=args.size, topics={**DEFAULT_TOPICS, **args.topics},
        gt_topic=args.gt_topic, storage=args.storage, seed=args.seed,
    )
    summary = make_bag(args.data, ids, args.out, config, layout, _labels(args))
    print(f"wrote {summary.path} ({args.storage}): {summary.frames} frames, {summary.duration_s:.1f} s")
    for topic, count in summary.written.items():
        print(f"  {topic:<24} {count} messages")
    if summary.silenced or summary.dropped:
        print(f"  silenced by dropouts: {summary.silenced or 'none'}; random drops: {summary.dropped or 'none'}")
    return 0


def _bag_truth(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from binseg_ros.bags.groundtruth import GroundTruth

    return GroundTruth.from_folder(args.gt_dir) if args.gt_dir else GroundTruth.from_topic(args.bag, args.gt_topic)


def _bag_sync(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from binseg_ros.sync import SyncConfig

    return SyncConfig(slop=args.slop, modality_timeout=args.modality_timeout)


def _bag_topics(args: argparse.Namespace) -> dict[str, str]:
    from binseg_ros.bags.make import DEFAULT_TOPICS

    return {**DEFAULT_TOPICS, **args.topics}


def cmd_evaluate_bag(args: argparse.Namespace) -> int:
    from binseg_ros.bags.evaluate import BagEvaluator
    from binseg_ros.bags.report import write_report
    from binseg_ros.engines.locate import locate_engine_dir

    evaluator = BagEvaluator.for_engines(locate_engine_dir(args.engine_dir), args.backend, args.form, _bag_sync(args),
                                         _bag_topics(args), keep_predictions=args.save_predictions)
    evaluation = evaluator.run(args.bag, _bag_truth(args))
    report = write_report(evaluation, args.out, f"Bag evaluation: {args.bag.name}")
    overall = evaluation.overall()
    print(f"{evaluation.masks} masks from {sum(evaluation.frames_in.values())} images in {evaluation.wall_s:.1f} s; "
          f"IoU {overall['IoU']:.3f}, S {overall['S']:.3f}, MAE {overall['MAE']:.4f}; report: {report}")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from binseg_ros.ros.replay import ReplayOptions, run_replay

    options = ReplayOptions(
        bag=args.bag, out=args.out, engine_dir=args.engine_dir, backend=args.backend, form=args.form,
        topics=_bag_topics(args), sync=_bag_sync(args), rate=args.rate, node_running=args.node_running, node_name=args.node_name,
    )
    report = run_replay(options, _bag_truth(args))
    print(report.read_text().split("\n\n| run")[0] + f"\nreport: {report}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from binseg_ros.demo import run_demo

    return run_demo(args.engine_dir, args.out, args.rate, args.passes)


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
    export.add_argument(
        "--forms",
        type=_csv,
        help="frequency forms (default: all): matmul,fft (any ONNX runtime), kernel (TensorRT plugin nodes)",
    )
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
    _add_dataset_args(train)
    train.set_defaults(func=cmd_train)

    evaluate = verbs.add_parser(
        "evaluate", help="accuracy, robustness and latency: over a bag (--bag), or per subset on held-out frames"
    )
    evaluate.add_argument("--bag", type=Path, help="rosbag2 folder (sqlite3 or mcap): run the node's pipeline offline")
    evaluate.add_argument("--checkpoint", type=Path, nargs="+", help="dataset mode: one or more weights files")
    evaluate.add_argument("--data", type=Path, help="dataset mode: dataset root (MM5 layout)")
    evaluate.add_argument("--split", type=Path, default=SPLITS / "mm5.yaml", help="split file; held-out ids are used")
    evaluate.add_argument("--size", type=parse_size, default=(240, 320), help="dataset mode: network input HEIGHTxWIDTH")
    evaluate.add_argument("--device", default="cpu")
    evaluate.add_argument("--out", type=Path, default=Path("runs/evaluation"), help="report / robustness files here")
    evaluate.add_argument("--save-predictions", action="store_true",
                          help="bag mode: write each probability as OUT/predictions/<stamp_ns>.png (uint8)")
    _add_bag_args(evaluate)
    evaluate.set_defaults(func=cmd_evaluate)

    make = verbs.add_parser("make-bag", help="a dataset folder as a rosbag2 with sensor timing, dropouts, ground truth")
    make.add_argument("--data", type=Path, required=True, help="dataset root")
    make.add_argument("--out", type=Path, required=True, help="new bag folder")
    make.add_argument("--frames", choices=("held-out", "train", "all"), default="held-out",
                      help="which frames: the split's held-out or training groups, or every frame")
    make.add_argument("--split", type=Path, default=SPLITS / "mm5.yaml", help="split file for --frames")
    make.add_argument("--limit", type=int, default=0, help="only the first N frames")
    make.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    make.add_argument("--size", type=parse_size, help="resize images to HEIGHTxWIDTH (default: as stored)")
    make.add_argument("--hold", type=float, default=1 / 15, help="seconds each dataset frame stays in view")
    make.add_argument("--rates", type=_kv, default={}, help="camera rates in Hz, e.g. thermal=9 (default 15 each)")
    make.add_argument("--dropout", action="append", default=[], help="MODALITY:START_S:END_S silence (repeatable)")
    make.add_argument("--drop-probability", type=float, default=0.0, help="chance each message is lost")
    make.add_argument("--topics", type=_kv, default={}, help="topic names, e.g. rgb=/cam/color (default /<m>/image)")
    make.add_argument("--gt-topic", default="/ground_truth/mask", help="ground-truth mask topic (mono8)")
    make.add_argument("--seed", type=int, default=0)
    _add_dataset_args(make)
    make.set_defaults(func=cmd_make_bag)

    replay = verbs.add_parser("replay", help="play a bag to segment_node over ROS 2, record and evaluate its masks")
    replay.add_argument("--bag", type=Path, required=True, help="rosbag2 folder (sqlite3 or mcap)")
    replay.add_argument("--rate", type=float, default=1.0, help="playback speed factor")
    replay.add_argument("--out", type=Path, default=Path("runs/replay"), help="recorded bag and reports here")
    replay.add_argument("--node-running", action="store_true", help="talk to a segment_node already running")
    replay.add_argument("--node-name", default="segment_node", help="the node whose ~/mask is recorded")
    _add_bag_args(replay)
    replay.set_defaults(func=cmd_replay)

    demo = verbs.add_parser("demo", help="run segment_node on the shipped sample, then with thermal cut off")
    demo.add_argument("--engine-dir", type=Path, help="engine folder (default: the installed model)")
    demo.add_argument("--out", type=Path, default=Path("demo_out"), help="where the masks are written")
    demo.add_argument("--rate", type=float, default=10.0, help="camera rate in Hz")
    demo.add_argument("--passes", type=int, default=5, help="times each phase cycles through the sample")
    demo.set_defaults(func=cmd_demo)

    build = verbs.add_parser("build", help="TensorRT plans for every subset, cached per GPU and TensorRT version")
    build.add_argument("--engine-dir", type=Path, help="engine folder (default: the installed model)")
    build.add_argument("--precision", default="fp16", help="fp16 | fp32 | int8 (Q/DQ graphs only)")
    build.add_argument("--cache", type=Path, help="plan cache folder (default: $BINSEG_PLAN_CACHE or ~/.cache)")
    build.add_argument("--subsets", type=_csv, help="comma list like rgb+depth,thermal (default: all)")
    build.add_argument(
        "--plugin-library", default="auto", help="frequency-branch plugin: auto (build it here) | none | PATH"
    )
    build.set_defaults(func=cmd_build)

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
    frequency = bench_verbs.add_parser("frequency", help="GPU: frequency-branch kernel vs cuFFT vs matmul per plane")
    frequency.add_argument("--runs", type=int, default=200, help="timed runs per case (median reported)")
    frequency.add_argument("--warmup", type=int, default=20)
    frequency.add_argument("--channels", type=int, default=64)
    frequency.set_defaults(func=cmd_bench_frequency)
    gpu_network = bench_verbs.add_parser("gpu-network", help="GPU: torch eager vs kernels + CUDA graphs per subset")
    gpu_network.add_argument("--checkpoint", type=Path, default=Path("engines/binseg_s/weights.pt"))
    gpu_network.add_argument("--size", type=parse_size, default=(480, 640), help="input HEIGHTxWIDTH")
    gpu_network.add_argument("--runs", type=int, default=300, help="timed runs per subset (p50/p99 reported)")
    gpu_network.add_argument("--warmup", type=int, default=30)
    gpu_network.set_defaults(func=cmd_bench_gpu_network)
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
