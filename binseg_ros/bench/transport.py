"""``binseg bench transport``: decoding a ``sensor_msgs/CompressedImage`` into a Frame, against
decoding the raw ``sensor_msgs/Image`` of the same image.

Input: the first shipped sample frame (:data:`~binseg_ros.datasets.SAMPLE`, MM5, registered at
640×480) as camera drivers publish it (:func:`~binseg_ros.datasets.camera_frames`: rgb8, depth
16UC1 mm, thermal mono16 counts), encoded as image_transport's plugins publish it with their
default parameters (:func:`binseg_ros.core.compressed.encode`, via
:func:`binseg_ros.bags.io.compressed_message`).

Rows (median wall time of ``runs`` calls after ``warmup``, this process's OpenCV threads):
rgb jpeg, thermal png, depth compressedDepth png, depth compressedDepth rvl, each decoded by
:func:`~binseg_ros.core.compressed.compressed_to_frame` (what the runtime calls for a compressed
message). The baseline is :func:`~binseg_ros.core.messages.to_frame` of the raw message of the
same image (a view of its buffer). ``×raw`` is the compressed decode's time over the raw one's.
"""

from __future__ import annotations

import os

import cv2
import numpy as np

from binseg_ros.bags.io import compressed_message, image_message
from binseg_ros.bench.timing import median_ms
from binseg_ros.core.compressed import compressed_to_frame
from binseg_ros.core.frame import Arrival
from binseg_ros.core.messages import to_frame
from binseg_ros.datasets import CAMERA_ENCODING, SAMPLE, camera_frames, list_ids, load_frame

# (row label, modality, transport, codec)
CASES = (
    ("rgb jpeg", "rgb", "compressed", "jpeg"),
    ("thermal png", "thermal", "compressed", "png"),
    ("depth compressedDepth png", "depth", "compressedDepth", "png"),
    ("depth compressedDepth rvl", "depth", "compressedDepth", "rvl"),
)


def run_transport_bench(runs: int = 200, warmup: int = 20) -> int:
    """Print the markdown table described in the module docstring; returns the exit code."""
    images = camera_frames(load_frame(SAMPLE, list_ids(SAMPLE)[0]))
    height, width = images["rgb"].shape[:2]
    print(f"{os.cpu_count()} CPUs, OpenCV {cv2.__version__} ({cv2.getNumThreads()} threads), numpy {np.__version__}")
    print(f"{width}x{height} sample frame; median of {runs} decodes after {warmup} warm-up decodes")
    print("×raw: the compressed decode's time over the raw sensor_msgs/Image decode of the same image")
    print()
    print("| message | payload KB | decode ms | raw decode ms | ×raw |")
    print("|---|---:|---:|---:|---:|")
    for label, modality, transport, codec in CASES:
        array, encoding = images[modality], CAMERA_ENCODING[modality]
        compressed = compressed_message(array, encoding, 0, transport, codec=codec)
        raw = image_message(array, encoding, 0)
        mine = median_ms(lambda: compressed_to_frame(modality, compressed, Arrival(0)), runs, warmup)
        theirs = median_ms(lambda: to_frame(modality, raw, Arrival(0)), runs, warmup)
        name = f"{label} (`{compressed.format}`)"
        kb = len(compressed.data) / 1024
        print(f"| {name} | {kb:.1f} | {mine:.3f} | {theirs:.4f} | {mine / theirs:.0f} |", flush=True)
    sizes = ", ".join(f"{m} {images[m].nbytes / 1024:.0f} KB" for m in ("rgb", "depth", "thermal"))
    print(f"\nraw payloads: {sizes}")
    return 0
