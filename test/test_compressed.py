"""image_transport's compressed topics: every format decodes to the raw arrays, corrupt payloads
are counted, compressed bags evaluate like raw ones, and the node subscribes to them."""

from __future__ import annotations

import struct

import cv2
import numpy as np
import pytest
from conftest import frame_inputs
from rclpy.qos import qos_profile_sensor_data
from rosgraph import ros_environment
from sensor_msgs.msg import CompressedImage
from std_msgs.msg import Header

from binseg_ros.backends.onnxruntime import OnnxRuntimeBackend
from binseg_ros.backends.torch import TorchBackend
from binseg_ros.bags.evaluate import BagEvaluator
from binseg_ros.bags.groundtruth import GroundTruth
from binseg_ros.bags.io import bag_topics, read_messages
from binseg_ros.bags.make import DEFAULT_GT_TOPIC, MakeBagConfig, make_bag
from binseg_ros.core import rvl
from binseg_ros.core.compressed import (
    DEPTH_HEADER,
    compressed_to_frame,
    decode,
    encode,
    parse_format,
    split_transport_topic,
    transport_topic,
)
from binseg_ros.core.frame import Arrival
from binseg_ros.core.messages import ConversionError, to_frame
from binseg_ros.core.runtime import SegmentationRuntime
from binseg_ros.core.segmenter import Segmenter
from binseg_ros.core.sync import SyncConfig
from binseg_ros.datasets import camera_frames
from binseg_ros.errors import NodeError
from binseg_ros.ros.conversions import header, to_compressed_image, to_image
from binseg_ros.ros.discovery import wait_for_node
from binseg_ros.ros.process import NodeProcess
from binseg_ros.ros.replay import _node_inputs
from binseg_ros.training.split import SPLITS, load_split


@pytest.fixture(scope="module")
def frames(real_frames):
    """Camera arrays of two real frames, as drivers publish them (rgb8, 16UC1 mm, mono16)."""
    return [camera_frames(frame_inputs(frame)) for frame in real_frames[:2]]


def message(fmt: str, data: bytes, frame_id: str = "cam") -> CompressedImage:
    return CompressedImage(header=Header(frame_id=frame_id), format=fmt, data=data)


@pytest.mark.parametrize(
    ("modality", "encoding", "transport", "codec", "expected_format"),
    [
        ("rgb", "rgb8", "compressed", "png", "rgb8; png compressed bgr8"),
        ("rgb", "bgr8", "compressed", "png", "bgr8; png compressed bgr8"),
        ("thermal", "mono16", "compressed", "png", "mono16; png compressed "),
        ("depth", "16UC1", "compressed", "png", "16UC1; png compressed "),
        ("depth", "16UC1", "compressedDepth", "png", "16UC1; compressedDepth png"),
        ("depth", "16UC1", "compressedDepth", "rvl", "16UC1; compressedDepth rvl"),
    ],
)
def test_lossless_formats_decode_to_the_raw_frame_exactly(
    frames, modality, encoding, transport, codec, expected_format
):
    for index, frame in enumerate(frames):
        array = frame[modality][..., ::-1] if encoding == "bgr8" else frame[modality]
        fmt, data = encode(array, encoding, transport, codec)
        assert fmt == expected_format
        assert np.array_equal(decode(message(fmt, data))[1], array)
        raw, _ = to_frame(modality, to_image(array, encoding, Header(frame_id="cam")), Arrival(0))
        packed, repair = compressed_to_frame(modality, message(fmt, data), Arrival(0))
        assert repair is None and np.array_equal(packed.sensor_units(), raw.sensor_units()), index
        assert (packed.scale, packed.offset, packed.frame_id) == (raw.scale, raw.offset, "cam")


@pytest.mark.parametrize("encoding", ["rgba8", "bgra8"])
def test_colour_with_alpha_is_compressed_as_bgr_and_decodes_to_rgb(frames, encoding):
    """A camera that publishes with alpha (``bgra8; jpeg compressed bgr8``): colour kept, alpha gone."""
    rgb = frames[0]["rgb"]
    alpha = np.full((*rgb.shape[:2], 1), 255, np.uint8)
    array = np.concatenate([rgb if encoding == "rgba8" else rgb[..., ::-1], alpha], axis=2)
    fmt, data = encode(array, encoding, codec="png")
    assert fmt == f"{encoding}; png compressed bgr8"
    packed, _ = compressed_to_frame("rgb", message(fmt, data), Arrival(0))
    raw, _ = to_frame("rgb", to_image(array, encoding, Header(frame_id="cam")), Arrival(0))
    assert np.array_equal(packed.sensor_units(), rgb) and np.array_equal(raw.sensor_units(), rgb)


