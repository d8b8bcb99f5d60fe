"""Input checks for images and masks: one place that decides what is converted and what raises.

Rules (every raise is a ``ValueError`` that names the problem and the fix):

- Images must be ``uint8``. A 2-D array or an ``(H, W, 1)`` array is grayscale and is converted to
  RGB by repeating the channel (SAM's encoders expect three channels). ``(H, W, 3)`` passes as is.
- ``(H, W, 4)`` (RGBA), channel-first ``(3, H, W)``, other channel counts, 16-bit or other integer
  types, floats (including NaN) and bool images raise: their meaning is ambiguous, so the message
  says how to convert them (``rescale_to_uint8`` windows any numeric image to 0..255).
- Masks must be 2-D. bool passes; integer or float masks whose values are only {0, 1} or
  {0, 255} are converted to bool; anything else (a label map, probabilities, NaN) raises.
"""

from __future__ import annotations

import numpy as np

__all__ = ["to_rgb_uint8", "to_mask", "rescale_to_uint8"]


def rescale_to_uint8(
    image: np.ndarray, low: float | None = None, high: float | None = None, percentiles=(0.5, 99.5)
) -> np.ndarray:
    """Window a numeric image (any dtype, e.g. 16-bit or HU floats) linearly to uint8 0..255.

    ``low``/``high`` fix the window (e.g. a CT window); otherwise the given percentiles of the
    finite values are used. NaN and inf become 0.
    """
    array = np.asarray(image)
    if array.dtype == bool or not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"rescale_to_uint8 needs a numeric image, got dtype {array.dtype}.")
    values = array.astype(np.float64)
    finite = np.isfinite(values)
    if not finite.any():
        raise ValueError("rescale_to_uint8: the image has no finite values (all NaN/inf).")
    if low is None or high is None:
        plo, phi = np.percentile(values[finite], percentiles)
        low = plo if low is None else low
        high = phi if high is None else high
    if not high > low:
        high = low + 1.0
    scaled = (np.where(finite, values, low) - low) / (high - low)
    return (np.clip(scaled, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def to_rgb_uint8(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Return ``image`` as an ``(H, W, 3)`` uint8 RGB array, or raise a ``ValueError`` saying why."""
    if not isinstance(image, np.ndarray):
        try:
            image = np.asarray(image)
        except Exception as exc:  # pragma: no cover - exotic inputs
            raise ValueError(f"{name} must be a numpy array (H, W, 3) uint8, got {type(image)!r}.") from exc
    if image.dtype == bool:
        raise ValueError(
            f"{name} is a bool array: that looks like a mask. Pass the image, or convert with "
            f"{name}.astype(np.uint8) * 255."
        )
    if image.dtype != np.uint8:
        if np.issubdtype(image.dtype, np.floating) and np.isnan(image).any():
            raise ValueError(
                f"{name} contains NaN values. Replace them (np.nan_to_num) and convert to uint8 with "
                "utils.images.rescale_to_uint8."
            )
        if np.issubdtype(image.dtype, np.floating):
            lo, hi = (float(np.min(image)), float(np.max(image))) if image.size else (0.0, 0.0)
            raise ValueError(
                f"{name} is {image.dtype} with values {lo:.3g}..{hi:.3g}; SAM expects uint8 0..255. "
                "Convert with utils.images.rescale_to_uint8(image) (or (image * 255).astype(np.uint8) "
                "if it is already scaled to 0..1)."
            )
        bits = image.dtype.itemsize * 8
        raise ValueError(
            f"{name} is {image.dtype} ({bits}-bit); SAM expects 8-bit uint8. Window it with "
            "utils.images.rescale_to_uint8(image) (optionally with low/high, e.g. a CT window)."
        )
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3:
        raise ValueError(f"{name} must be (H, W) or (H, W, 3); got shape {image.shape}.")
    if image.shape[0] in (1, 3, 4) and image.shape[2] not in (1, 3, 4):
        raise ValueError(f"{name} looks channel-first {image.shape}; pass it as (H, W, C): np.moveaxis({name}, 0, -1).")
    channels = image.shape[2]
    if channels == 1:
        image = np.repeat(image, 3, axis=2)
    elif channels == 4:
        raise ValueError(f"{name} has 4 channels (RGBA?); SAM takes RGB. Drop the alpha channel: {name}[..., :3].")
    elif channels != 3:
        raise ValueError(f"{name} has {channels} channels; SAM takes 1 (grayscale) or 3 (RGB).")
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise ValueError(f"{name} is too small ({image.shape[0]}x{image.shape[1]}); need at least 2x2 pixels.")
    return np.ascontiguousarray(image)


def to_mask(mask: np.ndarray, shape: tuple[int, int] | None = None, name: str = "mask") -> np.ndarray:
    """Return ``mask`` as a 2-D bool array (optionally checked against ``shape``) or raise."""
    array = np.asarray(mask)
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D (H, W); got shape {array.shape}.")
    if shape is not None and tuple(array.shape) != tuple(shape[:2]):
        raise ValueError(
            f"{name} has shape {array.shape} but the image is {tuple(shape[:2])}; they must match pixel for pixel."
        )
    if array.dtype == bool:
        return array
    if not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"{name} has dtype {array.dtype}; pass a bool mask.")
    if np.issubdtype(array.dtype, np.floating) and np.isnan(array).any():
        raise ValueError(f"{name} contains NaN; pass a bool mask (e.g. probabilities > 0.5).")
    values = np.unique(array)
    if set(values.tolist()) <= {0, 1} or set(values.tolist()) <= {0, 255}:
        return array > 0
    raise ValueError(
        f"{name} has values {values[:6].tolist()}{'...' if values.size > 6 else ''}; expected a binary mask. "
        f"For a label map pick one label ({name} == k); for probabilities threshold them ({name} > 0.5)."
    )
