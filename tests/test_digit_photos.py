"""Photos of handwritten digits on paper (generated: texture, uneven light, a shadow, noise, a perspective warp)
are cropped to the stroke, not the sheet, and classified nearly as well as the same digits drawn on the pad."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from core import data, digit_input, imaging
from tests import digit_photos

PHOTOS = 100  # 800×600 photos here: 1200×900 ones cost twice the time and tell the same


def _overlap(box: tuple[int, int, int, int], truth: tuple[int, int, int, int]) -> float:
    """Intersection over union of two (left, top, right, bottom) boxes."""
    width = max(0, min(box[2], truth[2]) - max(box[0], truth[0]))
    height = max(0, min(box[3], truth[3]) - max(box[1], truth[1]))
    area = lambda b: (b[2] - b[0]) * (b[3] - b[1])  # noqa: E731
    return width * height / (area(box) + area(truth) - width * height)


def test_the_crop_lands_on_the_stroke_not_the_sheet() -> None:
    rng = np.random.default_rng(7)
    test = data.digits().test
    for i in range(12):
        payload, truth = digit_photos.photo(test.images[i, 0].numpy(), rng)
        image, _ = imaging.open_image(payload, "photo.jpg")
        box = digit_input.stroke_box(image)
        assert _overlap(box, truth) > 0.6, (i, box, truth)
        names = [step.name for step in digit_input.digit_like_mnist(image, (0.1,), (0.3,)).steps]
        assert names[:5] == ["Greyscale", "Inverted", "Lighting evened", "Thresholded (Otsu)", "Cropped to the stroke"]


def test_a_drawing_on_black_touching_the_edge_is_kept_whole() -> None:
    drawing = Image.new("L", (280, 280), 0)
    drawing.paste(255, (0, 40, 30, 260))  # a "1" against the left edge
    assert digit_input.stroke_box(drawing.convert("RGB")) == (0, 40, 30, 260)


def test_blank_paper_is_empty() -> None:
    paper = np.random.default_rng(0).normal(220, 1, (300, 400)).clip(0, 255).astype(np.uint8)
    with pytest.raises(imaging.ImageError, match="empty"):
        digit_input.digit_like_mnist(Image.fromarray(paper, "L"), (0.1,), (0.3,))


def test_photos_are_classified_nearly_as_well_as_pad_drawings(digits_run: str) -> None:
    from explorer import services

    model = services.classifier(f"run:{digits_run}")
    test = data.digits().test
    rng = np.random.default_rng(1)
    pad, photos = [], []
    for i in range(PHOTOS):
        digit = test.images[i, 0].numpy()
        pad.append(digit_input.digit_like_mnist(digit_photos.pad_drawing(digit), model.mean, model.std).tensor)
        image, _ = imaging.open_image(digit_photos.photo(digit, rng, (800, 600))[0], "photo.jpg")
        photos.append(digit_input.digit_like_mnist(image, model.mean, model.std).tensor)
    labels = test.labels[:PHOTOS]
    with torch.no_grad():
        on_pad = (model.model(torch.cat(pad)).argmax(1) == labels).float().mean().item()
        on_paper = (model.model(torch.cat(photos)).argmax(1) == labels).float().mean().item()
    assert on_pad > 0.6, "the model learned the digits"
    assert on_paper >= 0.9 * on_pad, (on_paper, on_pad)


def test_the_classify_page_shows_each_step_of_a_photo(digits_run: str) -> None:
    from tests.apptest import open_page

    at = open_page("classify")
    at.selectbox(key="classify-model").set_value(f"run:{digits_run}").run()
    at.radio(key="classify-source").set_value("Upload").run()
    digit = data.digits().test.images[0, 0].numpy()
    payload, _ = digit_photos.photo(digit, np.random.default_rng(3))
    at.file_uploader(key="classify-upload").upload("digit on paper.jpg", payload, "image/jpeg").run()
    assert not at.exception and not at.error
    captions = " ".join(c.value for c in at.caption)
    for step in ("Greyscale", "Inverted", "Lighting evened", "Thresholded (Otsu)", "Cropped to the stroke",
                 "Centred by mass in 28×28"):
        assert f"**{step}**" in captions, step
