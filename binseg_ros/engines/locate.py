"""Where the default engine folder is, installed or in a source checkout."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from binseg_ros.engines.manifest import MANIFEST_NAME
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

        try:
            roots.append(Path(get_package_share_directory("binseg_ros")) / "engines")
        except (PackageNotFoundError, OSError):  # OSError: no AMENT_PREFIX_PATH (not a sourced ROS env)
            pass
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
