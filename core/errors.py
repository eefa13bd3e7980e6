"""Typed errors raised by the core (the UI turns each into a clear message), and how a message quotes what a
user or a file named: quoted, cut to a length, a few at most."""

from __future__ import annotations

import re
from collections.abc import Iterable


class ExplorerError(ValueError):
    """Base class of every error the core raises on bad input."""


class UnknownModelError(ExplorerError):
    """A model name that is not in the registry."""

    def __init__(self, name: str, valid: list[str]) -> None:
        self.name = name
        self.valid = valid
        super().__init__(f"Unknown model {quoted(name)}. Valid names: {', '.join(valid)}.")


class InvalidArgumentError(ExplorerError):
    """An argument outside its allowed range (for example num_classes < 1)."""


class NonFiniteOutputError(ExplorerError):
    """A model whose outputs are not finite numbers (weights that overflow in its arithmetic)."""


class CancelledError(ExplorerError):
    """A long computation (an explanation, a sweep) stopped because its caller asked it to."""


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


# Quoting what a user or a file named, in a message of bounded size ----------------------------------------------

NAME_CHARACTERS = 80  # a quoted name is cut to about this many characters
NAMES_SHOWN = 4  # a message quotes at most this many names
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")  # terminal colour and cursor codes (torch prints bold headings)


def quoted(name: object, limit: int = NAME_CHARACTERS) -> str:
    """``name`` for a message: quoted, control characters escaped, and cut in the middle when long (a key or
    member name can be megabytes)."""
    text = str(name)
    if len(text) <= limit:
        return repr(text)
    head, tail = repr(text[: limit - 24])[1:-1], repr(text[-16:])[1:-1]  # escapes can lengthen each part
    return f"'{head[: limit - 24]}…{tail[-16:]}'"


def quoted_list(names: Iterable[object], shown: int = NAMES_SHOWN, limit: int = NAME_CHARACTERS) -> str:
    """At most ``shown`` names, each :func:`quoted`, then how many more: ``'a', 'b' and 3 more``."""
    names = list(names)
    listed = ", ".join(quoted(name, limit) for name in names[:shown])
    return listed + (f" and {len(names) - shown:,} more" if len(names) > shown else "")


def plain(text: object, limit: int = 200) -> str:
    """Library text for a message: terminal escape codes removed, whitespace collapsed, cut to ``limit``."""
    flat = " ".join(_ANSI.sub("", str(text)[: 4 * limit]).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
