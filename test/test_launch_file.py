"""launch/segment.launch.py read statically against what a real segment_node declares and uses.

``launch`` and ``launch_ros`` are not installable here, so the launch file is parsed with
``ast``, never imported. The other side is real: a ``SegmentNode`` in this process, started in
a ROS domain of this run's own, whose parameters (``binseg_ros.ros.params.PARAMS`` and whatever
else it declares, ``use_sim_time`` included) and topics (inputs, ``~/mask`` ... ``/diagnostics``,
camera_info, ``/clock``) are read from rclpy. Every parameter the launch file sets must be one
of the node's, each fed from the launch argument of the same name (dots become underscores:
``rgb.transport`` from ``rgb_transport``) and, where wrapped in ``ParameterValue``, given the
declared type; every remapping source must resolve to a topic of the node; every
``LaunchConfiguration`` names a declared launch argument and every declared argument is used;
the executable is one setup.py installs, and the default parameters file exists. A parameter
added to the node and passed by the launch file is checked with no change here.

The negative cases misspell, one at a time, each name the checks cover in a copy of the launch
source written to a temporary folder, and expect the checks to name the problem.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import rclpy
from conftest import REPO
from rclpy.context import Context
from rclpy.parameter import Parameter
from rosgraph import ros_environment

from binseg_ros.modalities import MODALITIES, image_topic
from binseg_ros.ros.node import SegmentNode
from binseg_ros.ros.params import PARAMS

LAUNCH_FILE = REPO / "launch" / "segment.launch.py"
PACKAGE = "binseg_ros"
NODE_ACTIONS = {"Node", "LifecycleNode"}  # launch_ros actions that start a node executable
TYPE_NAMES = {"bool": bool, "int": int, "float": float, "str": str}


def _callee(call: ast.Call) -> str:
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _first_string(call: ast.Call, keyword: str) -> ast.Constant | None:
    """The string literal given as the first positional argument or as ``keyword``."""
    value = call.args[0] if call.args else _keyword(call, keyword)
    return value if isinstance(value, ast.Constant) and isinstance(value.value, str) else None


def _calls(tree: ast.AST, name: str | set[str]) -> Iterator[ast.Call]:
    names = {name} if isinstance(name, str) else name
    return (n for n in ast.walk(tree) if isinstance(n, ast.Call) and _callee(n) in names)


def _path_parts(expr: ast.expr) -> list[ast.Constant]:
    """The string literals of a ``base / "a" / "b"`` chain (none for any other expression)."""
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Div):
        right = [expr.right] if isinstance(expr.right, ast.Constant) and isinstance(expr.right.value, str) else []
        return _path_parts(expr.left) + right
    return []


@dataclass
class LaunchSource:
    """The names in a launch file that the checks read, each with its literal in the source."""

    arguments: dict[str, ast.Call] = field(default_factory=dict)  # DeclareLaunchArgument by name
    configurations: list[ast.Constant] = field(default_factory=list)  # every LaunchConfiguration("name")
    nodes: list[ast.Call] = field(default_factory=list)
    parameter_keys: list[ast.Constant] = field(default_factory=list)
    remap_sources: list[ast.Constant] = field(default_factory=list)
    default_paths: list[list[ast.Constant]] = field(default_factory=list)  # path literals of argument defaults
    problems: list[str] = field(default_factory=list)  # what could not be read

    @classmethod
    def parse(cls, source: str) -> LaunchSource:
        tree = ast.parse(source)
        found = cls()
        for call in _calls(tree, "DeclareLaunchArgument"):
            name = _first_string(call, "name")
            if name is None:
                found.problems.append(f"line {call.lineno}: DeclareLaunchArgument without a literal name")
                continue
            found.arguments[name.value] = call
            default = _keyword(call, "default_value")
            inner: set[int] = set()  # the left operands of a chain already read whole
            for expr in ast.walk(default) if default is not None else ():
                if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Div) and id(expr) not in inner:
                    left = expr.left
                    while isinstance(left, ast.BinOp) and isinstance(left.op, ast.Div):
                        inner.add(id(left))
                        left = left.left
                    if parts := _path_parts(expr):
                        found.default_paths.append(parts)
        for call in _calls(tree, "LaunchConfiguration"):
            name = _first_string(call, "variable_name")
            if name is None:
                found.problems.append(f"line {call.lineno}: LaunchConfiguration without a literal name")
            else:
                found.configurations.append(name)
        found.nodes = list(_calls(tree, NODE_ACTIONS))
        for node in found.nodes:
            parameters = _keyword(node, "parameters")
            for item in parameters.elts if isinstance(parameters, ast.List) else ():
                if isinstance(item, ast.Dict):
                    for key in item.keys:
                        if isinstance(key, ast.Constant) and isinstance(key.value, str):
                            found.parameter_keys.append(key)
                        else:
                            found.problems.append(f"line {item.lineno}: a parameter name that is not a literal")
            remappings = _keyword(node, "remappings")
            for pair in remappings.elts if isinstance(remappings, ast.List) else ():
                source_topic = pair.elts[0] if isinstance(pair, ast.Tuple) and len(pair.elts) == 2 else None
                if isinstance(source_topic, ast.Constant) and isinstance(source_topic.value, str):
                    found.remap_sources.append(source_topic)
                else:
                    found.problems.append(f"line {pair.lineno}: a remapping that is not a (literal, target) pair")
        return found


def console_scripts() -> set[str]:
    """The executables setup.py installs into lib/binseg_ros (``ros2 run`` names)."""
    tree = ast.parse((REPO / "setup.py").read_text())
    (setup_call,) = _calls(tree, "setup")
    entry_points = _keyword(setup_call, "entry_points")
    assert isinstance(entry_points, ast.Dict)
    (scripts,) = (
        v
        for k, v in zip(entry_points.keys, entry_points.values, strict=True)
        if getattr(k, "value", None) == "console_scripts"
    )
    return {entry.split("=")[0].strip() for entry in ast.literal_eval(scripts)}


@dataclass(frozen=True)
class NodeFacts:
    """What a running segment_node has: its parameters with their types, and its topics."""

    parameters: dict[str, type]
    topics: set[str]  # fully qualified, as rclpy reports them
    resolve: Callable[[str], str]  # a name as written in a remapping -> the node's fully qualified name


@pytest.fixture(scope="module")
def node() -> Iterator[NodeFacts]:
    """A real segment_node with every optional input turned on (``/clock`` with sim time, the
    camera_info topics with a rig file) and the shipped model on onnxruntime, so that each topic
    it can use exists; started as ``ros2 run`` starts it (a managed node only subscribes and
    publishes once configured and active)."""
    overrides = {
        "backend": "onnxruntime",
        "use_sim_time": True,
        "calibration_file": str(REPO / "calibration" / "example" / "rig.yaml"),
        "camera_info_source": "topics",
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in ros_environment().items():
            patch.setenv(name, value)
        context = Context()
        rclpy.init(args=[], context=context)
        segment_node = None
        try:
            segment_node = SegmentNode(
                context=context, parameter_overrides=[Parameter(n, value=v) for n, v in overrides.items()]
            )
            segment_node.start()
            names = segment_node.list_parameters([], 0).names
            parameters = {name: type(segment_node.get_parameter(name).value) for name in names}
            endpoints = [*segment_node.publishers, *segment_node.subscriptions]
            yield NodeFacts(parameters, {e.topic_name for e in endpoints}, segment_node.resolve_topic_name)
        finally:
            if segment_node is not None:
                segment_node.close()
            rclpy.try_shutdown(context=context)


def test_the_node_reports_what_the_checks_need(node):
    """The checks below are only as good as these facts: every PARAMS entry, rclpy's own
    ``use_sim_time``, every input and camera_info topic, the outputs and ``/clock``."""
    assert {spec.name: type(spec.default) for spec in PARAMS}.items() <= node.parameters.items()
    assert node.parameters["use_sim_time"] is bool
    for modality in MODALITIES:
        assert {node.resolve(image_topic(modality)), node.resolve(f"{modality}/camera_info")} <= node.topics
    outputs = {node.resolve(name) for name in ("~/mask", "~/probability", "~/overlay", "/diagnostics", "/clock")}
    assert outputs <= node.topics, node.topics


def launch_problems(path: Path, node: NodeFacts) -> list[str]:
    """What in the launch file at ``path`` does not match segment_node (empty when all does)."""
    found = LaunchSource.parse(path.read_text())
    problems = list(found.problems)
    executables = console_scripts()
    used = {c.value for c in found.configurations}
    if not found.nodes:
        problems.append("no Node action")
    for action in found.nodes:
        package, executable = (_keyword(action, k) for k in ("package", "executable"))
        if not (isinstance(package, ast.Constant) and package.value == PACKAGE):
            problems.append(f"line {action.lineno}: package is not {PACKAGE!r}")
        if not (isinstance(executable, ast.Constant) and executable.value in executables):
            problems.append(f"line {action.lineno}: executable is none of setup.py's {sorted(executables)}")
        parameters = _keyword(action, "parameters")
        for item in parameters.elts if isinstance(parameters, ast.List) else ():
            if isinstance(item, ast.Dict):
                for key, value in zip(item.keys, item.values, strict=True):
                    if isinstance(key, ast.Constant) and isinstance(key.value, str):
                        problems += _parameter_problems(key.value, value, node.parameters)
    for source in found.remap_sources:
        resolved = node.resolve(source.value)
        if resolved not in node.topics:
            problems.append(
                f"remapping of {source.value!r} ({resolved}), a topic segment_node does not use: {sorted(node.topics)}"
            )
    for name in sorted(used - set(found.arguments)):
        problems.append(f"LaunchConfiguration({name!r}) has no DeclareLaunchArgument")
    for name in sorted(set(found.arguments) - used):
        problems.append(f"launch argument {name!r} is declared but never used")
    for parts in found.default_paths:
        relative = Path(*(p.value for p in parts))
        if not (REPO / relative).is_file():
            problems.append(f"default path {relative} is not a file of the package")
    return problems


def _parameter_problems(name: str, value: ast.expr, declared: dict[str, type]) -> list[str]:
    if name not in declared:
        return [f"parameter {name!r} is not declared by segment_node"]
    problems = []
    argument = name.replace(".", "_")
    names = [getattr(_first_string(c, "variable_name"), "value", None) for c in _calls(value, "LaunchConfiguration")]
    if names and names != [argument]:  # a literal value (no LaunchConfiguration) needs no argument
        problems.append(f"parameter {name!r} is set from launch argument(s) {names}, expected [{argument!r}]")
    for wrapper in _calls(value, "ParameterValue"):
        value_type = _keyword(wrapper, "value_type")
        if isinstance(value_type, ast.Name) and TYPE_NAMES.get(value_type.id) not in (None, declared[name]):
            problems.append(
                f"parameter {name!r} is given as {value_type.id}, but segment_node declares a {declared[name].__name__}"
            )
    return problems


def test_launch_file_matches_the_node(node):
    assert launch_problems(LAUNCH_FILE, node) == []


def test_launch_file_sets_the_inputs_it_documents():
    """Each modality's topic and transport can be set from the command line, as the docstring says."""
    found = LaunchSource.parse(LAUNCH_FILE.read_text())
    assert {image_topic(m) for m in MODALITIES} <= {s.value for s in found.remap_sources}
    assert {f"{m}.transport" for m in MODALITIES} <= {k.value for k in found.parameter_keys}
    assert {"backend", "engine_dir", "use_sim_time"} <= {k.value for k in found.parameter_keys}
    assert any(parts[-1].value == "segment.yaml" for parts in found.default_paths)


