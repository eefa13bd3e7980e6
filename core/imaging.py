"""From an uploaded file to the exact tensor a model sees, one visible step at a time.

Every bad input becomes an ImageError with a clear message: not an image, a truncated file,
a decompression bomb, an extreme aspect ratio, an empty drawing. Awkward but valid images are
converted correctly: EXIF orientation applied, 16- and 32-bit greyscale rescaled (Pillow's
``convert`` would clip them at 255), CMYK converted, transparency composited onto white.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from core.errors import ExplorerError

EXTENSIONS = ("png", "jpg", "jpeg", "webp", "bmp", "gif", "tiff", "tif")
MAX_PIXELS = 40_000_000  # about 6,300 × 6,300
MAX_ASPECT = 12  # longer side / shorter side


class ImageError(ExplorerError):
    """An input that cannot be made into a model input, with the reason."""


@dataclass(frozen=True)
class Step:
    """One preprocessing step: what was done, and the image after it (None for tensor-only steps)."""

    name: str
    detail: str
    image: Image.Image | None = None


@dataclass
class Prepared:
    """The model input and how it was made."""

    tensor: torch.Tensor  # 1 × C × H × W, normalised
    display: Image.Image  # the image the model sees, before normalisation (for overlays)
    steps: list[Step] = field(default_factory=list)


def _to_8bit(image: Image.Image) -> Image.Image:
    """Rescale 16-bit and 32-bit greyscale (and float) to 0–255 using the values' real range."""
    values = torch.as_tensor(np.array(image), dtype=torch.float64)
    low, high = float(values.min()), float(values.max())
    if image.mode.startswith("I;16"):
        low, high = 0.0, 65535.0 if high > 255 else 255.0  # the 16-bit range, unless the file only uses 8 bits
    scaled = (values - low) / (high - low) * 255 if high > low else values * 0
    return Image.fromarray(scaled.round().clamp(0, 255).to(torch.uint8).numpy(), "L")


def open_image(payload: bytes, name: str = "image") -> tuple[Image.Image, list[Step]]:
    """Decode an uploaded file into an RGB image, checking everything; return it and the steps taken."""
    if not payload:
        raise ImageError(f"{name} is empty.")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(payload))
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise ImageError(f"{name} has {width}×{height} = {width * height:,} pixels, more than the limit of "
                                 f"{MAX_PIXELS:,} (a decompression bomb, or simply too large).")
            image.seek(0)  # GIF and TIFF: the first frame
            image.load()  # Pillow is lazy: a truncated file fails here, not later
        except ImageError:
            raise
        except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
            kind = "too many pixels" if "ecompression" in type(error).__name__ else "not an image Pillow can read"
            raise ImageError(f"{name}: {kind}. Use {', '.join(EXTENSIONS)}.") from None
        except (OSError, SyntaxError, ValueError, EOFError) as error:
            raise ImageError(f"{name} is truncated or corrupt ({error}).") from None
    steps = [Step("Decoded", f"{image.format or 'image'} {image.mode} {width}×{height}", image.copy())]
    if width / height > MAX_ASPECT or height / width > MAX_ASPECT:
        raise ImageError(f"{name} is {width}×{height}: an aspect ratio over {MAX_ASPECT}:1 would be mostly "
                         "padding or cropped away. Crop it first.")
    oriented = ImageOps.exif_transpose(image)
    if oriented.size != image.size or oriented.tobytes() != image.tobytes():
        steps.append(Step("EXIF orientation", "rotated/flipped as the camera recorded", oriented.copy()))
    image = oriented
    image, detail = _to_rgb(image)
    steps.append(Step("Converted to RGB", detail, image))
    return image, steps


def _to_rgb(image: Image.Image) -> tuple[Image.Image, str]:
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return _to_8bit(image).convert("RGB"), f"{mode} greyscale rescaled to 0–255, then RGB"
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if mode == "CMYK":
        return image.convert("RGB"), "CMYK converted to RGB"
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB"), f"{mode}: transparency composited onto white"
    if mode == "RGB":
        return image, "already RGB"
    return image.convert("RGB"), f"{mode} converted to RGB"


