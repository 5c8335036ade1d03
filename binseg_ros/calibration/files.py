"""Rig files and ``camera_info`` files in, validated :class:`Rig` / :class:`CameraInfo` out, and back.

A rig file names the reference camera and, per modality, its ``camera_info`` file (relative to
the rig file) and how it maps into the reference: ``T_reference_camera`` (16 numbers, row-major
4x4, p_ref = T · p_cam, metres) or ``homography`` (9 numbers, row-major 3x3, camera pixel →
reference pixel), or neither for a camera already registered pixel for pixel. ``camera_info``
files are the ROS ``camera_calibration`` YAML that ``cameracalibrator`` and
``camera_info_manager`` write. ``camera_info_from_message`` reads the same fields from a
``sensor_msgs/CameraInfo`` (duck-typed: no ROS import here). See ``calibration/README.md``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from binseg_ros.calibration import validate
from binseg_ros.calibration.model import CameraInfo, CameraMount, Rig
from binseg_ros.calibration.validate import Where
from binseg_ros.errors import CalibrationError
from binseg_ros.modalities import MODALITIES

CAMERA_KEYS = ("camera_info", "T_reference_camera", "homography")
"""The keys of one camera's entry in a rig file."""

INFO_KEYS = {"width": "image_width", "height": "image_height", "model": "distortion_model"}
INFO_MATRICES = {"K": "camera_matrix", "D": "distortion_coefficients", "R": "rectification_matrix"}
INFO_MATRICES |= {"P": "projection_matrix"}


def read_yaml(path: Path) -> Mapping[str, Any]:
    """A YAML file whose top level is a mapping; a missing file or bad syntax is a CalibrationError."""
    where = Where(str(path))
    try:
        content = Path(path).read_text()
    except OSError as exc:
        raise where.error(f"cannot read: {exc.strerror or exc}") from None
    try:
        doc = yaml.safe_load(content)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise where.error(f"invalid YAML{at}: {getattr(exc, 'problem', None) or exc}") from None
    return validate.mapping(where, doc)


def load_camera_info(path: Path | str) -> CameraInfo:
    """A ``camera_calibration`` YAML file as a validated :class:`CameraInfo`.

    ``image_width``, ``image_height``, ``camera_matrix``, ``distortion_model`` and
    ``distortion_coefficients`` are required; ``camera_name`` defaults to the file's stem,
    ``rectification_matrix`` to identity, ``projection_matrix`` to none.
    """
    path = Path(path)
    where = Where(str(path))
    doc = read_yaml(path)
    keys = {field: where.at(key) for field, key in (INFO_KEYS | INFO_MATRICES).items()}
    shapes = {"K": (3, 3), "D": (1, None), "R": (3, 3), "P": (3, 4)}
    matrices: dict[str, np.ndarray | None] = {}
    for field, key in INFO_MATRICES.items():
        optional = field in ("R", "P")
        value = doc.get(key) if optional else validate.required(where, doc, key)
        matrices[field] = None if value is None else validate.matrix_entry(keys[field], value, *shapes[field])
    K, D = matrices["K"], matrices["D"]
    assert K is not None and D is not None  # required above
    name = doc.get("camera_name") or path.stem
    size = (validate.required(where, doc, "image_width"), validate.required(where, doc, "image_height"))
    model = validate.required(where, doc, "distortion_model")
    return validate.camera_info(keys, str(name), size, K, model, D, matrices["R"], matrices["P"])


def camera_info_from_message(msg: Any, topic: str | None = None) -> CameraInfo:
    """A ``sensor_msgs/CameraInfo`` message as a validated :class:`CameraInfo`.

    Errors name ``topic`` (or the header's frame_id) and the message field (``k``, ``d``, ...).
    Drivers that leave ``r`` or ``p`` all zero get identity and none: an uncalibrated camera's
    all-zero ``k`` is still refused (its focal lengths are not positive).
    """
    frame_id = str(getattr(getattr(msg, "header", None), "frame_id", "") or "")
    where = Where(f"topic {topic}" if topic else f"camera_info message (frame_id {frame_id!r})")
    keys = {field: where.at(field.lower()) for field in ("K", "D", "R", "P")}
    keys |= {"width": where.at("width"), "height": where.at("height"), "model": where.at("distortion_model")}
    K = validate.numbers(keys["K"], list(msg.k), 9).reshape(3, 3)
    D = validate.numbers(keys["D"], list(msg.d))
    R = validate.numbers(keys["R"], list(msg.r), 9).reshape(3, 3)
    P = validate.numbers(keys["P"], list(msg.p), 12).reshape(3, 4)
    name = frame_id or (topic or "")
    size = (msg.width, msg.height)
    return validate.camera_info(
        keys, name, size, K, msg.distortion_model, D, None if not R.any() else R, None if not P.any() else P
    )


