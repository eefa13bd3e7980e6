"""A handwritten digit made into an MNIST-style input: from the drawing pad or from a photo of paper.

MNIST digits are white strokes on black, cropped to the stroke, scaled into 20×20 and centred by their centre of
mass in 28×28. A pad drawing is almost that already. A photo of a digit on paper is not: inverted, paper is grey,
not black, lit unevenly, textured and sometimes shadowed, so a fixed threshold keeps the whole sheet. Here the
lighting is evened first (the background is estimated by a grey opening at low resolution, which erases strokes,
and subtracted), then Otsu's threshold separates ink from paper, and the crop keeps the largest stroke component
(with any sizeable parts near it: a "5" drawn in two strokes) rather than everything brighter than a constant.
Every step keeps a picture for the Classify page.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageOps
from skimage import filters, measure

from core.imaging import ImageError, Prepared, Step, normalise

WORK_SIDE = 512  # larger pictures are reduced to this longer side first: a 28×28 result needs no more
BACKGROUND_SIDE = 48  # the lighting is estimated at this longer side, where a stroke is a few pixels wide
BACKGROUND_FILTER = 9  # odd; opening with this erases bright features up to 8/48 of the longer side
PAPER_GREY = 96  # a picture whose median is lighter than this is taken for paper
MIN_AREA = 0.002  # share of the picture: less ink than this inside the edges is specks
MIN_CONTRAST = 30  # grey levels: less than this between ink and paper is no stroke
PART_SHARE = 0.15  # a further component is part of the digit from this share of the largest one's area …
PART_REACH = 0.5  # … if it lies within this share of the largest one's size from it


def _otsu(values: np.ndarray) -> float:
    """Otsu's threshold of 8-bit values (the level that best splits them into two classes)."""
    return float(filters.threshold_otsu(values.astype(np.uint8), nbins=256))


def _to_working(image: Image.Image) -> tuple[Image.Image, str]:
    """Greyscale, reduced to :data:`WORK_SIDE` if larger; the step's description."""
    grey = image.convert("L")
    detail = "one channel"
    if max(grey.size) > WORK_SIDE:
        scale = WORK_SIDE / max(grey.size)
        size = (max(1, round(grey.width * scale)), max(1, round(grey.height * scale)))
        detail = f"one channel, reduced from {grey.width}×{grey.height}"
        grey = grey.resize(size, Image.Resampling.BOX)
    return grey, detail


def _paper_is_light(grey: np.ndarray) -> bool:
    """True for dark ink on light paper: most of the picture (the paper; ink is the minority) is nearer the light
    end, or at least mid-grey (paper in poor light, shadowed: a drawing on black is mostly black)."""
    low, high = np.percentile(grey, (1, 99))
    middle = float(np.median(grey))
    return middle > (low + high) / 2 or middle > PAPER_GREY


def _even_lighting(ink: Image.Image) -> np.ndarray:
    """``ink`` (light strokes on a darker background) minus its background: a grey opening at low resolution
    erases the strokes and keeps gradients and shadows, which are then subtracted. Float array, 0 for paper."""
    scale = BACKGROUND_SIDE / max(ink.size)
    small = ink.resize((max(1, round(ink.width * scale)), max(1, round(ink.height * scale))), Image.Resampling.BOX)
    opened = small.filter(ImageFilter.MinFilter(BACKGROUND_FILTER)).filter(ImageFilter.MaxFilter(BACKGROUND_FILTER))
    background = opened.filter(ImageFilter.GaussianBlur(1)).resize(ink.size, Image.Resampling.BILINEAR)
    return np.clip(np.asarray(ink, dtype=np.float32) - np.asarray(background, dtype=np.float32), 0, None)


def _border_labels(labels: np.ndarray) -> np.ndarray:
    """The non-zero labels that touch the picture's edge."""
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    return edge[edge > 0]


