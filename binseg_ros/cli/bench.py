"""``binseg bench``: the benchmarks behind the README's numbers.

Every bench times a baseline in the same run (torch eager, a naive node, cuFFT) and reports
ratios against it, so numbers from different machines compare. Each one is a function of
:mod:`binseg_ros.bench` or :mod:`binseg_ros.ros.node_bench`, imported only when it runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from binseg_ros.cli.args import parse_size, positive_float

if TYPE_CHECKING:
    from binseg_ros.cli.args import Verbs


def register(verbs: Verbs) -> None:
    """Add ``bench`` and its benches (model, precision, node, soak, frequency, gpu-network, gpu-pipeline,
    registration, transport)."""
    bench = verbs.add_parser("bench", help="benchmarks (latency ratios against a baseline in the same run)")
    benches = bench.add_subparsers(dest="bench", required=True, metavar="BENCH")
    model = benches.add_parser("model", help="ONNX Runtime CPU latency per subset vs torch eager")
    model.add_argument("--engines", type=Path, default=Path("build/bench-engines"), help="scratch engines root")
    model.add_argument("--checkpoint", type=Path, help="weights file (default: fresh untrained weights)")
    model.add_argument("--sizes", type=parse_size, nargs="+", default=[(480, 640), (240, 320)])
    model.add_argument("--runs", type=int, default=20, help="timed runs per subset (median reported)")
    model.add_argument("--warmup", type=int, default=3)
    model.set_defaults(func=cmd_bench_model)
    precision = benches.add_parser("precision", help="ONNX Runtime CPU latency of the fp16 and int8 graphs vs fp32")
    precision.add_argument("--engine-dir", type=Path, help="engine folder (default: the installed model)")
    precision.add_argument("--runs", type=int, default=20, help="timed runs per subset and form (median reported)")
    precision.add_argument("--warmup", type=int, default=3)
    precision.set_defaults(func=cmd_bench_precision)
    node = benches.add_parser("node", help="segment_node overhead and latency vs a naive baseline node")
    node.add_argument("--engine-dir", type=Path, help="engine folder (default: the installed model)")
    node.add_argument("--runs", type=int, default=200, help="timed runs per stage (median reported)")
    node.add_argument("--count", type=int, default=100, help="frame sets played end to end")
    node.add_argument("--rate", type=float, default=10.0, help="camera rate in Hz for the end-to-end part")
    node.add_argument(
        "--calibration", type=Path, metavar="RIG", help="rig file: frames rendered into its cameras, registration timed"
    )
    node.set_defaults(func=cmd_bench_node)
    soak = benches.add_parser("soak", help="segment_node for N minutes at 30 Hz under a minute-long cycle of faults")
    soak.add_argument("--engine-dir", type=Path, help="engine folder (default: the installed model)")
    soak.add_argument("--minutes", type=positive_float, default=60.0, help="run length (the fault cycle is 1 minute)")
    soak.add_argument("--rate", type=positive_float, default=30.0, help="camera rate in Hz (three sensors)")
    soak.add_argument(
        "--out", type=Path, default=Path("build/soak"), help="report folder: soak.md, CSVs, plot, node log"
    )
    soak.set_defaults(func=cmd_bench_soak)
    frequency = benches.add_parser("frequency", help="GPU: frequency-branch kernel vs cuFFT vs matmul per plane")
    frequency.add_argument("--runs", type=int, default=100, help="timed runs per case (median reported)")
    frequency.add_argument("--warmup", type=int, default=10)
    frequency.add_argument("--channels", type=int, default=64)
    frequency.set_defaults(func=cmd_bench_frequency)
    gpu_network = benches.add_parser("gpu-network", help="GPU: torch eager vs kernels + CUDA graphs per subset")
    gpu_network.add_argument("--checkpoint", type=Path, default=Path("engines/binseg_s/weights.pt"))
    gpu_network.add_argument("--size", type=parse_size, default=(480, 640), help="input HEIGHTxWIDTH")
    gpu_network.add_argument("--runs", type=int, default=300, help="timed runs per subset (p50/p99 reported)")
    gpu_network.add_argument("--warmup", type=int, default=30)
    gpu_network.set_defaults(func=cmd_bench_gpu_network)
    pipeline = benches.add_parser("gpu-pipeline", help="GPU: the node's pipeline, torch CUDA vs ONNX Runtime CPU")
    pipeline.add_argument("--engine-dir", type=Path, help="engine folder (default: the installed model)")
    pipeline.add_argument("--sets", type=int, default=300, help="timed frame sets (p50/p95/p99 reported)")
    pipeline.add_argument("--warmup", type=int, default=30)
    pipeline.set_defaults(func=cmd_bench_gpu_pipeline)
    registration = benches.add_parser("registration", help="rig registration per frame vs per-frame recomputation")
    registration.add_argument("--runs", type=int, default=200, help="timed runs per step (median reported)")
    registration.add_argument("--warmup", type=int, default=20)
    registration.set_defaults(func=cmd_bench_registration)
    transport = benches.add_parser("transport", help="compressed image decode per message vs the raw image")
    transport.add_argument("--runs", type=int, default=200, help="timed decodes per message (median reported)")
    transport.add_argument("--warmup", type=int, default=20)
    transport.set_defaults(func=cmd_bench_transport)


def cmd_bench_model(args: argparse.Namespace) -> int:
    """ONNX Runtime (both portable forms) against torch eager, per size and subset."""
    from binseg_ros.bench.model import run_model_bench

    return run_model_bench(args.engines, args.sizes, args.runs, args.warmup, args.checkpoint)


def cmd_bench_precision(args: argparse.Namespace) -> int:
    """ONNX Runtime CPU latency of an engine folder's fp16 and int8 graphs against its fp32 graphs."""
    from binseg_ros.bench.precision import run_precision_bench
    from binseg_ros.engines.locate import open_engine_folder

    return run_precision_bench(open_engine_folder(args.engine_dir), args.runs, args.warmup)


