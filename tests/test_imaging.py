"""Uploaded images to tensors, every awkward or bad input; Grad-CAM and feature maps on known cases."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from core import explain, imaging


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
    prepared = imaging.digit_like_mnist(drawing.convert("RGB"), (0.1307,), (0.3081,))
    assert prepared.tensor.shape == (1, 1, 28, 28)
    pixels = np.array(prepared.display, dtype=float)
    rows, columns = np.nonzero(pixels > 30)
    assert max(rows.max() - rows.min(), columns.max() - columns.min()) + 1 <= 20
    centre = (pixels * np.arange(28)[:, None]).sum() / pixels.sum(), (pixels * np.arange(28)).sum() / pixels.sum()
    assert abs(centre[0] - 14) < 1 and abs(centre[1] - 14) < 1
    plain = imaging.digit_like_mnist(drawing.convert("RGB"), (0.1307,), (0.3081,), convention=False)
    assert [s.name for s in plain.steps][-2] == "Resized"
    paper = Image.new("L", (100, 100), 255)
    paper.paste(0, (40, 20, 60, 80))  # dark ink on white paper is inverted
    assert any(s.name == "Inverted" for s in imaging.digit_like_mnist(paper, (0.13,), (0.31,)).steps)


def test_an_empty_canvas() -> None:
    with pytest.raises(imaging.ImageError, match="empty"):
        imaging.digit_like_mnist(Image.new("RGB", (200, 200), "black"), (0.1307,), (0.3081,))


class Planted(nn.Module):
    """Class 0 scores the brightness of the input: Grad-CAM must point at the bright patch."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 1, bias=False)
        nn.init.ones_(self.conv.weight)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(1, 2, bias=False)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[1.0], [-1.0]]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(torch.relu(self.conv(x))).flatten(1))


def test_grad_cam_peaks_where_the_pattern_is() -> None:
    x = torch.zeros(1, 1, 32, 32)
    x[0, 0, 4:10, 20:28] = 1.0  # the planted pattern
    heat = explain.grad_cam(Planted(), x, "conv", class_index=0)
    row, column = divmod(int(heat.argmax()), 32)
    assert 4 <= row < 10 and 20 <= column < 28
    assert heat.max() == 1.0 and heat[20:, :10].max() == 0
    assert explain.conv_layers(Planted()) == ["conv"]


def test_predictions_and_feature_maps() -> None:
    model = Planted()
    x = torch.zeros(1, 1, 16, 16)
    x[0, 0, :4, :4] = 1
    prediction = explain.predict(model, x, ["bright", "dark"], k=5)
    assert prediction.top[0][0] == "bright" and sum(p for _, p in prediction.top) == pytest.approx(1)
    assert prediction.latency_ms > 0
    maps = explain.feature_maps(model, x, "conv")
    assert maps.shape == (1, 16, 16) and maps.max() == 1
    with pytest.raises(ValueError, match="no layer"):
        explain.feature_maps(model, x, "nope")
    blended = explain.overlay(torch.zeros(16, 16, 3, dtype=torch.uint8), maps[0])
    assert blended.dtype == torch.uint8 and blended[0, 0, 0] > 0


def test_the_default_grad_cam_layer_keeps_a_spatial_map() -> None:
    from core import models

    lenet = models.build("lenet5").eval()
    assert explain.default_cam_layer(lenet, torch.zeros(1, 1, 28, 28)) == "features.3"  # conv3 is 1×1
    assert explain.default_cam_layer(Planted(), torch.zeros(1, 1, 8, 8)) == "conv"
