"""nvcc builds of the CUDA kernels for every target GPU, and the checks on what ptxas reports.

Targets: Jetson Orin (sm_87), H100 (sm_90), Jetson Thor (sm_110) as cubins, plus PTX for the
newest architecture so a later GPU can JIT it. Warnings are errors, and ptxas must report no
spills and no local memory: a spill in these inner loops would cost more than the kernel.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from binseg_ros.errors import BackendError

SOURCES = Path(__file__).resolve().parent
FREQUENCY_SPLIT = SOURCES / "frequency_split.cu"
CUBIN_ARCHS = ("sm_87", "sm_90", "sm_110")
PTX_ARCH = "compute_110"
NVCC_FLAGS = ("-O3", "-std=c++17", "-Werror", "all-warnings")
PTXAS_FLAGS = ("-Xptxas", "-v,-warn-spills,-warn-lmem-usage")  # cubins only: PTX is not assembled here


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


def parse_ptxas(log: str) -> list[KernelResources]:
    """The ``ptxas info`` blocks of ``nvcc -Xptxas -v`` as records, one per kernel entry."""
    entries = re.finditer(
        r"Compiling entry function '(?P<kernel>\w+)' for '(?P<arch>\w+)'\s*\n"
        r"(?:ptxas info\s*: Function properties for \w+\s*\n)?"
        r"\s*(?P<stack>\d+) bytes stack frame, (?P<stores>\d+) bytes spill stores, (?P<loads>\d+) bytes spill loads\s*\n"
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
