"""The kernels as shared libraries: the C launcher links and exports its API without TensorRT,
the TensorRT plugin library builds for every target and exports the two entry points
``IPluginRegistry::loadLibrary`` looks up, and the plugin's identity in C++ is the exporter's.

Building the plugin needs the TensorRT headers (skipped where they are not installed); running
it needs a GPU and TensorRT.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from binseg_ros.kernels import plugin_identity as plugin
from binseg_ros.kernels.build import (
    CUBIN_ARCHS,
    FREQUENCY_SPLIT_PLUGIN,
    LAUNCHER_LIBRARY,
    PLUGIN_LIBRARY,
    TENSORRT_HEADER,
    compile_launcher_library,
    compile_plugin_library,
    find_tensorrt_include,
)

LAUNCHER_API = {
    "binseg_launch_frequency_split",
    "binseg_frequency_split_smem_bytes",
    "binseg_frequency_split_threads",
    "binseg_frequency_split_workspace_bytes",
}
PLUGIN_ENTRY_POINTS = {"getCreators", "setLoggerFinder"}


def _binutil(name: str) -> str:
    path = shutil.which(name)
    assert path is not None, f"{name} (binutils) is not on PATH"
    return path


def exported(library: Path) -> set[str]:
    """Names of the dynamic symbols ``library`` defines (what ``dlsym`` can find)."""
    command = [_binutil("nm"), "-D", "--defined-only", str(library)]
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    return {line.split()[-1] for line in out.stdout.splitlines() if line.strip()}


def needed(library: Path) -> set[str]:
    """Shared objects ``library`` requires at load time (its DT_NEEDED entries)."""
    out = subprocess.run([_binutil("readelf"), "-d", str(library)], capture_output=True, text=True, check=True)
    return set(re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out.stdout))


def test_launcher_library_exports_the_c_api(tmp_path):
    """Link check of the host API alone; the architecture does not matter, so one (Orin's)."""
    library = compile_launcher_library(tmp_path, "sm_87")
    assert library == tmp_path / LAUNCHER_LIBRARY and library.is_file()
    assert exported(library) >= LAUNCHER_API
    assert not any(name.startswith("libcudart") for name in needed(library))  # static CUDA runtime


@pytest.mark.parametrize("arch", CUBIN_ARCHS)
def test_plugin_library_exports_the_load_library_entry_points(arch, tmp_path):
    tensorrt_include = find_tensorrt_include()
    if tensorrt_include is None:
        pytest.skip("needs the TensorRT headers (NvInferRuntime.h): set TENSORRT_INCLUDE_DIR")
    library = compile_plugin_library(tmp_path, arch, tensorrt_include)
    assert library == tmp_path / PLUGIN_LIBRARY
    assert exported(library) == PLUGIN_ENTRY_POINTS  # everything else is hidden
    assert not any(name.startswith("libnvinfer") for name in needed(library))  # header-only interfaces


def test_find_tensorrt_include_takes_the_environment_first(tmp_path, monkeypatch):
    empty, headers = tmp_path / "empty", tmp_path / "tensorrt"
    empty.mkdir()
    (headers / "include").mkdir(parents=True)
    (headers / "include" / TENSORRT_HEADER).write_text("// stand-in\n")
    monkeypatch.delenv("TENSORRT_ROOT", raising=False)
    monkeypatch.setenv("TENSORRT_INCLUDE_DIR", str(headers / "include"))
    assert find_tensorrt_include() == headers / "include"
    monkeypatch.setenv("TENSORRT_INCLUDE_DIR", str(empty))  # a folder counts only with the header
    monkeypatch.setenv("TENSORRT_ROOT", str(headers))
    assert find_tensorrt_include() == headers / "include"
    monkeypatch.setenv("TENSORRT_ROOT", str(empty))
    assert find_tensorrt_include() not in (empty, headers / "include")


def test_plugin_identity_matches_the_exporter():
    """The registry key in C++ (``constexpr char kPlugin*[] = "..."``) is plugin.py's."""
    source = FREQUENCY_SPLIT_PLUGIN.read_text()
    constants = dict(re.findall(r'constexpr\s+char\s+(kPlugin\w+)\[\]\s*=\s*"([^"]*)"\s*;', source))
    assert constants == {
        "kPluginName": plugin.PLUGIN_NAME,
        "kPluginVersion": plugin.PLUGIN_VERSION,
        "kPluginNamespace": plugin.PLUGIN_NAMESPACE,
    }
