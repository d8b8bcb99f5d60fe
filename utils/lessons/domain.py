"""The domain gap, measured: where medical images land in SAM's embedding space, and what a linear probe reads there.

SAM's image encoder was trained on natural photos (SA-1B). Notebook 04 asks two questions of it:

1. **Do medical images sit apart from photos?** :func:`pooled_embeddings` runs the encoder once
   per image and averages the 256 × 64 × 64 embedding over space (a 256-vector per image);
   :func:`project_2d` (PCA) draws the cloud, coloured by modality, and :func:`separation` puts a
   number on it (silhouette score: 1 = tight separate clusters, 0 = overlapping, < 0 = mixed).
2. **Do the frozen features carry medical information?** :func:`linear_probe` fits a logistic
   regression on a held-out split, for SAM features and, as the baseline, for raw pixels
   (:func:`pixel_features`). A probe that beats pixels means the encoder has learnt something
   useful even for images it never saw; one that does not means adaptation must supply it.

Natural photos come from the images bundled inside scikit-image (:data:`NATURAL_PHOTOS`): they
are read from the package folder directly, so nothing is downloaded (several ``skimage.data``
images, e.g. ``eagle``, ``skin`` and ``lily``, are fetched from the internet on first use and are
left out on purpose).

>>> images, names = natural_images(["astronaut", "coffee"], size=64)
>>> images.shape, names
((2, 64, 64, 3), ['astronaut', 'coffee'])
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from utils.images import to_rgb_uint8

__all__ = [
    "MEDMNIST_FLAGS",
    "NATURAL_PHOTOS",
    "MedicalSet",
    "medical_set",
    "gallery",
    "linear_probe",
    "natural_images",
    "pixel_features",
    "plot_projection",
    "pooled_embeddings",
    "project_2d",
    "separation",
    "square_resize",
]

#: Photos shipped inside the scikit-image wheel (name → file in ``skimage/data``); none needs a download.
NATURAL_PHOTOS: dict[str, str] = {
    "astronaut": "astronaut.png",
    "coffee": "coffee.png",
    "chelsea": "chelsea.png",
    "rocket": "rocket.jpg",
    "camera": "camera.png",
    "coins": "coins.png",
    "hubble_deep_field": "hubble_deep_field.jpg",
    "moon": "moon.png",
    "clock": "clock_motion.png",
    "grass": "grass.png",
    "gravel": "gravel.png",
    "brick": "brick.png",
    "motorcycle": "motorcycle_left.png",
}


# --------------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------------


def square_resize(image: np.ndarray, size: int = 224) -> np.ndarray:
    """Centre-crop ``image`` to a square and resize it to ``size`` × ``size`` RGB uint8 (anti-aliased).

    Square inputs keep SAM's resize-and-pad step from adding a padded border, so every pixel of
    the pooled embedding comes from the picture.
    """
    from skimage.transform import resize

    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 8:
        raise ValueError(f"size must be an integer >= 8 pixels (MedMNIST+ uses 224); got {size!r}.")
    rgb = to_rgb_uint8(image)
    height, width = rgb.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = rgb[top : top + side, left : left + side]
    if side == size:
        return np.ascontiguousarray(square)
    scaled = resize(square, (size, size), order=1, anti_aliasing=side > size, preserve_range=True)
    return np.clip(scaled + 0.5, 0, 255).astype(np.uint8)


def _skimage_data_dir() -> Path:
    import skimage.data

    return Path(skimage.data.__file__).resolve().parent


def natural_images(names: Sequence[str] | None = None, size: int = 224) -> tuple[np.ndarray, list[str]]:
    """Natural photos bundled with scikit-image as ``(images (N, size, size, 3) uint8, names)``.

    ``names`` picks from :data:`NATURAL_PHOTOS` (default: all). Grayscale photos are repeated to
    RGB, an alpha channel is dropped. A photo missing from this scikit-image install is skipped with
    a warning rather than downloaded.
    """
    from skimage.io import imread

    chosen = list(NATURAL_PHOTOS) if names is None else list(names)
    unknown = [n for n in chosen if n not in NATURAL_PHOTOS]
    if unknown:
        raise ValueError(f"Unknown photo(s) {unknown}; choose from {', '.join(NATURAL_PHOTOS)}.")
    folder = _skimage_data_dir()
    images, found = [], []
    for name in chosen:
        path = folder / NATURAL_PHOTOS[name]
        if not path.is_file():
            warnings.warn(f"scikit-image has no bundled {path.name} here; skipping {name!r}.", stacklevel=2)
            continue
        image = np.asarray(imread(path))
        if image.ndim == 3 and image.shape[2] == 4:
            image = image[..., :3]
        images.append(square_resize(image, size))
        found.append(name)
    if not images:
        raise ValueError(f"None of {chosen} is bundled with this scikit-image ({folder}); reinstall scikit-image.")
    return np.stack(images), found


def pixel_features(images: np.ndarray | Sequence[np.ndarray], size: int = 16) -> np.ndarray:
    """The raw-pixel baseline: each image as grey levels on a ``size`` × ``size`` grid, scaled to 0..1.

    Returns (N, size * size) float32. A probe on these features sees brightness and layout only.
    """
    from skimage.transform import resize

    images = _as_image_list(images)
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 2:
        raise ValueError(f"size must be an integer >= 2 (grid side in pixels); got {size!r}.")
    rows = []
    for image in images:
        grey = to_rgb_uint8(image).astype(np.float32).mean(axis=2) / 255.0
        rows.append(resize(grey, (size, size), order=1, anti_aliasing=True).ravel())
    return np.stack(rows).astype(np.float32)


def _as_image_list(images: Any) -> list[np.ndarray]:
    if isinstance(images, np.ndarray):
        if images.ndim not in (3, 4):
            raise ValueError(
                f"images must be a batch (N, H, W[, 3]) or a list of images; got an array of shape {images.shape}."
            )
        images = list(images)
    images = list(images)
    if not images:
        raise ValueError("images is empty; pass at least one (H, W, 3) uint8 image.")
    return images


#: MedMNIST+ sets used in full mode: small at 224 px (tens to hundreds of MB) and three modalities.
MEDMNIST_FLAGS: dict[str, str] = {"breastmnist": "ultrasound", "pneumoniamnist": "xray", "retinamnist": "fundus"}


@dataclass
class MedicalSet:
    """Medical images for the domain-gap study.

    ``images`` (N, size, size, 3) uint8; ``groups`` one modality/source label per image (for colours);
    ``tasks`` maps a probe task's description to ``(indices into images, labels)``; ``note`` says
    what the images are (and what stands in for what in offline mode).
    """

    images: np.ndarray
    groups: list[str]
    tasks: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    note: str = ""
    sources: list[str] = field(default_factory=list)


def medical_set(
    mode: str,
    n_real: int,
    n_phantoms: int,
    styles: Sequence[str] | None = None,
    seed: int = 0,
    size: int = 224,
) -> MedicalSet:
    """The medical side of the domain-gap study: ``mode`` (``run.mode``) picks the data, the sizes are arguments.

    - ``full``: ``n_real`` test images of each MedMNIST+ set in :data:`MEDMNIST_FLAGS` at 224 px
      (downloaded once, MD5-checked); one probe task per set on its own diagnostic labels, over the
      classes with at least two of the drawn images. A set that cannot be loaded is skipped with a warning.
    - ``offline`` / ``smoke``: MedMNIST+ cannot be downloaded, so up to ``n_real`` real MRI slices
      (offline: one per structure of :func:`utils.datasets.offline_cases`; smoke: a Colin27 thalamus
      slice, quick to load) and the phantoms stand in; the probe task is the phantom *style* — an easy
      task that checks the mechanics, not a diagnosis (so it needs ``n_phantoms >= 2``).
    Every mode adds ``n_phantoms`` phantoms of each style in ``styles`` (None: every phantom style).
    """
    from utils import datasets, phantoms

    if mode not in ("full", "offline", "smoke"):
        raise ValueError(f"mode must be 'full', 'offline' or 'smoke' (run.mode); got {mode!r}.")
    least = {"n_real": 1, "n_phantoms": 0 if mode == "full" else 2}  # the style probe needs 2 images per class
    for name, value in (("n_real", n_real), ("n_phantoms", n_phantoms)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least[name]:
            raise ValueError(f"{name} must be an integer >= {least[name]} in {mode} mode; got {value!r}.")
    styles = tuple(phantoms.STYLES if styles is None else styles)
    unknown = [s for s in styles if s not in phantoms.STYLES]
    if unknown or not styles:
        raise ValueError(f"styles must be some of {', '.join(phantoms.STYLES)} (None: all); got {list(styles)}.")
    images: list[np.ndarray] = []
    groups: list[str] = []
    sources: list[str] = []
    tasks: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if mode == "full":
        for flag, modality in MEDMNIST_FLAGS.items():
            try:
                batch, labels, info = datasets.medmnist_images(flag, "test", size=224, n=n_real, seed=seed)
            except (OSError, ValueError, RuntimeError) as problem:  # one failed download must not sink the others
                warnings.warn(f"MedMNIST {flag} skipped: {problem}", stacklevel=2)
                continue
            start = len(images)
            images += [square_resize(image, size) for image in batch]
            groups += [f"{flag} ({modality})"] * len(batch)
            sources += [info["source"]] * len(batch)
            values, counts = np.unique(labels, return_counts=True)
            probed = values[counts >= 2].tolist()  # a class needs one image to fit and one to test
            if labels.ndim == 1 and len(probed) >= 2:
                kept = np.isin(labels, probed)
                task = f"{flag}: {' / '.join(info['label_names'][k] for k in probed)[:70]}"
                tasks[task] = (np.arange(start, len(images))[kept], labels[kept])
        note = "MedMNIST+ test images (224 px) and phantoms; probes read each MedMNIST set's own labels."
    else:
        try:  # smoke: one Colin27 slice (loads in under a second; MNI152's derived masks take seconds)
            real = datasets.colin27_cases(("thalamus",), n_slices=1) if mode == "smoke" else datasets.offline_cases(1)
        except FileNotFoundError:  # no mricron-data: nilearn's MNI152 is always there
            real = datasets.mni152_cases(("brain", "ventricles"), n_slices=2)
        real = real[:: max(1, len(real) // n_real)][:n_real]
        images += [square_resize(case.image, size) for case in real]
        groups += ["real MRI (Colin27/MNI152)"] * len(real)
        sources += [case.source for case in real]
        note = (
            "Offline: MedMNIST+ is not available, so real MRI slices and phantoms stand in for it, and the linear "
            "probe predicts the phantom STYLE (an easy task that tests the method, not a diagnosis)."
        )
    start = len(images)
    style_labels = []
    for style in styles:
        for k in range(n_phantoms):
            images.append(square_resize(phantoms.make_phantom(style, seed=seed + k).image, size))
            groups.append(f"phantom {style}")
            sources.append(phantoms.SOURCE)
            style_labels.append(style)
    if mode != "full":
        tasks[f"phantom style ({len(styles)} classes)"] = (np.arange(start, len(images)), np.array(style_labels))
    if not images:
        raise ValueError("No medical images could be loaded.")
    return MedicalSet(np.stack(images), groups, tasks, note, sources)


# --------------------------------------------------------------------------------------------------
# Embeddings
# --------------------------------------------------------------------------------------------------


def pooled_embeddings(
    predictor: Any, images: np.ndarray | Sequence[np.ndarray], progress: bool = True, desc: str = "embedding"
) -> np.ndarray:
    """One vector per image: the encoder's (C, 64, 64) embedding averaged over space (C = 256 for SAM
    and LiteMedSAM; the random ``tiny_sam`` has 64).

    ``predictor`` is a ``SamPredictor`` (e.g. ``utils.models.load_predictor("litemedsam")``) or a
    ``segment_anything.modeling.Sam`` (wrapped in one). Each image costs exactly one encoder call.
    Only the embedding cells that cover the image are averaged: for a non-square image SAM pads
    the resized image to a square, and the padding is left out of the mean.
    """
    import torch
    from segment_anything.modeling import Sam
    from tqdm.auto import tqdm

    if isinstance(predictor, Sam):
        from utils.models import CoursePredictor

        predictor = CoursePredictor(predictor)
    for name in ("set_image", "get_image_embedding"):
        if not callable(getattr(predictor, name, None)):
            raise ValueError(
                f"predictor has no {name}(); pass a SamPredictor (utils.models.load_predictor(...)) or a Sam model."
            )
    images = _as_image_list(images)
    rows = []
    for image in tqdm(images, desc=desc, unit="image", disable=not progress):
        predictor.set_image(to_rgb_uint8(image))
        with torch.inference_mode():
            embedding = predictor.get_image_embedding()[0]  # (C, h, w)
        rows.append(_valid_mean(embedding, predictor).float().cpu().numpy())
    return np.stack(rows)


def _valid_mean(embedding: Any, predictor: Any) -> Any:
    """Mean over the embedding cells that hold the image (not SAM's zero padding)."""
    grid_h, grid_w = embedding.shape[-2:]
    input_size = getattr(predictor, "input_size", None)
    encoder_size = getattr(getattr(getattr(predictor, "model", None), "image_encoder", None), "img_size", None)
    rows, cols = grid_h, grid_w
    if input_size is not None and encoder_size:
        rows = max(1, min(grid_h, int(np.ceil(input_size[0] / encoder_size * grid_h))))
        cols = max(1, min(grid_w, int(np.ceil(input_size[1] / encoder_size * grid_w))))
    return embedding[:, :rows, :cols].mean(dim=(1, 2))


# --------------------------------------------------------------------------------------------------
# Projection, separation, probe
# --------------------------------------------------------------------------------------------------


def _as_features(features: Any, name: str = "features") -> np.ndarray:
    array = np.asarray(features, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] < 2 or array.shape[1] < 1:
        raise ValueError(f"{name} must be a 2-D array (n_samples >= 2, n_features); got shape {array.shape}.")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or inf; drop those rows first.")
    return array


def _as_labels(labels: Any, n: int) -> np.ndarray:
    array = np.asarray(labels)
    if array.ndim != 1 or len(array) != n:
        raise ValueError(f"labels must be 1-D with one label per row of features ({n}); got shape {array.shape}.")
    return array


def project_2d(features: np.ndarray, method: str = "pca") -> tuple[np.ndarray, np.ndarray]:
    """Project features to 2-D: ``(coords (N, 2), explained variance ratio of the two axes)``.

    Plain PCA: centre the features and keep the two directions of largest variance (what
    exercise 04.pca_2d builds by hand with an SVD). Features are not rescaled, so channels keep
    the weight the encoder gave them. Only PCA is offered: UMAP/t-SNE are not installed.
    """
    from sklearn.decomposition import PCA

    if method != "pca":
        raise ValueError(f"method must be 'pca' (UMAP is not installed in this course); got {method!r}.")
    array = _as_features(features)
    n_components = min(2, *array.shape)
    pca = PCA(n_components=n_components, svd_solver="full")
    coords = pca.fit_transform(array)
    if n_components < 2:  # one feature: pad a zero axis so callers can always plot
        coords = np.column_stack([coords, np.zeros(len(coords))])
    ratio = np.zeros(2)
    ratio[:n_components] = pca.explained_variance_ratio_
    return coords, ratio


def separation(features: np.ndarray, groups: Sequence[Any]) -> float:
    """Silhouette score of ``groups`` in feature space (Euclidean distance), in [-1, 1].

    Near 1: each group is a tight cluster far from the others; near 0: groups overlap; below 0:
    points sit closer to another group than to their own.
    """
    from sklearn.metrics import silhouette_score

    array = _as_features(features)
    labels = _as_labels(groups, len(array))
    n_groups = len(np.unique(labels))
    if not 2 <= n_groups <= len(array) - 1:
        raise ValueError(f"separation needs between 2 and n_samples - 1 groups; got {n_groups} for {len(array)} rows.")
    return float(silhouette_score(array, labels, metric="euclidean"))


def linear_probe(
    features: np.ndarray, labels: Sequence[Any], seed: int = 0, test_size: float = 0.3
) -> dict[str, float | int]:
    """Fit a logistic regression on frozen ``features`` and score it on a held-out split.

    The split is stratified (every class in both parts) and seeded. Features are standardised on
    the training part only. Returns ``accuracy`` (held-out), ``chance`` (accuracy of always
    answering the training part's most common class), ``n_train``, ``n_test`` and ``n_classes``.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    array = _as_features(features)
    y = _as_labels(labels, len(array))
    classes, counts = np.unique(y, return_counts=True)
    if len(classes) < 2:
        raise ValueError("linear_probe needs at least 2 classes in labels; got one.")
    if counts.min() < 2:
        rare = classes[counts < 2].tolist()
        raise ValueError(f"Every class needs >= 2 examples (one to train, one to test); too few for {rare}.")
    if not 0 < test_size < 1:
        raise ValueError(f"test_size must be a fraction between 0 and 1, e.g. 0.3; got {test_size!r}.")
    n_test = max(int(round(test_size * len(y))), len(classes))
    if len(y) - n_test < len(classes):
        raise ValueError(f"{len(y)} examples of {len(classes)} classes are too few to hold out a test set; add more.")
    x_train, x_test, y_train, y_test = train_test_split(array, y, test_size=n_test, stratify=y, random_state=seed)
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000, C=1.0))
    probe.fit(x_train, y_train)
    train_classes, train_counts = np.unique(y_train, return_counts=True)
    majority = train_classes[np.argmax(train_counts)]
    return {
        "accuracy": float(np.mean(probe.predict(x_test) == y_test)),
        "chance": float(np.mean(y_test == majority)),
        "n_train": int(len(y_train)),
        "n_test": int(len(y_test)),
        "n_classes": int(len(classes)),
    }


# --------------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------------


def plot_projection(
    coords: np.ndarray, groups: Sequence[Any], ax: Any = None, title: str = "", natural: Sequence[Any] = ()
) -> Any:
    """Scatter 2-D ``coords`` coloured by group; groups listed in ``natural`` get hollow markers."""
    import matplotlib.pyplot as plt

    coords = np.asarray(coords, dtype=float)
    if coords.ndim != 2 or coords.shape[1] != 2:
        raise ValueError(f"coords must be (N, 2), e.g. from project_2d; got shape {coords.shape}.")
    groups = _as_labels(groups, len(coords))
    if ax is None:
        _, ax = plt.subplots(figsize=(5.6, 4.6), layout="constrained")
    palette = plt.get_cmap("tab10" if len(set(groups)) <= 10 else "tab20")
    for i, group in enumerate(dict.fromkeys(groups.tolist())):
        chosen = groups == group
        colour = palette(i % palette.N)
        hollow = group in set(natural)
        ax.scatter(coords[chosen, 0], coords[chosen, 1], s=36, marker="s" if hollow else "o",
                   facecolors="none" if hollow else colour, edgecolors=colour, linewidths=1.4,
                   label=f"{group} ({int(chosen.sum())})")  # fmt: skip
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def gallery(images: np.ndarray | Sequence[np.ndarray], titles: Sequence[str], ncols: int = 8, size: float = 1.6):
    """A grid of images with small titles (the modality gallery). Returns the Figure."""
    import matplotlib.pyplot as plt

    images = _as_image_list(images)
    if len(titles) != len(images):
        raise ValueError(f"titles has {len(titles)} entries for {len(images)} images; pass one title per image.")
    if isinstance(ncols, bool) or not isinstance(ncols, (int, np.integer)) or ncols < 1:
        raise ValueError(f"ncols must be a positive integer; got {ncols!r}.")
    ncols = min(int(ncols), len(images))
    nrows = int(np.ceil(len(images) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.2), squeeze=False,
                             layout="constrained")  # fmt: skip
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i < len(images):
            ax.imshow(to_rgb_uint8(images[i]))
            ax.set_title(str(titles[i]), fontsize=7)
    return fig
