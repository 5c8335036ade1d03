"""Finding and opening an engine folder: where the default one is (installed or in a source
checkout), and :func:`open_engine_folder`, the one way every caller opens a folder."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

from binseg_ros.engines.manifest import MANIFEST_NAME, Manifest
from binseg_ros.errors import ManifestError

DEFAULT_MODEL = "binseg_s"
ENV_VAR = "BINSEG_ENGINES"


def candidate_roots() -> list[Path]:
    """Engines roots in search order: ``$BINSEG_ENGINES``, the ament share dir (colcon), the
    interpreter prefix's share dir (where ``pip install`` puts ``data_files``), the checkout."""
    roots = []
    if os.environ.get(ENV_VAR):
        roots.append(Path(os.environ[ENV_VAR]))
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

        # OSError: no AMENT_PREFIX_PATH (not a sourced ROS environment)
        with contextlib.suppress(PackageNotFoundError, OSError):
            roots.append(Path(get_package_share_directory("binseg_ros")) / "engines")
    except ImportError:  # no ROS environment: a plain pip install or a checkout
        pass
    roots.append(Path(sys.prefix) / "share" / "binseg_ros" / "engines")
    roots.append(Path(__file__).resolve().parents[2] / "engines")
    return roots


def locate_engine_dir(engine_dir: str | Path | None = None, model: str = DEFAULT_MODEL) -> Path:
    """``engine_dir`` if given, else the first ``<root>/<model>`` holding a manifest.

    Raises:
        ManifestError: nothing found; the message lists where it looked.
    """
    if engine_dir:
        return Path(engine_dir)
    tried = [root / model for root in candidate_roots()]
    for folder in tried:
        if (folder / MANIFEST_NAME).is_file():
            return folder
    raise ManifestError(
        f"no engine folder for model {model!r} (looked in {', '.join(map(str, tried))}); "
        "create one with `binseg export` or set the engine_dir parameter"
    )


def open_engine_folder(engine_dir: str | Path | None = None) -> Manifest:
    """The engine folder ``engine_dir`` (default: the installed model), its manifest read and
    every listed file checked against its sha256 and every graph's inputs against the manifest,
    once, before anything uses it.

    The node, ``binseg evaluate``, ``replay``, ``build`` and the benches all open folders here,
    so no runtime ever loads a graph or weights file that changed under its manifest.

    Raises:
        ManifestError: no folder, a bad manifest, a missing or changed file, or a graph whose inputs
            are not those its subset and the manifest's ``input_size`` say.
    """
    manifest = Manifest.load(locate_engine_dir(engine_dir))
    manifest.verify()
    manifest.check_graph_inputs()
    return manifest
