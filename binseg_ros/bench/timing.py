"""Median-of-N wall-clock timing shared by the benchmarks."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def latency_samples_ms(fn: Callable[[], object], runs: int, warmup: int) -> list[float]:
    """Wall time of each of ``runs`` calls of ``fn()`` after ``warmup`` calls, in milliseconds."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    return samples


def median_ms(fn: Callable[[], object], runs: int, warmup: int) -> float:
    """Median wall time of ``fn()`` in milliseconds over ``runs`` calls after ``warmup`` calls."""
    return statistics.median(latency_samples_ms(fn, runs, warmup))


def cuda_median_ms(fn: Callable[[], object], runs: int, warmup: int) -> float:
    """Median GPU time of ``fn()`` in milliseconds, from CUDA events around each of ``runs`` calls.

    The events are recorded on the current stream and the host synchronizes only once at the
    end, so the CPU queues calls ahead: where the GPU is the bottleneck this is the kernels'
    time, and where launching is (tiny work at batch 1) the launch gaps count, as they would
    for an eager caller.
    """
    import torch  # here, not at the top: the CPU benchmarks must not need it

    for _ in range(warmup):
        fn()
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(runs)]
    torch.cuda.synchronize()
    for start, end in events:
        start.record()
        fn()
        end.record()
    torch.cuda.synchronize()
    return statistics.median(start.elapsed_time(end) for start, end in events)


def cuda_graph_median_ms(fn: Callable[[], object], runs: int, warmup: int) -> float:
    """Median GPU time of ``fn()`` replayed from a CUDA graph, as the network's graphs run it.

    ``fn`` is warmed up on a side stream (cuFFT plans, kernel builds), captured once, and the
    graph's replays are timed by :func:`cuda_median_ms`: the host's per-op launch cost is gone,
    so this is the kernels' time plus the gaps between them inside one graph.
    """
    import torch

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return cuda_median_ms(graph.replay, runs, warmup)
