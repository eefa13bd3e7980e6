"""Small helpers the tests share (fixtures live in conftest.py): waiting on a condition, making files."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(condition: Callable[[], T], timeout: float, what: str, poll: float = 0.1) -> T:
    """Call ``condition`` until it returns something truthy and return that; after ``timeout`` seconds raise
    ``TimeoutError("waited {timeout}s for {what}")``.

    The poll interval is a pause between checks, never a guess of how long something takes.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:g}s for {what}")
        time.sleep(poll)


def png(colour: str = "red", size: tuple[int, int] = (12, 10)) -> bytes:
    """A small PNG of one colour."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()
