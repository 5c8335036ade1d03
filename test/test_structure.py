"""The package's shape, held in CI: small modules, short functions, layers that point down.

- No module over 350 lines and no function over 60: a module is one job, a function one step.
- Only ``binseg_ros/ros/`` imports rclpy or ROS message packages: everything else runs, and is
  tested, without ROS.
- ``binseg_ros/core/`` (the runtime both adapters share) imports nothing from the adapters,
  the CLI, the bag tools or training.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "binseg_ros"
MODULES = sorted(PACKAGE.rglob("*.py"))
MAX_MODULE_LINES = 350
MAX_FUNCTION_LINES = 60
ROS_PACKAGES = (
    "rclpy",
    "sensor_msgs",
    "std_msgs",
    "diagnostic_msgs",
    "builtin_interfaces",
    "rcl_interfaces",
    "rosgraph_msgs",
    "lifecycle_msgs",
)


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _name(path: Path) -> str:
    return str(path.relative_to(PACKAGE.parent))


def test_the_package_is_found():
    assert len(MODULES) > 50 and (PACKAGE / "core" / "runtime.py") in MODULES


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_module_and_function_sizes(path):
    lines = path.read_text().count("\n")
    assert lines <= MAX_MODULE_LINES, f"{_name(path)} has {lines} lines"
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            assert length <= MAX_FUNCTION_LINES, f"{_name(path)}:{node.lineno} {node.name} has {length} lines"


def test_only_the_ros_adapter_imports_ros():
    outside = {
        _name(path): sorted(n for n in _imports(path) if n.split(".")[0] in ROS_PACKAGES)
        for path in MODULES
        if "ros" not in path.relative_to(PACKAGE).parts[:1]
    }
    assert {name: found for name, found in outside.items() if found} == {}


def test_the_core_imports_no_adapter_and_no_runtime():
    """The backends and engines implement the core's contracts (``core.backend``); the core
    names none of them, so it runs with whichever runtime an adapter hands it."""
    adapters = ("binseg_ros.ros", "binseg_ros.bags", "binseg_ros.cli", "binseg_ros.training", "binseg_ros.bench")
    adapters += ("binseg_ros.backends", "binseg_ros.engines")
    found = {
        _name(path): sorted(n for n in _imports(path) if n.startswith(adapters))
        for path in MODULES
        if path.relative_to(PACKAGE).parts[0] == "core"
    }
    assert {name: names for name, names in found.items() if names} == {}
