"""Procedural phantoms: caricatures of eight imaging modalities with a known target mask.

A phantom is an image, a binary target mask and metadata, generated from a seed. Every visual
factor that can make a segmenter fail is a *knob*, so notebook 04 can move one factor at a time
(contrast, noise, boundary blur, target size, thin structures, touching instances, holes,
look-alike distractors, CT window) and watch the Dice score respond.

>>> case = make_phantom("ultrasound", seed=3, contrast=0.4, noise=1.5)
>>> case.image.shape, case.image.dtype, case.mask.dtype
((256, 256, 3), dtype('uint8'), dtype('bool'))

Conventions
-----------
- Fully deterministic: the same ``(modality, seed, size, knobs)`` gives identical arrays. Only
  ``numpy.random.default_rng`` is used, never the global RNG. Each ingredient (anatomy, target,
  noise, distractors, ...) draws from its own stream, so moving one knob leaves the others'
  randomness untouched: e.g. changing ``contrast`` changes only the pixels of the target (and of
  its look-alike distractors), changing ``noise`` leaves the anatomy and the target where they
  were, and ``distractors=5`` contains the blobs of ``distractors=2``.
- ``contrast`` in [0, 1]: 0 paints the target like the tissue it sits in (so only its shape
  effects remain, e.g. the ultrasound shadow, which has its own knob), 1 is the strongest
  difference the style draws (the sign depends on the modality: a hypoechoic lesion is darker, a
  FLAIR lesion brighter).
- ``noise`` >= 0 is a multiple of the modality's typical noise (0 = noise-free, 1 = typical).
- ``blur`` is the Gaussian sigma in pixels of the target's boundary (the mask stays sharp).
- ``target_area`` is the mask area as a fraction of the image area (with ``ring`` the annulus
  itself, not the filled disc, has that area). Targets that do not fit are clipped by the image
  or field of view; ``meta["target_area_actual"]`` reports the achieved fraction.
- ``ring`` is False/True or a hole fraction in [0, 0.9] (True = 0.5): the target becomes an
  annulus whose hole shows the background, as in a ring-enhancing tumour or a cavitating nodule.
- ``distractors`` is a number of look-alike blobs drawn like the target but outside the mask
  (their union is ``meta["distractor_mask"]``). Fewer are drawn when they do not fit.
- Knobs a style does not use raise ``ValueError`` rather than being silently ignored; see
  :func:`default_knobs` for each style's knobs and defaults.
- ``meta`` holds ``style``, ``seed``, ``size``, ``knobs`` (all resolved values), ``target`` (what
  the mask is), ``target_area_actual``, ``distractor_mask``, ``field_of_view`` (the pixels that are
  part of the picture, e.g. inside the ultrasound fan) and style extras: ``hu`` (CT, float32 HU
  image before windowing), ``instances`` (microscopy, int32 label map, 0 = background; the mask
  is the union of all nuclei, ``instances == i`` is nucleus i) and ``optic_disc`` (fundus,
  (row, col, radius) in px).
- ``spacing`` (row, col) in mm follows a typical field of view for the modality.
"""

from __future__ import annotations

import difflib
import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from scipy import fft as sfft
from scipy import ndimage as ndi

from utils.datasets import Case
from utils.images import rescale_to_uint8

__all__ = ["STYLES", "KNOBS", "make_phantom", "default_knobs"]

STYLES: tuple[str, ...] = ("ultrasound", "xray", "ct", "mri", "dermoscopy", "endoscopy", "fundus", "microscopy")

SOURCE = "procedural phantom (utils.phantoms)"
LICENSE = "CC0 (generated)"

# Typical field of view (mm) across the image, used for ``Case.spacing``.
_FOV_MM = {
    "ultrasound": 60.0,
    "xray": 400.0,
    "ct": 380.0,
    "mri": 230.0,
    "dermoscopy": 20.0,
    "endoscopy": 40.0,
    "fundus": 12.0,
    "microscopy": 0.128,
}

_TARGETS = {
    "ultrasound": "hypoechoic lesion (with posterior acoustic shadow)",
    "xray": "pulmonary nodule",
    "ct": "hypodense liver lesion",
    "mri": "hyperintense white-matter lesion (FLAIR-like)",
    "dermoscopy": "pigmented skin lesion (hairs are not part of it)",
    "endoscopy": "polyp",
    "fundus": "retinal vessel tree",
    "microscopy": "all nuclei (union); instance labels in meta['instances']",
}


# --------------------------------------------------------------------------------------------
# Knobs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Knob:
    kind: str  # "float", "int", "ring" or "window"
    low: float
    high: float
    doc: str


KNOBS: dict[str, str] = {}
_KNOB_SPECS: dict[str, _Knob] = {
    "contrast": _Knob("float", 0.0, 1.0, "target vs background intensity difference (0 = invisible, 1 = maximal)"),
    "noise": _Knob("float", 0.0, 10.0, "noise strength as a multiple of the modality's typical noise (0 = none)"),
    "blur": _Knob("float", 0.0, 32.0, "Gaussian sigma (px) of the target boundary"),
    "target_area": _Knob("float", 0.0005, 0.5, "mask area as a fraction of the image area"),
    "thickness": _Knob("float", 0.5, 24.0, "width (px) of the thickest thin structure (vessels at the disc)"),
    "n_instances": _Knob("int", 1, 400, "number of touching instances (nuclei)"),
    "ring": _Knob("ring", 0.0, 0.9, "hole fraction of an annular target (False = 0, True = 0.5)"),
    "distractors": _Knob("int", 0, 40, "number of look-alike blobs that are not in the mask"),
    "window": _Knob("window", 1.0, 5000.0, "CT display window (level, width) in HU"),
    "shadow": _Knob("float", 0.0, 1.0, "ultrasound posterior acoustic shadow strength"),
    "bias": _Knob("float", 0.0, 1.0, "MRI bias-field (intensity inhomogeneity) strength"),
    "hair": _Knob("int", 0, 100, "number of hair strands over the skin (dermoscopy)"),
    "specular": _Knob("float", 0.0, 2.0, "strength of specular highlights (endoscopy)"),
}
KNOBS.update({name: spec.doc for name, spec in _KNOB_SPECS.items()})

_COMMON = {"contrast": 0.6, "noise": 1.0, "blur": 1.0, "distractors": 0}
_DEFAULTS: dict[str, dict[str, Any]] = {
    "ultrasound": {**_COMMON, "contrast": 0.7, "target_area": 0.03, "ring": 0.0, "shadow": 0.6},
    "xray": {**_COMMON, "contrast": 0.6, "target_area": 0.006, "ring": 0.0},
    "ct": {**_COMMON, "contrast": 0.5, "blur": 0.7, "target_area": 0.015, "ring": 0.0, "window": (40.0, 400.0)},
    "mri": {**_COMMON, "target_area": 0.012, "ring": 0.0, "bias": 0.3},
    "dermoscopy": {**_COMMON, "contrast": 0.75, "blur": 2.0, "target_area": 0.12, "hair": 8},
    "endoscopy": {**_COMMON, "contrast": 0.6, "blur": 1.5, "target_area": 0.05, "specular": 1.0},
    "fundus": {**_COMMON, "contrast": 0.7, "blur": 0.5, "thickness": None},  # None: size / 64 px
    "microscopy": {**_COMMON, "contrast": 0.8, "blur": 0.5, "n_instances": 30},
}


def default_knobs(modality: str, size: int = 256) -> dict[str, Any]:
    """Return the knobs ``modality`` honours with their default values at ``size``.

    >>> sorted(default_knobs("ct"))
    ['blur', 'contrast', 'distractors', 'noise', 'ring', 'target_area', 'window']
    """
    style = _check_style(modality)
    knobs = dict(_DEFAULTS[style])
    if knobs.get("thickness", 0) is None:
        knobs["thickness"] = round(max(1.0, size / 64.0), 2)
    if "n_instances" in knobs:
        knobs["n_instances"] = min(knobs["n_instances"], _max_instances(size))
    return knobs


def _check_style(modality: str) -> str:
    style = str(modality).strip().lower() if isinstance(modality, str) else modality
    if style not in STYLES:
        close = difflib.get_close_matches(str(modality).lower(), STYLES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"Unknown phantom style {modality!r}; choose one of {', '.join(STYLES)}.{hint}")
    return style


def _check_value(name: str, value: Any) -> Any:
    spec = _KNOB_SPECS[name]
    where = f"Knob {name}={value!r} is out of range: expected"
    if spec.kind == "window":
        try:
            level, width = (float(v) for v in value)
        except (TypeError, ValueError):
            raise ValueError(f"{where} a (level, width) pair of numbers in HU, e.g. (40, 400).") from None
        if not (math.isfinite(level) and math.isfinite(width)) or not spec.low <= width <= spec.high:
            raise ValueError(
                f"{where} (level, width) with a finite level and {spec.low:g} <= width <= {spec.high:g} HU."
            )
        return (level, width)
    if spec.kind == "ring":
        if isinstance(value, (bool, np.bool_)):
            return 0.5 if value else 0.0
        value_f = _as_number(name, value, f"{where} True/False or a hole fraction in [{spec.low:g}, {spec.high:g}]")
        if not spec.low <= value_f <= spec.high:
            raise ValueError(f"{where} True/False or a hole fraction in [{spec.low:g}, {spec.high:g}].")
        return value_f
    kind = "an integer" if spec.kind == "int" else "a number"
    message = f"{where} {kind} in [{spec.low:g}, {spec.high:g}] ({spec.doc})."
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(message)
    number = _as_number(name, value, message)
    if spec.kind == "int":
        if number != int(number):
            raise ValueError(message)
        number = int(number)
    if not spec.low <= number <= spec.high:
        raise ValueError(message)
    return number


