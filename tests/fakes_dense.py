"""Tiny fixture archives of the real dense OOD datasets, in their official formats.

Same archive names, folder layouts, file names and label encodings as the published archives
(see :mod:`ood.data.dense`), but a handful of 64×32 frames, so that the real download, verify,
unpack and load code runs offline in tests through ``file://`` mirrors.

Raw labels (``H, W = 32, 64``; frame ``i`` has its box at rows 12–19, columns ``8 + 8i`` to
``23 + 8i``):

* SMIYC (both tracks) and Fishyscapes: 0 everywhere, 255 (void) in rows 0–3, 1 in the box;
* Road Anomaly: 0 everywhere, 2 (anomaly) in the box;
* StreetHazards: class ``1 + col // 8`` (1..8, raw encoding), 14 (anomaly) in the box;
* Cityscapes ``labelIds``: rows 0–7 road (7), 8–15 car (26), 16–23 unlabeled (0), 24–31 bicycle
  (33), and column 0 parking (9).

Images are RGB with ``R = 4·col``, ``G = 8·row``, ``B = 40·i + 20`` (PNG frames are lossless; JPG
and WEBP frames only approximately). Archives are byte-for-byte reproducible (fixed timestamps).
Every writer returns ``{archive name: {"sha256": ..., "md5": ..., "size": ...}}``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import tarfile
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from ood.data import registry

__all__ = [
    "H",
    "W",
    "box",
    "frame_rgb",
    "write_fake_smiyc",
    "write_fake_fishyscapes_lostandfound",
    "write_fake_road_anomaly",
    "write_fake_streethazards_test",
    "write_fake_cityscapes",
    "write_fake_dense",
    "FAKE_WRITERS",
    "pinned_spec",
]

H, W = 32, 64
Checksums = dict[str, dict[str, object]]


def box(i: int) -> tuple[slice, slice]:
    """Rows and columns of frame ``i``'s anomaly box."""
    return slice(12, 20), slice(8 + 8 * i, 24 + 8 * i)


def frame_rgb(i: int) -> np.ndarray:
    """The RGB content ``[H, W, 3]`` uint8 of frame ``i``."""
    yy, xx = np.mgrid[0:H, 0:W]
    return np.stack([4 * xx, 8 * yy, np.full_like(xx, 40 * i + 20)], axis=-1).astype(np.uint8)


def _encode(array: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    image = Image.fromarray(array)
    if fmt == "JPEG":
        image.save(buf, format=fmt, quality=95)
    elif fmt == "WEBP":
        image.save(buf, format=fmt, quality=95, method=0)
    else:
        image.save(buf, format=fmt)
    return buf.getvalue()


def _png(array: np.ndarray) -> bytes:
    return _encode(array, "PNG")


def _zero_one_void(i: int) -> np.ndarray:
    label = np.zeros((H, W), dtype=np.uint8)
    label[0:4] = 255
    label[box(i)] = 1
    return label


def _color(label: np.ndarray) -> np.ndarray:
    """A colour visualisation (like the ``*_color.png`` files the official archives carry)."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    palette[0], palette[1], palette[255] = (255, 255, 255), (255, 128, 0), (0, 0, 0)
    return palette[label]


_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def _write_zip(path: Path, members: dict[str, bytes | None]) -> None:
    """Members in the given order; ``None`` content = directory entry."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name + ("/" if data is None else ""), date_time=_ZIP_TIME)
            info.external_attr = ((0o40755 if data is None else 0o100644) << 16) | (0x10 if data is None else 0)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, b"" if data is None else data)


def _write_tar(path: Path, members: dict[str, bytes | None]) -> None:
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                tf.addfile(info, io.BytesIO(data))


def _with_dirs(files: dict[str, bytes]) -> dict[str, bytes | None]:
    """Add parent-directory entries before their files, as archivers do."""
    out: dict[str, bytes | None] = {}
    for name, data in files.items():
        parts = name.split("/")[:-1]
        for k in range(1, len(parts) + 1):
            out.setdefault("/".join(parts[:k]), None)
        out[name] = data
    return out