def load_rig(path: Path | str) -> Rig:
    """A rig file and the ``camera_info`` files it names, as a validated :class:`Rig`."""
    return rig_from_document(read_yaml(Path(path)), Path(path))


def rig_from_document(doc: Mapping[str, Any], path: Path) -> Rig:
    """The rig a parsed rig file describes; ``path`` is where it lives (messages, relative paths)."""
    where = Where(str(path))
    reference = validate.text(where.at("reference"), validate.required(where, doc, "reference"))
    if reference not in MODALITIES:
        raise where.at("reference").error(f"unknown modality {reference!r} (expected {', '.join(MODALITIES)})")
    entries = validate.mapping(where.at("cameras"), validate.required(where, doc, "cameras"))
    for modality in entries:
        if modality not in MODALITIES:
            raise (
                where.at("cameras")
                .at(str(modality))
                .error(f"unknown modality {modality!r} (expected {', '.join(MODALITIES)})")
            )
    if reference not in entries:
        raise where.at("reference").error(f"{reference!r} is not among cameras ({', '.join(map(str, entries))})")
    infos = {m: _camera_info_of(where.at("cameras").at(m), path.parent, entries[m]) for m in entries}
    cameras = {
        m: _mount(where.at("cameras").at(m), m, entries[m], infos[m], infos[reference], m == reference)
        for m in MODALITIES
        if m in entries
    }
    return Rig(reference=reference, cameras=cameras, source=path)


def _camera_info_of(where: Where, folder: Path, entry: Any) -> CameraInfo:
    entry = validate.mapping(where, entry)
    unknown = sorted(str(key) for key in entry if key not in CAMERA_KEYS)
    if unknown:
        raise where.at(unknown[0]).error(f"unknown key (expected {', '.join(CAMERA_KEYS)})")
    name = validate.text(where.at("camera_info"), validate.required(where, entry, "camera_info"))
    if not (folder / name).is_file():
        raise where.at("camera_info").error(f"no such file {name!r} (relative to the rig file: {folder / name})")
    return load_camera_info(folder / name)


def _mount(
    where: Where, modality: str, entry: Mapping[str, Any], info: CameraInfo, reference: CameraInfo, is_reference: bool
) -> CameraMount:
    given = [key for key in ("T_reference_camera", "homography") if entry.get(key) is not None]
    if len(given) == 2:
        raise where.error("both T_reference_camera and homography given; a camera maps by one of them")
    if given and is_reference:
        raise where.at(given[0]).error("the reference camera maps to itself and takes no transform")
    T = validate.transform(where.at(given[0]), entry[given[0]]) if given == ["T_reference_camera"] else None
    H = validate.homography(where.at(given[0]), entry[given[0]], info, reference) if given == ["homography"] else None
    if not given and info.resolution != reference.resolution:
        raise where.error(
            f"no T_reference_camera or homography, so it must be registered pixel for pixel at the reference's "
            f"{reference.width}x{reference.height}, but its camera_info is {info.width}x{info.height}"
        )
    return CameraMount(modality=modality, info=info, T_reference_camera=T, homography=H)


def camera_info_document(info: CameraInfo) -> dict[str, Any]:
    """``info`` in the ``camera_calibration`` YAML layout (what :func:`save_camera_info` writes)."""

    def entry(matrix: np.ndarray) -> dict[str, Any]:
        rows, cols = (1, matrix.size) if matrix.ndim == 1 else matrix.shape
        return {"rows": int(rows), "cols": int(cols), "data": [float(v) for v in matrix.reshape(-1)]}

    doc: dict[str, Any] = {"image_width": info.width, "image_height": info.height, "camera_name": info.name}
    doc |= {"camera_matrix": entry(info.K), "distortion_model": info.distortion_model}
    doc |= {"distortion_coefficients": entry(info.D), "rectification_matrix": entry(info.R)}
    if info.P is not None:
        doc["projection_matrix"] = entry(info.P)
    return doc


def save_camera_info(info: CameraInfo, path: Path | str) -> None:
    """Write ``info`` as a ``camera_calibration`` YAML file."""
    write_yaml(camera_info_document(info), Path(path))


