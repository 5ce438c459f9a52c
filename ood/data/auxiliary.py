"""Auxiliary outliers for outlier exposure (e.g. Heatmap OOD, Hornauer & Belagiannis, WACV 2023).

The paper trains with 10k TinyImages as known outliers. Offline we build a stand-in from data that
ships with pip packages, chosen to share **nothing** with any test OOD set of ``fmnist6`` (so
the evaluation never rewards having seen the test outliers):

* ``sklearn_photos``: random crops of the two photographs behind scikit-learn's
  ``load_sample_images()`` (``china.jpg``, ``flower.jpg``);
* ``matplotlib_images``: random crops of matplotlib's sample data: the ``grace_hopper.jpg``
  photograph, the ``s1045.ima.gz`` MRI slice and a hill-shaded rendering of the
  ``jacksboro_fault_dem.npz`` elevation model (the other sample files are tables, time series,
  clip art or logos);
* ``shapes``: procedurally drawn discs, circles, ellipses, convex polygons, thick line segments,
  gratings, checkerboards and concentric rings (anti-aliased, random colours) - deterministic
  patterns, never noise, so none of ``make_noise``'s kinds (uniform noise, blurred noise blobs).

Excluded on purpose: Fashion-MNIST (ID and near-OOD), scikit-learn's digits and scikit-image's
images (far-OOD ``digits`` and ``natural``), and any noise texture (far-OOD ``noise``).

Every file read from an installed package is checked against a pinned SHA-256
(:data:`SHA256`), so a package upgrade that changes a sample file fails loudly instead of
silently changing the outlier set. Crops use an image pyramid (2x2 box filter per level) and one
batched bilinear ``grid_sample`` per (image, level), and shapes are drawn batched with numpy, so
10,000 grey 28x28 outliers take about half a second on one CPU core (plus about half a second,
once per process, to verify and decode the files). Images are quantised to 8-bit levels like
Fashion-MNIST.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import zlib
from functools import lru_cache
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from .benchmark import OOD_LABEL

__all__ = [
    "SOURCES",
    "SOURCE_MIX",
    "SHA256",
    "PACKAGE_VERSIONS",
    "SHAPE_KINDS",
    "ChecksumError",
    "OutlierSet",
    "load_outliers",
]

#: Short description of each source (for reports and notebooks).
SOURCES: dict[str, str] = {
    "sklearn_photos": "random crops (log-uniform scale, random flip) of scikit-learn's sample "
    "photographs china.jpg and flower.jpg (load_sample_images)",
    "matplotlib_images": "random crops of matplotlib's sample data: grace_hopper.jpg (photograph), "
    "s1045.ima.gz (MRI slice), jacksboro_fault_dem.npz (hill-shaded elevation model)",
    "shapes": "procedural anti-aliased shapes and textures in random colours: discs, circles, "
    "ellipses, convex polygons, line segments (1-3 per image), gratings, checkerboards, "
    "concentric rings",
}
#: Fraction of the outliers drawn from each source (one third each; exact counts by largest
#: remainder, then shuffled together).
SOURCE_MIX: dict[str, float] = {"sklearn_photos": 1 / 3, "matplotlib_images": 1 / 3, "shapes": 1 / 3}

#: SHA-256 of every file read from an installed package (computed from the pinned versions).
SHA256: dict[str, str] = {
    "china.jpg": "8378025ad2519d649d02e32bd98990db4ab572357d9f09841c2fbfbb4fefad29",
    "flower.jpg": "a77f6ec41e353afdf8bdff2ea981b2955535d8d83294f8cfa49cf4e423dd5638",
    "grace_hopper.jpg": "a8ca6d734765703b09728ab47fe59f473d93ae3967fc24c7c0288c3c7adb7130",
    "s1045.ima.gz": "32b424d64f62b7e71cb24d29fd53938ad5664d608055a67ab2b2af4369f8b89e",
    "jacksboro_fault_dem.npz": "d493f50a33e82a4420494c54d1fca1539d177bdc27ab190bc5fe6e92f62fb637",
}
#: The package versions the digests were computed from (pyproject.toml pins them).
PACKAGE_VERSIONS: dict[str, str] = {"scikit-learn": "1.9.1", "matplotlib": "3.11.2"}

#: Shape kinds of the ``shapes`` source: the first five are objects (1-3 per image over a
#: plain background), the last three fill the image.
SHAPE_KINDS = ("disc", "circle", "ellipse", "polygon", "segment", "grating", "checkerboard", "rings")
_OBJECT_KINDS = SHAPE_KINDS[:5]

_FILES: dict[str, tuple[str, str]] = {  # file -> (source, distribution)
    "china.jpg": ("sklearn_photos", "scikit-learn"),
    "flower.jpg": ("sklearn_photos", "scikit-learn"),
    "grace_hopper.jpg": ("matplotlib_images", "matplotlib"),
    "s1045.ima.gz": ("matplotlib_images", "matplotlib"),
    "jacksboro_fault_dem.npz": ("matplotlib_images", "matplotlib"),
}
_GREY = (0.2125, 0.7154, 0.0721)  # ITU-R BT.709 luma, as skimage.color.rgb2gray
_MAX_DRAWS = 20  # bounded redraws of blank crops: deterministic, never an endless loop
_MIN_CROP_STD = 0.02


class ChecksumError(RuntimeError):
    """A file read from an installed package is not the one the outlier set was pinned to."""


class OutlierSet(TensorDataset):
    """``(image, -1)`` pairs with per-image provenance for notebooks.

    Attributes:
        sources: source name per image (a key of :data:`SOURCES`).
        origins: finer provenance per image: the file name of a crop, the kind of a shape.
    """

    def __init__(self, images: torch.Tensor, sources: list[str], origins: list[str]) -> None:
        super().__init__(images, torch.full((len(images),), OOD_LABEL, dtype=torch.int64))
        self.sources = sources
        self.origins = origins


# ---------------------------------------------------------------------------------------------
# Source files: locate, verify, decode
# ---------------------------------------------------------------------------------------------


def _rng(seed: int, stream: str) -> np.random.Generator:
    """Independent generator per (seed, purpose), distinct from every fmnist6 stream."""
    return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(f"auxiliary/{stream}".encode())]))


def _path(name: str) -> Path:
    if _FILES[name][1] == "scikit-learn":
        # The files behind sklearn.datasets.load_sample_images(), located without importing
        # sklearn.datasets (slow) so that the bytes we hash are the bytes we decode.
        spec = find_spec("sklearn")
        if spec is None or not spec.submodule_search_locations:
            raise ChecksumError(
                f"scikit-learn is not installed; {name} needs scikit-learn=={PACKAGE_VERSIONS['scikit-learn']}"
            )
        return Path(list(spec.submodule_search_locations)[0]) / "datasets" / "images" / name
    from matplotlib import cbook

    return Path(cbook.get_sample_data(name, asfileobj=False))


def _read_verified(name: str) -> bytes:
    """The bytes of bundled file ``name``, after checking them against :data:`SHA256`."""
    dist = _FILES[name][1]
    expected = f"{dist}=={PACKAGE_VERSIONS[dist]}"
    try:
        installed = metadata.version(dist)
    except metadata.PackageNotFoundError:
        installed = "not installed"
    path = _path(name)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ChecksumError(
            f"{name}: cannot read {path} ({exc}); the auxiliary outliers need the file shipped with "
            f"{expected} (installed: {installed})"
        ) from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256[name]:
        raise ChecksumError(
            f"{name}: SHA-256 {digest} of {path} does not match the pinned {SHA256[name]}; the "
            f"auxiliary outliers were pinned to the file shipped with {expected} (installed: "
            f"{installed}). Install {expected} (pyproject.toml pins it), or inspect the new file "
            "and update SHA256 in ood/data/auxiliary.py (this changes the outlier set)."
        )
    return data


def _hillshade(z: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """Lambertian relief shading (light from the north-west, 45 deg up), in [0, 1]."""
    from matplotlib.colors import LightSource

    return LightSource(azdeg=315, altdeg=45).hillshade(z, vert_exag=2.0, dx=dx, dy=dy).astype(np.float32)


def _decode(name: str, data: bytes) -> np.ndarray:
    """Decode a verified file to float32 ``[C, H, W]`` in [0, 1] (C = 3 for RGB, 1 for grey)."""
    if name.endswith(".jpg"):
        from PIL import Image

        rgb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.float32) / 255.0
        return np.ascontiguousarray(rgb.transpose(2, 0, 1))
    if name == "s1045.ima.gz":
        # 256x256 16-bit MRI slice whose values are 8-bit in the big-endian layout (matplotlib's
        # mri_with_eeg example reads it with the native order; normalised it is the same image).
        raw = np.frombuffer(gzip.decompress(data), dtype=">u2").astype(np.float32)
        if raw.size != 256 * 256:
            raise ValueError(f"{name}: {raw.size} values, expected 256x256")
        return (raw.reshape(1, 256, 256) / raw.max()).astype(np.float32)
    if name == "jacksboro_fault_dem.npz":
        with np.load(io.BytesIO(data), allow_pickle=False) as dem:
            z = dem["elevation"].astype(np.float64)
            # Grid spacing is in degrees: convert to metres so the shading has true slopes.
            dy = 111_200.0 * float(dem["dy"])
            dx = 111_200.0 * float(dem["dx"]) * np.cos(np.radians(float(dem["ymin"])))
        return _hillshade(z, dx, dy)[None]
    raise KeyError(name)  # pragma: no cover


@lru_cache(maxsize=None)
def _decoded(name: str) -> np.ndarray:
    """Verified and decoded file (cached: verification runs once per process)."""
    return _decode(name, _read_verified(name))


@lru_cache(maxsize=4)
def _pyramids(source: str, channels: int) -> tuple[tuple[str, tuple[torch.Tensor, ...]], ...]:
    """Per file of ``source``: its image pyramid, level k = 2^k x 2^k box-filtered, ``[1, C, h, w]``."""
    out = []
    for name, (src, _) in _FILES.items():
        if src != source:
            continue
        image = torch.from_numpy(_decoded(name))
        if channels == 1 and image.shape[0] == 3:
            image = torch.einsum("chw,c->hw", image, torch.tensor(_GREY))[None]
        elif channels == 3 and image.shape[0] == 1:
            image = image.expand(3, -1, -1)
        levels = [image[None].contiguous()]
        while min(levels[-1].shape[-2:]) >= 2 * 28:
            levels.append(F.avg_pool2d(levels[-1], 2))
        out.append((name, tuple(levels)))
    return tuple(out)


def _clear_caches() -> None:
    """Forget decoded files (tests: forces re-verification)."""
    _decoded.cache_clear()
    _pyramids.cache_clear()


# ---------------------------------------------------------------------------------------------
# Crops
# ---------------------------------------------------------------------------------------------


def _crops(source: str, n: int, size: int, channels: int, rng: np.random.Generator) -> tuple[torch.Tensor, list[str]]:
    """``n`` random square crops of the files of ``source``, resized to ``size``.

    Side log-uniform in [min(size, short side), short side], uniform position, random horizontal
    flip. Sampled bilinearly from the pyramid level whose scale leaves a factor in [1, 2), so
    large crops are (box-)anti-aliased. Nearly constant crops (std < 0.02) are redrawn.
    """
    files = _pyramids(source, channels)
    out = torch.empty((n, channels, size, size), dtype=torch.float32)
    which = np.zeros(n, dtype=np.int64)
    todo = np.arange(n)
    centres = torch.arange(size, dtype=torch.float64) + 0.5
    for attempt in range(_MAX_DRAWS):
        if len(todo) == 0:
            break
        m = len(todo)
        f = rng.integers(len(files), size=m)
        hw = np.array([files[i][1][0].shape[-2:] for i in f], dtype=np.float64).reshape(m, 2)
        short = hw.min(axis=1)
        lo = np.minimum(float(size), short)
        side = np.exp(rng.uniform(np.log(lo), np.log(short)))
        top = rng.uniform(0.0, 1.0, m) * (hw[:, 0] - side)
        left = rng.uniform(0.0, 1.0, m) * (hw[:, 1] - side)
        flip = rng.random(m) < 0.5
        scale = side / size
        batch = torch.empty((m, channels, size, size), dtype=torch.float32)
        for fi in np.unique(f):
            levels = files[fi][1]
            level = np.clip(np.floor(np.log2(scale)), 0, len(levels) - 1).astype(np.int64)
            for lv in np.unique(level[f == fi]):
                sel = np.flatnonzero((f == fi) & (level == lv))
                img = levels[lv]
                h, w = img.shape[-2:]
                k = float(2**lv)
                s = torch.from_numpy(scale[sel])[:, None]
                # Output pixel centres in level-0 edge coordinates, then at this level.
                xs = torch.from_numpy(left[sel])[:, None] + centres[None] * s
                xs = torch.where(torch.from_numpy(flip[sel])[:, None], xs.flip(-1), xs)
                ys = torch.from_numpy(top[sel])[:, None] + centres[None] * s
                grid = torch.empty((len(sel), size, size, 2), dtype=torch.float32)
                grid[..., 0] = (2.0 * xs / k / w - 1.0).to(torch.float32)[:, None, :]
                grid[..., 1] = (2.0 * ys / k / h - 1.0).to(torch.float32)[:, :, None]
                grid = grid.view(1, len(sel) * size, size, 2)
                res = F.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=False)
                batch[torch.from_numpy(sel)] = res.view(channels, len(sel), size, size).transpose(0, 1)
        ok = batch.flatten(1).std(dim=1).numpy() >= _MIN_CROP_STD
        if attempt == _MAX_DRAWS - 1:
            ok[:] = True
        out[torch.from_numpy(todo[ok])] = batch[torch.from_numpy(ok)]
        which[todo[ok]] = f[ok]
        todo = todo[~ok]
    return out, [files[i][0] for i in which]


# ---------------------------------------------------------------------------------------------
# Shapes
# ---------------------------------------------------------------------------------------------


def _coverage(d: np.ndarray) -> np.ndarray:
    """Anti-aliased coverage from a signed distance in pixels (negative inside): 1-px ramp."""
    return np.clip(0.5 - d, 0.0, 1.0)


def _u(rng: np.random.Generator, lo: float, hi: float, m: int) -> np.ndarray:
    return rng.uniform(lo, hi, m).astype(np.float32)[:, None, None]


def _object(kind: str, m: int, size: int, rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """Coverage ``[m, size, size]`` of one object of ``kind`` per image."""
    S = float(size)
    if kind in ("disc", "circle"):
        cy, cx, r = _u(rng, 0.15 * S, 0.85 * S, m), _u(rng, 0.15 * S, 0.85 * S, m), _u(rng, 0.08 * S, 0.35 * S, m)
        dist = np.hypot(yy - cy, xx - cx) - r
        if kind == "disc":
            return _coverage(dist)
        width = _u(rng, 1.0, 1.0 + 0.08 * S, m)
        return _coverage(np.abs(dist) - width / 2)
    if kind == "ellipse":
        cy, cx = _u(rng, 0.2 * S, 0.8 * S, m), _u(rng, 0.2 * S, 0.8 * S, m)
        a, b, t = _u(rng, 0.08 * S, 0.4 * S, m), _u(rng, 0.08 * S, 0.4 * S, m), _u(rng, 0.0, np.pi, m)
        u = (xx - cx) * np.cos(t) + (yy - cy) * np.sin(t)
        v = -(xx - cx) * np.sin(t) + (yy - cy) * np.cos(t)
        return _coverage((np.sqrt((u / a) ** 2 + (v / b) ** 2) - 1.0) * np.minimum(a, b))
    if kind == "segment":
        p = rng.uniform(0.05 * S, 0.95 * S, (m, 2, 1, 1)).astype(np.float32)
        q = rng.uniform(0.05 * S, 0.95 * S, (m, 2, 1, 1)).astype(np.float32)
        width = _u(rng, 1.0, 1.0 + 0.1 * S, m)
        dy, dx = q[:, 0] - p[:, 0], q[:, 1] - p[:, 1]
        t = np.clip(((yy - p[:, 0]) * dy + (xx - p[:, 1]) * dx) / (dy**2 + dx**2 + 1e-9), 0.0, 1.0)
        return _coverage(np.hypot(yy - p[:, 0] - t * dy, xx - p[:, 1] - t * dx) - width / 2)
    if kind == "polygon":
        # Convex: 3-6 vertices on a circle, sorted by angle; distance = max over edge half-planes.
        k = int(rng.integers(3, 7))
        cy, cx, r = _u(rng, 0.3 * S, 0.7 * S, m), _u(rng, 0.3 * S, 0.7 * S, m), _u(rng, 0.15 * S, 0.4 * S, m)
        ang = np.sort(rng.uniform(0.0, 2 * np.pi, (m, k)).astype(np.float32), axis=1)[:, :, None, None]
        vy, vx = cy[:, None] + r[:, None] * np.sin(ang), cx[:, None] + r[:, None] * np.cos(ang)
        ey, ex = np.roll(vy, -1, axis=1) - vy, np.roll(vx, -1, axis=1) - vx
        norm = np.hypot(ey, ex) + 1e-9
        # Outward normal of an edge of a polygon sorted by increasing angle (y down): (-ex, ey).
        dist = ((yy[None] - vy) * -ex + (xx[None] - vx) * ey) / norm
        return _coverage(dist.max(axis=1))
    raise KeyError(kind)  # pragma: no cover


def _texture(kind: str, m: int, size: int, rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """Coverage ``[m, size, size]`` of a full-image pattern: sine or hard-edged (anti-aliased)."""
    S = float(size)
    period = np.exp(_u(rng, np.log(4.0), np.log(S / 2), m))  # >= 4 px: no pattern finer than 2 px
    phase = _u(rng, 0.0, 2 * np.pi, m)
    if kind == "rings":
        cy, cx = _u(rng, -0.25 * S, 1.25 * S, m), _u(rng, -0.25 * S, 1.25 * S, m)
        s = np.sin(2 * np.pi * np.hypot(yy - cy, xx - cx) / period + phase)
        slope = period / (2 * np.pi)
    else:
        t = _u(rng, 0.0, np.pi, m)
        u = xx * np.cos(t) + yy * np.sin(t)
        if kind == "grating":
            s = np.sin(2 * np.pi * u / period + phase)
            slope = period / (2 * np.pi)
        else:  # checkerboard: cells of side period / 2
            v = -xx * np.sin(t) + yy * np.cos(t)
            s = np.sin(2 * np.pi * u / period + phase) * np.sin(2 * np.pi * v / period + phase)
            slope = period / (2 * np.pi)
    hard = rng.random(m)[:, None, None] < (1.0 if kind == "checkerboard" else 0.5)
    # s * slope approximates the signed distance (px) to the nearest edge of the square wave.
    return np.where(hard, np.clip(0.5 + s * slope, 0.0, 1.0), 0.5 + 0.5 * s)


def _shapes(n: int, size: int, channels: int, rng: np.random.Generator) -> tuple[torch.Tensor, list[str]]:
    """``n`` images of one :data:`SHAPE_KINDS` kind each (uniform), in random colours.

    Colours: background uniform in [0, 1] per channel, every foreground offset by 0.3-0.7 per
    channel (mod 1), so shapes always have contrast.
    """
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + np.float32(0.5)
    kind = rng.integers(len(SHAPE_KINDS), size=n)
    bg = rng.uniform(0.0, 1.0, (n, channels)).astype(np.float32)
    out = np.empty((n, channels, size, size), dtype=np.float32)
    out[:] = bg[:, :, None, None]

    def fg(idx: np.ndarray) -> np.ndarray:
        return ((bg[idx] + rng.uniform(0.3, 0.7, (len(idx), channels)).astype(np.float32)) % 1.0)[:, :, None, None]

    for ki, name in enumerate(SHAPE_KINDS):
        idx = np.flatnonzero(kind == ki)
        if len(idx) == 0:
            continue
        if name in _OBJECT_KINDS:
            count = rng.integers(1, 4, size=len(idx))
            for layer in range(3):
                sub = idx[count > layer]
                if len(sub) == 0:
                    break
                a = _object(name, len(sub), size, rng, yy, xx)[:, None]
                out[sub] = out[sub] * (1.0 - a) + fg(sub) * a
        else:
            a = _texture(name, len(idx), size, rng, yy, xx)[:, None]
            out[idx] = out[idx] * (1.0 - a) + fg(idx) * a
    return torch.from_numpy(out), [SHAPE_KINDS[k] for k in kind]


# ---------------------------------------------------------------------------------------------
# Public entry point
# ---------------------------------------------------------------------------------------------


def _counts(n: int, mix: dict[str, float]) -> dict[str, int]:
    """Exact per-source counts summing to ``n`` (largest remainder; ties in :data:`SOURCES` order)."""
    total = sum(mix.values())
    if any(w < 0 for w in mix.values()) or not total > 0 or set(mix) - set(SOURCES):
        raise ValueError(f"SOURCE_MIX must give non-negative weights to sources in {list(SOURCES)}: {mix}")
    want = {s: n * w / total for s, w in mix.items()}
    counts = {s: int(np.floor(v)) for s, v in want.items()}
    order = sorted(want, key=lambda s: (-(want[s] - counts[s]), list(SOURCES).index(s)))
    for s in order[: n - sum(counts.values())]:
        counts[s] += 1
    return counts


def load_outliers(n: int, seed: int, size: int = 28, channels: int = 1) -> OutlierSet:
    """``n`` auxiliary outliers ``(image [channels, size, size] float32 in [0, 1], -1)``.

    Drawn deterministically from ``seed`` in the proportions of :data:`SOURCE_MIX` (sources in
    :data:`SOURCES`, shuffled together); ``channels=1`` converts colour to grey (BT.709 luma),
    ``channels=3`` keeps colour (grey sources are replicated). Per-image provenance is in the
    returned set's ``sources`` and ``origins``. Raises :class:`ChecksumError` when a bundled
    file differs from the pinned one.
    """

    def is_int(v: object) -> bool:
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

    if not is_int(n) or n < 0:
        raise ValueError(f"n must be an integer >= 0, got {n!r}")
    if not is_int(seed) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    if not is_int(size) or size < 8:
        raise ValueError(f"size must be an integer >= 8, got {size!r}")
    if channels not in (1, 3) or isinstance(channels, bool):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    n, seed, size, channels = int(n), int(seed), int(size), int(channels)

    counts = _counts(n, SOURCE_MIX)
    names = list(counts)
    assign = np.repeat(np.arange(len(names)), [counts[s] for s in names])[_rng(seed, "mix").permutation(n)]
    images = torch.empty((n, channels, size, size), dtype=torch.float32)
    origins: list[str] = [""] * n
    for si, source in enumerate(names):
        if counts[source] == 0:
            continue  # a zero weight never even reads that source's files
        rng = _rng(seed, source)
        if source == "shapes":
            batch, orig = _shapes(counts[source], size, channels, rng)
        else:
            batch, orig = _crops(source, counts[source], size, channels, rng)
        idx = np.flatnonzero(assign == si)
        images[torch.from_numpy(idx)] = batch
        for i, o in zip(idx, orig):
            origins[i] = o
    images = images.clamp_(0.0, 1.0).mul_(255.0).round_().div_(255.0)  # 8-bit levels, like FMNIST
    return OutlierSet(images, [names[i] for i in assign], origins)
