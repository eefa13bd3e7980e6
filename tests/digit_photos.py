"""Generated photos of handwritten digits on paper: texture, uneven light, a shadow, noise, a perspective warp.

A digit (28×28, white on black, as the data sets hold it) is drawn in dark ink on a sheet (1200×900 unless told), as a
phone photographs a digit written with a marker. The same digit "as the pad gives it" is its upscaled white-on-
black picture, so a photo and its clean twin differ only in what the camera and the paper add.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter

SIZE = (1200, 900)
WARP = 0.08  # each corner of the sheet moves up to this share of the picture: a phone not held square


def pad_drawing(digit: np.ndarray) -> Image.Image:
    """``digit`` (28×28 uint8, white on black) as the 280×280 pad would send it."""
    return Image.fromarray(digit, "L").resize((280, 280), Image.Resampling.BICUBIC).convert("RGB")


def _perspective(source: list[tuple[float, float]], target: list[tuple[float, float]]) -> list[float]:
    """Coefficients for ``Image.transform(PERSPECTIVE)`` that map each output point in ``target`` to ``source``."""
    rows = []
    for (x, y), (u, v) in zip(target, source, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
    right = np.array([c for point in source for c in point], dtype=float)
    return list(np.linalg.solve(np.array(rows, dtype=float), right))


def _shadow(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """A soft-edged shadow over part of the sheet (a hand or a phone): a multiplier in [depth, 1]."""
    width, height = size
    mask = Image.new("L", size, 0)
    x0 = rng.uniform(0.3, 0.8) * width
    corner = [(x0, 0), (x0 + rng.uniform(-0.3, 0.3) * width, height), (width, height), (width, 0)]
    from PIL import ImageDraw

    ImageDraw.Draw(mask).polygon(corner if rng.random() < 0.5 else [(width - x, y) for x, y in corner], fill=255)
    soft = np.asarray(mask.filter(ImageFilter.GaussianBlur(rng.uniform(15, 40))), dtype=np.float32) / 255
    return 1 - soft * rng.uniform(0.25, 0.4)


def photo(digit: np.ndarray, rng: np.random.Generator,
          size: tuple[int, int] = SIZE) -> tuple[bytes, tuple[int, int, int, int]]:
    """A JPEG photo of ``digit`` written on paper, and the digit's true box (left, top, right, bottom) in it."""
    width, height = size
    side = int(rng.uniform(0.18, 0.33) * width)
    alpha = np.asarray(Image.fromarray(digit, "L").resize((side, side), Image.Resampling.BICUBIC),
                       dtype=np.float32) / 255 * rng.uniform(0.8, 1.0)
    left = int(np.clip(rng.uniform(0.15, 0.85) * width - side / 2, 0, width - side))
    top = int(np.clip(rng.uniform(0.2, 0.8) * height - side / 2, 0, height - side))
    ink = np.zeros((height, width), dtype=np.float32)
    ink[top:top + side, left:left + side] = alpha
    grain = Image.fromarray(rng.uniform(0, 255, (height // 40, width // 40)).astype(np.uint8), "L")
    texture = (np.asarray(grain.resize(size, Image.Resampling.BICUBIC), dtype=np.float32) - 128) / 128 * 8
    paper = rng.uniform(205, 240) + texture + rng.normal(0, 4, (height, width))
    ink_colour = rng.uniform(20, 60)
    sheet = paper * (1 - ink) + ink_colour * ink
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:height, 0:width]
    ramp = (np.cos(angle) * (xs / width - 0.5) + np.sin(angle) * (ys / height - 0.5))
    sheet = sheet * (0.85 + 0.35 * ramp) * _shadow(rng, size)
    tint = np.array([1.0, rng.uniform(0.95, 1.0), rng.uniform(0.85, 0.95)])
    rgb = Image.fromarray(np.clip(sheet[..., None] * tint, 0, 255).astype(np.uint8), "RGB")
    corners = [(0.0, 0.0), (width, 0.0), (width, height), (0.0, height)]
    moved = [(x + rng.uniform(-WARP, WARP) * width, y + rng.uniform(-WARP, WARP) * height) for x, y in corners]
    moved = [(min(max(x, 0.0), width), min(max(y, 0.0), height)) for x, y in moved]  # the table shows at the edges
    coefficients = _perspective(corners, moved)
    table = tuple(int(v) for v in rng.uniform(40, 90, 3))
    warped = rgb.transform(size, Image.Transform.PERSPECTIVE, coefficients, Image.Resampling.BICUBIC, fillcolor=table)
    truth = Image.fromarray((ink * 255).astype(np.uint8), "L").transform(
        size, Image.Transform.PERSPECTIVE, coefficients, Image.Resampling.BILINEAR)
    noisy = np.asarray(warped, dtype=np.float32) + rng.normal(0, 5, (height, width, 1))
    buffer = io.BytesIO()
    Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB").save(buffer, "JPEG", quality=85)
    rows, columns = np.nonzero(np.asarray(truth) > 64)
    return buffer.getvalue(), (int(columns.min()), int(rows.min()), int(columns.max()) + 1, int(rows.max()) + 1)
