"""Every model's receptive field, proven against an independent measurement: the input-gradient footprint.

With every weight a positive constant, biases zero, batch norm the identity and max-pooling replaced by
average pooling (max routes the gradient of ties to one input), the network is linear and positive on a
positive input: the gradient of one output position reaches exactly the input pixels in its receptive field.
The analysis propagates fields symbolically on the meta device; this measures them with real arithmetic.

To keep it quick, each axis is measured on an input that is tall along that axis (the field plus a margin)
and as narrow as the model accepts along the other: kernels, padding and pooling are products of a row and a
column part, so the rows a gradient reaches do not depend on how many columns there are.

The narrow side is at least ``NARROW`` pixels: on a 1-pixel-wide input most of each kernel's mass falls on
padding, and in float32 the gradient of ResNet-152's outermost pixels (a path through ~50 3×3 kernels)
underflows to zero, measuring 1419 px instead of 1451; 32 pixels keep it well inside float32's range.
Minutes on two busy CPU cores, hence ``slow`` (``-m "not slow"`` skips it).
"""

from __future__ import annotations

import pytest

from core import models
from core.analysis import summarize
from core.models.registry import input_size_range
from tests.conftest import NAMES
from tests.footprint import MARGIN, NARROW
from tests.footprint import footprint as _footprint
from tests.footprint import linearised as _linearised


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_receptive_field_equals_the_measured_gradient_footprint(name: str) -> None:
    height, width = summarize(name).receptive_field
    assert height == width  # every registered network is square, so is its field
    model = _linearised(name)
    channels, narrow = models.spec(name).in_channels, max(input_size_range(name)[0], NARROW)
    tall = height + 2 * MARGIN
    top, bottom, _, _ = _footprint(model, channels, tall, narrow)
    _, _, left, right = _footprint(model, channels, narrow, tall)
    assert 0 < top and bottom < tall - 1 and 0 < left and right < tall - 1, "the input clips the field: enlarge it"
    assert (bottom - top + 1, right - left + 1) == (height, width)


def test_inception_v3_sees_1311_pixels_square() -> None:
    """The figure the Distill article "Computing Receptive Fields of CNNs" (2019) publishes for Inception-v3."""
    assert summarize("inception_v3").receptive_field == (1311, 1311)