def _typo(name: str) -> str:
    """A plausible misspelling: the last two characters swapped, or a doubled last character."""
    swapped = name[:-2] + name[-1] + name[-2] if len(name) > 1 else name
    return swapped if swapped != name else name + name[-1]


def _misspellings() -> Iterator[object]:
    found = LaunchSource.parse(LAUNCH_FILE.read_text())
    literals = [
        *(("parameter", k) for k in found.parameter_keys),
        *(("remapping", s) for s in found.remap_sources),
        *(("argument", _first_string(call, "name")) for call in found.arguments.values()),
        *(("configuration", c) for c in found.configurations),
        *(("default path", p) for parts in found.default_paths for p in parts),
    ]
    for kind, literal in literals:
        assert literal is not None
        yield pytest.param(
            literal.lineno, literal.col_offset, literal.value, id=f"{kind}-{literal.value}-line{literal.lineno}"
        )


def _replace_at(source: str, line: int, column: int, old: str, new: str) -> str:
    """``source`` with the text ``old`` at (line, UTF-8 column), where ``ast`` found it, rewritten as ``new``."""
    data = source.encode()
    start = sum(len(text) for text in data.splitlines(keepends=True)[: line - 1]) + column
    assert data[start : start + len(old.encode())] == old.encode(), data[start : start + 40]
    return (data[:start] + new.encode() + data[start + len(old.encode()) :]).decode()