def prepare(image: Image.Image, resize: int, crop: int, mean: tuple[float, ...], std: tuple[float, ...],
            channels: int = 3) -> Prepared:
    """Resize the shorter side, centre-crop, normalise: each step kept for the inspector."""
    steps = []
    width, height = image.size
    scale = resize / min(width, height)
    resized = image.resize((max(1, round(width * scale)), max(1, round(height * scale))), Image.BILINEAR)
    steps.append(Step("Resized", f"shorter side {min(width, height)} → {resize} px: {resized.width}×{resized.height}",
                      resized))
    left, top = (resized.width - crop) // 2, (resized.height - crop) // 2
    cropped = resized.crop((left, top, left + crop, top + crop))
    steps.append(Step("Centre crop", f"{crop}×{crop} from the middle", cropped))
    if channels == 1:
        cropped = cropped.convert("L")
        steps.append(Step("Greyscale", "the model takes one channel", cropped))
    return Prepared(_normalise(cropped, mean, std, steps), cropped, steps)


def _normalise(image: Image.Image, mean: tuple[float, ...], std: tuple[float, ...], steps: list[Step]) -> torch.Tensor:
    array = torch.as_tensor(np.array(image), dtype=torch.float32) / 255
    array = array.unsqueeze(-1) if array.dim() == 2 else array
    x = (array.permute(2, 0, 1) - torch.tensor(mean).view(-1, 1, 1)) / torch.tensor(std).view(-1, 1, 1)
    steps.append(Step("Normalised", f"(x / 255 − mean {tuple(round(m, 4) for m in mean)}) / std "
                      f"{tuple(round(s, 4) for s in std)} → tensor {tuple(x.shape)}, min {x.min():.3f}, "
                      f"max {x.max():.3f}, mean {x.mean():.3f}"))
    return x.unsqueeze(0)


def digit_like_mnist(image: Image.Image, mean: tuple[float, ...], std: tuple[float, ...],
                     convention: bool = True) -> Prepared:
    """A handwritten digit the MNIST way: white on black, cropped to the stroke, scaled into 20×20,
    centred by its centre of mass in 28×28. With ``convention`` off, the image is only resized."""
    grey = image.convert("L")
    steps = [Step("Greyscale", "one channel", grey)]
    pixels = torch.as_tensor(np.array(grey), dtype=torch.float32)
    if pixels.mean() > 127:  # dark ink on light paper: MNIST digits are light on dark
        grey = ImageOps.invert(grey)
        pixels = 255 - pixels
        steps.append(Step("Inverted", "MNIST digits are white on black", grey))
    if pixels.max() < 30 or (pixels > 30).sum() < 4:
        raise ImageError("The drawing is empty: draw a digit first.")
    if not convention:
        small = grey.resize((28, 28), Image.BILINEAR)
        steps.append(Step("Resized", "straight to 28×28, no MNIST convention", small))
        return Prepared(_normalise(small, mean, std, steps), small, steps)
    rows, columns = torch.nonzero(pixels > 30, as_tuple=True)
    box = (int(columns.min()), int(rows.min()), int(columns.max()) + 1, int(rows.max()) + 1)
    stroke = grey.crop(box)
    steps.append(Step("Cropped to the stroke", f"bounding box {box[2] - box[0]}×{box[3] - box[1]}", stroke))
    scale = 20 / max(stroke.size)
    fitted = stroke.resize((max(1, round(stroke.width * scale)), max(1, round(stroke.height * scale))),
                           Image.LANCZOS)
    steps.append(Step("Scaled into 20×20", f"{fitted.width}×{fitted.height}, aspect kept", fitted))
    weights = torch.as_tensor(np.array(fitted), dtype=torch.float32)
    total = weights.sum().clamp(min=1e-6)
    centre_y = float((weights.sum(1) * torch.arange(weights.shape[0])).sum() / total)
    centre_x = float((weights.sum(0) * torch.arange(weights.shape[1])).sum() / total)
    canvas = Image.new("L", (28, 28), 0)
    canvas.paste(fitted, (round(14 - centre_x), round(14 - centre_y)))
    steps.append(Step("Centred by mass in 28×28", "centre of mass moved to (14, 14)", canvas))
    return Prepared(_normalise(canvas, mean, std, steps), canvas, steps)