def _threshold(flat: np.ndarray) -> tuple[np.ndarray, float]:
    """Otsu's threshold of ``flat``, taken again without what touches the edge (a table beyond the sheet, a
    shadow's rim) while that leaves ink inside: (``flat`` with those parts cleared, threshold)."""
    flat = np.clip(flat, 0, 255)
    threshold = max(_otsu(flat), MIN_CONTRAST / 2)
    for _ in range(3):
        labels = measure.label(flat > threshold, connectivity=2)
        edge = np.isin(labels, _border_labels(labels))
        if not edge.any():
            break
        wide = np.asarray(Image.fromarray(edge.astype(np.uint8) * 255, "L").filter(ImageFilter.MaxFilter(5))) > 0
        cleared = np.where(wide, 0, flat)
        again = max(_otsu(cleared), MIN_CONTRAST / 2)
        if (cleared > again).sum() < MIN_AREA * flat.size:  # nothing inside: the digit itself touches the edge
            break
        flat, threshold = cleared, again
    return flat, threshold


def _digit_components(mask: np.ndarray) -> np.ndarray:
    """The components of ``mask`` that make the digit: the largest one not touching the border (any, if all do),
    and those at least :data:`PART_SHARE` of its area within :data:`PART_REACH` of its size."""
    labels = measure.label(mask, connectivity=2)
    areas = np.bincount(labels.ravel())
    areas[0] = 0
    inner = areas.copy()
    inner[_border_labels(labels)] = 0
    candidates = inner if inner.max() > 0 else areas
    if candidates.max() == 0:
        return np.zeros_like(mask)
    largest = int(candidates.argmax())
    rows, columns = np.nonzero(labels == largest)
    top, bottom, left, right = rows.min(), rows.max(), columns.min(), columns.max()
    reach_y, reach_x = PART_REACH * (bottom - top + 1), PART_REACH * (right - left + 1)
    kept = [largest]
    for label in np.nonzero(candidates >= PART_SHARE * candidates[largest])[0]:
        rows, columns = np.nonzero(labels == label)
        if label != largest and rows.min() <= bottom + reach_y and rows.max() >= top - reach_y \
                and columns.min() <= right + reach_x and columns.max() >= left - reach_x:
            kept.append(int(label))
    return np.isin(labels, kept)


def _mask_picture(mask: np.ndarray, kept: np.ndarray, box: tuple[int, int, int, int]) -> Image.Image:
    """The thresholded mask for display: the digit's components white, other ink grey, the crop box in red."""
    picture = np.where(kept, 255, np.where(mask, 90, 0)).astype(np.uint8)
    shown = Image.fromarray(picture, "L").convert("RGB")
    ImageDraw.Draw(shown).rectangle((box[0], box[1], box[2] - 1, box[3] - 1), outline=(230, 40, 40), width=2)
    return shown


def _isolate_stroke(grey: Image.Image, steps: list[Step]) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """Light-on-dark ``grey`` → the digit alone: lighting evened, Otsu's threshold, the digit's components kept
    and their ink stretched to full white, everything else black; cropped to them. Also the crop box."""
    pixels = np.asarray(grey, dtype=np.float32)
    flat = _even_lighting(grey) if np.median(pixels) >= MIN_CONTRAST / 2 else pixels  # a black pad needs none
    if flat is not pixels and flat.max() >= MIN_CONTRAST:
        steps.append(Step("Lighting evened", "the background (shadows, uneven light) subtracted",
                          Image.fromarray(np.clip(flat * (255 / flat.max()), 0, 255).astype(np.uint8), "L")))
    else:  # a black background, or nothing stands out from a smooth one: threshold the picture itself
        flat = pixels
    flat, threshold = _threshold(flat)
    mask = flat > threshold
    kept = _digit_components(mask)
    if not kept.any():
        raise ImageError("No stroke stands out from the background: photograph the digit larger, in even light.")
    paper = float(np.percentile(flat[~mask], 90)) if (~mask).any() else 0.0
    level = max(float(np.percentile(flat[kept], 99)), paper + 1)
    near = np.asarray(Image.fromarray(kept.astype(np.uint8) * 255, "L").filter(ImageFilter.MaxFilter(9))) > 0
    ink = np.where(near, np.clip((flat - paper) / (level - paper), 0, 1) * 255, 0).astype(np.uint8)
    rows, columns = np.nonzero(ink > MIN_CONTRAST)
    if len(rows) == 0:
        rows, columns = np.nonzero(kept)
    box = (int(columns.min()), int(rows.min()), int(columns.max()) + 1, int(rows.max()) + 1)
    steps.append(Step("Thresholded (Otsu)", f"ink above {threshold:.0f}; the digit in white, other specks grey, "
                      "the crop in red", _mask_picture(mask, kept, box)))
    stroke = Image.fromarray(ink, "L").crop(box)
    steps.append(Step("Cropped to the stroke", f"bounding box {box[2] - box[0]}×{box[3] - box[1]}", stroke))
    return stroke, box