def test_jpeg_is_within_tolerance_and_keeps_rgb_order(frames):
    for frame in frames:
        fmt, data = encode(frame["rgb"], "rgb8")
        assert fmt == "rgb8; jpeg compressed bgr8"
        decoded = decode(message(fmt, data))[1].astype(np.int16)
        error = np.abs(decoded - frame["rgb"])
        assert error.mean() < 2.5 and np.percentile(error, 99) < 20  # quality 95
        assert np.abs(decoded.mean(axis=(0, 1)) - frame["rgb"].mean(axis=(0, 1))).max() < 1.0  # not BGR
        grey = cv2.cvtColor(frame["rgb"], cv2.COLOR_RGB2GRAY)
        fmt, data = encode(grey, "mono8")
        assert fmt == "mono8; jpeg compressed mono8"
        assert np.abs(decode(message(fmt, data))[1].astype(np.int16) - grey).mean() < 2.5


def test_inverse_depth_is_within_its_quantisation_step(frames):
    depth = frames[0]["depth"].astype(np.float32) / 1000
    depth[:4, :4], depth[4:8, :4] = np.nan, 12.0  # no return; beyond depth_max (10 m)
    for codec in ("png", "rvl"):
        fmt, data = encode(depth, "32FC1", "compressedDepth", codec)
        assert fmt == f"32FC1; compressedDepth {codec}"
        _, quant_a, quant_b = DEPTH_HEADER.unpack(data[: DEPTH_HEADER.size])
        assert quant_a == pytest.approx(100 * 101) and quant_b == pytest.approx(1 - 100 * 101 / 10)
        decoded = decode(message(fmt, data))[1]
        valid = depth > 0
        assert np.isnan(decoded[~valid]).all() and np.isnan(decoded[:8, :4]).all()
        valid[:8, :4] = False
        stored = np.floor(quant_a / depth[valid] + quant_b)
        step = quant_a / (stored - quant_b) - quant_a / (stored + 1 - quant_b)
        assert (np.abs(decoded[valid] - depth[valid]) <= step * 1.001 + 1e-6).all()
        frame, repair = compressed_to_frame("depth", message(fmt, data), Arrival(0))
        assert repair is not None and (frame.data[:8, :4] == 0).all()  # NaN is invalid, as raw 32FC1 gives


def test_rvl_matches_the_reference_codec_bit_for_bit():
    """Streams produced by image_transport_plugins' rvl_codec.cpp for these pixels."""
    assert rvl.encode(np.array([0, 0, 5, 7, 0], np.uint16)).hex() == "0041a122"
    pixels = np.array([3, 0, 1, 65535, *[0] * 27, 2], np.uint16)
    assert rvl.encode(pixels).hex() == "cf23610119b3f3ff0030ffff"
    assert np.array_equal(rvl.decode(bytes.fromhex("cf23610119b3f3ff0030ffff"), pixels.size), pixels)
    noise = np.random.default_rng(0).integers(0, 65536, (37, 53)).astype(np.uint16)
    noise[noise < 30000] = 0
    assert np.array_equal(rvl.decode(rvl.encode(noise), noise.size), noise.reshape(-1))


def test_legacy_and_other_formats_image_transport_writes(frames):
    rgb, depth = frames[0]["rgb"], frames[0]["depth"]
    bgr_png = cv2.imencode(".png", rgb[..., ::-1])[1].tobytes()
    assert decode(message("png", bgr_png))[0] == "bgr8"
    frame, _ = compressed_to_frame("rgb", message("png", bgr_png), Arrival(0))
    assert np.array_equal(frame.data, rgb)  # bare legacy colour is BGR, as the subscriber labels it
    encoding, grey16 = decode(message("png", cv2.imencode(".png", depth)[1].tobytes()))
    assert encoding == "mono16" and np.array_equal(grey16, depth)
    humble = encode(depth, "16UC1", "compressedDepth")[1]
    assert np.array_equal(decode(message("16UC1; compressedDepth", humble))[1], depth)  # Humble: png implied
    jpeg16 = cv2.imencode(".jpg", (depth >> 8).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 100])[1].tobytes()
    encoding, scaled = decode(message("mono16; jpeg compressed mono8", jpeg16))
    assert encoding == "mono16" and np.abs(scaled.astype(np.int64) - (depth & 0xFF00)).max() <= 2 * 256
    assert parse_format("bgr8; jpeg compressed rgb8").bgr is False


