"""``engines/<model>/manifest.yaml``: what an engine folder holds and how to feed it.

The manifest is the contract between export and every runtime: which subsets exist, the
input names and static shapes of each graph, the normalisation the graphs apply, and the
sha256 of every file, so a runtime can refuse a file that changed under it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from binseg_ros.errors import ManifestError
from binseg_ros.hashing import sha256_file
from binseg_ros.modalities import CHANNELS, Subset, parse_subset, subset_name

MANIFEST_NAME = "manifest.yaml"
FORMAT_VERSION = 1
OUTPUT_NAME = "probability"


@dataclass(frozen=True)
class FileRef:
    """A file in the engine folder, relative to it, with its sha256."""

    file: str
    sha256: str


@dataclass(frozen=True)
class SubsetEntry:
    """One modality subset: its graph inputs (canonical order) and one ONNX file per form."""

    subset: Subset
    onnx: dict[str, FileRef]

    def input_shapes(self, size: tuple[int, int]) -> dict[str, tuple[int, int, int, int]]:
        """``{input name: [1, C, H, W]}`` for this subset at the manifest's input size."""
        return {m: (1, CHANNELS[m], *size) for m in self.subset}


@dataclass(frozen=True)
class Manifest:
    """Parsed manifest of one engine folder (``root``)."""

    root: Path
    model: str
    version: str
    weights: FileRef
    tensors: FileRef  # the graphs' shared external data
    input_size: tuple[int, int]
    normalization: dict[str, object]
    opset: int
    subsets: dict[str, SubsetEntry] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return self.root / MANIFEST_NAME

    def entry(self, subset: Subset) -> SubsetEntry:
        """The entry for a (parsed) subset."""
        name = subset_name(subset)
        if name not in self.subsets:
            raise ManifestError(f"{self.path}: no engine for subset {name!r}; it has {', '.join(self.subsets)}")
        return self.subsets[name]

    def onnx_path(self, subset: Subset, form: str) -> Path:
        """Absolute path of a subset's ONNX file in the given frequency form."""
        entry = self.entry(subset)
        if form not in entry.onnx:
            raise ManifestError(
                f"{self.path}: subset {subset_name(entry.subset)!r} has no {form!r} export; "
                f"it has {', '.join(entry.onnx)}"
            )
        return self.root / entry.onnx[form].file

    def to_dict(self) -> dict[str, object]:
        return {
            "format": FORMAT_VERSION,
            "model": self.model,
            "version": self.version,
            "weights": vars(self.weights),
            "tensors": vars(self.tensors),
            "input_size": list(self.input_size),
            "normalization": self.normalization,
            "opset": self.opset,
            "output": OUTPUT_NAME,
            "subsets": {
                name: {"inputs": list(entry.subset), "onnx": {form: vars(ref) for form, ref in entry.onnx.items()}}
                for name, entry in self.subsets.items()
            },
        }

    def save(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        self.path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))
        return self.path

    @classmethod
    def load(cls, root: str | Path) -> Manifest:
        """Read ``root/manifest.yaml`` (``root`` may also be the manifest file itself).

        Raises:
            ManifestError: missing or unreadable file, not UTF-8 text, bad YAML, missing or ill-typed fields,
                unknown subsets.
        """
        root = Path(root)
        if root.name == MANIFEST_NAME:
            root = root.parent
        path = root / MANIFEST_NAME
        if not path.is_file():
            raise ManifestError(f"no {MANIFEST_NAME} in {root}: run `binseg export` to create the engine folder")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as exc:
            raise ManifestError(f"{path}: not a text file (byte {exc.start} is not UTF-8)") from exc
        except OSError as exc:
            raise ManifestError(f"{path}: cannot be read ({exc.strerror})") from exc
        except yaml.YAMLError as exc:
            raise ManifestError(f"{path}: not valid YAML: {exc}") from exc
        try:
            if data["format"] != FORMAT_VERSION:
                raise ManifestError(f"{path}: format {data['format']} is not supported (expected {FORMAT_VERSION})")
            subsets = {}
            for name, entry in data["subsets"].items():
                subset = parse_subset(entry["inputs"])
                if subset_name(subset) != name:
                    raise ManifestError(f"{path}: subset key {name!r} does not match its inputs {entry['inputs']}")
                subsets[name] = SubsetEntry(subset, {form: FileRef(**ref) for form, ref in entry["onnx"].items()})
            height, width = (int(v) for v in data["input_size"])
            return cls(
                root=root,
                model=str(data["model"]),
                version=str(data["version"]),
                weights=FileRef(**data["weights"]),
                tensors=FileRef(**data["tensors"]),
                input_size=(height, width),
                normalization=dict(data["normalization"]),
                opset=int(data["opset"]),
                subsets=subsets,
            )
        except ManifestError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(f"{path}: malformed manifest ({type(exc).__name__}: {exc})") from exc

    def check_graph_inputs(self) -> None:
        """Check that every ONNX graph takes exactly the inputs its subset and ``input_size`` say.

        A matching sha256 proves a file is the one recorded, not that it is the graph the manifest
        describes: an edited ``input_size``, or one subset's graph copied over another's with its
        digest updated, would pass and then fail at the first inference, in a runtime's words.
        Reads the graph files only, not their external data.

        Raises:
            ManifestError: naming the file, the inputs it takes and the ones the manifest needs.
        """
        import onnx
        from google.protobuf.message import DecodeError  # type: ignore[import-untyped]

        height, width = self.input_size
        for name, entry in self.subsets.items():
            expected = entry.input_shapes(self.input_size)
            for ref in entry.onnx.values():
                try:
                    graph = onnx.load(str(self.root / ref.file), load_external_data=False).graph
                except DecodeError as exc:
                    raise ManifestError(f"{self.path}: {ref.file} is not an ONNX model ({exc})") from exc
                found = _graph_inputs(graph)
                if found != expected:
                    raise ManifestError(
                        f"{self.path}: {ref.file} takes {_describe(found)}; the manifest's subset {name!r} "
                        f"at input_size {height}x{width} needs {_describe(expected)}"
                    )

    def verify(self, refs: Iterable[FileRef] | None = None) -> None:
        """Check that every referenced file (or only ``refs``) exists and has the recorded sha256.

        Raises:
            ManifestError: naming the first missing or changed file.
        """
        if refs is None:
            refs = [
                self.weights,
                self.tensors,
                *(ref for entry in self.subsets.values() for ref in entry.onnx.values()),
            ]
        for ref in refs:
            path = self.root / ref.file
            if not path.is_file():
                raise ManifestError(f"{self.path}: listed file {ref.file} is missing")
            if sha256_file(path) != ref.sha256:
                raise ManifestError(f"{self.path}: {ref.file} does not match its recorded sha256")


def _graph_inputs(graph: Any) -> dict[str, tuple[int | str, ...]]:
    """``{name: shape}`` of a graph's inputs (not its initializers); a dynamic dimension by its name."""
    initializers = {tensor.name for tensor in graph.initializer}
    return {
        value.name: tuple(dim.dim_param or dim.dim_value for dim in value.type.tensor_type.shape.dim)
        for value in graph.input
        if value.name not in initializers
    }


def _describe(inputs: Mapping[str, tuple[int | str, ...]]) -> str:
    return ", ".join(f"{name} {'x'.join(map(str, shape))}" for name, shape in inputs.items()) or "no inputs"
