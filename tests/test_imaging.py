"""Uploaded images to tensors, every awkward or bad input; Grad-CAM and feature maps on known cases."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from core import digit_input, imaging
from core.errors import ExplorerError


def encode(image: Image.Image, format_: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format_, **options)
    return buffer.getvalue()


def test_a_photo_goes_through_every_step() -> None:
    image, steps = imaging.open_image(encode(Image.new("RGB", (320, 240), (200, 100, 50))), "photo.png")
    prepared = imaging.prepare(image, 256, 224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert prepared.tensor.shape == (1, 3, 224, 224)
    names = [s.name for s in steps + prepared.steps]
    assert names == ["Decoded", "Converted to RGB", "Resized", "Centre crop", "Normalised"]
    expected = (200 / 255 - 0.485) / 0.229
    assert prepared.tensor[0, 0, 0, 0].item() == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize(("payload", "message"), [
    (b"this is a text file, not a picture", "not an image"),
    (b"", "empty"),
])
def test_not_an_image(payload: bytes, message: str) -> None:
    with pytest.raises(imaging.ImageError, match=message):
        imaging.open_image(payload, "notes.txt")


def test_a_truncated_file() -> None:
    whole = encode(Image.effect_noise((200, 200), 60).convert("RGB"), "JPEG")
    with pytest.raises(imaging.ImageError, match="truncated or corrupt"):
        imaging.open_image(whole[: len(whole) // 3], "cut.jpg")


def test_a_decompression_bomb() -> None:
    bomb = encode(Image.new("1", (8000, 8000)))  # a few KB on disk, 64 million pixels decoded
    assert len(bomb) < 100_000
    with pytest.raises(imaging.ImageError, match="decompression bomb"):
        imaging.open_image(bomb, "bomb.png")


def test_an_extreme_aspect_ratio() -> None:
    with pytest.raises(imaging.ImageError, match="aspect ratio"):
        imaging.open_image(encode(Image.new("RGB", (3000, 20))), "strip.png")


def test_16_bit_greyscale_is_rescaled_not_clipped() -> None:
    values = np.array([[0, 30000], [50000, 65535]], dtype=np.uint16).repeat(8, 0).repeat(8, 1)
    source = Image.fromarray(values)
    assert source.mode.startswith("I;16")
    image, steps = imaging.open_image(encode(source), "scan.png")
    pixels = np.array(image)[:, :, 0]
    assert pixels.max() == 255 and pixels.min() == 0
    assert 100 < pixels[0, 8] < 130  # 30000 / 65535 × 255 ≈ 117, where convert() would give 255
    assert "rescaled" in steps[-1].detail


def test_32_bit_greyscale_is_rescaled() -> None:
    values = np.array([[-1000, 0], [1000, 3000]], dtype=np.int32).repeat(8, 0).repeat(8, 1)
    image, _ = imaging.open_image(encode(Image.fromarray(values, "I"), "TIFF"), "depth.tiff")
    pixels = np.array(image)[:, :, 0]
    assert (pixels.min(), pixels.max()) == (0, 255) and 0 < pixels[8, 0] < 255


def test_cmyk_and_transparency() -> None:
    cmyk = Image.new("CMYK", (40, 40), (0, 255, 255, 0))  # red in CMYK
    image, _ = imaging.open_image(encode(cmyk, "JPEG"), "print.jpg")
    red, green, blue = np.array(image)[20, 20]
    assert red > 200 and green < 60 and blue < 60
    rgba = Image.new("RGBA", (40, 40), (0, 0, 0, 0))  # fully transparent black
    image, steps = imaging.open_image(encode(rgba), "logo.png")
    assert tuple(np.array(image)[0, 0]) == (255, 255, 255) and "white" in steps[-1].detail
    palette = Image.new("P", (40, 40), 0)
    palette.putpalette([0, 0, 0] * 256)
    palette.info["transparency"] = 0
    image, _ = imaging.open_image(encode(palette, transparency=0), "icon.png")
    assert tuple(np.array(image)[0, 0]) == (255, 255, 255)


def test_gif_first_frame_and_exif_orientation() -> None:
    frames = [Image.new("RGB", (30, 20), colour) for colour in ("blue", "red")]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    image, _ = imaging.open_image(buffer.getvalue(), "anim.gif")
    assert np.array(image)[0, 0, 2] > 200  # blue: the first frame
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to view"
    image, steps = imaging.open_image(encode(Image.new("RGB", (60, 20), "green"), "JPEG", exif=exif), "phone.jpg")
    assert image.size == (20, 60) and any(s.name == "EXIF orientation" for s in steps)


def test_digits_follow_the_mnist_convention() -> None:
    drawing = Image.new("L", (200, 200), 0)
    drawing.paste(255, (20, 30, 60, 150))  # a thick off-centre "1"
    prepared = digit_input.digit_like_mnist(drawing.convert("RGB"), (0.1307,), (0.3081,))
    assert prepared.tensor.shape == (1, 1, 28, 28)
    pixels = np.array(prepared.display, dtype=float)
    rows, columns = np.nonzero(pixels > 30)
    assert max(rows.max() - rows.min(), columns.max() - columns.min()) + 1 <= 20
    centre = (pixels * np.arange(28)[:, None]).sum() / pixels.sum(), (pixels * np.arange(28)).sum() / pixels.sum()
    assert abs(centre[0] - 14) < 1 and abs(centre[1] - 14) < 1
    plain = digit_input.digit_like_mnist(drawing.convert("RGB"), (0.1307,), (0.3081,), convention=False)
    assert [s.name for s in plain.steps][-2] == "Resized"
    paper = Image.new("L", (100, 100), 255)
    paper.paste(0, (40, 20, 60, 80))  # dark ink on white paper is inverted
    assert any(s.name == "Inverted" for s in digit_input.digit_like_mnist(paper, (0.13,), (0.31,)).steps)


def test_an_empty_canvas() -> None:
    with pytest.raises(imaging.ImageError, match="empty"):
        digit_input.digit_like_mnist(Image.new("RGB", (200, 200), "black"), (0.1307,), (0.3081,))


# Hostile and careless images: every mode, every format's bomb and truncation ------------------------------------

from tests import hostile  # noqa: E402

SHOWABLE = ("L", "RGB", "RGBA")  # what st.image encodes without complaint


def _check_prepared(image: Image.Image, steps: list[imaging.Step]) -> None:
    assert image.mode == "RGB"
    prepared = imaging.prepare(image, 256, 224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert prepared.tensor.shape == (1, 3, 224, 224) and torch.isfinite(prepared.tensor).all()
    for step in steps + prepared.steps:
        if step.image is not None:
            assert step.image.mode in SHOWABLE, (step.name, step.image.mode)
            hostile.encode(step.image, "PNG" if step.image.mode == "RGBA" else "JPEG")  # what st.image does


@pytest.mark.parametrize(("mode", "format_"), hostile.FILE_MODES, ids=[f"{m}-{f}" for m, f in hostile.FILE_MODES])
def test_every_mode_pillow_decodes_classifies_and_displays(mode: str, format_: str) -> None:
    image, steps = imaging.open_image(hostile.image_file(mode, format_), f"x{hostile.EXTENSION[format_]}")
    _check_prepared(image, steps)
    pixels = np.array(image)
    assert pixels.max() - pixels.min() > 40, "the gradient survives the conversion (no clipping to one value)"


@pytest.mark.parametrize("mode", hostile.MEMORY_MODES)
def test_every_mode_in_memory_has_an_8_bit_display_copy(mode: str) -> None:
    source = hostile.gradient(mode)
    copy = imaging.display_copy(source)
    assert copy.mode in SHOWABLE and copy.size == source.size
    rgb, detail = imaging.to_rgb(source)
    assert rgb.mode == "RGB" and detail


@pytest.mark.parametrize("mode", ["I", "F", "I;16", "I;16B"])
def test_deep_greyscale_is_rescaled_in_display_copies_too(mode: str) -> None:
    copy = np.array(imaging.display_copy(hostile.gradient(mode)))
    assert copy.min() == 0 and copy.max() == 255


def test_float_images_with_nan_and_infinity() -> None:
    values = np.array([[np.nan, np.inf], [-np.inf, 1.5]], dtype=np.float32).repeat(8, 0).repeat(8, 1)
    image, steps = imaging.open_image(hostile.encode(Image.fromarray(values, "F"), "TIFF"), "odd.tiff")
    _check_prepared(image, steps)


@pytest.mark.parametrize("format_", list(hostile.CLAIMS))
@pytest.mark.parametrize("claim", [(20000, 20000), (7000, 7000)], ids=["far over", "just over"])
def test_a_header_bomb_in_every_format_is_refused_before_decoding(format_: str, claim: tuple[int, int]) -> None:
    payload = hostile.claims(format_, *claim)
    assert len(payload) < 10_000
    with pytest.raises(imaging.ImageError, match="pixels"):
        imaging.open_image(payload, f"bomb{hostile.EXTENSION[format_]}")
    with pytest.raises(imaging.ImageError):
        imaging.decode(payload, "bomb")
    _check_prepared(*imaging.open_image(hostile.image_file("RGB", "PNG"), "good.png"))  # and the next one works


def test_a_real_13000_square_png_is_refused_from_its_header() -> None:
    payload = hostile.png_stream(13000, 13000)
    assert len(payload) < 100_000
    with pytest.raises(imaging.ImageError, match="more than 40,000,000 pixels"):
        imaging.open_image(payload, "huge.png")


@pytest.mark.parametrize("format_", ["PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP"])
def test_a_truncated_file_in_every_format(format_: str) -> None:
    with pytest.raises(imaging.ImageError, match="truncated or corrupt|not an image"):
        imaging.open_image(hostile.truncated(format_), f"cut{hostile.EXTENSION[format_]}")


@pytest.mark.parametrize(("payload", "name"), [
    (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", "drawing.eps"),  # would start Ghostscript
    (hostile.encode(Image.new("RGB", (8, 8)), "PPM"), "x.ppm"),
    (hostile.encode(Image.new("RGB", (8, 8)), "ICO"), "x.ico"),
])
def test_formats_outside_the_list_are_not_opened(payload: bytes, name: str) -> None:
    with pytest.raises(imaging.ImageError, match="not an image"):
        imaging.open_image(payload, name)


def test_a_large_image_is_reduced_before_any_conversion() -> None:
    image, steps = imaging.open_image(hostile.encode(Image.new("RGBA", (3000, 2400), (10, 200, 30, 128))), "big.png")
    assert min(image.size) >= imaging.WORK_SIDE and min(image.size) < 2 * imaging.WORK_SIDE
    assert [s.name for s in steps] == ["Decoded", "Reduced early", "Converted to RGB"]
    assert max(steps[0].image.size) <= imaging.DISPLAY_SIDE
    photo = hostile.encode(Image.effect_noise((4000, 3000), 40).convert("RGB"), "JPEG")
    decoded = imaging.decode(photo, "photo.jpg")
    assert decoded.size == (4000, 3000) and decoded.reduced_by == 2 and decoded.image.size == (2000, 1500)


def test_what_the_extension_says_is_checked_for_folder_files(tmp_path) -> None:
    good = tmp_path / "good.png"
    good.write_bytes(hostile.image_file("RGB", "PNG"))
    assert imaging.verify_file(good) == (48, 32)
    for name, payload, message in [("wrong.jpg", hostile.png(), "as JPEG"), ("notes.png", b"text", "as PNG"),
                                   ("cut.jpg", hostile.truncated("JPEG"), "truncated"),
                                   ("huge.png", hostile.claims("PNG"), "pixels"), ("empty.png", b"", "as PNG")]:
        path = tmp_path / name
        path.write_bytes(payload)
        with pytest.raises(imaging.ImageError, match=message):
            imaging.verify_file(path)
        assert str(tmp_path) not in str(pytest.raises(imaging.ImageError, imaging.verify_file, path).value)


@pytest.mark.parametrize(("mode", "format_"), [("I;16", "PNG"), ("F", "TIFF"), ("RGBA", "PNG"), ("P", "GIF")])
def test_training_reads_any_mode_at_its_size(tmp_path, mode: str, format_: str) -> None:
    path = tmp_path / f"x{hostile.EXTENSION[format_]}"
    path.write_bytes(hostile.image_file(mode, format_, (300, 200)))
    square = imaging.read_square(path, 64, 3)
    assert square.shape == (3, 64, 64) and square.dtype == torch.uint8 and int(square.max() - square.min()) > 40
    assert imaging.read_square(path, 28, 1).shape == (1, 28, 28)


@pytest.mark.parametrize("name", ["resnet50", "efficientnet_b0"])
def test_an_image_is_prepared_as_torchvisions_evaluation_transform_prepares_it(name: str) -> None:
    """EfficientNet's weights were evaluated on a bicubic resize, ResNet's on a bilinear one: the app follows each."""
    from core import models, weights

    info = weights.pretrained(name)
    assert info is not None
    generator = np.random.default_rng(0)
    image = Image.fromarray(generator.integers(0, 256, (300, 400, 3), dtype=np.uint8))  # 256×341 after the resize
    ours = imaging.prepare(image, info.resize, info.crop, info.mean, info.std, 3, info.interpolation).tensor
    enum = models.spec(name).pretrained.torchvision_weights
    theirs = weights._torchvision_enum(enum).transforms()(image).unsqueeze(0)
    assert info.interpolation == ("bicubic" if name == "efficientnet_b0" else "bilinear")
    torch.testing.assert_close(ours, theirs, atol=2e-2, rtol=0)  # uint8 rounding after the resize: one level
    with pytest.raises(ExplorerError):
        imaging.prepare(image, 256, 224, info.mean, info.std, 3, "lanczos-ish")