def cmd_bench_node(args: argparse.Namespace) -> int:
    """segment_node's overhead and end-to-end latency against a naive node, on an opened engine folder."""
    from binseg_ros.engines.locate import open_engine_folder
    from binseg_ros.ros.node_bench import run_node_bench

    rig = None
    if args.calibration is not None:
        from binseg_ros.calibration.files import load_rig

        rig = load_rig(args.calibration)
    return run_node_bench(open_engine_folder(args.engine_dir), args.runs, args.count, args.rate, rig)


def cmd_bench_soak(args: argparse.Namespace) -> int:
    """segment_node under load and a cycle of faults: memory, latency drift, faults survived, messages accounted."""
    from binseg_ros.engines.locate import open_engine_folder
    from binseg_ros.ros.soak import run_soak

    return run_soak(open_engine_folder(args.engine_dir), args.minutes, args.rate, args.out)


def cmd_bench_frequency(args: argparse.Namespace) -> int:
    """The frequency-branch kernels against cuFFT and the matmul form (GPU)."""
    from binseg_ros.bench.frequency import run_frequency_bench

    return run_frequency_bench(args.runs, args.warmup, args.channels)


def cmd_bench_gpu_network(args: argparse.Namespace) -> int:
    """The network per subset: torch eager against kernels + CUDA graphs (GPU)."""
    from binseg_ros.bench.gpu_network import run_gpu_network_bench

    return run_gpu_network_bench(args.checkpoint, args.size, args.runs, args.warmup)


def cmd_bench_gpu_pipeline(args: argparse.Namespace) -> int:
    """The node's pipeline end to end (DDS aside): torch CUDA against ONNX Runtime CPU (GPU)."""
    from binseg_ros.bench.gpu_pipeline import run_gpu_pipeline_bench
    from binseg_ros.engines.locate import open_engine_folder

    return run_gpu_pipeline_bench(open_engine_folder(args.engine_dir), args.sets, args.warmup)


def cmd_bench_registration(args: argparse.Namespace) -> int:
    from binseg_ros.bench.registration import run_registration_bench

    return run_registration_bench(args.runs, args.warmup)


def cmd_bench_transport(args: argparse.Namespace) -> int:
    """Compressed image decode per message against the raw image's."""
    from binseg_ros.bench.transport import run_transport_bench

    return run_transport_bench(args.runs, args.warmup)