def _checksums(*paths: Path) -> Checksums:
    out: Checksums = {}
    for path in paths:
        data = path.read_bytes()
        out[path.name] = {
            "sha256": hashlib.sha256(data).hexdigest(),
            "md5": hashlib.md5(data).hexdigest(),
            "size": len(data),
        }
    return out


# ---------------------------------------------------------------------------------------------
# Writers
# ---------------------------------------------------------------------------------------------


def write_fake_smiyc(dest_dir: str | os.PathLike[str], track: str = "anomaly", n: int = 3) -> Checksums:
    """``dataset_AnomalyTrack.zip`` (``images/validation0000.jpg``...) or, with
    ``track="obstacle"``, ``dataset_ObstacleTrack.zip`` (``images/validation_1.webp``...): each
    with ``labels_masks/<id>_labels_semantic.png`` (+ ``_color.png``) for the ``n`` validation
    frames and one unlabelled test frame, as on Zenodo."""
    if track not in ("anomaly", "obstacle"):
        raise ValueError("track must be 'anomaly' or 'obstacle'")
    top = "dataset_AnomalyTrack" if track == "anomaly" else "dataset_ObstacleTrack"
    fmt, ext = ("JPEG", "jpg") if track == "anomaly" else ("WEBP", "webp")
    files: dict[str, bytes] = {}
    for i in range(n):
        fid = f"validation{i:04d}" if track == "anomaly" else f"validation_{i + 1}"
        label = _zero_one_void(i)
        files[f"{top}/images/{fid}.{ext}"] = _encode(frame_rgb(i), fmt)
        files[f"{top}/labels_masks/{fid}_labels_semantic.png"] = _png(label)
        files[f"{top}/labels_masks/{fid}_labels_semantic_color.png"] = _png(_color(label))
    test_id = "test0000" if track == "anomaly" else "gravel_000000"
    files[f"{top}/images/{test_id}.{ext}"] = _encode(frame_rgb(n), fmt)  # test frames: no labels
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    _write_zip(dest / f"{top}.zip", _with_dirs(files))
    return _checksums(dest / f"{top}.zip")


#: (Lost & Found id, split) of the fake Fishyscapes frames; a test-split and a train-split frame.
LAF_FRAMES = [
    ("04_Maurener_Weg_8_000000_000030", "test"),
    ("01_Hanns_Klemm_Str_45_000000_000270", "train"),
    ("15_Rechbergstr_Deckenpfronn_000001_000110", "test"),
]
#: Frames written only with ``n > 3`` (a benchmark smoke run wants as many frames per set as the
#: notebooks show); the default fixture stays the three frames above.
MORE_LAF_FRAMES = [
    ("12_Umberto_Nobile_Str_000000_000040", "test"),
    ("06_Galgenbergstr_40_000000_000120", "train"),
    ("13_Elly_Beinhorn_Str_000001_000080", "test"),
]


def write_fake_fishyscapes_lostandfound(dest_dir: str | os.PathLike[str], n: int = 3) -> Checksums:
    """``fishyscapes_lostandfound.zip`` (flat ``<nnnn>_<laf id>_labels.png``, 0/1/255) and the
    Lost & Found ``leftImg8bit.zip`` (``leftImg8bit/{train,test}/<scene>/<laf id>_leftImg8bit.png``)
    with the ``n`` labelled frames (:data:`LAF_FRAMES`, then :data:`MORE_LAF_FRAMES`) plus two
    frames no mask names (never unpacked)."""
    frames = [*LAF_FRAMES, *MORE_LAF_FRAMES]
    if not 1 <= n <= len(frames):
        raise ValueError(f"n must be in 1..{len(frames)}")
    masks: dict[str, bytes] = {}
    images: dict[str, bytes] = {}
    for i, (laf_id, split) in enumerate(frames[:n]):
        masks[f"{i:04d}_{laf_id}_labels.png"] = _png(_zero_one_void(i))
        scene = laf_id.rsplit("_", 2)[0]
        images[f"leftImg8bit/{split}/{scene}/{laf_id}_leftImg8bit.png"] = _png(frame_rgb(i))
    for j, laf_id in enumerate(["02_Hanns_Klemm_Str_44_000000_000010", "04_Maurener_Weg_8_000002_000140"]):
        scene = laf_id.rsplit("_", 2)[0]
        images[f"leftImg8bit/{'train' if j else 'test'}/{scene}/{laf_id}_leftImg8bit.png"] = _png(frame_rgb(7))
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    _write_zip(dest / "fishyscapes_lostandfound.zip", masks)
    _write_zip(dest / "leftImg8bit.zip", _with_dirs(images))
    return _checksums(dest / "fishyscapes_lostandfound.zip", dest / "leftImg8bit.zip")


