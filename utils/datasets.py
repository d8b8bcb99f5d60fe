"""Cases the course segments: the `Case` record and loaders for real and downloadable data.

Three sources, all returning :class:`Case` objects (or arrays) that carry their source and licence:

**Offline real scans** (no network; installable with a package manager):

- :func:`colin27_cases` / :func:`colin27_volume`: the Colin27 T1 scan (one brain scanned 27 times and
  averaged) with AAL atlas labels (thalamus, caudate, putamen, hippocampus) and a whole-brain mask,
  from Debian's ``mricron-data`` (``apt-get install -y mricron-data``).
- :func:`mni152_cases` / :func:`mni152_volume`: the MNI ICBM152 2009a template bundled with the PyPI
  package ``nilearn`` with its brain mask, grey/white-matter masks and a *derived* lateral-ventricle
  mask (see :func:`mni152_volume` for exactly how it is derived: it is not an atlas label).
- :func:`offline_cases`: the default mix the notebooks use in offline mode.

Without Debian packages (macOS, Windows), copy MRIcron's ``templates`` folder (it ships with MRIcron)
anywhere and set ``SAMCOURSE_MRICRON_DIR`` to it.

Slices are shown in the radiological convention used by clinical viewers: anatomy upright
(anterior/superior at the top) and the patient's **left on the image's right**. Volumes are loaded
once per process (``functools.lru_cache``).

**MedSegBench** (:func:`medsegbench`): 2-D segmentation sets in MedMNIST-style npz files on Zenodo,
read directly (no ``medsegbench`` package, which pulls in segmentation-models-pytorch). The table of
URLs, MD5s, sample counts and licences ships with this package (``utils/data/medsegbench.tsv``).

**MedMNIST** (:func:`medmnist_images`): classification images (no masks) for galleries and
embedding analysis, with URLs/MD5s/label names/licences from the ``medmnist`` package's ``INFO``.

Downloads go through :func:`utils.download.fetch` (MD5-checked, atomic, cached in
``cache_dir("medsegbench")`` / ``cache_dir("medmnist")``). A file placed by hand at the path that
:func:`medsegbench_path` / :func:`medmnist_path` print is used (after its MD5 is checked) without any
network access.

**Local mirror**: set ``SAMCOURSE_MIRROR=http://host:port[/prefix]`` and every dataset URL keeps its
path and query but swaps its scheme and host for the mirror's (``https://zenodo.org/records/1/files/a.npz``
becomes ``http://host:port/prefix/records/1/files/a.npz``). An instructor can serve a folder that holds
the files under those paths (``python -m http.server``) to a classroom; the MD5s are still checked.
"""

from __future__ import annotations

import copy
import csv
import functools
import importlib.util
import json
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from utils.checks import one_of, whole_number
from utils.images import rescale_to_uint8, to_mask, to_rgb_uint8
from utils.machine import cache_dir

__all__ = [
    "AAL_LABELS",
    "AXES",
    "COLIN27_STRUCTURES",
    "Case",
    "MEDMNIST_SIZES",
    "MEDSEGBENCH_SIZES",
    "MNI152_STRUCTURES",
    "SPLITS",
    "colin27_cases",
    "colin27_volume",
    "download_medmnist",
    "download_medsegbench",
    "medmnist_flags",
    "medmnist_images",
    "medmnist_info",
    "medmnist_path",
    "medsegbench",
    "medsegbench_flags",
    "medsegbench_info",
    "medsegbench_path",
    "mni152_cases",
    "mni152_volume",
    "offline_cases",
]


@dataclass
class Case:
    """One 2-D image with one binary target.

    ``image`` is (H, W, 3) uint8 RGB (grayscale is repeated to 3 channels), ``mask`` (H, W) bool,
    ``spacing`` is the pixel size (row, col) in mm. ``source`` and ``license`` travel with every
    case so that figures and tables can credit the data. ``meta`` holds anything else (slice index,
    phantom knobs, label names).
    """

    image: np.ndarray
    mask: np.ndarray
    name: str
    modality: str
    spacing: tuple[float, float] = (1.0, 1.0)
    source: str = ""
    license: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.image = to_rgb_uint8(self.image, name=f"Case {self.name!r} image")
        self.mask = to_mask(self.mask, shape=self.image.shape, name=f"Case {self.name!r} mask")
        spacing = tuple(float(s) for s in self.spacing)
        if len(spacing) != 2 or not all(np.isfinite(s) and s > 0 for s in spacing):
            raise ValueError(
                f"Case {self.name!r}: spacing must be two positive mm values (row, col); got {self.spacing}."
            )
        self.spacing = spacing

    @property
    def shape(self) -> tuple[int, int]:
        return self.image.shape[:2]

    def __repr__(self) -> str:
        license = self.license if len(self.license) <= 40 else self.license[:39] + "…"
        return (
            f"Case(name={self.name!r}, modality={self.modality!r}, shape={self.shape}, "
            f"mask_area={int(self.mask.sum())}, spacing={self.spacing}, license={license!r})"
        )


# --------------------------------------------------------------------------------------------------
# Small shared helpers
# --------------------------------------------------------------------------------------------------

SPLITS = ("train", "val", "test")
AXES = ("axial", "coronal", "sagittal")
HEMISPHERES = ("left", "right", "both")


def _check_percentiles(percentiles: Any) -> tuple[float, float]:
    try:
        low, high = (float(p) for p in percentiles)
    except (TypeError, ValueError):
        message = f"percentiles must be two numbers (low, high) such as (25, 75); got {percentiles!r}."
        raise ValueError(message) from None
    if not 0 <= low <= high <= 100:
        raise ValueError(f"percentiles must satisfy 0 <= low <= high <= 100; got {percentiles!r}.")
    return low, high


