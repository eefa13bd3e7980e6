"""From an uploaded file to the exact tensor a model sees, one visible step at a time.

Every bad input becomes an ImageError with a clear message: not an image, a truncated file,
a decompression bomb, an extreme aspect ratio, an empty drawing. Awkward but valid images are
converted correctly, whatever Pillow decodes them to: EXIF orientation applied, 16- and 32-bit
and float greyscale rescaled (Pillow's ``convert`` would clip them at 255), CMYK, YCbCr and LAB
converted, transparency composited onto white.

One pixel limit holds wherever an image is decoded (uploads, folder scans, previews, DataLoader
workers): :data:`MAX_PIXELS`, checked on the header before any pixel is decoded, and Pillow's own
bomb warning is an error from that limit on. Large images are reduced before anything else (JPEG
draft decoding, then a box-average ``reduce``), so that no conversion ever copies the full image.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageCms

from core.errors import ExplorerError, InvalidArgumentError

EXTENSIONS = ("png", "jpg", "jpeg", "webp", "bmp", "gif", "tiff", "tif")
# What each extension may hold; nothing else is opened (EPS, for one, would start Ghostscript).
FORMATS_BY_EXTENSION = {".png": ("PNG",), ".jpg": ("JPEG",), ".jpeg": ("JPEG",), ".webp": ("WEBP",),
                        ".bmp": ("BMP", "DIB"), ".gif": ("GIF",), ".tif": ("TIFF",), ".tiff": ("TIFF",)}
FORMATS = tuple(sorted({f for formats in FORMATS_BY_EXTENSION.values() for f in formats}))
MAX_PIXELS = 40_000_000  # about 6,300 × 6,300: at most 160 MB decoded (4 bytes a pixel) before the reduction
MAX_ASPECT = 12  # longer side / shorter side
WORK_SIDE = 1024  # large images are reduced until their shorter side is about this (models take ≤ 342 px)
DISPLAY_SIDE = 512  # display copies of the first steps fit in this square

# Pillow warns above MAX_IMAGE_PIXELS and refuses above twice it: make the warning an error, so that the one
# limit also holds where an image is opened without going through this module.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
Image.init()  # register every plugin now: ``Image.open(formats=…)`` looks them up (WebP and TIFF are not preloaded)
warnings.filterwarnings("error", category=Image.DecompressionBombWarning)

_ORIENTATION = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
                4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270,
                7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90}


class ImageError(ExplorerError):
    """An input that cannot be made into a model input, with the reason."""


@dataclass(frozen=True)
class Step:
    """One preprocessing step: what was done, and an 8-bit display copy after it (None for tensor-only steps)."""

    name: str
    detail: str
    image: Image.Image | None = None


@dataclass
class Prepared:
    """The model input and how it was made."""

    tensor: torch.Tensor  # 1 × C × H × W, normalised
    display: Image.Image  # the image the model sees, before normalisation (for overlays)
    steps: list[Step] = field(default_factory=list)


@dataclass(frozen=True)
class Decoded:
    """An image decoded within the limits and reduced early: the working copy and what was done to it."""

    image: Image.Image  # reduced, not yet oriented; still in the mode the file had
    format: str
    mode: str
    size: tuple[int, int]  # as stored in the file
    reduced_by: int  # 1: not reduced
    orientation: int  # the EXIF orientation that :func:`upright` applies (1: none)


# Decoding -----------------------------------------------------------------------------------------------


def _open(source: bytes | Path, name: str, formats: tuple[str, ...] = FORMATS) -> Image.Image:
    """Open lazily (the header only), refusing other formats and more than MAX_PIXELS pixels."""
    try:
        image = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source, formats=formats)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{name} has more than {MAX_PIXELS:,} pixels (a decompression bomb, or simply too "
                         "large).") from None
    except Exception:  # noqa: BLE001 — Pillow's parsers raise many types on junk: each means "not an image"
        allowed = "/".join(formats) if formats != FORMATS else ", ".join(EXTENSIONS)
        raise ImageError(f"{name} is not an image Pillow can read as {allowed}.") from None
    width, height = image.size
    if width * height > MAX_PIXELS:
        image.close()
        raise ImageError(f"{name} has {width}×{height} = {width * height:,} pixels, more than the limit of "
                         f"{MAX_PIXELS:,} (a decompression bomb, or simply too large).")
    if width < 1 or height < 1:
        image.close()
        raise ImageError(f"{name} has no pixels ({width}×{height}).")
    return image


def decode(source: bytes | Path, name: str, min_side: int = WORK_SIDE, check_extension: bool = False) -> Decoded:
    """Decode the first frame of an image within the pixel limit, reduced early so that its shorter side stays at
    least ``min_side`` (see :func:`upright` for its EXIF orientation). ``check_extension``: the content must be what
    the file's extension says."""
    if isinstance(source, bytes) and not source:
        raise ImageError(f"{name} is empty.")
    formats = FORMATS
    if check_extension:
        formats = FORMATS_BY_EXTENSION.get(Path(name).suffix.lower(), ())
        if not formats:
            raise ImageError(f"{name} does not end in an image extension ({', '.join(EXTENSIONS)}).")
    image = _open(source, name, formats)
    with image:
        size, format_, mode = image.size, image.format or "image", image.mode
        try:
            image.seek(0)  # GIF and TIFF: the first frame
            orientation = _orientation(image)
            if format_ in ("JPEG", "MPO") and min(size) > 2 * min_side:
                image.draft(image.mode, (min_side * size[0] // min(size), min_side * size[1] // min(size)))
            image.load()  # Pillow is lazy: a truncated file fails here, not later
            drafted = size[0] // image.size[0]  # JPEG draft decoding: 1, 2, 4 or 8
            working, factor = _reduce(image, min_side)
            if working is image:
                working = image.copy()  # detached from the file, which is closed on leaving
        except ImageError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageError(f"{name} has more than {MAX_PIXELS:,} pixels.") from None
        except MemoryError:
            raise ImageError(f"{name} is too large to decode here.") from None
        except Exception as error:  # noqa: BLE001 — OSError, SyntaxError, ValueError, EOFError, struct.error, …
            raise ImageError(f"{name} is truncated or corrupt ({_reason(error)}).") from None
    return Decoded(working, format_, mode, size, drafted * factor, orientation if orientation in _ORIENTATION else 1)


def upright(decoded: Decoded) -> Image.Image:
    """The decoded image turned as its EXIF orientation says (the camera's rotation and mirroring)."""
    if decoded.orientation in _ORIENTATION:
        return decoded.image.transpose(_ORIENTATION[decoded.orientation])
    return decoded.image


def _reason(error: Exception) -> str:
    """An exception's message without server paths (Pillow names the file it was reading)."""
    text = str(error) or type(error).__name__
    return text.split(" /", 1)[0].split(" '/", 1)[0][:200]


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(0x0112, 1))
    except Exception:  # noqa: BLE001 — a broken EXIF block is no reason to refuse the picture
        return 1


def _reduce(image: Image.Image, min_side: int) -> tuple[Image.Image, int]:
    """Box-average ``image`` by the largest whole factor that keeps its shorter side ≥ ``min_side``.

    Band by band: Pillow's ``reduce`` of an RGBA image makes a premultiplied full-size copy first (another
    144 MB for 6000 × 6000), a band of a few hundred rows costs almost nothing."""
    factor = min(image.size) // min_side
    if factor < 2:
        return image, 1
    width, height = image.width // factor, image.height // factor
    reduced = Image.new(image.mode, (width, height))
    if image.mode in ("P", "PA") and image.palette is not None:  # the same palette, alpha included
        reduced.putpalette(image.getpalette(image.palette.mode) or [], image.palette.mode)
    reduced.info = dict(image.info)
    rows = factor * max(1, 256 // factor)  # a whole number of output rows per band
    for top in range(0, height * factor, rows):
        band = image.crop((0, top, width * factor, min(top + rows, height * factor)))
        try:
            small = band.reduce(factor)
        except ValueError:  # "1", "P" and the 16-bit modes: resize (nearest for "1" and "P") does the same job
            small = band.resize((width, band.height // factor), Image.Resampling.BOX)
        reduced.paste(small, (0, top // factor))
    return reduced, factor


# Conversions: any mode to 8-bit ---------------------------------------------------------------------------

_ALPHA_MODES = ("RGBA", "LA", "PA", "La", "RGBa")


def _to_8bit(image: Image.Image) -> Image.Image:
    """Rescale 16-bit and 32-bit greyscale (and float) to 0–255 using the values' real range."""
    values = np.asarray(image).astype(np.float32)
    if values.ndim == 3:  # a many-channel mode Pillow cannot convert: its first channel, as greyscale
        values = values[..., 0]
    finite = np.isfinite(values)
    values = np.where(finite, values, 0)
    low, high = (float(values[finite].min()), float(values[finite].max())) if finite.any() else (0.0, 0.0)
    if image.mode.startswith("I;16"):
        low, high = 0.0, 65535.0 if high > 255 else 255.0  # the 16-bit range, unless the file only uses 8 bits
    scaled = (values - low) * (255 / (high - low)) if high > low else values * 0
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), "L")


def _is_8bit(image: Image.Image) -> bool:
    return image.mode in ("1", "L", "P", "LA", "PA", "La", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB",
                          "HSV")


def to_rgb(image: Image.Image) -> tuple[Image.Image, str]:
    """Any mode to 8-bit RGB, and what was done: deep greyscale rescaled, LAB through a colour profile,
    transparency composited onto white."""
    mode = image.mode
    if mode == "RGB":
        return image, "already RGB"
    if not _is_8bit(image):
        return _to_8bit(image).convert("RGB"), f"{mode} rescaled from its value range to 0–255, then RGB"
    if mode == "LAB":
        transform = ImageCms.buildTransform(ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"), "LAB",
                                            "RGB")
        return ImageCms.applyTransform(image, transform) or image, "LAB converted to sRGB through a colour profile"
    if mode in _ALPHA_MODES or (mode == "P" and "transparency" in image.info):
        rgba = _to_rgba(image)
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB"), f"{mode}: transparency composited onto white"
    return image.convert("RGB"), f"{mode} converted to RGB"


def _to_rgba(image: Image.Image) -> Image.Image:
    if image.mode == "La":  # premultiplied greyscale: Pillow converts it to LA only
        image = image.convert("LA")
    return image.convert("RGBA")


def display_copy(image: Image.Image, side: int = DISPLAY_SIDE) -> Image.Image:
    """A small 8-bit copy that any browser shows: L, RGB or RGBA (alpha kept), within ``side`` × ``side``."""
    scale = min(1.0, side / max(image.size))
    small = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                         Image.Resampling.BOX) if scale < 1 else image.copy()
    if small.mode in ("L", "RGB", "RGBA"):
        return small
    if small.mode in _ALPHA_MODES or (small.mode == "P" and "transparency" in small.info):
        return _to_rgba(small)
    return to_rgb(small)[0]


# The three ways in: an upload to classify, a file to verify, a file to train on ---------------------------


def open_image(payload: bytes, name: str = "image") -> tuple[Image.Image, list[Step]]:
    """Decode an uploaded file into an 8-bit RGB image, checking everything; return it and the steps taken."""
    decoded = decode(payload, name)
    width, height = decoded.size
    if width / height > MAX_ASPECT or height / width > MAX_ASPECT:
        raise ImageError(f"{name} is {width}×{height}: an aspect ratio over {MAX_ASPECT}:1 would be mostly "
                         "padding or cropped away. Crop it first.")
    steps = [Step("Decoded", f"{decoded.format} {decoded.mode} {width}×{height}", display_copy(decoded.image))]
    if decoded.reduced_by > 1:
        steps.append(Step("Reduced early", f"{width}×{height} → {decoded.image.width}×{decoded.image.height}: "
                          f"1/{decoded.reduced_by} while decoding and by box averaging, before any conversion"))
    image = upright(decoded)
    if decoded.orientation != 1:
        steps.append(Step("EXIF orientation", "rotated/flipped as the camera recorded", display_copy(image)))
    image, detail = to_rgb(image)
    steps.append(Step("Converted to RGB", detail, image))
    return image, steps


def verify_file(path: Path) -> tuple[int, int]:
    """Check that ``path`` is what its extension says, within the pixel limit, and decodes completely; its
    (width, height). Raises ImageError with the reason."""
    decoded = decode(path, path.name, min_side=64, check_extension=True)
    to_rgb(decoded.image)
    return decoded.size


def read_square(path: Path, size: int, channels: int) -> torch.Tensor:
    """Decode ``path`` (within the limits, reduced early, upright) and resize it to uint8 C × size × size."""
    image, _ = to_rgb(upright(decode(path, path.name, min_side=size)))
    picture = (image if channels == 3 else image.convert("L")).resize((size, size), Image.Resampling.BILINEAR)
    array = torch.frombuffer(bytearray(picture.tobytes()), dtype=torch.uint8)
    return array.view(size, size, channels).permute(2, 0, 1).contiguous()


# Model inputs -----------------------------------------------------------------------------------------------


RESAMPLING = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC,
              "nearest": Image.Resampling.NEAREST}


def prepare(image: Image.Image, resize: int, crop: int, mean: tuple[float, ...], std: tuple[float, ...],
            channels: int = 3, interpolation: str = "bilinear") -> Prepared:
    """Resize the shorter side (``interpolation``: as the weights were evaluated), centre-crop, normalise: each
    step kept for the inspector."""
    if interpolation not in RESAMPLING:
        raise InvalidArgumentError(f"Unknown interpolation {interpolation!r}: one of {', '.join(RESAMPLING)}.")
    steps = []
    width, height = image.size
    scale = resize / min(width, height)
    resized = image.resize((max(1, round(width * scale)), max(1, round(height * scale))), RESAMPLING[interpolation])
    steps.append(Step("Resized", f"shorter side {min(width, height)} → {resize} px ({interpolation}): "
                      f"{resized.width}×{resized.height}", resized))
    left, top = (resized.width - crop) // 2, (resized.height - crop) // 2
    cropped = resized.crop((left, top, left + crop, top + crop))
    steps.append(Step("Centre crop", f"{crop}×{crop} from the middle", cropped))
    if channels == 1:
        cropped = cropped.convert("L")
        steps.append(Step("Greyscale", "the model takes one channel", cropped))
    return Prepared(normalise(cropped, mean, std, steps), cropped, steps)


def normalise(image: Image.Image, mean: tuple[float, ...], std: tuple[float, ...], steps: list[Step]) -> torch.Tensor:
    """``image`` as a normalised 1 × C × H × W tensor; the step is recorded in ``steps``."""
    array = torch.as_tensor(np.array(image), dtype=torch.float32) / 255
    array = array.unsqueeze(-1) if array.dim() == 2 else array
    x = (array.permute(2, 0, 1) - torch.tensor(mean).view(-1, 1, 1)) / torch.tensor(std).view(-1, 1, 1)
    steps.append(Step("Normalised", f"(x / 255 − mean {tuple(round(m, 4) for m in mean)}) / std "
                      f"{tuple(round(s, 4) for s in std)} → tensor {tuple(x.shape)}, min {x.min():.3f}, "
                      f"max {x.max():.3f}, mean {x.mean():.3f}"))
    return x.unsqueeze(0)
