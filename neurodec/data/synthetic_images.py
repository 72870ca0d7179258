"""Procedurally generated stimulus images with known categories and layout.

The images stand in for natural photographs in simulations (the demo, tests,
benchmarks) where no dataset can be downloaded. Each image belongs to one
category, drawn with simple shapes whose position, size, colour and
background texture vary, so that low-level (local contrast) and high-level
(category) properties are both present and known:

- ``"face"``: an ellipse with two eyes and a mouth;
- ``"place"``: a horizon with buildings (rectangles with windows) and a ground plane;
- ``"object"``: one or two random polygons on a textured background.
"""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["CATEGORIES", "SyntheticImages", "make_synthetic_images"]

CATEGORIES = ("face", "place", "object")


@dataclasses.dataclass(frozen=True)
class SyntheticImages:
    """Generated images and what is known about them.

    Attributes
    ----------
    images : array of shape (n_images, size, size, 3), uint8
    categories : array of shape (n_images,) of str
        The category of each image (one of :data:`CATEGORIES`).
    centers : array of shape (n_images, 2)
        Centre (x, y) of the main shape, as fractions of the image width/height.
    """

    images: np.ndarray
    categories: np.ndarray
    centers: np.ndarray


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    # Smooth low-contrast texture: upsampled noise, one colour tint per image.
    coarse = rng.normal(size=(size // 8 + 1, size // 8 + 1))
    tex = np.kron(coarse, np.ones((8, 8)))[:size, :size]
    tint = rng.uniform(0.3, 0.7, size=3)
    return np.clip(tint[None, None, :] + 0.06 * tex[:, :, None], 0, 1)


def _draw_face(draw, rng: np.random.Generator, size: int) -> tuple[float, float]:
    cx, cy = rng.uniform(0.3, 0.7, size=2) * size
    r = rng.uniform(0.18, 0.3) * size
    skin = tuple(int(v) for v in rng.uniform([170, 120, 90], [250, 200, 170]))
    draw.ellipse([cx - 0.8 * r, cy - r, cx + 0.8 * r, cy + r], fill=skin)
    eye = max(1.0, 0.12 * r)
    for dx in (-0.35 * r, 0.35 * r):
        draw.ellipse([cx + dx - eye, cy - 0.3 * r - eye, cx + dx + eye, cy - 0.3 * r + eye], fill=(20, 20, 30))
    draw.line([cx - 0.3 * r, cy + 0.45 * r, cx + 0.3 * r, cy + 0.45 * r], fill=(120, 30, 30), width=max(1, int(0.08 * r)))
    return cx / size, cy / size


def _draw_place(draw, rng: np.random.Generator, size: int) -> tuple[float, float]:
    horizon = rng.uniform(0.45, 0.7) * size
    draw.rectangle([0, horizon, size, size], fill=tuple(int(v) for v in rng.uniform(60, 140, size=3)))
    xs = []
    for _ in range(rng.integers(2, 5)):
        w = rng.uniform(0.12, 0.25) * size
        h = rng.uniform(0.2, 0.45) * size
        x0 = rng.uniform(0, size - w)
        xs.append(x0 + w / 2)
        colour = tuple(int(v) for v in rng.uniform(90, 220, size=3))
        draw.rectangle([x0, horizon - h, x0 + w, horizon], fill=colour)
        step = max(3.0, w / 3)
        for wx in np.arange(x0 + step / 3, x0 + w - step / 3, step):
            for wy in np.arange(horizon - h + step / 3, horizon - step / 3, step):
                draw.rectangle([wx, wy, wx + step / 3, wy + step / 3], fill=(30, 30, 50))
    return float(np.mean(xs)) / size, horizon / size


def _draw_object(draw, rng: np.random.Generator, size: int) -> tuple[float, float]:
    centres = []
    for _ in range(rng.integers(1, 3)):
        cx, cy = rng.uniform(0.25, 0.75, size=2) * size
        r = rng.uniform(0.1, 0.22) * size
        n = rng.integers(3, 8)
        angles = np.sort(rng.uniform(0, 2 * np.pi, size=n))
        pts = [(cx + r * np.cos(a), cy + r * np.sin(a)) for a in angles]
        draw.polygon(pts, fill=tuple(int(v) for v in rng.uniform(0, 255, size=3)))
        centres.append((cx, cy))
    cx, cy = np.mean(centres, axis=0)
    return cx / size, cy / size


_DRAW = {"face": _draw_face, "place": _draw_place, "object": _draw_object}


def make_synthetic_images(
    n_images: int,
    *,
    size: int = 64,
    categories: tuple[str, ...] = CATEGORIES,
    random_state: int | np.random.Generator | None = 0,
) -> SyntheticImages:
    """Generate ``n_images`` images, cycling through ``categories`` in random order.

    Parameters
    ----------
    n_images : int
        Number of images.
    size : int
        Width and height in pixels.
    categories : tuple of str
        Categories to draw, a subset of :data:`CATEGORIES`.
    random_state : int, numpy.random.Generator or None
        Seed or generator: the same int gives the same images.

    Returns
    -------
    SyntheticImages
    """
    from PIL import Image, ImageDraw

    unknown = [c for c in categories if c not in _DRAW]
    if unknown:
        raise ValueError(f"Unknown image categories {unknown}; choose from {list(CATEGORIES)}.")
    if n_images < 1 or size < 16:
        raise ValueError(f"Need n_images >= 1 and size >= 16. Got n_images={n_images}, size={size}.")
    rng = np.random.default_rng(random_state)
    labels = np.array([categories[i % len(categories)] for i in range(n_images)])
    rng.shuffle(labels)
    images = np.empty((n_images, size, size, 3), dtype=np.uint8)
    centers = np.empty((n_images, 2))
    for i, category in enumerate(labels):
        canvas = Image.fromarray(np.round(_background(rng, size) * 255).astype(np.uint8))
        centers[i] = _DRAW[category](ImageDraw.Draw(canvas), rng, size)
        images[i] = np.asarray(canvas)
    return SyntheticImages(images=images, categories=labels, centers=centers)