def _choose(candidates: np.ndarray, n: int | None, seed: int) -> np.ndarray:
    """``n`` of ``candidates`` drawn reproducibly (sorted); all of them when ``n`` is None or larger."""
    candidates = np.asarray(candidates)
    if n is None or n >= candidates.size:
        return np.sort(candidates)
    # A permutation's first n: the cases for n=5 are among those for n=10 (same seed).
    return np.sort(np.random.default_rng(seed).permutation(candidates)[:n])


def _download(url: str, path: Path, md5: str, force: bool, progressbar: bool) -> Path:
    from utils.download import fetch

    return fetch(url, path, known_hash=f"md5:{md5}", force=force, progressbar=progressbar)


def _gray_or_rgb_uint8(image: np.ndarray, what: str) -> np.ndarray:
    """(H, W) / (H, W, 1) / (H, W, 3) → uint8; other integer/float dtypes are min-max windowed."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] != 3):
        raise ValueError(f"{what}: expected an (H, W) or (H, W, 3) image, got shape {image.shape}.")
    if image.dtype == np.uint8:
        return image
    if image.dtype == bool or not np.issubdtype(image.dtype, np.number):
        raise ValueError(f"{what}: expected a numeric image, got dtype {image.dtype}.")
    return rescale_to_uint8(image, percentiles=(0, 100))


# --------------------------------------------------------------------------------------------------
# Offline real scans: Colin27 + AAL (mricron-data) and MNI ICBM152 2009a (nilearn)
# --------------------------------------------------------------------------------------------------

MRICRON_DIR_ENV = "SAMCOURSE_MRICRON_DIR"
MRICRON_DIR = "/usr/share/mricron/templates"

#: AAL label values (left, right) in ``aal.nii.gz``; names from ``aal.nii.txt``.
AAL_LABELS: dict[str, tuple[int, int]] = {
    "thalamus": (77, 78),
    "caudate": (71, 72),
    "putamen": (73, 74),
    "hippocampus": (37, 38),
}
COLIN27_STRUCTURES = (*AAL_LABELS, "brain")
MNI152_STRUCTURES = ("brain", "gm", "wm", "ventricles")

#: Intensity window: these percentiles of the T1 over the brain mask map to 0 and 255 (per volume).
WINDOW_PERCENTILES = (0.5, 99.5)
#: Slices are taken between these percentiles of the slice indices that contain the structure.
CENTRAL_PERCENTILES = (25.0, 75.0)
#: ... except for the Colin27 brain, whose mask is blocky at the skull base (see ``_clean_brain_mask``).
COLIN27_BRAIN_PERCENTILES = (40.0, 75.0)

ORIENTATION = "radiological: anterior/superior at the top, the patient's left on the image's right"

COLIN27_SOURCE = (
    "Colin27 T1 MRI (Holmes et al., J Comput Assist Tomogr 1998; McConnell Brain Imaging Centre, MNI) "
    "with AAL atlas labels (Tzourio-Mazoyer et al., NeuroImage 2002), from Debian's mricron-data "
    "(ch2.nii.gz, ch2bet.nii.gz, aal.nii.gz)"
)
COLIN27_LICENSE = (
    "Colin27: made publicly available by the McConnell Brain Imaging Centre (MNI, McGill). AAL: GIN "
    "'copyright freeware under the terms of the GNU GPL' (AAL readme). Debian's mricron-data copyright file "
    "lists all MRIcron files, templates included, under BSD-3-clause (© Chris Rorden) and states no separate "
    "terms for these images."
)
MNI152_SOURCE = (
    "MNI ICBM152 2009a nonlinear template (Fonov et al., NeuroImage 2011; Collins et al. 1999) as bundled by "
    "nilearn (mni_icbm152_{t1,gm,wm}_tal_nlin_sym_09a_converted.nii.gz)"
)
MNI152_LICENSE = (
    "© Louis Collins, McConnell Brain Imaging Centre, Montreal Neurological Institute, McGill University: "
    "permission to use, copy, modify and distribute for any purpose without fee, provided the copyright "
    "notice appears in all copies; provided 'as is' without warranty (MNI ICBM152 licence; nilearn's own "
    "description lists it as 'unknown')."
)

#: How :func:`mni152_volume` derives ``"ventricles"`` (also stored in each case's ``meta``).
VENTRICLES_RULE = (
    "CSF-like voxels inside the brain mask (nilearn load_mni152_brain_mask) with GM probability < 0.2 and "
    "WM probability < 0.2; 6-connected components of at least 2 mL whose centroid lies 5-30 mm from the "
    "midline (|x| in MNI space) are kept: the left and right lateral ventricles. The midline CSF (third and "
    "fourth ventricles, cisterns) and sulcal CSF are dropped. A derived mask, not an atlas label."
)


@dataclass(frozen=True)
class _Scan:
    """One loaded volume in RAS+ voxel order (x: left→right, y: posterior→anterior, z: inferior→superior)."""

    t1: np.ndarray  # uint8, windowed
    masks: dict[str, np.ndarray]  # name → bool
    zooms: tuple[float, float, float]
    window: tuple[float, float]
    affine: np.ndarray
    aal: np.ndarray | None = None


def _readonly(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


def _window_uint8(t1: np.ndarray, brain: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
    low, high = (float(v) for v in np.percentile(t1[brain], WINDOW_PERCENTILES))
    return rescale_to_uint8(t1, low=low, high=high), (low, high)


def _mricron_dir() -> Path:
    return Path(os.environ.get(MRICRON_DIR_ENV, "").strip() or MRICRON_DIR)


@functools.lru_cache(maxsize=2)
def _colin27_scan(folder: str) -> _Scan:
    import nibabel as nib

    files = {name: Path(folder) / f"{name}.nii.gz" for name in ("ch2", "ch2bet", "aal")}
    missing = [str(path) for path in files.values() if not path.is_file()]
    if missing:
        raise FileNotFoundError(
            f"Colin27/AAL files not found: {', '.join(missing)}. They come from Debian's mricron-data package: "
            "`sudo apt-get install -y mricron-data` (Debian/Ubuntu; in Colab: `!apt-get install -y mricron-data`). "
            f"Elsewhere, set {MRICRON_DIR_ENV} to a folder holding ch2.nii.gz, ch2bet.nii.gz and aal.nii.gz "
            "(MRIcron's templates folder)."
        )
    images = {name: nib.as_closest_canonical(nib.load(str(path))) for name, path in files.items()}
    t1 = np.asarray(images["ch2"].dataobj, dtype=np.float32)
    brain = _clean_brain_mask(np.asarray(images["ch2bet"].dataobj) > 0)
    aal = np.asarray(images["aal"].dataobj).astype(np.uint8)
    if not (t1.shape == brain.shape == aal.shape):
        raise ValueError(f"Colin27 files disagree in shape: {t1.shape}, {brain.shape}, {aal.shape}.")
    t1_uint8, window = _window_uint8(t1, brain)
    zooms = tuple(float(z) for z in images["ch2"].header.get_zooms()[:3])
    return _Scan(
        t1=_readonly(t1_uint8),
        masks={"brain": _readonly(brain)},
        zooms=zooms,
        window=window,
        affine=images["ch2"].affine,
        aal=_readonly(aal),
    )


def _clean_brain_mask(mask: np.ndarray) -> np.ndarray:
    """ch2bet > 0, opened with a radius-2 (6-connected) element, largest 3-D component kept.

    This removes the 1-2 voxel stripes and specks of ch2bet's skull strip; its blocky errors at the skull
    base (around the orbits, axial slices below ~55) remain, so brain slices are taken higher up.
    """
    from scipy import ndimage

    element = ndimage.iterate_structure(ndimage.generate_binary_structure(3, 1), 2)
    opened = ndimage.binary_opening(mask, structure=element)
    labels, count = ndimage.label(opened)
    if count == 0:  # pragma: no cover - a valid ch2bet always has a brain
        return opened
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == sizes.argmax()


def _derive_ventricles(brain: np.ndarray, gm: np.ndarray, wm: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """The lateral ventricles from tissue probabilities (see :data:`VENTRICLES_RULE`)."""
    from scipy import ndimage

    csf = brain & (gm < 0.2) & (wm < 0.2)
    labels, count = ndimage.label(csf)  # default structure: 6-connectivity
    if count == 0:
        return np.zeros_like(brain)
    ids = np.arange(1, count + 1)
    voxel_ml = abs(float(np.linalg.det(affine[:3, :3]))) / 1000.0
    sizes_ml = np.bincount(labels.ravel(), minlength=count + 1)[1:] * voxel_ml
    big = ids[sizes_ml >= 2.0]
    if big.size == 0:
        return np.zeros_like(brain)
    centroids = np.array(ndimage.center_of_mass(csf, labels, big))
    world_x = (affine[:3, :3] @ centroids.T + affine[:3, 3:4])[0]
    keep = big[(np.abs(world_x) >= 5.0) & (np.abs(world_x) <= 30.0)]
    return np.isin(labels, keep)


@functools.lru_cache(maxsize=1)
def _mni152_scan() -> _Scan:
    import nibabel as nib
    from nilearn import datasets

    t1_img = datasets.load_mni152_template(resolution=1)
    brain = np.asarray(datasets.load_mni152_brain_mask(resolution=1).dataobj) > 0
    gm = np.asarray(datasets.load_mni152_gm_template(resolution=1).dataobj, dtype=np.float32)
    wm = np.asarray(datasets.load_mni152_wm_template(resolution=1).dataobj, dtype=np.float32)
    if nib.aff2axcodes(t1_img.affine) != ("R", "A", "S"):  # pragma: no cover - nilearn ships RAS
        raise ValueError(f"Unexpected MNI152 orientation {nib.aff2axcodes(t1_img.affine)}; expected RAS.")
    t1 = np.asarray(t1_img.dataobj, dtype=np.float32)
    t1_uint8, window = _window_uint8(t1, brain)
    masks = {
        "brain": brain,
        "gm": gm > 0.5,
        "wm": wm > 0.5,
        "ventricles": _derive_ventricles(brain, gm, wm, t1_img.affine),
    }
    return _Scan(
        t1=_readonly(t1_uint8),
        masks={name: _readonly(mask) for name, mask in masks.items()},
        zooms=tuple(float(z) for z in t1_img.header.get_zooms()[:3]),
        window=window,
        affine=t1_img.affine,
    )


def _display(volume: np.ndarray, axis: str) -> np.ndarray:
    """RAS (x, y, z) volume → (slices, rows, cols) in the radiological display convention (a view).

    axial: slice = z (inferior→superior), rows = anterior→posterior, cols = patient's right→left;
    coronal: slice = y (posterior→anterior), rows = superior→inferior, cols = right→left;
    sagittal: slice = x (the patient's left→right), rows = superior→inferior, cols = anterior→posterior
    (nose to the left).
    """
    order = {"axial": (2, 1, 0), "coronal": (1, 2, 0), "sagittal": (0, 2, 1)}[axis]
    return volume.transpose(order)[:, ::-1, ::-1]


def _display_spacing(zooms: tuple[float, float, float], axis: str) -> tuple[float, float, float]:
    zx, zy, zz = zooms
    return {"axial": (zz, zy, zx), "coronal": (zy, zz, zx), "sagittal": (zx, zz, zy)}[axis]


def _colin27_mask(scan: _Scan, structure: str, hemisphere: str) -> tuple[np.ndarray, str]:
    if structure == "brain":
        return scan.masks["brain"], "ch2bet > 0 (skull-stripped Colin27), opened, largest component"
    left, right = AAL_LABELS[structure]
    values = {"left": (left,), "right": (right,), "both": (left, right)}[hemisphere]
    names = {left: f"{structure.capitalize()}_L", right: f"{structure.capitalize()}_R"}
    label = " + ".join(f"AAL {v} ({names[v]})" for v in values)
    return np.isin(scan.aal, values), label


def colin27_volume(
    structure: str = "thalamus", hemisphere: str = "left", axis: str = "axial"
) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """The Colin27 T1 and one structure's mask as 3-D arrays, in slice order along ``axis``.

    Returns ``(volume, mask, spacing)``: ``volume`` (S, H, W) uint8, ``mask`` (S, H, W) bool and
    ``spacing`` (slice, row, col) in mm. ``volume[k]`` is exactly the image of the 2-D case with
    ``meta["slice"] == k`` (radiological display, see the module docstring); ``k`` runs
    inferior→superior (axial), posterior→anterior (coronal) or the patient's left→right (sagittal).

    Structures: ``thalamus``, ``caudate``, ``putamen``, ``hippocampus`` (AAL labels 77/78, 71/72,
    73/74, 37/38; odd = left) for ``hemisphere`` ``"left"``, ``"right"`` or ``"both"``, and ``brain``
    (``ch2bet > 0``, cleaned by a radius-2 opening and keeping the largest 3-D component, which removes
    the stripes of that crude skull strip but not its blocky errors at the skull base; ``hemisphere``
    is ignored). Intensities: the T1 is windowed to uint8 once per
    volume, from the 0.5th to the 99.5th percentile of the T1 over the brain mask (scalp fat saturates).
    """
    one_of(structure, COLIN27_STRUCTURES, "structure")
    one_of(hemisphere, HEMISPHERES, "hemisphere")
    one_of(axis, AXES, "axis")
    scan = _colin27_scan(str(_mricron_dir()))
    mask, _ = _colin27_mask(scan, structure, hemisphere)
    return (
        np.ascontiguousarray(_display(scan.t1, axis)),
        np.ascontiguousarray(_display(mask, axis)),
        _display_spacing(scan.zooms, axis),
    )


def mni152_volume(structure: str = "ventricles", axis: str = "axial") -> tuple[np.ndarray, np.ndarray, tuple]:
    """The MNI ICBM152 2009a T1 (nilearn, 1 mm) and one mask as 3-D arrays, like :func:`colin27_volume`.

    Structures: ``brain`` (:func:`nilearn.datasets.load_mni152_brain_mask`: T1 > 0.2 of its maximum),
    ``gm`` / ``wm`` (grey / white-matter probability > 0.5) and ``ventricles``, which is **derived**
    (there is no ventricle label in the template): CSF-like voxels inside the brain mask with GM
    probability < 0.2 and WM probability < 0.2, split into 6-connected components, keeping those of at
    least 2 mL whose centroid lies 5–30 mm from the midline — the left and right lateral ventricles
    (midline CSF such as the third/fourth ventricles and cisterns, and sulcal CSF, are dropped).
    The T1 is windowed like Colin27's (0.5th–99.5th percentile over the brain mask).
    """
    one_of(structure, MNI152_STRUCTURES, "structure")
    one_of(axis, AXES, "axis")
    scan = _mni152_scan()
    return (
        np.ascontiguousarray(_display(scan.t1, axis)),
        np.ascontiguousarray(_display(scan.masks[structure], axis)),
        _display_spacing(scan.zooms, axis),
    )


def _central_slices(mask: np.ndarray, n_slices: int, percentiles=CENTRAL_PERCENTILES) -> list[int]:
    """Up to ``n_slices`` indices spread evenly between two percentiles (default 25th and 75th) of the
    slices that contain the mask (one slice: their midpoint), so every chosen slice has a sizeable mask."""
    present = np.flatnonzero(mask.reshape(mask.shape[0], -1).any(axis=1))
    if present.size == 0:
        raise ValueError("The mask is empty in every slice.")
    quantiles = [float(np.mean(percentiles))] if n_slices == 1 else np.linspace(*percentiles, n_slices)
    picked = np.percentile(present, quantiles, method="nearest").astype(int)
    return list(dict.fromkeys(int(k) for k in picked))  # unique, in order


def _slice_cases(
    scan: _Scan,
    mask3d: np.ndarray,
    *,
    prefix: str,
    structure: str,
    axis: str,
    n_slices: int,
    source: str,
    license: str,
    meta: dict[str, Any],
    percentiles: tuple[float, float] = CENTRAL_PERCENTILES,
) -> list[Case]:
    image = _display(scan.t1, axis)
    mask = _display(mask3d, axis)
    slice_mm, row_mm, col_mm = _display_spacing(scan.zooms, axis)
    cases = []
    for k in _central_slices(mask, n_slices, percentiles):
        cases.append(
            Case(
                image=np.ascontiguousarray(image[k]),
                mask=mask[k].copy(),
                name=f"{prefix}_{structure}_{axis}-{k:03d}",
                modality="mri",
                spacing=(row_mm, col_mm),
                source=source,
                license=license,
                meta={
                    **meta,
                    "structure": structure,
                    "axis": axis,
                    "slice": k,
                    "slice_thickness_mm": slice_mm,
                    "sequence": "T1",
                    "orientation": ORIENTATION,
                    "window": scan.window,
                },
            )
        )
    return cases


def colin27_cases(
    structures: Sequence[str] = ("thalamus", "caudate", "putamen", "hippocampus", "brain"),
    hemisphere: str = "left",
    n_slices: int = 3,
    axis: str = "axial",
    percentiles: tuple[float, float] | None = None,
) -> list[Case]:
    """2-D Colin27 slices with AAL structure masks (see :func:`colin27_volume` for labels and window).

    For each structure, up to ``n_slices`` slices are spread evenly between the 25th and 75th
    percentile of the slices that contain it (one slice: the median slice), so each mask is sizeable;
    for ``brain`` between the 40th and 75th, above the skull base where ch2bet's mask is blocky.
    ``percentiles=(low, high)`` picks another range, e.g. two disjoint slabs of one structure for a
    train/test split (notebook 05).
    Spacing is the scan's 1 mm. ``meta`` holds ``volume``, ``structure``, ``hemisphere``, ``label``
    (AAL value and name), ``axis``, ``slice`` (index into :func:`colin27_volume`'s first axis),
    ``orientation`` and ``window``. The case name is e.g. ``colin27_thalamus-left_axial-080``.
    Missing mricron-data raises FileNotFoundError with the install command.
    """
    if isinstance(structures, str):
        structures = (structures,)
    for structure in structures:
        one_of(structure, COLIN27_STRUCTURES, "structure")
    one_of(hemisphere, HEMISPHERES, "hemisphere")
    one_of(axis, AXES, "axis")
    whole_number(n_slices, "n_slices", minimum=1)
    if percentiles is not None:
        low, high = _check_percentiles(percentiles)
    scan = _colin27_scan(str(_mricron_dir()))
    cases = []
    for structure in structures:
        mask, label = _colin27_mask(scan, structure, hemisphere)
        side = None if structure == "brain" else hemisphere
        cases += _slice_cases(
            scan,
            mask,
            prefix="colin27",
            structure=structure if side is None else f"{structure}-{side}",
            axis=axis,
            n_slices=n_slices,
            source=COLIN27_SOURCE,
            license=COLIN27_LICENSE,
            meta={"volume": "Colin27 T1 (ch2.nii.gz)", "hemisphere": side, "label": label},
            percentiles=(low, high)
            if percentiles is not None
            else COLIN27_BRAIN_PERCENTILES
            if structure == "brain"
            else CENTRAL_PERCENTILES,
        )
    return cases


def mni152_cases(
    structures: Sequence[str] = ("brain", "gm", "wm", "ventricles"),
    n_slices: int = 3,
    axis: str = "axial",
    percentiles: tuple[float, float] | None = None,
) -> list[Case]:
    """2-D MNI ICBM152 2009a slices (nilearn, 1 mm) with brain / GM / WM / lateral-ventricle masks.

    Slices are chosen as in :func:`colin27_cases` (``percentiles`` too); masks are defined in :func:`mni152_volume` (the
    ventricle mask is derived, and its rule is stored in ``meta["derivation"]``). Names look like
    ``mni152_ventricles_axial-093``.
    """
    if isinstance(structures, str):
        structures = (structures,)
    for structure in structures:
        one_of(structure, MNI152_STRUCTURES, "structure")
    one_of(axis, AXES, "axis")
    whole_number(n_slices, "n_slices", minimum=1)
    chosen = CENTRAL_PERCENTILES if percentiles is None else _check_percentiles(percentiles)
    scan = _mni152_scan()
    labels = {
        "brain": "nilearn load_mni152_brain_mask (T1 > 0.2 x max)",
        "gm": "grey-matter probability > 0.5",
        "wm": "white-matter probability > 0.5",
        "ventricles": "lateral ventricles (derived from GM/WM probabilities)",
    }
    cases = []
    for structure in structures:
        meta: dict[str, Any] = {"volume": "MNI ICBM152 2009a T1 (nilearn)", "hemisphere": None}
        meta["label"] = labels[structure]
        if structure == "ventricles":
            meta["derivation"] = VENTRICLES_RULE
        cases += _slice_cases(
            scan,
            scan.masks[structure],
            prefix="mni152",
            structure=structure,
            axis=axis,
            n_slices=n_slices,
            source=MNI152_SOURCE,
            license=MNI152_LICENSE,
            meta=meta,
            percentiles=chosen,
        )
    return cases


def offline_cases(n_per_structure: int = 2, axis: str = "axial") -> list[Case]:
    """The default offline set: Colin27 left thalamus, caudate, putamen, hippocampus and whole brain,
    plus the MNI152 whole brain and lateral ventricles — ``n_per_structure`` slices each (7 × n cases)."""
    whole_number(n_per_structure, "n_per_structure", minimum=1)
    return colin27_cases(n_slices=n_per_structure, axis=axis) + mni152_cases(
        ("brain", "ventricles"), n_slices=n_per_structure, axis=axis
    )


# --------------------------------------------------------------------------------------------------
# MedSegBench
# --------------------------------------------------------------------------------------------------

MEDSEGBENCH_SIZES = (128, 256, 512)
MEDSEGBENCH_CITATION = "Kuş & Aydin, MedSegBench, Scientific Data 2024"
_MEDSEGBENCH_TABLE = Path(__file__).with_name("data") / "medsegbench.tsv"
_MEDSEGBENCH_EXCLUDED = {
    flag: (
        f"MedSegBench {flag!r} is left out of the course: its published MD5 strings carry a trailing space, "
        "so the files cannot be verified against them as published. Pick another set (see medsegbench_flags())."
    )
    for flag in ("bkai-igh", "abdomenus")
}


@functools.lru_cache(maxsize=1)
def _medsegbench_table() -> dict[str, dict[str, Any]]:
    """flag → info, parsed from ``utils/data/medsegbench.tsv`` (tests monkeypatch this function)."""
    with open(_MEDSEGBENCH_TABLE, newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream, delimiter="\t", quoting=csv.QUOTE_NONE))
    table: dict[str, dict[str, Any]] = {}
    for row in rows:
        entry = table.setdefault(
            row["flag"],
            {
                "flag": row["flag"],
                "task": row["task"],
                "modality": row["modality"],
                "n_channels": int(row["n_channels"]),
                "n_samples": {split: int(row[f"n_{split}"]) for split in SPLITS},
                "categories": json.loads(row["categories"]) if row["categories"] else {},
                "pixel_labels": json.loads(row["pixel_labels"]) if row["pixel_labels"] else {},
                "license": row["license"],
                "reference": row["reference"],
                "files": {},
            },
        )
        entry["files"][int(row["size"])] = {"url": row["url"], "md5": row["md5"]}
    return table


def medsegbench_flags() -> list[str]:
    """The MedSegBench sets this course can load (all but bkai-igh and abdomenus)."""
    return sorted(_medsegbench_table())


def medsegbench_info(flag: str) -> dict[str, Any]:
    """A copy of one set's table entry: task, modality, n_channels, n_samples, categories,
    pixel_labels (multi-class sets), license, reference and ``files`` (size → url, md5)."""
    if flag in _MEDSEGBENCH_EXCLUDED:
        raise ValueError(_MEDSEGBENCH_EXCLUDED[flag])
    table = _medsegbench_table()
    one_of(flag, sorted(table), "MedSegBench flag")
    return copy.deepcopy(table[flag])


def _medsegbench_file(flag: str, size: int) -> tuple[dict[str, Any], dict[str, str]]:
    info = medsegbench_info(flag)
    one_of(size, sorted(info["files"]), f"size for MedSegBench {flag!r}")
    return info, info["files"][size]


def medsegbench_path(flag: str, size: int = 256) -> Path:
    """Where the npz is cached (a copy placed there by hand is used after its MD5 is checked)."""
    _medsegbench_file(flag, size)
    return cache_dir("medsegbench", f"{flag}_{size}.npz")


def download_medsegbench(flag: str, size: int = 256, *, force: bool = False, progressbar: bool = True) -> Path:
    """Fetch (or find in the cache) one MedSegBench npz, MD5-checked; return its path."""
    _, file = _medsegbench_file(flag, size)
    return _download(file["url"], medsegbench_path(flag, size), file["md5"], force, progressbar)


def _target_ids(info: dict[str, Any], label: int | str | None) -> tuple[int, ...] | None:
    """None: any non-zero pixel. Otherwise the one pixel value ``label`` names (multi-class sets)."""
    if label is None:
        return None
    names = {int(k): v for k, v in info["pixel_labels"].items()}
    if info["task"] != "multi-class" or not names:
        raise ValueError(
            f"MedSegBench {info['flag']!r} is a binary set: its mask is every non-zero pixel; leave label=None."
        )
    options = {k: v for k, v in names.items() if k != 0}
    if isinstance(label, str):
        matches = [k for k, v in options.items() if v.lower() == label.strip().lower()]
        if matches:
            return (matches[0],)
    elif isinstance(label, (int, np.integer)) and not isinstance(label, bool) and int(label) in options:
        return (int(label),)
    listed = ", ".join(f"{k} ({v})" for k, v in options.items())
    raise ValueError(f"Unknown label {label!r} for MedSegBench {info['flag']!r}; choose one of: {listed}.")


def _has_target(labels: np.ndarray, ids: tuple[int, ...] | None, chunk: int = 256) -> np.ndarray:
    flags = np.zeros(len(labels), dtype=bool)
    for start in range(0, len(labels), chunk):
        block = labels[start : start + chunk].reshape(min(chunk, len(labels) - start), -1)
        flags[start : start + chunk] = (block > 0).any(axis=1) if ids is None else np.isin(block, ids).any(axis=1)
    return flags


def _read_medsegbench(path: Path, split: str, category: str | None) -> tuple[np.ndarray, np.ndarray]:
    suffix = "" if category is None else f"_{category}"
    with np.load(path) as npz:
        keys = list(npz.keys())
        image_key = f"{split}_images{suffix}" if f"{split}_images{suffix}" in keys else f"{split}_images"
        label_key = f"{split}_label{suffix}"
        if image_key not in keys or label_key not in keys:
            raise ValueError(f"{path.name} has no {image_key!r}/{label_key!r} arrays; it holds {sorted(keys)}.")
        images, labels = npz[image_key], npz[label_key]
    if labels.ndim == 4 and labels.shape[-1] == 1:
        labels = labels[..., 0]
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if (
        labels.ndim != 3
        or images.ndim not in (3, 4)
        or (images.ndim == 4 and images.shape[-1] != 3)
        or images.shape[:3] != labels.shape
    ):
        raise ValueError(
            f"{path.name}: expected images (N, H, W) or (N, H, W, 3) and labels (N, H, W) of the same N, H, W; "
            f"got {image_key} {images.shape} and {label_key} {labels.shape}."
        )
    if not np.issubdtype(labels.dtype, np.integer) and labels.dtype != bool:
        raise ValueError(f"{path.name}: {label_key} has dtype {labels.dtype}; expected integer labels.")
    return images, labels


def medsegbench(
    flag: str,
    split: str = "test",
    size: int = 256,
    n: int | None = None,
    seed: int = 0,
    *,
    label: int | str | None = None,
    category: str | None = None,
    progressbar: bool = True,
) -> list[Case]:
    """MedSegBench images and masks as :class:`Case` objects (downloads the npz once, MD5-checked).

    ``flag``: one of :func:`medsegbench_flags` (e.g. ``busi``, ``pandental``, ``drive``, ``idrib``,
    ``polypgen``, ``isic2016``, ``cellnuclei``); ``split``: train/val/test; ``size``: 128/256/512.
    The npz arrays read are ``{split}_images`` and ``{split}_label`` (singular), or
    ``{split}_images_{category}`` / ``{split}_label_{category}`` for a set with categories (``C1``...,
    see ``medsegbench_info(flag)["categories"]``; e.g. ``idrib`` ``C4`` is the optic disc).

    Masks: every non-zero label pixel (binary sets store 0/1, some 0/255 or instance ids). For a
    multi-class set (wbc, monusac, m2caiseg, fhpsaop) ``label=None`` means any labelled class, or pick
    one by value or name (``label=2`` or ``label="fetal head"``). Images stay RGB or become RGB by
    repeating the gray channel; non-uint8 images are min-max scaled to uint8.

    Cases whose mask is empty are **skipped**; ``n`` of the rest are drawn reproducibly with ``seed``
    (sorted by index; all of them when ``n`` is None or too large). Pixel size is unknown after
    MedSegBench's resizing: ``spacing`` is (1, 1) *pixels* and ``meta["spacing_known"]`` is False.
    """
    info, file = _medsegbench_file(flag, size)
    one_of(split, SPLITS, "split")
    if n is not None:
        whole_number(n, "n", minimum=1, hint="or None for all")
    if category is not None:
        one_of(category, sorted(info["categories"]) or ["None"], f"category for MedSegBench {flag!r}")
    ids = _target_ids(info, label)
    path = download_medsegbench(flag, size, progressbar=progressbar)
    images, labels = _read_medsegbench(path, split, category)
    nonempty = np.flatnonzero(_has_target(labels, ids))
    chosen = _choose(nonempty, n, seed)
    if n is not None and n > chosen.size:
        warnings.warn(
            f"MedSegBench {flag} {split}: only {chosen.size} non-empty cases, fewer than n={n}.", stacklevel=2
        )
    record = re.search(r"/records/(\d+)/", file["url"])
    source = (
        f"MedSegBench {flag} ({size}x{size}, {split} split; {MEDSEGBENCH_CITATION}; "
        f"Zenodo record {record.group(1) if record else file['url']}); original data: {info['reference']}"
    )
    label_name = "any foreground (label > 0)" if ids is None else f"{ids[0]} ({info['pixel_labels'][str(ids[0])]})"
    part = "" if category is None else f"_{category}"
    cases = []
    for index in chosen:
        target = labels[index] > 0 if ids is None else np.isin(labels[index], ids)
        cases.append(
            Case(
                image=_gray_or_rgb_uint8(images[index], f"{flag} {split} image {index}"),
                mask=target,
                name=f"{flag}{part}_{split}_{int(index):04d}",
                modality=info["modality"],
                spacing=(1.0, 1.0),
                source=source,
                license=info["license"],
                meta={
                    "dataset": "MedSegBench",
                    "flag": flag,
                    "split": split,
                    "index": int(index),
                    "size": size,
                    "category": category,
                    "label": label_name,
                    "task": info["task"],
                    "spacing_known": False,
                    "n_skipped_empty": int(len(labels) - nonempty.size),
                },
            )
        )
    return cases


# --------------------------------------------------------------------------------------------------
# MedMNIST (classification images; no masks)
# --------------------------------------------------------------------------------------------------

MEDMNIST_SIZES = (28, 64, 128, 224)
MEDMNIST_CITATION = "MedMNIST v2 (Yang et al., Scientific Data 2023)"


@functools.lru_cache(maxsize=1)
def _medmnist_info() -> dict[str, dict[str, Any]]:
    """The ``medmnist`` package's ``INFO`` (tests monkeypatch this function).

    ``medmnist/__init__.py`` imports torch (seconds); its ``info.py`` needs nothing, so it is loaded on
    its own when it can be found.
    """
    spec = importlib.util.find_spec("medmnist")
    info_py = Path(spec.origin).with_name("info.py") if spec and spec.origin else None
    if info_py is not None and info_py.is_file():
        module_spec = importlib.util.spec_from_file_location("_samcourse_medmnist_info", info_py)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        return module.INFO
    if spec is None:
        raise ImportError("The MedMNIST loader needs the `medmnist` package: pip install medmnist")
    from medmnist import INFO  # pragma: no cover - unusual installs

    return INFO  # pragma: no cover


def medmnist_flags() -> list[str]:
    """The 2-D MedMNIST sets (the 3-D ``*mnist3d`` sets are not supported here)."""
    return [flag for flag, info in _medmnist_info().items() if not info["python_class"].endswith("3D")]


def medmnist_info(flag: str, size: int = 224) -> dict[str, Any]:
    """One set's facts: task, label_names, n_channels, n_samples, license, description, url, md5, source."""
    one_of(flag, medmnist_flags(), "MedMNIST flag")
    one_of(size, MEDMNIST_SIZES, "MedMNIST size")
    info = _medmnist_info()[flag]
    suffix = "" if size == 28 else f"_{size}"
    url = info[f"url{suffix}"]
    record = re.search(r"/records/(\d+)/", url)
    return {
        "flag": flag,
        "size": size,
        "python_class": info["python_class"],
        "task": info["task"],
        "label_names": {int(k): v for k, v in info["label"].items()},
        "n_channels": int(info["n_channels"]),
        "n_samples": dict(info["n_samples"]),
        "license": info["license"],
        "description": info.get("description", ""),
        "url": url,
        "md5": info[f"MD5{suffix}"],
        "filename": f"{flag}{suffix}.npz",
        "source": f"{MEDMNIST_CITATION}, {info['python_class']} {size}x{size}; Zenodo record "
        f"{record.group(1) if record else url}",
    }


def medmnist_path(flag: str, size: int = 224) -> Path:
    """Where the npz is cached (same file name as the ``medmnist`` package uses)."""
    return cache_dir("medmnist", medmnist_info(flag, size)["filename"])


def download_medmnist(flag: str, size: int = 224, *, force: bool = False, progressbar: bool = True) -> Path:
    """Fetch (or find in the cache) one MedMNIST npz, MD5-checked; return its path."""
    info = medmnist_info(flag, size)
    return _download(info["url"], medmnist_path(flag, size), info["md5"], force, progressbar)


def medmnist_images(
    flag: str, split: str = "test", size: int = 224, n: int | None = None, seed: int = 0, *, progressbar: bool = True
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """MedMNIST images as ``(images (N, H, W, 3) uint8, labels, info)`` — classification only, no masks.

    ``labels`` is (N,) int64 for single-label tasks and (N, k) for multi-label ChestMNIST. ``n`` images
    are drawn reproducibly with ``seed`` (sorted by index; all when None). The whole split is read from
    the npz first, so ``n`` does not make the download smaller. ``info`` is :func:`medmnist_info` plus
    ``split`` and ``indices`` (the rows taken). Licences: CC BY 4.0, DermaMNIST CC BY-NC 4.0.
    """
    info = medmnist_info(flag, size)
    one_of(split, SPLITS, "split")
    if n is not None:
        whole_number(n, "n", minimum=1, hint="or None for all")
    path = download_medmnist(flag, size, progressbar=progressbar)
    with np.load(path) as npz:
        keys = sorted(npz.keys())
        if f"{split}_images" not in keys or f"{split}_labels" not in keys:
            raise ValueError(f"{path.name} has no {split}_images/{split}_labels arrays; it holds {keys}.")
        images, labels = npz[f"{split}_images"], npz[f"{split}_labels"]
    if len(images) != len(labels):
        raise ValueError(f"{path.name}: {len(images)} images but {len(labels)} labels in split {split!r}.")
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim == 3:
        images = np.repeat(images[..., None], 3, axis=-1)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(
            f"{path.name}: expected uint8 images (N, H, W) or (N, H, W, 3); got {images.dtype} {images.shape}."
        )
    labels = np.asarray(labels).astype(np.int64)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    chosen = _choose(np.arange(len(images)), n, seed)
    info.update(split=split, indices=chosen)
    return np.ascontiguousarray(images[chosen]), labels[chosen], info


# --------------------------------------------------------------------------------------------------
# What is here
# --------------------------------------------------------------------------------------------------

TEACHING_SETS = ("busi", "pandental", "drive", "chasedb1", "polypgen", "isic2016", "cellnuclei")


def availability(medsegbench_sets: Sequence[str] = TEACHING_SETS, size: int = 256):
    """A table of the course's data sources: kind, licence, and status here (installed, cached,
    downloads on first use, or missing with the command that installs it)."""
    import pandas as pd

    rows = []
    try:
        _mni152_scan()
        mni = "installed (nilearn)"
    except Exception as exc:  # nilearn missing or broken
        mni = f"missing: pip install nilearn ({exc.__class__.__name__})"
    rows.append(("MNI152 2009a T1 + GM/WM/brain masks", "offline real scan", MNI152_LICENSE, mni))
    folder = _mricron_dir()
    colin = (
        "installed (mricron-data)"
        if all((folder / name).is_file() for name in ("ch2.nii.gz", "ch2bet.nii.gz", "aal.nii.gz"))
        else "missing: apt-get install -y mricron-data"
    )
    rows.append(("Colin27 T1 + AAL atlas", "offline real scan", COLIN27_LICENSE, colin))
    rows.append(("Phantoms (utils.phantoms)", "procedural", "CC0 (generated)", "built in"))
    for flag in medsegbench_sets:
        info = medsegbench_info(flag)
        path = medsegbench_path(flag, size)
        status = "cached" if path.is_file() else "downloads on first use (full mode)"
        rows.append((f"MedSegBench {flag} ({info['modality']}, {size} px)", "download", info["license"], status))
    cached = [f for f in medmnist_flags() if medmnist_path(f, 224).is_file()]
    status = f"{len(cached)} of {len(medmnist_flags())} cached" if cached else "downloads on first use (full mode)"
    rows.append(
        ("MedMNIST+ 224 px (classification, no masks)", "download", "CC BY 4.0 (DermaMNIST CC BY-NC 4.0)", status)
    )
    table = pd.DataFrame(rows, columns=["source", "kind", "license", "status"]).set_index("source")
    table["license"] = table["license"].str.slice(0, 60)
    return table
