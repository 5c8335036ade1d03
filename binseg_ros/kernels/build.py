"""nvcc builds of the CUDA kernels for every target GPU, and the checks on what ptxas reports.

Targets: Jetson Orin (sm_87), H100 (sm_90), Jetson Thor (sm_110) as cubins, plus PTX for the
newest architecture so a later GPU can JIT it. Warnings are errors, and ptxas must report no
spills and no local memory: a spill in these inner loops would cost more than the kernel.

Shared libraries for one GPU: the C launcher alone (what the torch op loads, and the proof that
the host API links and exports its symbols without TensorRT), and the TensorRT plugin library
(launcher + IPluginV3 plugin), built where the TensorRT headers are, i.e. on the robot.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from binseg_ros.errors import BackendError

SOURCES = Path(__file__).resolve().parent
FREQUENCY_SPLIT = SOURCES / "frequency_split.cu"
FREQUENCY_SPLIT_HEADER = SOURCES / "frequency_split.h"
FREQUENCY_SPLIT_PLUGIN = SOURCES / "frequency_split_plugin.cpp"
LAUNCHER_LIBRARY = "libbinseg_frequency_split.so"
PLUGIN_LIBRARY = "libbinseg_trt_plugins.so"
TENSORRT_HEADER = "NvInferRuntime.h"
# Where JetPack / the TensorRT .deb (multiarch), a tarball install and a plain /usr install put it.
TENSORRT_INCLUDE_DIRS = (
    Path("/usr/include/x86_64-linux-gnu"),
    Path("/usr/include/aarch64-linux-gnu"),
    Path("/usr/local/tensorrt/include"),
    Path("/usr/include"),
)
CUBIN_ARCHS = ("sm_87", "sm_90", "sm_110")
PTX_ARCH = "compute_110"
NVCC_FLAGS = ("-O3", "-std=c++17", "-Werror", "all-warnings")
PTXAS_FLAGS = ("-Xptxas", "-v,-warn-spills,-warn-lmem-usage")  # cubins only: PTX is not assembled here
# Shared libraries: position-independent host code, the host compiler's warnings on (NVCC_FLAGS'
# -Werror makes them errors too), and -z defs so that a symbol left undefined fails the link
# here instead of the dlopen on the robot. That is also what shows the plugin needs no libnvinfer:
# the IPluginV3 interfaces are abstract classes whose members are inline or called through the
# vtable TensorRT hands over, so nothing from libnvinfer is referenced and it is not linked.
# The CUDA runtime is nvcc's default static one (its symbols stay internal to the library).
SHARED_FLAGS = ("-shared", "-Xcompiler", "-fPIC,-Wall,-Wextra", "-Xlinker", "-z,defs")


@dataclass(frozen=True)
class KernelResources:
    """What ptxas reported for one kernel entry on one architecture."""

    kernel: str
    arch: str
    registers: int
    stack_bytes: int
    spill_store_bytes: int
    spill_load_bytes: int


def nvcc() -> str:
    path = shutil.which("nvcc")
    if path is None:
        raise BackendError("nvcc is not on PATH; install the CUDA toolkit (13.0 is what CI uses)")
    return path


def compile_cubin(source: Path, arch: str, out_dir: Path) -> tuple[Path, list[KernelResources]]:
    """``source`` → ``out_dir/<stem>.<arch>.cubin``; returns it with ptxas' per-kernel report."""
    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / f"{source.stem}.{arch}.cubin"
    result = _run([nvcc(), "-cubin", f"-arch={arch}", *NVCC_FLAGS, *PTXAS_FLAGS, "-o", str(output), str(source)])
    return output, parse_ptxas(result.stderr)