def _centre(stroke: Image.Image, steps: list[Step]) -> Image.Image:
    """Scale ``stroke`` into 20×20 (aspect kept) and place its centre of mass at (14, 14) of a black 28×28."""
    scale = 20 / max(stroke.size)
    fitted = stroke.resize((max(1, round(stroke.width * scale)), max(1, round(stroke.height * scale))),
                           Image.Resampling.LANCZOS)
    steps.append(Step("Scaled into 20×20", f"{fitted.width}×{fitted.height}, aspect kept", fitted))
    weights = np.asarray(fitted, dtype=np.float64)
    total = max(weights.sum(), 1e-6)
    centre_y = float((weights.sum(1) * np.arange(weights.shape[0])).sum() / total)
    centre_x = float((weights.sum(0) * np.arange(weights.shape[1])).sum() / total)
    canvas = Image.new("L", (28, 28), 0)
    canvas.paste(fitted, (round(14 - centre_x), round(14 - centre_y)))
    steps.append(Step("Centred by mass in 28×28", "centre of mass moved to (14, 14)", canvas))
    return canvas


def _light_on_dark(image: Image.Image, steps: list[Step]) -> Image.Image:
    """``image`` as a greyscale working copy with light strokes on a dark background; raises ImageError if empty."""
    grey, detail = _to_working(image)
    steps.append(Step("Greyscale", detail, grey))
    if _paper_is_light(np.asarray(grey)):  # dark ink on light paper: MNIST digits are light on dark
        grey = ImageOps.invert(grey)
        steps.append(Step("Inverted", "MNIST digits are white on black", grey))
    pixels = np.asarray(grey)
    if pixels.max() < MIN_CONTRAST or (pixels > MIN_CONTRAST).sum() < 4 or np.ptp(pixels) < MIN_CONTRAST:
        raise ImageError("The drawing is empty: draw a digit first.")
    return grey


def stroke_box(image: Image.Image) -> tuple[int, int, int, int]:
    """Where :func:`digit_like_mnist` finds the digit in ``image``: (left, top, right, bottom) in its pixels."""
    grey = _light_on_dark(image, [])
    _, box = _isolate_stroke(grey, [])
    scale = image.width / grey.width
    return (round(box[0] * scale), round(box[1] * scale), round(box[2] * scale), round(box[3] * scale))


def digit_like_mnist(image: Image.Image, mean: tuple[float, ...], std: tuple[float, ...],
                     convention: bool = True) -> Prepared:
    """A handwritten digit (a pad drawing or a photo of paper) the MNIST way: white on black, the stroke found
    by Otsu's threshold after evening the lighting, cropped to it, scaled into 20×20 and centred by its centre of
    mass in 28×28. With ``convention`` off, the (inverted) picture is only resized. Raises ImageError when empty."""
    steps: list[Step] = []
    grey = _light_on_dark(image, steps)
    if not convention:
        small = grey.resize((28, 28), Image.Resampling.BILINEAR)
        steps.append(Step("Resized", "straight to 28×28, no MNIST convention", small))
        return Prepared(normalise(small, mean, std, steps), small, steps)
    canvas = _centre(_isolate_stroke(grey, steps)[0], steps)
    return Prepared(normalise(canvas, mean, std, steps), canvas, steps)
