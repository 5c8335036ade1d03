"""``binseg`` in-process: the verbs, flags checked where they enter, one-line errors with exit
code 2, the two modes of ``evaluate``, and a failed ``make-bag`` leaving nothing behind.

``main`` returns the exit code for every outcome, argparse's included (``--help`` 0, a bad
flag 2): it never raises SystemExit, so each test reads the code and what went to stderr.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest
import yaml
from conftest import REPO

from binseg_ros.cli import build_parser, main
from binseg_ros.datasets import list_ids

VERBS = (
    *("export", "quantize", "profile", "train", "evaluate", "make-bag"),
    *("replay", "demo", "build", "bench", "calibrate", "gate"),
)
DATASET_FLAGS = "--checkpoint, --data, --split, --size, --device"
BAG_FLAGS = (
    "--save-predictions, --engine-dir, --backend, --form, --topics, --gt-topic, --gt-dir, --gt-tolerance, "
    "--calibration, --modalities, --slop, --modality-timeout, --max-delay, --readmit-frames, --no-quality-gate"
)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def error_lines(err: str) -> list[str]:
    """The lines of stderr that report an error (progress bars may precede them)."""
    return [line for line in err.splitlines() if ": error: " in line]


def test_help_lists_every_verb(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    assert re.findall(r"^    (\S+) ", out, re.M) == list(VERBS)


def test_parsing_imports_no_heavy_stack():
    """``binseg --help`` and flag errors answer without torch, ROS, ONNX Runtime or TensorRT."""
    code = "import sys\nfrom binseg_ros.cli import build_parser\nbuild_parser()\n" + (
        "print(sorted(m for m in ('torch', 'rclpy', 'onnxruntime', 'tensorrt') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_subsets_are_parsed_once_at_the_boundary():
    parser = build_parser()
    assert parser.parse_args(["export", "--subsets", "depth+rgb, thermal"]).subsets == [("rgb", "depth"), ("thermal",)]
    assert parser.parse_args(["build", "--subsets", "thermal+rgb"]).subsets == [("rgb", "thermal")]
    assert parser.parse_args(["export", "--forms", "fft,kernel"]).forms == ["fft", "kernel"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["evaluate", "--bag", "b", "--backend", "openvino"], "argument --backend: invalid choice: 'openvino'"),
        (["evaluate", "--bag", "b", "--form", "kernel"], "argument --form: invalid choice: 'kernel'"),
        (["replay", "--bag", "b", "--backend", "openvino"], "argument --backend: invalid choice: 'openvino'"),
        (["build", "--precision", "fp8"], "argument --precision: invalid choice: 'fp8'"),
        (["make-bag", "--data", "d", "--out", "o", "--storage", "db3"], "argument --storage: invalid choice: 'db3'"),
        (["make-bag", "--data", "d", "--out", "o", "--frames", "some"], "argument --frames: invalid choice: 'some'"),
        (["export", "--forms", "matmul,dft"], "argument --forms: unknown form 'dft'; expected a comma list of fft, "),
        (["export", "--subsets", "rgb+lidar"], "argument --subsets: unknown modality 'lidar' in subset 'rgb+lidar'"),
        (["build", "--subsets", "rgb,depth+depth"], "argument --subsets: modality subset 'depth+depth' names a"),
        (["export", "--size", "480by640"], "argument --size: size must look like HEIGHTxWIDTH"),
        (["replay", "--bag", "b", "--topics", "rgb"], "argument --topics: expected KEY=VALUE pairs, got 'rgb'"),
        (["make-bag", "--data", "d", "--out", "o", "--size", "0x0"], "argument --size: size must be at least 1x1"),
        (["export", "--size", "480x-640"], "argument --size: size must be at least 1x1"),
        (["evaluate", "--bag", "b", "--gt-tolerance", "nan"], "argument --gt-tolerance: expected a finite number"),
        (["replay", "--bag", "b", "--gt-tolerance", "inf"], "argument --gt-tolerance: expected a finite number"),
        (["evaluate", "--bag", "b", "--gt-tolerance", "-0.1"], "argument --gt-tolerance: expected a finite number"),
        (["evaluate", "--bag", "b", "--slop", "inf"], "slop must be a finite number > 0 s, got inf"),
        (["replay", "--bag", "b", "--max-delay", "nan"], "max_delay must be a finite number >= 0 s, got nan"),
        (["evaluate", "--bag", "b", "--modalities", "rgb+sonar"], "argument --modalities: unknown modality 'sonar'"),
        (["replay", "--bag", "b", "--modalities", ""], "argument --modalities: empty modality subset"),
    ],
)
def test_bad_flag_values_are_one_line_errors(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    (line,) = error_lines(err)  # under argparse's usage line, where argparse found it
    assert line.startswith(f"binseg {argv[0]}: error: {message}")
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--data", "d", "--checkpoint", "c.pt", "--save-predictions"],
            f"--save-predictions is for bag mode (--bag); dataset mode takes {DATASET_FLAGS}",
        ),
        (
            ["--data", "d", "--checkpoint", "c.pt", "--form", "fft", "--backend", "torch"],
            f"--backend, --form are for bag mode (--bag); dataset mode takes {DATASET_FLAGS}",
        ),
        (
            ["--data", "d", "--checkpoint", "c.pt", "--max-delay", "1", "--readmit-frames", "2", "--no-quality-gate"],
            "--max-delay, --readmit-frames, --no-quality-gate are for bag mode (--bag); "
            f"dataset mode takes {DATASET_FLAGS}",
        ),
        (
            ["--data", "d", "--checkpoint", "c.pt", "--modalities", "rgb+depth+thermal"],
            f"--modalities is for bag mode (--bag); dataset mode takes {DATASET_FLAGS}",
        ),
        (
            ["--backend", "onnxruntime"],  # the default value, typed: still the wrong mode
            f"--backend is for bag mode (--bag); dataset mode takes {DATASET_FLAGS}",
        ),
        (
            ["--bag", "b", "--checkpoint", "c.pt"],
            f"--checkpoint is for dataset mode (--checkpoint, --data); bag mode takes --bag, {BAG_FLAGS}",
        ),
        (
            ["--bag", "b", "--split", "s.yaml", "--device", "cuda"],
            f"--split, --device are for dataset mode (--checkpoint, --data); bag mode takes --bag, {BAG_FLAGS}",
        ),
        ([], "evaluate needs --bag B, or --checkpoint and --data for the held-out robustness table"),
        (
            ["--checkpoint", "c.pt", "--out", "o"],
            "evaluate needs --bag B, or --checkpoint and --data for the held-out robustness table",
        ),
    ],
)
def test_evaluate_refuses_the_other_modes_flags(capsys, tmp_path, argv, message):
    code, out, err = run(capsys, "evaluate", *argv)
    assert code == 2 and out == ""
    assert err.splitlines() == [f"binseg evaluate: error: {message}"]


@pytest.mark.parametrize(
    ("topics", "message"),
    [
        ("color=/rgb/image", "--topics: unknown modality 'color'; expected rgb, depth, thermal"),
        ("thermal=/depth/image", "--topics: depth and thermal both read /depth/image; give each its own topic"),
        ("rgb=/a,depth=/a", "--topics: rgb and depth both read /a; give each its own topic"),
    ],
)
def test_bag_topics_are_known_modalities_each_on_its_own_topic(capsys, tmp_path, topics, message):
    """Refused before the bag is read (here: before it is found missing)."""
    for verb in ("evaluate", "replay"):
        code, _, err = run(
            capsys, verb, "--bag", str(tmp_path / "none"), "--out", str(tmp_path / "o"), "--topics", topics
        )
        assert code == 2 and err.splitlines() == [f"binseg {verb}: error: {message}"], err


def test_topics_of_modalities_left_out_are_refused(capsys, tmp_path):
    code, _, err = run(
        capsys,
        "evaluate",
        "--bag",
        str(tmp_path / "none"),
        "--out",
        str(tmp_path / "o"),
        "--modalities",
        "rgb+thermal",
        "--topics",
        "thermal=/depth/image,depth=/d",
    )
    assert code == 2
    assert err.splitlines() == [
        "binseg evaluate: error: --topics names depth, which --modalities rgb+thermal leaves out"
    ]


def test_evaluate_opens_the_engine_folder_before_it_reads_the_bag(capsys, tmp_path):
    missing = tmp_path / "engines"
    code, _, err = run(capsys, "evaluate", "--bag", str(tmp_path / "none"), "--engine-dir", str(missing))
    assert code == 2
    (line,) = error_lines(err)
    assert line.startswith("binseg evaluate: error: ") and str(missing) in line and "no such bag" not in line


def test_an_out_folder_that_cannot_be_made_is_refused_before_the_run(mm5_root, capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    out = blocker / "out"
    for argv in (
        ["evaluate", "--bag", str(tmp_path / "none")],  # refused before the bag is even looked for
        ["evaluate", "--checkpoint", "c.pt", "--data", str(mm5_root)],
        ["replay", "--bag", str(tmp_path / "none")],
    ):
        code, _, err = run(capsys, *argv, "--out", str(out))
        assert code == 2 and err.splitlines() == [
            f"binseg {argv[0]}: error: --out {out}: cannot write there ({blocker} is not a folder)"
        ]
    code, _, err = run(
        capsys, "make-bag", "--data", str(mm5_root), "--out", str(out), "--limit", "1", "--size", "60x80"
    )
    assert code == 2 and "Traceback" not in err
    (line,) = error_lines(err)
    assert line.startswith("binseg make-bag: error: ") and str(blocker) in line


def test_replay_refuses_a_node_name_for_its_own_node(capsys):
    code, _, err = run(capsys, "replay", "--bag", "b", "--node-name", "other")
    assert code == 2
    assert err.splitlines() == [
        "binseg replay: error: --node-name is for a node already running (--node-running); "
        "replay starts its own segment_node otherwise"
    ]


def test_python_dash_m_has_the_same_exit_codes():
    run_cli = [sys.executable, "-m", "binseg_ros.cli"]
    result = subprocess.run([*run_cli, "evaluate"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "evaluate needs --bag" in result.stderr
    result = subprocess.run([*run_cli, "--help"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "make-bag" in result.stdout


@pytest.mark.skipif(find_spec("tensorrt") is not None, reason="TensorRT is installed here")
def test_build_without_tensorrt_is_one_line(fast_engine, capsys, monkeypatch):
    monkeypatch.setenv("BINSEG_TENSORRT", "tensorrt")  # the full TensorRT, even where TensorRT-RTX is installed
    code, out, err = run(capsys, "build", "--engine-dir", str(fast_engine.root), "--precision", "fp32")
    assert code == 2 and out == ""
    (line,) = err.splitlines()
    assert line.startswith("binseg build: error: the tensorrt backend needs the TensorRT Python package")


def _copy_frames(source: Path, target: Path, ids: list[str]) -> Path:
    for folder in ("RGB", "Depth", "Thermal", "Class_Annotations"):
        (target / folder).mkdir(parents=True)
        for frame_id in ids:
            shutil.copy(source / folder / f"{frame_id}.png", target / folder)
    return target


def test_failed_make_bag_leaves_no_bag_and_the_rerun_works(mm5_root, tmp_path, capsys):
    ids = list_ids(mm5_root)[:4]
    data = _copy_frames(mm5_root, tmp_path / "data", ids)
    missing = data / "Thermal" / f"{ids[2]}.png"
    missing.unlink()  # frames 0 and 1 are written before frame 2 is read
    bag = tmp_path / "bag"
    argv = ["make-bag", "--data", str(data), "--out", str(bag), "--frames", "all", "--size", "60x80"]
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert error_lines(err) == [f"binseg make-bag: error: cannot read image {missing}"]
    assert not bag.exists()
    shutil.copy(mm5_root / "Thermal" / missing.name, missing)
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    assert f"wrote {bag} (mcap): 4 frames" in out and (bag / "metadata.yaml").is_file()


def test_make_bag_flag_errors_are_one_line(mm5_root, tmp_path, capsys):
    base = ["make-bag", "--data", str(mm5_root), "--out", str(tmp_path / "bag"), "--limit", "2"]
    for extra, message in [
        (["--rates", "sonar=9"], "--rates: unknown modality 'sonar'"),
        (["--rates", "thermal=fast"], "--rates: thermal rate must be a number in Hz, got 'fast'"),
        (["--folders", "ir=x"], "--folders entry 'ir=x': expected rgb=, depth=, thermal= or labels=NAME"),
        (["--split", str(tmp_path / "none.yaml")], f"cannot read split file {tmp_path / 'none.yaml'}"),
    ]:
        code, _, err = run(capsys, *base, *extra)
        assert code == 2 and len(err.splitlines()) == 1, err
        assert err.startswith(f"binseg make-bag: error: {message}")
    assert not (tmp_path / "bag").exists()


def test_make_bag_then_evaluate_the_bag(fast_engine, mm5_root, tmp_path, capsys):
    bag = tmp_path / "bag"
    code, out, err = run(
        capsys,
        "make-bag",
        "--data",
        str(mm5_root),
        "--out",
        str(bag),
        "--limit",
        "4",
        "--size",
        "120x160",
        "--storage",
        "sqlite3",
    )
    assert code == 0, err
    assert out.startswith(f"wrote {bag} (sqlite3): 4 frames, 0.3 s\n")
    report = tmp_path / "report"
    code, out, err = run(
        capsys,
        "evaluate",
        "--bag",
        str(bag),
        "--engine-dir",
        str(fast_engine.root),
        "--out",
        str(report),
        "--backend",
        "onnxruntime",
        "--save-predictions",
    )
    assert code == 0, err
    assert re.fullmatch(r"\d+ masks from \d+ images in [\d.]+ s; IoU [\d.]+, S [\d.]+, MAE [\d.]+; report: .+\n", out)
    assert out.endswith(f"report: {report / 'report.md'}\n")
    assert any((report / "predictions").glob("*.png"))


def test_evaluate_dataset_mode_writes_the_tables_and_the_card(checkpoint, mm5_root, tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    weights = Path(shutil.copy(checkpoint, run_dir / "model.pt"))
    card = run_dir / "model_card.md"
    card.write_text("# Model card: test\n")
    split = tmp_path / "split.yaml"
    split.write_text(yaml.safe_dump({"train": [], "held_out": [{"scene": "s", "ids": list_ids(mm5_root)[:2]}]}))
    out_dir = tmp_path / "evaluation"
    code, out, err = run(
        capsys,
        "evaluate",
        "--checkpoint",
        str(weights),
        "--data",
        str(mm5_root),
        "--split",
        str(split),
        "--size",
        "96x128",
        "--out",
        str(out_dir),
    )
    assert code == 0, err
    assert out.startswith(f"added the table to {card}\n2 held-out frames from {split}\n| subset |")
    tables = json.loads((out_dir / "robustness.json").read_text())
    subsets, degradations = tables["subsets"], tables["degradations"]
    assert list(subsets) == ["test"] and {"rgb+depth+thermal", "thermal", "average", "worst"} <= set(subsets["test"])
    assert {"clean", "rgb:dark", "depth:holes", "thermal:flat"} <= set(degradations["test"])
    markdown = (out_dir / "robustness.md").read_text()
    assert markdown.strip() in out and markdown.strip() in card.read_text()
    assert "## Held-out evaluation" in card.read_text()