def _corrupt(frames) -> list[tuple[str, CompressedImage, str]]:
    """(modality, message, reason) for each kind of bad compressed input."""
    depth, thermal = frames[0]["depth"], frames[0]["thermal"]
    png_fmt, png = encode(thermal, "mono16")
    rvl_fmt, rvl_data = encode(depth, "16UC1", "compressedDepth", "rvl")
    depth_fmt, depth_png = encode(depth, "16UC1", "compressedDepth")
    float_fmt, float_png = encode(depth.astype(np.float32) / 1000, "32FC1", "compressedDepth")
    garbage = np.random.default_rng(1).integers(0, 256, 5000).astype(np.uint8).tobytes()
    colour_png = cv2.imencode(".png", frames[0]["rgb"])[1].tobytes()
    return [
        ("thermal", message(png_fmt, png[: len(png) // 2]), "decode_error"),  # truncated PNG
        ("rgb", message("rgb8; jpeg compressed bgr8", garbage), "decode_error"),
        ("rgb", message("rgb8; jpeg compressed bgr8", b""), "decode_error"),
        ("depth", message(depth_fmt, struct.pack("<iff", 1, 0, 0) + depth_png[12:]), "decode_error"),  # not INV_DEPTH
        ("depth", message(depth_fmt, depth_png[:12]), "decode_error"),  # header only
        ("depth", message(float_fmt, struct.pack("<iff", 0, 0, 0) + float_png[12:]), "decode_error"),  # no scale
        ("depth", message(rvl_fmt, rvl_data[: len(rvl_data) // 2]), "decode_error"),  # truncated RVL
        ("depth", message(rvl_fmt, rvl_data[:12] + struct.pack("<II", 60000, 60000) + rvl_data[20:]), "decode_error"),
        ("depth", message(depth_fmt, depth_png[:12] + colour_png), "decode_error"),  # decodes, but not depth
        ("thermal", message("mono16; h264 compressed", png), "decode_error"),  # a format nobody decodes here
        ("thermal", message("tiff", png), "decode_error"),
        ("rgb", message("mono16; png compressed ", png), "unsupported_encoding"),  # good image, wrong modality
        ("thermal", message("yuv422; png compressed ", png), "unknown_encoding"),
    ]


def test_corrupt_payloads_are_counted_never_raised(calibrated_net, frames):
    published = []
    runtime = SegmentationRuntime(
        Segmenter(TorchBackend(calibrated_net, (64, 96)), (64, 96)),
        SyncConfig(slop=0.01),
        published.append,
        threaded=False,
    )
    transports = {
        "rgb": ("rgb8", "compressed"),
        "depth": ("16UC1", "compressedDepth"),
        "thermal": ("mono16", "compressed"),
    }
    bad = _corrupt(frames)
    for index in range(3):
        t = index * 100_000_000
        for modality, (encoding, transport) in transports.items():
            good = to_compressed_image(frames[0][modality], encoding, header(t, modality), transport)
            assert runtime.ingest(modality, good, Arrival(t)) is None
        for modality, msg, reason in bad:
            msg.header = header(t + 1, "bad")
            error = runtime.ingest(modality, msg, Arrival(t + 1))
            assert isinstance(error, ConversionError) and error.reason.value == reason, (msg.format, error)
    status = runtime.status(300_000_000)
    expected: dict[str, int] = {}
    for _, _, reason in bad:
        expected[reason] = expected.get(reason, 0) + 3
    assert {k: v for k, v in status.drops.items() if k in expected} == expected
    assert len(published) >= 2 and published[-1].mask.shape == frames[0]["rgb"].shape[:2]
    runtime.close()


def test_a_compressed_bag_evaluates_like_the_raw_one(fast_engine, mm5_root, tmp_path):
    ids = load_split(SPLITS / "mm5.yaml").held_out_ids()[:8]
    results = {}
    for name, compressed in (("raw", False), ("compressed", True)):
        config = MakeBagConfig(size=(120, 160), compressed=compressed)
        make_bag(mm5_root, ids, tmp_path / name, config, progress=False)
        topics = config.image_topics()
        evaluator = BagEvaluator(OnnxRuntimeBackend(fast_engine), fast_engine.input_size, topics=topics)
        results[name] = evaluator.run(tmp_path / name, GroundTruth.from_topic(tmp_path / name, DEFAULT_GT_TOPIC), False)
    assert bag_topics(tmp_path / "compressed") == {
        "/rgb/image/compressed": "sensor_msgs/msg/CompressedImage",
        "/depth/image/compressedDepth": "sensor_msgs/msg/CompressedImage",
        "/thermal/image/compressed": "sensor_msgs/msg/CompressedImage",
        DEFAULT_GT_TOPIC: "sensor_msgs/msg/Image",
    }
    formats = {m.msg.format for m in read_messages(tmp_path / "compressed", config.image_topics().values())}
    assert formats == {"rgb8; jpeg compressed bgr8", "16UC1; compressedDepth png", "mono16; png compressed "}
    raw, packed = results["raw"], results["compressed"]
    assert packed.accounting_balanced and "decode_error" not in packed.drops
    assert packed.frames_in == raw.frames_in and packed.drops == raw.drops and packed.masks == raw.masks == len(ids)
    assert abs(packed.overall()["IoU"] - raw.overall()["IoU"]) <= 0.03


def test_the_node_segments_compressed_topics(fast_engine, ros_harness, frames):
    """rgb over ``compressed`` (remapped base topic), depth ``compressedDepth``, thermal ``compressed`` png."""
    harness = ros_harness
    transports = {"rgb": "compressed", "depth": "compressedDepth", "thermal": "compressed"}
    topics = {
        "rgb": "/cam/color/compressed",
        "depth": "/depth/image/compressedDepth",
        "thermal": "/thermal/image/compressed",
    }
    node = NodeProcess(
        fast_engine.root,
        ros_environment(),
        remaps={"rgb/image": "/cam/color"},
        diagnostics_period=0.2,
        **{f"{m}.transport": t for m, t in transports.items()},
    )
    pubs = {m: harness.create_publisher(CompressedImage, topic, qos_profile_sensor_data) for m, topic in topics.items()}
    try:
        wait_for_node(harness, pubs.values(), "segment_node", 30.0, settle_s=0.5)
        encodings = {"rgb": "rgb8", "depth": "16UC1", "thermal": "mono16"}
        messages = {m: to_compressed_image(frames[0][m], encodings[m], Header(), transports[m]) for m in pubs}
        harness.masks.clear()
        for index in range(15):
            stamp = harness.get_clock().now().to_msg()
            for modality, msg in messages.items():
                msg.header = Header(stamp=stamp, frame_id=f"z_{modality}_{index}")
                pubs[modality].publish(msg)
            harness.spin_for(1 / 15)
        harness.spin_for(0.5)
        ours = [m for m in harness.masks if m.frame_id.startswith("z_rgb_")]
        assert len(ours) >= 12 and ours[-1].shape == frames[0]["rgb"].shape[:2]
        sensors = {s.name: s.hardware_id for d in harness.diagnostics[-3:] for s in d.status}
        assert {sensors[f"/segment_node: {m}"] for m in topics} == set(topics.values())
    except NodeError:
        pytest.fail(f"segment_node did not subscribe to the compressed topics:\n{node.output}")
    finally:
        for pub in pubs.values():
            harness.destroy_publisher(pub)
        rc = node.stop()
    assert rc == 0 and "Traceback" not in node.output, node.output


def test_topic_names_follow_image_transport():
    assert transport_topic("/cam/color", "compressed") == "/cam/color/compressed"
    assert transport_topic("depth/image", "raw") == "depth/image"
    assert split_transport_topic("/depth/image/compressedDepth") == ("/depth/image", "compressedDepth")
    assert split_transport_topic("/compressed") == ("/compressed", "raw")
    types = {"/a/compressed": "sensor_msgs/msg/CompressedImage", "/b": "sensor_msgs/msg/Image"}
    assert _node_inputs({"rgb": "/a/compressed", "depth": "/b"}, types) == (
        {"rgb/image": "/a", "depth/image": "/b"},
        {"rgb.transport": "compressed"},
    )


def test_a_colour_topic_cannot_use_compressed_depth(fast_engine):
    node = NodeProcess(fast_engine.root, ros_environment(), **{"rgb.transport": "compressedDepth"})
    assert node.wait() == 1
    assert "parameter 'rgb.transport' = 'compressedDepth': must be one of raw, compressed" in node.output, node.output