def _as_number(name: str, value: Any, message: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(message) from None
    if not math.isfinite(number):
        raise ValueError(message)
    return number


def _resolve_knobs(style: str, size: int, knobs: dict[str, Any]) -> dict[str, Any]:
    defaults = default_knobs(style, size)
    resolved = dict(defaults)
    for name, value in knobs.items():
        if name not in _KNOB_SPECS:
            close = difflib.get_close_matches(name, list(_KNOB_SPECS), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(
                f"Unknown knob {name!r}.{hint} Valid knobs: {', '.join(_KNOB_SPECS)}; "
                f"style {style!r} honours: {', '.join(defaults)}."
            )
        if name not in defaults:
            raise ValueError(
                f"Style {style!r} does not use the knob {name!r}; style {style!r} honours: {', '.join(defaults)}."
            )
        resolved[name] = _check_value(name, value)
    if "n_instances" in resolved and resolved["n_instances"] > _max_instances(size):
        raise ValueError(
            f"Knob n_instances={resolved['n_instances']} is out of range: at most {_max_instances(size)} nuclei "
            f"fit in a {size}x{size} image (size**2 // 40); use fewer or a larger size."
        )
    return resolved


def _max_instances(size: int) -> int:
    return min(int(_KNOB_SPECS["n_instances"].high), size * size // 40)


# --------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------


class _Streams:
    """One independent ``default_rng`` per named ingredient of one phantom."""

    def __init__(self, seed: int, style: str) -> None:
        self._key = (seed, STYLES.index(style))
        self._rngs: dict[str, np.random.Generator] = {}

    def __call__(self, part: str) -> np.random.Generator:
        if part not in self._rngs:
            self._rngs[part] = np.random.default_rng([*self._key, zlib.crc32(part.encode())])
        return self._rngs[part]


@lru_cache(maxsize=8)
def _grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    yy.flags.writeable = False
    xx.flags.writeable = False
    return yy, xx


def _smooth(rng: np.random.Generator, n: int, sigma: float, count: int = 1, stretch: float = 1.0, angle: float = 0.0):
    """``count`` periodic Gaussian-correlated noise fields (count, n, n), zero mean, unit std (FFT filter).

    ``sigma`` (px) is the correlation length across ``angle`` and ``sigma * stretch`` along it. Smooth
    fields are drawn on a coarser grid and upsampled in the Fourier domain (same statistics, less work).
    """
    m = n if sigma * min(stretch, 1.0) < 4 else max(16, 2 * int(math.ceil(n * 1.5 / (sigma * min(stretch, 1.0)))))
    m = min(m, n)
    white = rng.standard_normal((count, m, m), dtype=np.float32)
    ky = (np.fft.fftfreq(m) * (m / n)).astype(np.float32)[:, None]  # frequencies in cycles per output pixel
    kx = (np.fft.rfftfreq(m) * (m / n)).astype(np.float32)[None, :]
    ku = kx * math.cos(angle) + ky * math.sin(angle)
    kv = -kx * math.sin(angle) + ky * math.cos(angle)
    gain = np.exp(-2.0 * math.pi**2 * ((sigma * stretch * ku) ** 2 + (sigma * kv) ** 2)).astype(np.float32)
    spec = sfft.rfft2(white, axes=(1, 2)) * gain
    if m < n:
        half = m // 2
        big = np.zeros((count, n, n // 2 + 1), dtype=spec.dtype)
        big[:, :half, : half + 1] = spec[:, :half, : half + 1]
        big[:, n - half :, : half + 1] = spec[:, m - half :, : half + 1]
        spec = big
    out = sfft.irfft2(spec, s=(n, n), axes=(1, 2)).astype(np.float32)
    out -= out.mean(axis=(1, 2), keepdims=True)
    out /= out.std(axis=(1, 2), keepdims=True) + 1e-8
    return out


def _depth(region: np.ndarray) -> np.ndarray:
    """Approximate distance (px) to the outside of ``region``: an EDT on a grid about 64 px wide, upsampled.

    Placement only needs a few pixels of accuracy, and a full-resolution EDT costs several ms.
    """
    n = region.shape[0]
    f = max(1, n // 64)
    coarse = ndi.distance_transform_edt(np.pad(region[f // 2 :: f, f // 2 :: f], 1))[1:-1, 1:-1] * f
    full = np.repeat(np.repeat(coarse.astype(np.float32), f, axis=0), f, axis=1)[:n, :n]
    if full.shape != region.shape:  # n not a multiple of f
        full = np.pad(full, ((0, n - full.shape[0]), (0, region.shape[1] - full.shape[1])), mode="edge")
    return full * region


def _crop_edt(mask: np.ndarray, pad: int = 2) -> np.ndarray:
    """Exact EDT inside ``mask`` computed only over its bounding box."""
    out = np.zeros(mask.shape, dtype=np.float32)
    box = ndi.find_objects(mask.astype(np.int8))
    if box and box[0] is not None:
        sl = tuple(slice(max(0, b.start - pad), b.stop + pad) for b in box[0])
        out[sl] = ndi.distance_transform_edt(mask[sl])
    return out


def _soft(mask: np.ndarray, blur: float) -> np.ndarray:
    """A float32 version of ``mask`` whose boundary is blurred by a Gaussian of sigma ``blur`` px."""
    soft = mask.astype(np.float32)
    return ndi.gaussian_filter(soft, blur, truncate=3.0) if blur > 0 else soft


def _gauss(d2: np.ndarray, sigma: float) -> np.ndarray:
    return np.exp(-d2 / (2.0 * sigma * sigma))


def _ellipse(n: int, cy: float, cx: float, ry: float, rx: float, angle: float = 0.0) -> np.ndarray:
    """Normalised elliptic radius (<1 inside) of an ellipse rotated by ``angle`` radians."""
    yy, xx = _grid(n)
    dy, dx = yy - cy, xx - cx
    c, s = math.cos(angle), math.sin(angle)
    u, v = dx * c + dy * s, -dx * s + dy * c
    return np.sqrt((u / rx) ** 2 + (v / ry) ** 2)


@dataclass
class _Shape:
    """A smooth random blob: r(theta) = R (1 + sum_k a_k cos(k theta + phi_k)), stretched and rotated."""

    amps: np.ndarray
    phases: np.ndarray
    stretch: float
    angle: float

    @property
    def rel_area(self) -> float:
        theta = np.linspace(0, 2 * np.pi, 720, endpoint=False)
        return float(np.pi * np.mean(self._rho(theta) ** 2))

    @property
    def reach(self) -> float:
        return (1.0 + float(np.abs(self.amps).sum())) * self.stretch

    def _rho(self, theta: np.ndarray) -> np.ndarray:
        k = np.arange(2, 2 + len(self.amps), dtype=np.float32).reshape(-1, *([1] * theta.ndim))
        amps = self.amps.reshape(k.shape).astype(np.float32)
        phases = self.phases.reshape(k.shape).astype(np.float32)
        return 1.0 + (amps * np.cos(k * theta + phases)).sum(axis=0)

    def render(self, n: int, cy: float, cx: float, radius: float) -> np.ndarray:
        """Boolean mask of the blob of scale ``radius`` (px) centred at (cy, cx)."""
        mask = np.zeros((n, n), dtype=bool)
        if radius <= 0:
            return mask
        reach = radius * self.reach + 2
        y0, y1 = max(0, int(cy - reach)), min(n, int(cy + reach) + 2)
        x0, x1 = max(0, int(cx - reach)), min(n, int(cx + reach) + 2)
        if y0 >= y1 or x0 >= x1:
            return mask
        dy = np.arange(y0, y1, dtype=np.float32)[:, None] - cy
        dx = np.arange(x0, x1, dtype=np.float32)[None, :] - cx
        c, s = math.cos(self.angle), math.sin(self.angle)
        u = (dx * c + dy * s) / self.stretch
        v = (-dx * s + dy * c) * self.stretch
        mask[y0:y1, x0:x1] = np.hypot(u, v) <= radius * self._rho(np.arctan2(v, u))
        return mask


def _random_shape(rng: np.random.Generator, irregularity: float = 0.15, max_stretch: float = 1.3) -> _Shape:
    n_harm = 4
    amps = irregularity * rng.uniform(0.3, 1.0, n_harm) / np.arange(1, n_harm + 1)
    phases = rng.uniform(0, 2 * np.pi, n_harm)
    return _Shape(amps, phases, float(rng.uniform(1.0, max_stretch)), float(rng.uniform(0, np.pi)))


def _pick_center(rng: np.random.Generator, depth: np.ndarray, radius: float) -> tuple[float, float]:
    """A random point whose distance to the edge of the allowed region (``depth``) is >= ``radius``."""
    need = min(radius, 0.9 * float(depth.max()))
    ys, xs = np.nonzero(depth >= need)
    i = int(rng.integers(len(ys)))
    jitter = rng.uniform(-0.5, 0.5, 2)
    return float(ys[i] + jitter[0]), float(xs[i] + jitter[1])


@dataclass
class _Target:
    mask: np.ndarray  # the target (annulus when ring > 0)
    soft: np.ndarray  # float32, boundary blurred by ``blur``
    outer: np.ndarray  # the filled outline (mask plus hole)
    cy: float
    cx: float
    radius: float


def _make_target(
    rng: np.random.Generator,
    n: int,
    allowed: np.ndarray,
    knobs: dict[str, Any],
    irregularity: float = 0.15,
    max_stretch: float = 1.3,
    depth: np.ndarray | None = None,
) -> _Target:
    """Place a blob target of area ``target_area`` (annulus if ``ring``) inside ``allowed``."""
    shape = _random_shape(rng, irregularity, max_stretch)
    hole = float(knobs.get("ring", 0.0))
    radius = math.sqrt(knobs["target_area"] * n * n / (1.0 - hole) / shape.rel_area)
    depth = _depth(allowed) if depth is None else depth
    cy, cx = _pick_center(rng, depth, radius * math.sqrt(shape.stretch))
    outer = shape.render(n, cy, cx, radius)
    if not outer.any():  # a target smaller than a pixel still covers the pixel under its centre
        outer[min(n - 1, max(0, round(cy))), min(n - 1, max(0, round(cx)))] = True
    mask = outer & ~shape.render(n, cy, cx, radius * math.sqrt(hole)) if hole > 0 else outer
    if not mask.any():  # a ring too small to have a hole
        mask = outer
    return _Target(mask, _soft(mask, knobs["blur"]), outer, cy, cx, radius)


def _place_distractors(
    rng: np.random.Generator,
    count: int,
    n: int,
    allowed_depth: np.ndarray,
    avoid: np.ndarray,
    radius: float,
    blur: float,
    irregularity: float = 0.15,
    max_stretch: float = 1.3,
) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``count`` look-alike blobs of scale ~``radius`` inside the allowed region, away from ``avoid``.

    Returns (bool union mask, float32 soft mask). Candidates are drawn in a fixed amount, so a
    larger ``count`` keeps the blobs of a smaller one.
    """
    mask = np.zeros((n, n), dtype=bool)
    if count <= 0:
        return mask, mask.astype(np.float32)
    n_cand = 800
    cand = rng.uniform(0, n - 1, (n_cand, 2))
    radii = radius * rng.uniform(0.65, 1.0, n_cand)
    shape_rng = np.random.default_rng(rng.integers(2**63))
    gap = _depth(~avoid) if avoid.any() else np.full((n, n), np.inf)
    iy, ix = np.round(cand).astype(int).T
    ok = np.flatnonzero((allowed_depth[iy, ix] >= 0.9 * radii) & (gap[iy, ix] >= 1.6 * radii + 3))
    placed: list[tuple[float, float, float]] = []
    for j in ok:
        y, x, r = cand[j, 0], cand[j, 1], radii[j]
        if all(math.hypot(y - py, x - px) >= 1.3 * (r + pr) + 2 for py, px, pr in placed):
            blob = _random_shape(shape_rng, irregularity, max_stretch).render(n, y, x, r)
            if (blob & avoid).any():
                continue
            placed.append((y, x, r))
            mask |= blob
            if len(placed) == count:
                break
    return mask, _soft(mask, blur)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _gray_rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(_to_uint8(gray)[:, :, None], 3, axis=2)


@dataclass
class _Result:
    image: np.ndarray  # (n, n, 3) uint8
    mask: np.ndarray
    fov: np.ndarray
    distractors: np.ndarray
    extra: dict[str, Any]


# --------------------------------------------------------------------------------------------
# Styles
# --------------------------------------------------------------------------------------------


def _ultrasound(n: int, k: dict[str, Any], rng: _Streams) -> _Result:
    """Curvilinear B-mode: sector, layered tissue, depth attenuation, Rayleigh speckle, shadow."""
    yy, xx = _grid(n)
    ay, ax, half = -0.12 * n, 0.5 * n, math.radians(34)
    r = np.hypot(yy - ay, xx - ax)
    th = np.arctan2(xx - ax, yy - ay)
    r0, r1 = 0.22 * n, 1.08 * n
    fov = (np.abs(th) < half) & (r > r0) & (r < r1)
    depth = np.clip((r - r0) / (r1 - r0), 0, 1)

    a = rng("anatomy")
    fields = _smooth(a, n, 0.06 * n, count=2)
    tex = _smooth(a, n, 0.012 * n, count=1, stretch=4.0, angle=0.35)[0]
    wave = 0.02 * np.sin(2.5 * th + a.uniform(0, 6.3)) + 0.01 * fields[1]
    d_fascia1 = 0.10 + wave
    d_fascia2 = 0.27 + 1.5 * wave
    echo = 0.55 + 0.06 * fields[0]
    fat = depth < d_fascia1
    echo = np.where(fat, 0.25 + 0.06 * tex, echo)
    muscle = (~fat) & (depth < d_fascia2)
    echo = np.where(muscle, 0.45 + 0.1 * tex, echo)
    for d_line, strength in ((d_fascia1, 1.2), (d_fascia2, 1.0), (0.012, 1.3)):
        echo = np.maximum(echo, strength * _gauss(((depth - d_line) * n) ** 2, 1.4 * n / 256))
    # an anechoic vessel running obliquely through the deep field, with bright walls
    vy = 0.8 * n + 0.04 * n * a.uniform(-1, 1) + a.uniform(-0.15, 0.15) * (xx - 0.5 * n)
    vy = vy + 0.03 * n * np.sin(2 * np.pi * xx / n * a.uniform(0.6, 1.2) + a.uniform(0, 6.3))
    vessel_r = 0.028 * n * (1 + 0.25 * np.sin(2 * np.pi * xx / n + a.uniform(0, 6.3)))
    blood = np.abs(yy - vy) / vessel_r
    echo = np.maximum(echo, 1.1 * _gauss((blood - 1.2) ** 2, 0.2))
    echo = np.where(blood < 1, 0.06, echo)
    inner = fov & (depth > 0.28) & (depth < 0.62) & (np.abs(th) < 0.6 * half) & (blood > 1.5)
    target = _make_target(rng("target"), n, inner, k, depth=_depth(fov & (blood > 1.5)) * inner)
    target.mask &= fov
    allowed = _depth(fov & (depth > 0.2) & (blood > 1.2))
    dmask, dsoft = _place_distractors(
        rng("distractors"), k["distractors"], n, allowed, target.outer, target.radius * 0.8, k["blur"]
    )
    hypo = np.clip(target.soft + dsoft, 0, 1)
    echo = echo * (1.0 - 0.92 * k["contrast"] * hypo)

    # Posterior acoustic shadow: integrate the lesion along each beam line (polar grid), map back.
    n_r, n_t = n, max(64, n // 2)
    r_axis = np.linspace(r0, r1, n_r, dtype=np.float32)
    t_axis = np.linspace(-half, half, n_t, dtype=np.float32)
    py = ay + r_axis[:, None] * np.cos(t_axis)[None, :]
    px = ax + r_axis[:, None] * np.sin(t_axis)[None, :]
    lesion = _soft(target.outer, k["blur"])
    path = np.cumsum(ndi.map_coordinates(lesion, [py, px], order=1), axis=0) * (r_axis[1] - r_axis[0])
    scale = max(target.radius * 0.5, 1.0)
    polar_shadow = ndi.gaussian_filter1d(1.0 - np.exp(-path / scale), 1.5, axis=1)
    ir = (r - r0) / (r_axis[1] - r_axis[0])
    it = (th + half) / (t_axis[1] - t_axis[0])
    shadow = ndi.map_coordinates(polar_shadow, [ir, it], order=1, mode="nearest")
    echo = echo * (1.0 - 0.9 * k["shadow"] * shadow)

    gain = np.exp(-1.3 * depth) * (1.0 + 1.1 * depth) * (0.8 + 0.2 * np.cos(th / half * 1.4))
    sigma = (0.6 * n / 256, 1.3 * n / 256)
    iq = rng("noise").standard_normal((2, n, n), dtype=np.float32)
    env = np.hypot(ndi.gaussian_filter(iq[0], sigma), ndi.gaussian_filter(iq[1], sigma))
    env /= env.mean()
    speckle = env ** k["noise"]
    speckle /= speckle.mean()
    gray = np.where(fov, np.clip(0.8 * echo * gain * speckle, 0, 1.5) ** 0.6, 0.0)
    # depth marks (1 cm) along the right edge of the sector
    px_per_cm = n / _FOV_MM["ultrasound"] * 10
    for j in range(1, 7):
        row = int(round(ay + r0 + j * px_per_cm))
        if row < n - 2:
            gray[row : row + 2, n - 6 : n - 4] = 0.8
    return _Result(_gray_rgb(gray), target.mask, fov, dmask, {})


def _xray(n: int, k: dict[str, Any], rng: _Streams) -> _Result:
    """Chest PA radiograph: soft tissue, dark lungs with markings, ribs, clavicles, spine, heart."""
    yy, xx = _grid(n)
    s = n / 256
    u = (xx - 0.5 * n) / n
    v = yy / n
    au = np.abs(u)
    a = rng("anatomy")
    sm = _smooth(a, n, 0.03 * n, count=2)

    width = 0.1 + 0.34 * np.sin(0.5 * np.pi * np.clip((v - 0.02) / 0.24, 0, 1)) ** 0.6 - 0.03 * np.clip(v - 0.4, 0, 1)
    body = np.clip((width - au) * n / 2.0, 0, 1)
    mu = body * np.sqrt(np.clip(1 - (u / width) ** 2, 0, 1)) * (0.85 + 0.15 * np.clip(v / 0.3, 0, 1))

    lungs = np.zeros((n, n), dtype=bool)
    tilt = a.uniform(-0.02, 0.02)
    for side in (-1.0, 1.0):
        su = side * u
        outer = 0.12 + 0.26 * np.clip((v - 0.1) / 0.42, 0, 1) ** 0.5
        if side > 0:  # the heart bulges into the left lung (image right)
            inner = 0.045 + 0.14 * np.exp(-(((v - 0.63) / 0.14) ** 2))
        else:
            inner = 0.05 + 0.04 * np.exp(-(((v - 0.6) / 0.12) ** 2))
        dome = 0.72 + side * tilt + (0.0 if side > 0 else -0.03) + 0.9 * (su - 0.2) ** 2 - 0.12 * (su - 0.2)
        apex = 0.11 + 1.4 * (su - 0.2) ** 2
        lungs |= (su > inner) & (su < outer) & (v < dome) & (v > apex)
    lung_t = ndi.gaussian_filter(lungs.astype(np.float32), 5 * s)
    markings = np.exp(-((_smooth(a, n, 1.8 * s)[0] / 0.3) ** 2))
    hilum = np.exp(-(((au - 0.08) / 0.1) ** 2 + ((v - 0.42) / 0.16) ** 2))
    mu -= lung_t * (0.62 - 0.07 * markings * (0.5 + hilum) - 0.03 * sm[0])
    mu += 0.12 * np.clip(1.0 - _ellipse(n, 0.6 * n, 0.52 * n, 0.13 * n, 0.16 * n), 0, 1) ** 0.5  # heart

    # posterior ribs: ten arcs per side, all in one pass through an "unbent" vertical coordinate
    rib_w, rib_gap, n_ribs = 0.011, 0.062, 10
    t = np.clip((au - 0.03) / 0.36, 0, 1.2)
    coord = (v + 0.05 * np.sin(np.pi * np.clip(t, 0, 1) * 0.9) - 0.09 * t**2 - 0.13) / rib_gap
    jitter = (0.004 / rib_gap) * a.standard_normal((2, n_ribs)).astype(np.float32)
    idx = np.clip(np.round(coord), 0, n_ribs - 1).astype(np.intp)
    d = np.abs(coord - idx - jitter[(u > 0).astype(np.intp), idx]) * rib_gap / (rib_w * (1 + 0.3 * t))
    on = (au > 0.03) & (au < width - 0.015) & (coord > -0.5) & (coord < n_ribs - 0.5)
    bones = on * (0.07 * (d < 1) + 0.05 * _gauss((d - 0.85) ** 2, 0.12))
    clav_curve = 0.15 - 0.05 * (au - 0.05) + 0.55 * (au - 0.17) ** 2
    bones += 0.12 * ((np.abs(v - clav_curve) < 0.012) & (au > 0.02) & (au < 0.3))
    spine = (au < 0.04) * (v > 0.05) * (0.08 + 0.04 * (np.cos(2 * np.pi * v / 0.052) > -0.5))
    bones += spine * (1 - 0.5 * np.clip((au - 0.025) / 0.015, 0, 1))
    mu += ndi.gaussian_filter(bones, 0.7 * s) * body

    depth = _depth(lungs)
    inside = depth > max(1, n // 64)
    target = _make_target(rng("target"), n, inside if inside.any() else lungs, k, irregularity=0.1, max_stretch=1.15)
    dmask, dsoft = _place_distractors(
        rng("distractors"), k["distractors"], n, depth, target.outer, target.radius * 0.8, k["blur"], 0.1, 1.15
    )
    mu += 0.3 * k["contrast"] * np.clip(target.soft + dsoft, 0, 1)

    noise = ndi.gaussian_filter(rng("noise").standard_normal((n, n), dtype=np.float32), 0.6 * s)
    noise /= noise.std() + 1e-8
    gray = 0.03 + 0.78 * np.clip(mu, 0, None) ** 1.1 + 0.02 * k["noise"] * noise
    return _Result(_gray_rgb(gray), target.mask, np.ones((n, n), bool), dmask, {})


def _ct(n: int, k: dict[str, Any], rng: _Streams) -> _Result:
    """Axial abdominal CT (portal venous phase) in HU, windowed to uint8 by ``window``."""
    a = rng("anatomy")
    cy, cx, by, bx = 0.5 * n, 0.5 * n, 0.31 * n, 0.43 * n
    rho = _ellipse(n, cy, cx, by, bx)
    hu = np.full((n, n), -1000.0, dtype=np.float32)
    body = rho < 1.0
    hu[body] = -100.0
    hu[rho < 0.93] = 50.0
    cavity = rho < 0.87
    hu[cavity] = -90.0
    tex = _smooth(a, n, 2.0 * n / 256)[0]

    def paint(region: np.ndarray, value: float, texture: float = 4.0) -> None:
        region = region & cavity
        hu[region] = value + texture * tex[region]

    liver_shape = _Shape(np.array([0.08, 0.04, 0.02, 0.01]), a.uniform(0, 6.3, 4), 1.15, 0.3)
    liver = liver_shape.render(n, cy - 0.04 * n, cx - 0.17 * n, 0.165 * n)
    paint(liver, 95.0)
    spleen = _ellipse(n, cy + 0.02 * n, cx + 0.27 * n, 0.11 * n, 0.055 * n, -0.5) < 1
    paint(spleen, 105.0)
    stomach = _ellipse(n, cy - 0.14 * n, cx + 0.12 * n, 0.07 * n, 0.12 * n, 0.2)
    paint(stomach < 1, 55.0)
    level = cy - 0.15 * n  # air-fluid level in the stomach
    yy, xx = _grid(n)
    paint((stomach < 0.85) & (yy >= level), 15.0)
    paint((stomach < 0.85) & (yy < level), -950.0, 10.0)
    for side in (-1, 1):
        kid = _ellipse(n, cy + 0.1 * n, cx + side * 0.17 * n, 0.075 * n, 0.048 * n, side * 0.35)
        paint(kid < 1, 165.0)
        paint(kid < 0.45, 25.0)
        paint(_ellipse(n, cy + 0.12 * n, cx + side * 0.075 * n, 0.045 * n, 0.03 * n) < 1, 50.0)  # psoas
        paint(_ellipse(n, cy + 0.235 * n, cx + side * 0.08 * n, 0.045 * n, 0.065 * n) < 1, 50.0)  # erector spinae
    vert = _ellipse(n, cy + 0.15 * n, cx, 0.06 * n, 0.065 * n)
    paint(vert < 1, 700.0, 20.0)
    paint(vert < 0.82, 260.0, 25.0)
    paint((np.abs(xx - cx) < 0.012 * n) & (yy > cy + 0.2 * n) & (yy < cy + 0.29 * n), 600.0, 20.0)  # spinous process
    paint(_ellipse(n, cy + 0.235 * n, cx, 0.022 * n, 0.05 * n) < 1, 600.0, 20.0)  # lamina
    paint(_ellipse(n, cy + 0.235 * n, cx, 0.016 * n, 0.02 * n) < 1, 15.0)  # spinal canal
    paint(_ellipse(n, cy + 0.06 * n, cx + 0.035 * n, 0.028 * n, 0.028 * n) < 1, 165.0, 3.0)  # aorta
    paint(_ellipse(n, cy + 0.05 * n, cx - 0.05 * n, 0.022 * n, 0.032 * n) < 1, 120.0, 3.0)  # IVC
    for _ in range(7):  # bowel loops with gas or fluid
        by_, bx_ = cy + a.uniform(-0.02, 0.14) * n, cx + a.uniform(-0.02, 0.22) * n
        rr = a.uniform(0.025, 0.04) * n
        loop = _ellipse(n, by_, bx_, rr, rr * a.uniform(0.8, 1.3), a.uniform(0, 3))
        paint(loop < 1, 60.0)
        paint(loop < 0.75, -900.0 if a.random() < 0.5 else 20.0, 15.0)
    table_y = cy + by + 0.05 * n + 0.4 * (xx - cx) ** 2 / n
    hu[(np.abs(yy - table_y) < 0.012 * n) & (np.abs(xx - cx) < 0.46 * n)] = 150.0
    hu = ndi.gaussian_filter(hu, 0.6 * n / 256)

    inside = _depth(liver & cavity)
    target = _make_target(rng("target"), n, liver & cavity, k, depth=inside)
    organs = _depth((liver | spleen) & cavity)
    dmask, dsoft = _place_distractors(
        rng("distractors"), k["distractors"], n, organs, target.outer, target.radius * 0.7, k["blur"]
    )
    hu = hu - 120.0 * k["contrast"] * np.clip(target.soft + dsoft, 0, 1)
    noise = ndi.gaussian_filter(rng("noise").standard_normal((n, n), dtype=np.float32), 0.7 * n / 256)
    hu = (hu + 14.0 * k["noise"] * noise / (noise.std() + 1e-8)).astype(np.float32)
    level, width = k["window"]
    image = rescale_to_uint8(hu, level - width / 2.0, level + width / 2.0)
    return _Result(np.repeat(image[:, :, None], 3, axis=2), target.mask, body, dmask, {"hu": hu})


def _mri(n: int, k: dict[str, Any], rng: _Streams) -> _Result:
    """Axial brain MRI, FLAIR-like contrast: gyri, ventricles, deep grey matter, Rician noise, bias field."""
    yy, xx = _grid(n)
    a = rng("anatomy")
    cy, cx, hy, hx = 0.5 * n, 0.5 * n, 0.46 * n, 0.37 * n
    ny, nx = (yy - cy) / hy, (xx - cx) / hx
    rho = np.hypot(ny, nx)
    theta = np.arctan2(ny, nx)

    def harm(amp: float, kmax: int) -> np.ndarray:  # a smooth random function of the angle
        return sum(amp / kk * np.cos(kk * theta + a.uniform(0, 6.3)) for kk in range(2, kmax))

    rho = rho / (1 + harm(0.02, 5))
    img = np.zeros((n, n), dtype=np.float32)
    img[rho < 1.0] = 0.5  # scalp
    img[rho < 0.95] = 0.04  # skull
    img[rho < 0.905] = 0.1  # CSF
    r_brain = 0.89 * (1 + harm(0.015, 6))
    brain = rho < r_brain
    depth_px = (r_brain - rho) * 0.5 * (hx + hy)
    s = n / 256
    # Gyri: zero lines of a smooth noise field sampled in (angle, depth) coordinates, stretched along
    # the depth so that sulci run inwards from the surface and wiggle like convolutions.
    folds = _smooth(a, n, 1.3 * s)[0]
    arc = (theta + np.pi) / (2 * np.pi) * n
    fold = ndi.map_coordinates(folds, [np.clip(depth_px, 0, None) * 0.22, arc], order=1, mode="grid-wrap")
    band = 0.065 * n * (0.75 + 0.25 * np.cos(3 * theta + a.uniform(0, 6.3)))
    slope = np.hypot(*np.gradient(fold)) + 1e-3
    line_px = np.abs(fold) / slope  # distance (px) to the nearest zero line
    sulcus = brain & (line_px < 0.8 * s) & (depth_px < band)
    gm = brain & ((depth_px < 4.0 * s) | ((line_px < 3.8 * s) & (depth_px < band + 2 * s)))
    fissure = np.abs(xx - cx) < 0.8 * s
    lobes = np.abs(yy - cy) > 0.24 * n
    gm |= brain & (np.abs(xx - cx) < 3.5 * s) & lobes
    img[brain] = 0.36
    img[gm] = 0.6
    img[sulcus | (brain & fissure & lobes)] = 0.12
    for side in (-1, 1):
        img[_ellipse(n, cy + 0.07 * n, cx + side * 0.065 * n, 0.055 * n, 0.042 * n) < 1] = 0.52  # thalamus
        img[_ellipse(n, cy - 0.01 * n, cx + side * 0.14 * n, 0.065 * n, 0.026 * n, side * 0.15) < 1] = 0.5  # putamen
        img[_ellipse(n, cy - 0.05 * n, cx + side * 0.045 * n, 0.11 * n, 0.025 * n, -side * 0.2) < 1] = 0.06  # ventricle
        img[_ellipse(n, cy + 0.15 * n, cx + side * 0.06 * n, 0.05 * n, 0.018 * n, side * 0.5) < 1] = 0.06  # trigone
    img[(np.abs(xx - cx) < 1.0 * s) & (np.abs(yy - cy - 0.06 * n) < 0.04 * n)] = 0.06  # third ventricle
    img = ndi.gaussian_filter(img, 0.6 * s)
    img += 0.015 * _smooth(a, n, 1.5 * s)[0] * (rho < 1)

    wm = brain & (img > 0.3) & (img < 0.45)
    allowed = (depth_px > 6 * s) & wm
    depth = _depth(brain)  # centred on white matter, but sized against the whole brain
    target = _make_target(rng("target"), n, allowed, k, depth=depth * allowed if allowed.any() else depth)
    if (target.mask & ~brain).any():  # a very large lesion stays inside the brain
        target.mask &= brain
        target.soft = _soft(target.mask, k["blur"])
    dmask, dsoft = _place_distractors(
        rng("distractors"), k["distractors"], n, depth, target.outer, target.radius * 0.75, k["blur"]
    )
    img = img + (0.36 + 0.56 * k["contrast"] - img) * np.clip(target.soft + dsoft, 0, 1)

    b = rng("bias")
    angle = b.uniform(0, 2 * np.pi)
    ramp = ((xx - cx) * math.cos(angle) + (yy - cy) * math.sin(angle)) / (0.5 * n)
    field = 0.7 * ramp + 0.3 * _smooth(b, n, 0.2 * n)[0]
    img = img * (1.0 + k["bias"] * field / (np.abs(field).max() + 1e-8))
    sigma = 0.035 * k["noise"]
    noise = rng("noise").standard_normal((2, n, n), dtype=np.float32)
    img = np.hypot(img + sigma * noise[0], sigma * noise[1])
    return _Result(_gray_rgb(img), target.mask, rho < 1.0, dmask, {})


def _dermoscopy(n: int, k: dict[str, Any], rng: _Streams) -> _Result:
    """Dermoscopy: skin with furrows, circular aperture, pigmented lesion with network, hairs."""
    yy, xx = _grid(n)
    a = rng("anatomy")
    s = n / 256
    low = _smooth(a, n, 0.08 * n, count=3)
    furrows = np.minimum(
        np.abs(_smooth(a, n, 1.2 * s, stretch=6, angle=0.6)[0]), np.abs(_smooth(a, n, 1.2 * s, stretch=6, angle=2.2)[0])
    )
    skin_rgb = np.array([0.86, 0.64, 0.55], dtype=np.float32)
    skin = skin_rgb * (1 + 0.03 * low.transpose(1, 2, 0))
    skin[..., 0] += 0.03 * np.clip(low[0], 0, None)  # erythema
    skin *= (1 - 0.06 * np.exp(-((furrows / 0.15) ** 2)))[..., None]

    rr = np.hypot(yy - 0.5 * n, xx - 0.5 * n) / (0.5 * n)
    fov = rr < 1.18
    inside = np.clip((0.85 - rr) * 0.5 * n, 0, None)
    target = _make_target(rng("target"), n, rr < 0.85, k, irregularity=0.3, max_stretch=1.4, depth=inside)
    dmask, dsoft = _place_distractors(
        rng("distractors"),
        k["distractors"],
        n,
        inside,
        target.outer,
        min(target.radius, 0.05 * n) * 0.6,
        k["blur"],
        0.2,
    )
    t = rng("target")
    edt = _crop_edt(target.outer)
    core = np.clip(edt / max(edt.max(), 1.0), 0, 1)
    net_phase = _smooth(t, n, 2.2 * s)[0]
    network = np.exp(-((net_phase / 0.3) ** 2))
    blotch = _smooth(t, n, 0.05 * n)[0]
    pigment = target.soft * (0.55 + 0.35 * core + 0.12 * blotch + 0.25 * network)
    pigment = np.clip(pigment, 0, None) + dsoft * 0.8
    melanin = np.array([0.85, 1.35, 1.55], dtype=np.float32)
    veil = np.clip(blotch - 0.8, 0, 1)[..., None] * target.soft[..., None] * np.array([0.2, 0.05, -0.3], np.float32)
    rgb = skin * np.exp(-1.5 * k["contrast"] * pigment[..., None] * (melanin + veil))

    h = rng("hair")
    pts = []
    for _ in range(k["hair"]):
        p0 = h.uniform(-0.1, 1.1, 2) * n
        heading = h.uniform(0, 2 * np.pi)
        length = h.uniform(0.4, 1.1) * n
        bend = h.uniform(-0.6, 0.6)
        tt = np.linspace(0, 1, int(length * 1.5))[:, None]
        ang = heading + bend * tt
        step = np.concatenate([np.cos(ang), np.sin(ang)], axis=1) * (length / len(tt))
        pts.append(p0 + np.cumsum(step, axis=0))
    if pts:
        p = np.round(np.concatenate(pts)).astype(int)
        keep = (p >= 0).all(1) & (p < n).all(1)
        hair_img = np.zeros((n, n), dtype=np.float32)
        hair_img[p[keep, 1], p[keep, 0]] = 1.0
        hair_alpha = np.clip(ndi.gaussian_filter(hair_img, 0.9 * s) * 3.0, 0, 0.92)[..., None]
        rgb = rgb * (1 - hair_alpha) + hair_alpha * np.array([0.18, 0.12, 0.09], np.float32)

    rgb = rgb + 0.02 * k["noise"] * rng("noise").standard_normal((n, n, 3), dtype=np.float32)
    vignette = np.clip((1.18 - rr) / 0.12, 0, 1) * (1 - 0.25 * rr**2)
    rgb = rgb * vignette[..., None]
    return _Result(_to_uint8(rgb), target.mask, fov, dmask, {})


def _endoscopy(n: int, k: dict[str, Any], rng: _Streams) -> _Result:
    """Colonoscopy: pink mucosa, dark lumen, haustral folds, a polyp, specular highlights."""
    yy, xx = _grid(n)
    a = rng("anatomy")
    s = n / 256
    c = 0.5 * n
    fov = (np.abs(yy - c) / (0.5 * n)) ** 4 + (np.abs(xx - c) / (0.5 * n)) ** 4 < 0.98
    ly, lx = c + a.uniform(-0.22, 0.22) * n, c + a.uniform(-0.22, 0.22) * n
    rho = np.hypot(yy - ly, xx - lx) / n
    phi = np.arctan2(yy - ly, xx - lx)
    height = np.zeros((n, n), dtype=np.float32)
    harmonics = {m: (np.cos(m * phi), np.sin(m * phi)) for m in (1, 2, 3)}

    def wave(m: int, shift: float) -> np.ndarray:  # cos(m * phi + shift) from precomputed harmonics
        c, s_ = harmonics[m]
        return c * math.cos(shift) - s_ * math.sin(shift)

    for i in range(6):
        rk = 0.07 * 1.5**i
        wob = 1 + 0.1 * wave(2, a.uniform(0, 6.3)) + 0.05 * wave(3, a.uniform(0, 6.3))
        crescent = 0.55 + 0.45 * wave(1, -a.uniform(0, 6.3))
        height += (0.12 * n * rk) * crescent * np.exp(-(((rho - rk * wob) / (0.2 * rk)) ** 2))
    height += 0.04 * s * _smooth(a, n, 1.5 * s)[0]  # wet micro-relief for glints

    wall = fov & (rho > 0.17) & (rho < 0.55)
    target = _make_target(rng("target"), n, wall, k, irregularity=0.12, max_stretch=1.25)
    target.mask &= fov
    depth = _depth(wall)
    dmask, dsoft = _place_distractors(
        rng("distractors"), k["distractors"], n, depth, target.outer, target.radius * 0.6, k["blur"]
    )
    bumps = target.outer | dmask
    bump_soft = np.clip(target.soft + dsoft, 0, 1)
    sigma = 0.15 * target.radius + k["blur"]  # rounds off the medial ridge of the distance map
    dome = np.zeros((n, n), dtype=np.float32)
    box = ndi.find_objects(bumps.astype(np.int8))[0]
    pad = int(3 * sigma) + 2
    sl = tuple(slice(max(0, b.start - pad), b.stop + pad) for b in box)
    dome[sl] = ndi.gaussian_filter(np.sqrt(np.clip(_crop_edt(bumps)[sl] / max(target.radius, 1.0), 0, 1)), sigma)
    height += k["contrast"] * 0.6 * target.radius * bump_soft * (0.3 + 0.7 * dome)

    gy, gx = np.gradient(height)
    norm = np.sqrt(gx**2 + gy**2 + 1)
    light = [float(v) for v in np.array([0.25, -0.3, 1.0]) / np.linalg.norm([0.25, -0.3, 1.0])]
    ndotl = np.clip((-gx * light[0] - gy * light[1] + light[2]) / norm, 0, 1)
    half = [float(v) for v in (np.add(light, [0, 0, 1.0]) / np.linalg.norm(np.add(light, [0, 0, 1.0])))]
    ndoth = np.clip((-gx * half[0] - gy * half[1] + half[2]) / norm, 0, 1)
    spec = ndoth**600

    vessels = np.exp(-((_smooth(a, n, 1.6 * s)[0] / 0.2) ** 2)) * (0.5 + 0.5 * _smooth(a, n, 0.06 * n)[0].clip(-1, 1))
    mucosa = np.array([0.85, 0.42, 0.36], np.float32) * (1 + 0.04 * _smooth(a, n, 0.04 * n)[0])[..., None]
    mucosa = mucosa * (1 - 0.3 * np.clip(vessels, 0, 1)[..., None] * np.array([0.2, 0.7, 0.6], np.float32))
    polyp_rgb = np.array([0.93, 0.58, 0.48], np.float32)
    albedo = mucosa + (polyp_rgb - mucosa) * (k["contrast"] * bump_soft)[..., None]
    illum = np.clip(rho / 0.35, 0.03, 1.0) ** 1.6 * (1 - 0.4 * (np.hypot(yy - c, xx - c) / (0.7 * n)) ** 2)
    rgb = albedo * ((0.3 + 0.6 * ndotl) * illum)[..., None]
    rgb = rgb + (2.0 * k["specular"] * spec * np.clip(illum * 1.5, 0, 1))[..., None]
    rgb = rgb + 0.015 * k["noise"] * rng("noise").standard_normal((n, n, 3), dtype=np.float32)
    rgb = rgb * fov[..., None]
    return _Result(_to_uint8(rgb), target.mask, fov, dmask, {})


def _vessel_tree(rng: np.random.Generator, n: int, disc: tuple[float, float], side: float) -> np.ndarray:
    """Centre-line samples of a branching vessel tree: (m, 4) array of (row, col, relative width, is_artery).

    Eight trunks leave the optic disc (artery and vein; superior and inferior; temporal arcades that
    arch around the macula and shorter nasal ones). Every segment tapers, wiggles smoothly and sprouts
    2-3 thinner, shorter branches; one generation is computed at a time, vectorised over segments.
    """
    step = 0.7
    rows = []  # y0, x0, heading, bend (rad/px), width, length (px), generations left, artery
    for artery in (0.0, 1.0):
        for up in (-1.0, 1.0):  # superior (-1, image up) and inferior (+1) vessels
            tilt = 1.05 + rng.uniform(-0.15, 0.15) + 0.15 * artery
            # temporal arcade: leaves the disc steeply towards the fovea (x direction -side), then bends
            # towards the horizontal so that it arches around the macula
            heading = math.atan2(up * math.sin(tilt), -side * math.cos(tilt))
            rows.append((disc[0], disc[1], heading, up * side * 1.8 / n, 1.0 - 0.2 * artery, 0.75 * n, 3, artery))
            nasal = 0.6 + rng.uniform(-0.2, 0.2)
            heading = math.atan2(up * math.sin(nasal), side * math.cos(nasal))
            rows.append((disc[0], disc[1], heading, 0.0, 0.75 - 0.15 * artery, 0.42 * n, 2, artery))
    batch = np.array(rows, dtype=np.float64)
    samples = []
    while len(batch):
        y0, x0, heading, bend, width, length, gen, artery = batch.T
        count = len(batch)
        m = np.maximum(2, (length / step).astype(int))
        j = np.arange(int(m.max()))[None, :]
        amp = rng.uniform(0.002, 0.005, count)[:, None] * (256 / n)
        freq = rng.uniform(0.03, 0.08, count)[:, None] * (256 / n) * step
        wiggle = amp * np.sin(freq * j + rng.uniform(0, 2 * np.pi, count)[:, None])
        ang = heading[:, None] + np.cumsum(bend[:, None] + wiggle, axis=1) * step
        ys = y0[:, None] + np.cumsum(step * np.sin(ang), axis=1)
        xs = x0[:, None] + np.cumsum(step * np.cos(ang), axis=1)
        rel = width[:, None] * (1 - 0.35 * j / m[:, None])
        valid = j < m[:, None]
        samples.append(
            np.stack([ys[valid], xs[valid], rel[valid], np.broadcast_to(artery[:, None], ys.shape)[valid]], 1)
        )
        parents = np.flatnonzero((gen > 0) & (width > 0.12))
        n_branch = rng.integers(2, 4, len(parents))
        parent = np.repeat(parents, n_branch)
        where = rng.uniform(0.12, 0.8, len(parent))
        order = np.lexsort((where, parent))  # sorted along each parent, so that turns alternate sides
        parent, where = parent[order], where[order]
        rank = np.arange(len(parent)) - np.repeat(np.cumsum(n_branch) - n_branch, n_branch)
        turn = np.where(rank % 2 == 0, 1.0, -1.0) * rng.uniform(0.5, 1.0, len(parent))
        i = (where * (m[parent] - 1)).astype(int)
        batch = np.stack(
            [
                ys[parent, i],
                xs[parent, i],
                ang[parent, i] + turn,
                rng.normal(0, 1.0 / n, len(parent)),
                rel[parent, i] * rng.uniform(0.55, 0.75, len(parent)),
                length[parent] * rng.uniform(0.4, 0.6, len(parent)),
                gen[parent] - 1,
                artery[parent],
            ],
            axis=1,
        )
    return np.concatenate(samples)


def _fundus(n: int, k: dict[str, Any], rng: _Streams) -> _Result:
    """Colour fundus photograph: orange disc, vignetting, optic disc, macula, tapered vessel tree."""
    yy, xx = _grid(n)
    a = rng("anatomy")
    s = n / 256
    c = 0.5 * n
    rr = np.hypot(yy - c, xx - c) / (0.47 * n)
    fov = rr < 1.0
    side = float(a.choice([-1.0, 1.0]))
    disc = (c + a.uniform(-0.03, 0.03) * n, c + side * 0.2 * n)
    fovea = (c + 0.02 * n, c - side * 0.13 * n)
    choroid = _smooth(a, n, 1.5 * s, count=2)
    bg = np.array([0.82, 0.38, 0.13], np.float32) * (1 + 0.025 * choroid[0] + 0.04 * np.tanh(choroid[1]))[..., None]
    d_fov = (yy - fovea[0]) ** 2 + (xx - fovea[1]) ** 2
    bg = bg * (1 - 0.35 * _gauss(d_fov, 0.07 * n))[..., None]
    d_disc = (yy - disc[0]) ** 2 + (xx - disc[1]) ** 2
    r_disc = 0.065 * n
    disc_a = np.clip((r_disc - np.sqrt(d_disc)) / (1.5 * s) + 0.5, 0, 1)[..., None]
    cup_a = (0.7 * _gauss(d_disc, 0.3 * r_disc))[..., None]
    bg = bg * (1 - disc_a) + disc_a * np.array([0.98, 0.78, 0.45], np.float32)
    bg = bg * (1 - cup_a) + cup_a * np.array([1.0, 0.92, 0.75], np.float32)

    pts = _vessel_tree(rng("vessels"), n, disc, side)
    # >= 0.75 px keeps the thinnest vessels 8-connected (every point of a curve is within 0.71 px of a pixel centre)
    radius = np.maximum(0.5 * k["thickness"] * pts[:, 2], 0.75).astype(np.float32)
    iy, ix = np.round(pts[:, 0]).astype(int), np.round(pts[:, 1]).astype(int)
    keep = np.flatnonzero((iy >= 0) & (iy < n) & (ix >= 0) & (ix < n))
    keep = keep[np.argsort(pts[keep, 2], kind="stable")]  # the widest vessel wins a shared pixel, for any thickness
    r_img = np.zeros((n, n), dtype=np.float32)
    cy_img, cx_img, art_img = (np.zeros((n, n), dtype=np.float32) for _ in range(3))
    r_img[iy[keep], ix[keep]] = radius[keep]
    cy_img[iy[keep], ix[keep]] = pts[keep, 0]
    cx_img[iy[keep], ix[keep]] = pts[keep, 1]
    art_img[iy[keep], ix[keep]] = pts[keep, 3]
    near = ndi.distance_transform_edt(r_img == 0, return_distances=False, return_indices=True)
    r_near, artery = r_img[near[0], near[1]], art_img[near[0], near[1]]
    dist = np.hypot(yy - cy_img[near[0], near[1]], xx - cx_img[near[0], near[1]])  # sub-pixel distance
    mask = (dist <= r_near) & fov
    profile = np.clip(r_near + 0.5 - dist, 0, 1) * (1 - 0.25 * (dist / np.maximum(r_near, 0.5)) ** 2)
    profile -= 0.35 * artery * (r_near > 1.5) * _gauss(dist**2, 0.25 * np.maximum(r_near, 0.5))  # light reflex
    if k["blur"] > 0:
        profile = ndi.gaussian_filter(profile, k["blur"])
    depth = np.clip((0.9 - rr) * 0.47 * n, 0, None)
    dmask, dsoft = _place_distractors(
        rng("distractors"),
        k["distractors"],
        n,
        depth,
        ndi.binary_dilation(mask, iterations=2),
        3.0 * s,
        k["blur"],
        0.25,
    )
    vein_abs = np.array([0.45, 0.8, 0.75], np.float32)
    art_abs = np.array([0.25, 0.6, 0.6], np.float32)
    absorb = vein_abs + (art_abs - vein_abs) * artery[..., None]
    rgb = bg * (1 - k["contrast"] * np.clip(profile[..., None] * absorb + dsoft[..., None] * vein_abs, 0, 0.95))
    vignette = (1 - 0.55 * np.clip(rr, 0, 1) ** 2.5) * np.clip((1 - rr) * 40, 0, 1)
    rgb = rgb * vignette[..., None] + 0.015 * k["noise"] * rng("noise").standard_normal((n, n, 3), dtype=np.float32)
    rgb = rgb * fov[..., None]
    return _Result(_to_uint8(rgb), mask, fov, dmask, {"optic_disc": (disc[0], disc[1], r_disc)})


def _nuclei(rng: np.random.Generator, n: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Label map of ``count`` touching elliptical nuclei (1..count) and their radii."""
    radius = float(np.clip(math.sqrt(0.3 * n * n / (count * math.pi)), 2.5, 0.09 * n))
    n_clusters = max(1, count // 6)
    centres_c = rng.uniform(0.1 * n, 0.9 * n, (n_clusters, 2))
    labels = np.zeros((n, n), dtype=np.int32)
    best = np.full((n, n), np.inf, dtype=np.float32)
    forbid = np.zeros((n, n), dtype=bool)
    placed: list[tuple[float, float]] = []
    d_min = 1.4 * radius
    for _round in range(8):
        m = 40 * count + 200
        which = rng.integers(n_clusters, size=m)
        cand = centres_c[which] + rng.normal(0, 1.8 * radius, (m, 2))
        wild = rng.random(m) < 0.15
        cand[wild] = rng.uniform(radius, n - radius, (int(wild.sum()), 2))
        cand = np.clip(cand, radius, n - 1 - radius)
        rd = int(math.ceil(d_min))
        yy_s, xx_s = np.mgrid[-rd : rd + 1, -rd : rd + 1]
        stamp = yy_s**2 + xx_s**2 < d_min**2
        for y, x in cand:
            iy, ix = int(y), int(x)
            if forbid[iy, ix]:
                continue
            placed.append((y, x))
            y0, x0 = iy - rd, ix - rd
            sy0, sx0 = max(0, -y0), max(0, -x0)
            sy1, sx1 = (
                stamp.shape[0] - max(0, y0 + stamp.shape[0] - n),
                stamp.shape[1] - max(0, x0 + stamp.shape[1] - n),
            )
            forbid[y0 + sy0 : y0 + sy1, x0 + sx0 : x0 + sx1] |= stamp[sy0:sy1, sx0:sx1]
            if len(placed) == count:
                break
        if len(placed) == count:
            break
        d_min *= 0.85
    # every nucleus is a slightly irregular ellipse; a pixel belongs to the nucleus whose normalised
    # radius q there is smallest (q < 1), so overlapping nuclei meet along a shared boundary
    centres = np.array(placed, dtype=np.float32).reshape(-1, 2)
    count = len(centres)
    radii = radius * rng.uniform(0.85, 1.15, count)
    amps = (0.08 * rng.uniform(0.3, 1.0, (count, 4)) / np.arange(1, 5)).astype(np.float32)
    phases = rng.uniform(0, 2 * np.pi, (count, 4)).astype(np.float32)
    stretch = rng.uniform(1.0, 1.35, count).astype(np.float32)
    angle = rng.uniform(0, np.pi, count).astype(np.float32)
    half = int(math.ceil((radii * (1 + amps.sum(1)) * stretch).max())) + 1
    off = np.arange(-half, half + 1)
    gy = np.floor(centres[:, 0]).astype(int)[:, None, None] + off[None, :, None]
    gx = np.floor(centres[:, 1]).astype(int)[:, None, None] + off[None, None, :]
    dy = (gy - centres[:, 0, None, None]).astype(np.float32)
    dx = (gx - centres[:, 1, None, None]).astype(np.float32)
    cs, sn = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
    u = (dx * cs + dy * sn) / stretch[:, None, None]
    v = (-dx * sn + dy * cs) * stretch[:, None, None]
    dist = np.hypot(u, v) + np.float32(1e-6)
    zr, zi = u / dist, v / dist  # e^{i theta}
    pr, pi = zr * zr - zi * zi, 2 * zr * zi  # e^{2 i theta}
    rho = np.ones_like(dist)
    for i in range(4):  # rho = 1 + sum_k a_k cos(k theta + phi_k), k = 2..5, via powers of e^{i theta}
        c, s_ = np.cos(phases[:, i])[:, None, None], np.sin(phases[:, i])[:, None, None]
        rho += amps[:, i, None, None] * (pr * c - pi * s_)
        pr, pi = pr * zr - pi * zi, pr * zi + pi * zr
    q = dist / (radii.astype(np.float32)[:, None, None] * rho)
    inside = (q < 1) & (gy >= 0) & (gy < n) & (gx >= 0) & (gx < n)
    pixel = np.broadcast_to(gy * n + gx, q.shape)[inside]
    label = np.broadcast_to(np.arange(1, count + 1)[:, None, None], q.shape)[inside]
    key = (q[inside] * 1e6).astype(np.int64) * 65536 + label  # smallest q wins; ties go to the lower label
    best = np.full(n * n, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(best, pixel, key)
    labels = np.where(best == np.iinfo(np.int64).max, 0, best % 65536).astype(np.int32).reshape(n, n)
    # keep one connected piece per nucleus (the partition can, rarely, split one)
    from skimage.measure import label as connected

    pieces = connected(labels, background=0, connectivity=1)
    if pieces.max() > count:
        size = np.bincount(pieces.ravel())
        owner = np.zeros(len(size), dtype=np.int64)
        owner[pieces.ravel()] = labels.ravel()
        order = np.lexsort((size, owner))  # per owner, the largest piece comes last
        last = np.r_[owner[order][1:] != owner[order][:-1], True]
        keep = np.zeros(len(size), dtype=bool)
        keep[order[last]] = True
        labels[~keep[pieces]] = 0
    return labels, radii


def _microscopy(n: int, k: dict[str, Any], rng: _Streams) -> _Result:
    """H&E histology: eosin stroma with fibres and clear spaces, touching haematoxylin nuclei."""
    s = n / 256
    a = rng("anatomy")
    fibres = _smooth(a, n, 1.0 * s, stretch=6.0, angle=a.uniform(0, np.pi))[0]
    low = _smooth(a, n, 0.06 * n, count=2)
    warp = _smooth(a, n, 0.05 * n, count=2) * (0.03 * n)
    yy, xx = _grid(n)
    fibres = ndi.map_coordinates(fibres, [yy + warp[0], xx + warp[1]], order=1, mode="grid-wrap")
    eosin = 0.55 + 0.08 * fibres + 0.1 * low[0]
    eosin *= np.clip(1.6 - low[1], 0.08, 1.0) ** 1.5  # pale clear spaces
    labels, radii = _nuclei(rng("target"), n, k["n_instances"])
    if labels.max() != k["n_instances"] or len(np.unique(labels)) != k["n_instances"] + 1:  # pragma: no cover
        raise RuntimeError(f"could only place {len(np.unique(labels)) - 1} of {k['n_instances']} nuclei; please report")
    mask = labels > 0
    t = rng("target")
    per_nucleus = np.concatenate([[0.0], t.uniform(0.8, 1.2, len(radii))]).astype(np.float32)
    chromatin = _smooth(t, n, 0.8 * s)[0]
    boundary = mask & (
        (labels != np.roll(labels, 1, 0)) | (labels != np.roll(labels, 1, 1)) | (labels != np.roll(labels, -1, 0))
    )
    rim = mask & ~ndi.binary_erosion(mask, iterations=max(1, int(s)))
    hema = (
        per_nucleus[labels] * (0.85 + 0.2 * chromatin) + np.float32(0.25) * rim - np.float32(0.35) * (boundary & ~rim)
    )
    hema = np.clip(hema * mask, 0, None) * np.float32(1.9 * k["contrast"])
    if k["blur"] > 0:
        hema = ndi.gaussian_filter(hema, k["blur"])
    eosin = eosin * (1 - 0.5 * np.clip(hema, 0, 1))

    depth = np.full((n, n), np.inf, dtype=np.float32)
    r_mean = float(radii.mean()) if len(radii) else 4.0
    dmask, dsoft = _place_distractors(
        rng("distractors"), k["distractors"], n, depth, mask, 0.85 * r_mean, 0.7 * s, 0.03, 1.1
    )
    if dmask.any():  # red blood cells: eosin-dense discs with a pale centre
        pale = _crop_edt(dmask)
        eosin = eosin + dsoft * (1.4 - 0.5 * np.exp(-pale / (0.3 * r_mean)))
    h_vec = np.array([0.65, 0.70, 0.29], np.float32)
    e_vec = np.array([0.09, 0.85, 0.25], np.float32)
    od = (0.06 + hema)[..., None] * h_vec + eosin[..., None] * e_vec
    rgb = np.exp(-1.05 * od) + 0.02 * k["noise"] * rng("noise").standard_normal((n, n, 3), dtype=np.float32)
    return _Result(_to_uint8(rgb), mask, np.ones((n, n), bool), dmask, {"instances": labels})


_BUILDERS: dict[str, Callable[[int, dict[str, Any], _Streams], _Result]] = {
    "ultrasound": _ultrasound,
    "xray": _xray,
    "ct": _ct,
    "mri": _mri,
    "dermoscopy": _dermoscopy,
    "endoscopy": _endoscopy,
    "fundus": _fundus,
    "microscopy": _microscopy,
}


def make_phantom(modality: str, seed: int = 0, size: int = 256, **knobs: Any) -> Case:
    """Generate a deterministic phantom of ``modality`` as a :class:`~utils.datasets.Case`.

    Parameters
    ----------
    modality:
        One of :data:`STYLES`.
    seed:
        Non-negative integer; the same seed, size and knobs give identical arrays.
    size:
        Image side in pixels (32..2048). Geometry scales with ``size``; ``blur`` and
        ``thickness`` are in pixels.
    **knobs:
        Factors to vary (see the module docstring and :func:`default_knobs`):

        ===========  ===========================================================================
        style        knobs (target; what ``contrast`` and ``noise`` mean there)
        ===========  ===========================================================================
        ultrasound   contrast, noise, blur, target_area, ring, distractors, shadow
                     (hypoechoic lesion, echo x (1 - 0.92 contrast); multiplicative Rayleigh
                     speckle, noise = exponent of the envelope; anechoic look-alikes)
        xray         contrast, noise, blur, target_area, ring, distractors
                     (lung nodule, extra attenuation 0.3 contrast; Gaussian quantum noise)
        ct           contrast, noise, blur, target_area, ring, distractors, window
                     (liver lesion 120 x contrast HU below liver; 14 x noise HU correlated
                     noise; window=(level, width) HU, default (40, 400))
        mri          contrast, noise, blur, target_area, ring, distractors, bias
                     (FLAIR white-matter lesion, white matter 0.36 -> 0.36 + 0.56 contrast;
                     Rician noise sigma 0.035 x noise; multiplicative bias field)
        dermoscopy   contrast, noise, blur, target_area, distractors, hair
                     (pigmented lesion, melanin density x contrast; hairs are not in the mask)
        endoscopy    contrast, noise, blur, target_area, distractors, specular
                     (polyp: height and colour difference x contrast; Blinn-Phong highlights)
        fundus       contrast, noise, blur, thickness, distractors
                     (vessel tree, vessel absorption x contrast; distractors = haemorrhages)
        microscopy   contrast, noise, blur, n_instances, distractors
                     (all nuclei, haematoxylin x contrast; distractors = red blood cells)
        ===========  ===========================================================================

    Returns
    -------
    Case
        ``image`` (size, size, 3) uint8, ``mask`` (size, size) bool (never empty), ``modality``,
        ``spacing`` in mm, ``source``/``license`` and ``meta`` (see the module docstring).

    Raises
    ------
    ValueError
        For an unknown style, an unknown or unused knob, or an out-of-range value; the message
        lists what is allowed.
    """
    style = _check_style(modality)
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")
    if isinstance(size, (bool, np.bool_)) or not isinstance(size, (int, np.integer)) or not 32 <= size <= 2048:
        raise ValueError(f"size must be an integer in [32, 2048] pixels, got {size!r}.")
    seed, size = int(seed), int(size)
    resolved = _resolve_knobs(style, size, knobs)
    result = _BUILDERS[style](size, resolved, _Streams(seed, style))
    mask = result.mask
    if not mask.any():  # cannot happen for valid knobs; keep the promise of a non-empty mask loudly
        raise RuntimeError(f"phantom {style} seed={seed} produced an empty mask; please report the knobs {resolved}.")
    meta = {
        "style": style,
        "seed": seed,
        "size": size,
        "knobs": resolved,
        "target": _TARGETS[style],
        "target_area_actual": float(mask.mean()),
        "distractor_mask": result.distractors,
        "field_of_view": result.fov,
        **result.extra,
    }
    mm = _FOV_MM[style] / size
    return Case(
        image=result.image,
        mask=mask,
        name=f"phantom_{style}_{seed}",
        modality=style,
        spacing=(mm, mm),
        source=SOURCE,
        license=LICENSE,
        meta=meta,
    )
