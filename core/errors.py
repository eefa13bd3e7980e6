"""Typed errors raised by the core; the UI turns each into a clear message."""

from __future__ import annotations


class ExplorerError(ValueError):
    """Base class of every error the core raises on bad input."""


class UnknownModelError(ExplorerError):
    """A model name that is not in the registry."""

    def __init__(self, name: str, valid: list[str]) -> None:
        self.name = name
        self.valid = valid
        super().__init__(f"Unknown model {name!r}. Valid names: {', '.join(valid)}.")


class InvalidArgumentError(ExplorerError):
    """An argument outside its allowed range (for example num_classes < 1)."""


class InputSizeError(ExplorerError):
    """An input image size the model cannot process."""

    def __init__(self, name: str, size: int, minimum: int, maximum: int | None) -> None:
        self.name = name
        self.size = size
        self.minimum = minimum
        self.maximum = maximum
        if size < minimum:
            reason = f"smaller than the smallest input it accepts, {minimum}×{minimum} px"
        else:
            reason = f"larger than the largest input it accepts, {maximum}×{maximum} px"
        super().__init__(f"{name} cannot take a {size}×{size} px input: that is {reason}.")