def _replace_literal(source: str, line: int, column: int, old: str, new: str) -> str:
    """``source`` with the string literal ``old`` at (line, column) rewritten as ``new`` (same quotes)."""
    quote = source.encode().splitlines(keepends=True)[line - 1][column : column + 1].decode()
    assert quote in ("'", '"'), quote
    return _replace_at(source, line, column, quote + old + quote, quote + new + quote)


@pytest.mark.parametrize(("line", "column", "name"), list(_misspellings()))
def test_a_misspelled_name_in_the_launch_file_fails(line, column, name, node, tmp_path):
    broken = tmp_path / LAUNCH_FILE.name
    typo = _typo(name)
    broken.write_text(_replace_literal(LAUNCH_FILE.read_text(), line, column, name, typo))
    problems = launch_problems(broken, node)
    assert problems, f"{name!r} -> {typo!r} on line {line} went unnoticed"
    assert any(typo in problem or name in problem for problem in problems), problems


def _value_types() -> list[object]:
    found = LaunchSource.parse(LAUNCH_FILE.read_text())
    names = (_keyword(call, "value_type") for node in found.nodes for call in _calls(node, "ParameterValue"))
    return [
        pytest.param(n.lineno, n.col_offset, n.id, id=f"{n.id}-line{n.lineno}")
        for n in names
        if isinstance(n, ast.Name)
    ]


@pytest.mark.parametrize(("line", "column", "type_name"), _value_types())
def test_a_parameter_given_the_wrong_type_fails(line, column, type_name, node, tmp_path):
    """``ParameterValue(..., value_type=T)`` must be the type the node declares (rclpy refuses another)."""
    broken = tmp_path / LAUNCH_FILE.name
    wrong = "int" if type_name != "int" else "str"
    broken.write_text(_replace_at(LAUNCH_FILE.read_text(), line, column, type_name, wrong))
    problems = launch_problems(broken, node)
    assert any(f"is given as {wrong}" in problem for problem in problems), problems