def rig_entry(
    camera_info: str, mount: CameraMount | None = None, homography: np.ndarray | None = None
) -> dict[str, Any]:
    """One camera's entry of a rig file: its ``camera_info`` file and its transform, if any."""
    entry: dict[str, Any] = {"camera_info": camera_info}
    T = mount.T_reference_camera if mount is not None else None
    H = homography if homography is not None else (mount.homography if mount is not None else None)
    if T is not None:
        entry["T_reference_camera"] = [float(v) for v in T.reshape(-1)]
    if H is not None:
        entry["homography"] = [float(v) for v in H.reshape(-1)]
    return entry


def save_rig(rig: Rig, path: Path | str) -> None:
    """Write ``rig`` to ``path`` and each camera's intrinsics beside it as ``<modality>.yaml``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for modality, mount in rig.cameras.items():
        save_camera_info(mount.info, path.parent / f"{modality}.yaml")
    cameras = {m: rig_entry(f"{m}.yaml", mount) for m, mount in rig.cameras.items()}
    write_yaml({"reference": rig.reference, "cameras": cameras}, path)


def update_rig(
    path: Path | str,
    camera: str,
    homography: np.ndarray,
    camera_info: Path | None = None,
    reference: str | None = None,
    reference_info: Path | None = None,
) -> Rig:
    """Set ``camera``'s homography in the rig file at ``path`` (made if missing); returns the rig.

    ``camera_info`` / ``reference_info`` (``camera_calibration`` files) become the camera's and
    the reference's intrinsics: a file already in the rig's folder is referred to by name, any
    other is copied there as ``<modality>.yaml``. Other cameras and the reference of an existing
    rig are kept (the camera's ``T_reference_camera``, if any, is replaced). The whole rig is
    validated before the file is written, so a rejected homography leaves the file as it was.
    """
    path = Path(path)
    where = Where(str(path))
    doc = dict(read_yaml(path)) if path.exists() else {"reference": reference or "rgb", "cameras": {}}
    ref = validate.text(where.at("reference"), validate.required(where, doc, "reference"))
    if reference is not None and reference != ref:
        raise where.at("reference").error(f"the rig's reference camera is {ref!r}, not {reference!r}")
    if camera == ref:
        raise where.at("reference").error(f"{camera!r} is the reference camera: it maps to itself")
    cameras = {str(k): v for k, v in validate.mapping(where.at("cameras"), doc.get("cameras") or {}).items()}
    given = {m: Path(source) for m, source in ((ref, reference_info), (camera, camera_info)) if source is not None}
    for modality in (ref, camera):
        entry = dict(validate.mapping(where.at("cameras").at(modality), cameras.get(modality) or {}))
        if modality in given:  # validated where it is; placed beside the rig once all is valid
            entry["camera_info"] = str(given[modality].resolve())
        elif modality not in cameras:
            flag = "--reference-info" if modality == ref else "--camera-info"
            raise where.at("cameras").at(modality).error(f"not in the rig yet: give its camera_info file ({flag})")
        cameras[modality] = entry
    name = validate.text(where.at("cameras").at(camera).at("camera_info"), cameras[camera].get("camera_info"))
    cameras[camera] = rig_entry(name, homography=homography)
    doc["cameras"] = cameras
    rig = rig_from_document(doc, path)
    for modality, source in given.items():
        cameras[modality]["camera_info"] = _place(source, path.parent, modality)
    write_yaml(doc, path)
    return rig


def _place(source: Path, folder: Path, modality: str) -> str:
    """The name the rig file refers to ``source`` by: copied into ``folder`` unless already there."""
    folder.mkdir(parents=True, exist_ok=True)
    if source.resolve().parent == folder.resolve():
        return source.name
    try:
        shutil.copyfile(source, folder / f"{modality}.yaml")
    except OSError as exc:
        raise CalibrationError(
            f"{folder / f'{modality}.yaml'}: cannot copy {source} here: {exc.strerror or exc}"
        ) from None
    return f"{modality}.yaml"


def write_yaml(doc: Mapping[str, Any], path: Path) -> None:
    """Write ``doc`` atomically: mappings as blocks, number lists on one line (``data: [...]``)."""
    text = yaml.safe_dump(dict(doc), sort_keys=False, default_flow_style=None, width=1000)
    partial = path.with_name(f".{path.name}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(text)
        os.replace(partial, path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise CalibrationError(f"{path}: cannot write: {exc.strerror or exc}") from None
