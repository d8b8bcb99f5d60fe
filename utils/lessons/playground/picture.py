"""The playground's picture: image, ground-truth outline, mask and prompts drawn with PIL in the course palette."""

from __future__ import annotations

import io

import numpy as np

from utils.images import to_mask, to_rgb_uint8
from utils.metrics import boundary
from utils.viz import course_palette

__all__ = ["Picture", "encode_jpeg", "render_prompts"]


def _rgb(key: str) -> tuple[int, int, int]:
    value = course_palette[key].lstrip("#")
    return tuple(int(value[i : i + 2], 16) for i in (0, 2, 4))


def _star(cx: float, cy: float, radius: float) -> list[tuple[float, float]]:
    angles = np.pi / 2 + np.arange(10) * np.pi / 5
    radii = np.where(np.arange(10) % 2 == 0, radius, radius * 0.45)
    return [(cx + r * np.cos(a), cy - r * np.sin(a)) for r, a in zip(radii, angles)]


class Picture:
    """One image scaled for display, plus a blue-tinted copy: both reused for every redraw."""

    def __init__(self, image: np.ndarray, scale: float) -> None:
        from PIL import Image

        if not np.isfinite(scale) or scale <= 0:
            raise ValueError(f"scale must be a positive number; got {scale!r}.")
        self.source = image  # the array it was made from: a new image needs a new Picture
        self.image = to_rgb_uint8(image)
        self.scale = float(scale)
        height, width = self.image.shape[:2]
        self.size = (max(1, round(width * scale)), max(1, round(height * scale)))
        self.base = Image.fromarray(self.image).resize(self.size, Image.Resampling.BILINEAR)
        # Solid colour images: pasting an image through a mask is far faster than pasting a colour.
        self.solid = {key: Image.new("RGB", self.size, _rgb(key)) for key in ("prediction", "ground_truth")}
        self.tinted = Image.blend(self.base, self.solid["prediction"], 0.45)
        self._gt = self._gt_outline = None  # the ground truth does not change between edits: outlined once

    def _layer(self, mask: np.ndarray):
        """A full-size 'L' image (255 inside ``mask``), scaled with nearest neighbours to stay crisp."""
        from PIL import Image

        return Image.fromarray(mask.astype(np.uint8) * 255).resize(self.size, Image.Resampling.NEAREST)

    def draw(self, mask=None, gt=None, points=None, labels=None, box=None, cursor=None, corner=None) -> np.ndarray:
        """The picture with these layers (see :func:`render_prompts`), as an RGB array."""
        from PIL import Image, ImageDraw

        shape = self.image.shape
        canvas = self.base.copy()
        if mask is not None:
            mask = to_mask(mask, shape=shape, name="mask")
            canvas = Image.composite(self.tinted, canvas, self._layer(mask))
            canvas.paste(self.solid["prediction"], mask=self._layer(boundary(mask)))
        if gt is not None:
            if gt is not self._gt:
                self._gt, self._gt_outline = gt, self._layer(boundary(to_mask(gt, shape=shape, name="gt")))
            canvas.paste(self.solid["ground_truth"], mask=self._gt_outline)
        draw = ImageDraw.Draw(canvas)
        scale = self.scale

        def at(x: float, y: float) -> tuple[float, float]:
            return (x + 0.5) * scale, (y + 0.5) * scale

        if box is not None:
            x0, y0, x1, y1 = np.asarray(box, dtype=float).reshape(4)
            draw.rectangle([*at(x0, y0), *at(x1, y1)], outline=_rgb("box"), width=max(2, round(scale)))
        if corner is not None:
            cx, cy = at(*corner)
            draw.rectangle([cx - 4, cy - 4, cx + 4, cy + 4], outline=_rgb("box"), width=2)
        if points is not None and len(points):
            radius = max(6.0, 3.5 * scale)
            for (x, y), label in zip(np.asarray(points, dtype=float), np.asarray(labels).reshape(-1)):
                cx, cy = at(x, y)
                if label:
                    draw.polygon(_star(cx, cy, radius), fill=_rgb("positive"), outline=(255, 255, 255))
                    continue
                r = radius * 0.7
                for color, width in (((255, 255, 255), 5), (_rgb("negative"), 3)):
                    draw.line([cx - r, cy - r, cx + r, cy + r], fill=color, width=width)
                    draw.line([cx - r, cy + r, cx + r, cy - r], fill=color, width=width)
        if cursor is not None:
            cx, cy = at(*cursor)
            r = max(6.0, 3.0 * scale)
            white = (255, 255, 255)
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=white, width=1)
            for dx, dy in ((-1, 0), (1, 0), (0, -1), (0, 1)):
                draw.line([cx + dx * r / 2, cy + dy * r / 2, cx + dx * 2 * r, cy + dy * 2 * r], fill=white)
        return np.asarray(canvas)


def render_prompts(
    image: np.ndarray,
    mask: np.ndarray | None = None,
    gt: np.ndarray | None = None,
    points: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    box: np.ndarray | None = None,
    cursor: tuple[float, float] | None = None,
    corner: tuple[float, float] | None = None,
    scale: float = 1.0,
) -> np.ndarray:
    """The playground's picture as an (round(H·scale), round(W·scale), 3) uint8 array.

    Drawn with the course palette (as :mod:`utils.viz`): ``mask`` as a translucent blue fill with an
    outline (:func:`utils.metrics.boundary`), ``gt`` as a gold outline, positive points as green stars,
    negative points as red crosses, ``box`` in magenta, ``cursor`` (the sliders' position) as a white
    cross-hair and ``corner`` (a box's first corner) as a small magenta square. Image coordinate ``x``
    (pixel column ``x``) is drawn at ``(x + 0.5) * scale``, so a click at display pixel ``u`` maps
    back to column ``floor(u / scale)``.
    """
    return Picture(image, scale).draw(mask, gt, points, labels, box, cursor, corner)


def encode_jpeg(array: np.ndarray) -> bytes:
    """JPEG bytes: several times faster to encode than PNG for a scan, and re-sent after every edit."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()