ROAD_ANOMALY_FRAMES = [
    "animals01_Guiguinto_railway_station_Calves",
    "cones01_Beeston_MMB_A6_Middle_Street",
    "vehicle01_man_carrying_dry_grass_on_bicycle",
]


def write_fake_road_anomaly(dest_dir: str | os.PathLike[str], n: int = 3) -> Checksums:
    """``RoadAnomaly_jpg.zip``: ``RoadAnomaly_jpg/frame_list.json``, ``frames/<id>.jpg`` and
    ``frames/<id>.labels/labels_semantic.png`` (0 background, 2 anomaly) + ``labels_instance.png``."""
    if not 1 <= n <= len(ROAD_ANOMALY_FRAMES):
        raise ValueError(f"n must be in 1..{len(ROAD_ANOMALY_FRAMES)}")
    names = ROAD_ANOMALY_FRAMES[:n]
    files: dict[str, bytes] = {"RoadAnomaly_jpg/frame_list.json": json.dumps([f"{s}.jpg" for s in names]).encode()}
    for i, stem in enumerate(names):
        label = np.zeros((H, W), dtype=np.uint8)
        label[box(i)] = 2
        files[f"RoadAnomaly_jpg/frames/{stem}.jpg"] = _encode(frame_rgb(i), "JPEG")
        files[f"RoadAnomaly_jpg/frames/{stem}.labels/labels_semantic.png"] = _png(label)
        files[f"RoadAnomaly_jpg/frames/{stem}.labels/labels_instance.png"] = _png((label > 0).astype(np.uint8))
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    _write_zip(dest / "RoadAnomaly_jpg.zip", _with_dirs(files))
    return _checksums(dest / "RoadAnomaly_jpg.zip")