def compile_ptx(source: Path, arch: str, out_dir: Path) -> Path:
    """``source`` → ``out_dir/<stem>.<arch>.ptx`` (portable to later GPUs through the driver JIT)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / f"{source.stem}.{arch}.ptx"
    _run([nvcc(), "-ptx", f"-arch={arch}", *NVCC_FLAGS, "-o", str(output), str(source)])
    return output


def compile_launcher_library(out_dir: Path, arch: str) -> Path:
    """``frequency_split.cu`` alone → ``out_dir/libbinseg_frequency_split.so`` for ``arch``.

    Exports the C API of ``frequency_split.h``; needs only the CUDA toolkit.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / LAUNCHER_LIBRARY
    _run([nvcc(), *SHARED_FLAGS, f"-arch={arch}", *NVCC_FLAGS, "-o", str(output), str(FREQUENCY_SPLIT)])
    return output


def compile_plugin_library(out_dir: Path, arch: str, tensorrt_include: Path) -> Path:
    """Launcher + TensorRT plugin → ``out_dir/libbinseg_trt_plugins.so`` for ``arch``.

    Load it with ``trt.get_plugin_registry().load_library(path)`` (or ``trtexec
    --dynamicPlugins``): TensorRT calls its ``setLoggerFinder`` and ``getCreators``. The
    TensorRT headers are a system include (``-isystem``) so their own warnings are not ours.
    Symbols are hidden by default: the library exports only those two entry points, so its copy
    of the launcher never clashes with the torch op's launcher library in the same process.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / PLUGIN_LIBRARY
    _run([
        nvcc(), *SHARED_FLAGS, "-Xcompiler", "-fvisibility=hidden", f"-arch={arch}", *NVCC_FLAGS,
        "-isystem", str(tensorrt_include), "-o", str(output), str(FREQUENCY_SPLIT), str(FREQUENCY_SPLIT_PLUGIN),
    ])  # fmt: skip
    return output


def cached_library(
    cache_root: Path, name: str, inputs: Sequence[Path], extra_key: str, build: Callable[[Path], Path]
) -> Path:
    """``cache_root/<digest>/<name>``, built by ``build(scratch_folder)`` the first time only.

    The digest covers the ``inputs``' bytes, every nvcc flag and ``extra_key`` (architecture,
    TensorRT version), so an edited source or an upgrade builds a new library instead of
    loading a stale one. The result is moved into place atomically: a process that starts
    while another builds never loads half a file.
    """
    digest = hashlib.sha256(" ".join((*NVCC_FLAGS, *SHARED_FLAGS, extra_key)).encode())
    for path in inputs:
        digest.update(path.read_bytes())
    library = cache_root / digest.hexdigest()[:16] / name
    if not library.is_file():
        library.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=library.parent) as scratch:
            os.replace(build(Path(scratch)), library)
    return library


def find_tensorrt_include() -> Path | None:
    """The folder holding ``NvInferRuntime.h``: ``$TENSORRT_INCLUDE_DIR``, ``$TENSORRT_ROOT/include``
    (or ``$TENSORRT_ROOT`` itself), then the usual install places; ``None`` without TensorRT."""
    candidates: list[Path] = []
    if include := os.environ.get("TENSORRT_INCLUDE_DIR"):
        candidates.append(Path(include))
    if root := os.environ.get("TENSORRT_ROOT"):
        candidates += [Path(root) / "include", Path(root)]
    candidates += TENSORRT_INCLUDE_DIRS
    return next((folder for folder in candidates if (folder / TENSORRT_HEADER).is_file()), None)


def parse_ptxas(log: str) -> list[KernelResources]:
    """The ``ptxas info`` blocks of ``nvcc -Xptxas -v`` as records, one per kernel entry."""
    entries = re.finditer(
        r"Compiling entry function '(?P<kernel>\w+)' for '(?P<arch>\w+)'\s*\n"
        r"(?:ptxas info\s*: Function properties for \w+\s*\n)?"
        r"\s*(?P<stack>\d+) bytes stack frame, (?P<stores>\d+) bytes spill stores, "
        r"(?P<loads>\d+) bytes spill loads\s*\n"
        r"ptxas info\s*: Used (?P<registers>\d+) registers",
        log,
    )
    return [
        KernelResources(m["kernel"], m["arch"], int(m["registers"]), int(m["stack"]), int(m["stores"]), int(m["loads"]))
        for m in entries
    ]


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise BackendError(f"{' '.join(command)} failed:\n{result.stderr}")
    return result
