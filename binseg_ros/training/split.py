"""Train / held-out split by scene group, never by id.

MM5 shot each object configuration several times as a turntable turned, so neighbouring ids
are near-duplicates and a random split over ids leaks. A *scene group* is a run of
consecutive ids whose META has the same category, subcategory and tags; every
``every``-th group (starting at ``offset``) is held out, which spreads the held-out scenes
over all object categories without looking at any score.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from binseg_ros.datasets import FolderLayout, list_ids
from binseg_ros.errors import InputError

SPLITS = Path(__file__).resolve().parent / "splits"


@dataclass(frozen=True)
class SceneGroup:
    key: str  # "category / subcategory / tag+tag"
    ids: tuple[str, ...]


@dataclass(frozen=True)
class Split:
    train: tuple[SceneGroup, ...]
    held_out: tuple[SceneGroup, ...]

    def train_ids(self) -> list[str]:
        return [i for g in self.train for i in g.ids]

    def held_out_ids(self) -> list[str]:
        return [i for g in self.held_out for i in g.ids]


def _scene_key(meta_path: Path) -> str:
    try:
        meta = json.loads(meta_path.read_text())
        return f"{meta['category']} / {meta['subcategory']} / {'+'.join(sorted(meta['challenge']))}"
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"cannot read the scene of {meta_path}: {exc}") from exc


def scene_groups(root: str | Path, layout: FolderLayout = FolderLayout(), meta: str = "META") -> list[SceneGroup]:
    """Runs of consecutive frame ids with the same META scene, in id order."""
    root = Path(root)
    ids = list_ids(root, layout)
    keyed = [(frame_id, _scene_key(root / meta / f"{frame_id}.json")) for frame_id in ids]
    return [
        SceneGroup(key, tuple(frame_id for frame_id, _ in run))
        for key, run in itertools.groupby(keyed, key=lambda item: item[1])
    ]


def holdout_split(groups: list[SceneGroup], every: int = 5, offset: int = 2) -> Split:
    """Hold out groups ``offset``, ``offset + every``, ... (0-based, in id order)."""
    held = tuple(g for n, g in enumerate(groups) if n % every == offset)
    train = tuple(g for n, g in enumerate(groups) if n % every != offset)
    return Split(train, held)


def load_split(path: str | Path) -> Split:
    """Read a committed split file (InputError naming the file when it cannot be read)."""

    def groups(entries: list[dict]) -> tuple[SceneGroup, ...]:
        return tuple(SceneGroup(e["scene"], tuple(str(i) for i in e["ids"])) for e in entries)

    try:
        data = yaml.safe_load(Path(path).read_text())
        return Split(groups(data["train"]), groups(data["held_out"]))
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise InputError(f"cannot read split file {path}: {exc}") from exc


FRAME_CHOICES = ("held-out", "train", "all")
"""Which frames of a dataset a job takes: the split's held-out groups, its training groups, or every frame."""


def frame_ids(which: str, root: str | Path, split_file: str | Path, layout: FolderLayout = FolderLayout()) -> list[str]:
    """The ids of ``which`` (one of :data:`FRAME_CHOICES`): ``all`` lists the dataset folder, the
    others read ``split_file``, so a bag or table of held-out frames never holds a training frame."""
    if which == "all":
        return list_ids(root, layout)
    if which not in FRAME_CHOICES:
        raise InputError(f"frames must be one of {', '.join(FRAME_CHOICES)}, got {which!r}")
    split = load_split(split_file)
    return split.held_out_ids() if which == "held-out" else split.train_ids()