def write_fake_streethazards_test(dest_dir: str | os.PathLike[str], n: int = 3) -> Checksums:
    """``streethazards_test.tar``: ``test/images/test/<town>/<k>.png`` and
    ``test/annotations/test/<town>/<k>.png`` (class + 1, anomaly 14), towns t5 and t6."""
    files: dict[str, bytes] = {}
    for i in range(n):
        town, k = ("t5", i + 1) if i < 2 else ("t6", i + 1)
        label = (1 + np.arange(W) // 8)[None, :].repeat(H, axis=0).astype(np.uint8)
        label[box(i)] = 14
        files[f"test/images/test/{town}/{k}.png"] = _png(frame_rgb(i))
        files[f"test/annotations/test/{town}/{k}.png"] = _png(label)
    ordered = dict(sorted(files.items()))
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    _write_tar(dest / "streethazards_test.tar", _with_dirs(ordered))
    return _checksums(dest / "streethazards_test.tar")


def cityscapes_label_ids() -> np.ndarray:
    """The fake ``*_gtFine_labelIds.png`` content (see module docstring)."""
    label = np.zeros((H, W), dtype=np.uint8)
    label[0:8], label[8:16], label[16:24], label[24:32] = 7, 26, 0, 33
    label[:, 0] = 9
    return label


def write_fake_cityscapes(
    dest_dir: str | os.PathLike[str], n_train: int = 2, n_val: int = 1, n_test: int = 1
) -> Checksums:
    """``leftImg8bit_trainvaltest.zip`` and ``gtFine_trainvaltest.zip`` as from the Cityscapes
    download page: ``README``, ``license.txt``, ``leftImg8bit/<split>/<city>/<id>_leftImg8bit.png``
    and ``gtFine/<split>/<city>/<id>_gtFine_{color,instanceIds,labelIds}.png`` + ``_polygons.json``."""
    cities = {"train": "aachen", "val": "frankfurt", "test": "berlin"}
    counts = {"train": n_train, "val": n_val, "test": n_test}
    common = {"README": b"The Cityscapes Dataset (fake fixture)\n", "license.txt": b"fixture\n"}
    left: dict[str, bytes] = dict(common)
    fine: dict[str, bytes] = dict(common)
    index = 0
    for split, city in cities.items():
        for k in range(counts[split]):
            fid = f"{city}_{k:06d}_000019"
            label = cityscapes_label_ids() if split != "test" else np.zeros((H, W), dtype=np.uint8)
            left[f"leftImg8bit/{split}/{city}/{fid}_leftImg8bit.png"] = _png(frame_rgb(index))
            base = f"gtFine/{split}/{city}/{fid}_gtFine"
            fine[f"{base}_color.png"] = _png(_color(label))
            fine[f"{base}_instanceIds.png"] = _png(label)
            fine[f"{base}_labelIds.png"] = _png(label)
            fine[f"{base}_polygons.json"] = json.dumps({"imgHeight": H, "imgWidth": W, "objects": []}).encode()
            index += 1
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    _write_zip(dest / "leftImg8bit_trainvaltest.zip", _with_dirs(left))
    _write_zip(dest / "gtFine_trainvaltest.zip", _with_dirs(fine))
    return _checksums(dest / "leftImg8bit_trainvaltest.zip", dest / "gtFine_trainvaltest.zip")


#: Registry dataset name -> fixture writer ``(dest_dir) -> checksums``.
FAKE_WRITERS: dict[str, Callable[[str | os.PathLike[str]], Checksums]] = {
    "smiyc-roadanomaly21": lambda d: write_fake_smiyc(d, "anomaly"),
    "smiyc-roadobstacle21": lambda d: write_fake_smiyc(d, "obstacle"),
    "fishyscapes-lostandfound": write_fake_fishyscapes_lostandfound,
    "roadanomaly": write_fake_road_anomaly,
    "streethazards-test": write_fake_streethazards_test,
    "cityscapes": write_fake_cityscapes,
}


def write_fake_dense(name: str, dest_dir: str | os.PathLike[str]) -> Checksums:
    """Write the fixture archives of registry dataset ``name`` into ``dest_dir``."""
    if name not in FAKE_WRITERS:
        raise ValueError(f"no fixture for {name!r}; known: {', '.join(FAKE_WRITERS)}")
    return FAKE_WRITERS[name](dest_dir)


def no_network(monkeypatch) -> None:
    """Real mirrors (https://...) fail like an unreachable host; file:// mirrors work."""
    import importlib

    fetch_mod = importlib.import_module("ood.data.fetch")  # ood.data.fetch is also a function's name

    original = fetch_mod._open_source

    def refuse(url, *args):
        if not fetch_mod._is_local(url):
            raise fetch_mod._MirrorFailed("network disabled in tests", permanent=True)
        return original(url, *args)

    monkeypatch.setattr(fetch_mod, "_open_source", refuse)


def pinned_spec(name: str, checksums: Checksums) -> registry.DatasetSpec:
    """The real registry spec of ``name`` with the fixture's checksums in place of the published
    ones (same file names, mirrors and hints; no size). A spec that publishes no checksum
    (Cityscapes) keeps none: it is still verified by trust on first use."""
    spec = registry.DATASETS[name]
    files = []
    for f in spec.files:
        if f.pinned:
            c = checksums[f.name]
            f = dataclasses.replace(
                f, sha256=c["sha256"] if f.sha256 else None, md5=c["md5"] if f.md5 else None, size=None
            )
        files.append(f)
    return dataclasses.replace(spec, files=files)
