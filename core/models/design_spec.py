"""The design-your-own text spec: a typed design (frozen dataclasses), its parser and its canonical text.

A spec lists layers in the spirit of VGG's config lists and ConvNetJS's ``layer_defs``, one statement per
``;`` or line::

    name lenet; input 1x28x28; conv 6 k5 p2; maxpool 2; conv 16 k5; maxpool 2; conv 120 k5; fc 84; fc 10

Statements: ``name WORD``, ``input CxHxW``, ``conv OUT kK sS pP [bn] [linear|relu]``, ``maxpool K [sS] [pP]``,
``avgpool K [sS] [pP]``, ``gap`` (global average pool), ``bn``, ``relu``, ``dropout P``,
``fc OUT [linear|relu]``, ``residual { … }`` and ``parallel { … | … }`` (branches concatenated along channels).

Activations: every ``conv`` and ``fc`` is followed by a ReLU unless it says ``linear``, except the last
``fc`` (the classifier) and the last layer of a residual body (the ReLU comes after the addition), which
are linear unless they say ``relu``. ``bn`` on a conv puts batch norm between the convolution and its ReLU.

Any text is safe input: the parser bounds the text's length, the number of layers, the nesting and every
number before it builds anything, and raises :class:`DesignError` (never another exception).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from core.errors import ExplorerError, quoted

MAX_TEXT = 20_000  # characters of spec text
MAX_LAYERS = 200  # statements, counting those inside blocks
MAX_DEPTH = 4  # nesting of residual/parallel blocks
MAX_CHANNELS = 4096
MAX_FEATURES = 65_536  # outputs of a dense layer
MAX_KERNEL = 31
MAX_STRIDE = 16
MAX_INPUT_SIDE = 512
MAX_INPUT_CHANNELS = 16
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,40}")
_INT = re.compile(r"[0-9]{1,9}")
_FRACTION = re.compile(r"0|0?\.[0-9]{1,6}")
_OPTION = re.compile(r"([a-z])([0-9]{1,9})")
_SPECIAL = "{}|;"


class DesignError(ExplorerError):
    """A design spec that cannot be parsed, does not fit together, or exceeds a bound.

    ``layer`` names the layer (``conv3``) or statement at fault, ``line``/``column`` say where (1-based;
    0 when the fault is the whole text), ``cause`` says why.
    """

    def __init__(self, cause: str, layer: str = "", line: int = 0, column: int = 0) -> None:
        self.cause, self.layer, self.line, self.column = cause, layer, line, column
        where = f" (line {line}, column {column})" if line else ""
        super().__init__(f"{layer}{where}: {cause}" if layer else f"{cause}{where}")


Position = tuple[int, int]
_AT = field(default=(0, 0), compare=False, repr=False)


@dataclass(frozen=True)
class Conv:
    """A 2-D convolution (``out`` channels, square ``kernel``), optionally batch norm, then ReLU."""

    out: int
    kernel: int
    stride: int = 1
    padding: int = 0
    bn: bool = False
    relu: bool = True
    at: Position = _AT


@dataclass(frozen=True)
class Pool:
    """Max or average pooling (``kind`` is ``"max"`` or ``"avg"``)."""

    kind: str
    kernel: int
    stride: int
    padding: int = 0
    at: Position = _AT


@dataclass(frozen=True)
class GlobalPool:
    """Global average pooling to 1×1."""

    at: Position = _AT


@dataclass(frozen=True)
class BatchNorm:
    """Batch norm over the channels of a feature map."""

    at: Position = _AT


@dataclass(frozen=True)
class Relu:
    """A standalone ReLU."""

    at: Position = _AT


@dataclass(frozen=True)
class Dropout:
    """Dropout with probability ``p`` (0 ≤ p < 1)."""

    p: float
    at: Position = _AT


@dataclass(frozen=True)
class Dense:
    """A fully connected layer (flattening the map before the first one)."""

    out: int
    relu: bool = True
    at: Position = _AT


@dataclass(frozen=True)
class Residual:
    """``relu(body(x) + shortcut(x))``; the shortcut is a 1×1 projection when shapes differ."""

    body: tuple[Layer, ...]
    at: Position = _AT


@dataclass(frozen=True)
class Parallel:
    """Branches applied to the same input, concatenated along the channels."""

    branches: tuple[tuple[Layer, ...], ...]
    at: Position = _AT


Layer = Conv | Pool | GlobalPool | BatchNorm | Relu | Dropout | Dense | Residual | Parallel


@dataclass(frozen=True)
class Design:
    """A named network: input shape (C, H, W) and its layers."""

    name: str
    input: tuple[int, int, int]
    layers: tuple[Layer, ...]


@dataclass(frozen=True)
class _Token:
    text: str
    line: int
    column: int


def _tokens(text: str) -> list[_Token]:
    """Split ``text`` into words and the special characters ``{ } | ;`` (a newline counts as ``;``)."""
    tokens: list[_Token] = []
    for line_no, line in enumerate(text.split("\n"), start=1):
        for match in re.finditer(r"[{}|;]|[^\s{}|;]+", line):
            tokens.append(_Token(match.group(), line_no, match.start() + 1))
        tokens.append(_Token(";", line_no, len(line) + 1))
    return tokens


def _fail(token: _Token, cause: str, layer: str = "") -> DesignError:
    return DesignError(cause, layer or quoted(token.text, 40), token.line, token.column)


def _int(token: _Token, text: str, what: str, low: int, high: int, layer: str) -> int:
    if not _INT.fullmatch(text):
        raise _fail(token, f"{what} must be a whole number from {low} to {high}, got {quoted(text, 40)}", layer)
    value = int(text)
    if not low <= value <= high:
        raise _fail(token, f"{what} must be from {low} to {high}, got {value:,}", layer)
    return value


_Statement = tuple[Layer, bool]  # a layer and whether its relu/linear was written


class _Parser:
    """Recursive descent over the tokens; counts statements and nesting as it goes."""

    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens, self.i, self.count = tokens, 0, 0
        self.name: str | None = None
        self.input: tuple[int, int, int] | None = None

    def peek(self) -> _Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def sequence(self, depth: int, end: str, linear_last: type | None) -> tuple[Layer, ...]:
        """Layers up to one of ``end`` (not consumed); the last ``linear_last`` layer defaults to linear."""
        found: list[_Statement] = []
        while (token := self.peek()) is not None and token.text not in end:
            if token.text == ";":
                self.i += 1
                continue
            if token.text in _SPECIAL:
                raise _fail(token, "is out of place here")
            words: list[_Token] = []
            while (word := self.peek()) is not None and word.text not in _SPECIAL:
                words.append(word)
                self.i += 1
            self.count += 1
            if self.count > MAX_LAYERS:
                raise _fail(words[0], f"a design has at most {MAX_LAYERS} layers")
            statement = self.statement(words, depth)
            if statement is not None:
                found.append(statement)
        return _resolve(found, linear_last)

    def statement(self, words: list[_Token], depth: int) -> _Statement | None:
        head, kind = words[0], words[0].text.lower()
        if kind in ("residual", "parallel"):
            if len(words) > 1:
                raise _fail(words[1], f"{kind} takes no options, only a block in braces", kind)
            return self.block(head, kind, depth + 1), False
        if kind in ("name", "input"):
            if depth or self.count > 2 or getattr(self, kind) is not None:
                raise _fail(head, f"{kind} may appear once, at the start of the design", kind)
            if len(words) != 2:
                raise _fail(head, f"{kind} takes one value", kind)
            if kind == "name":
                if not _NAME.fullmatch(words[1].text):
                    raise _fail(words[1], "a name is 1 to 40 letters, digits, '_', '.' or '-'", "name")
                self.name = words[1].text
            else:
                self.input = _input(words[1])
            return None
        return _layer(kind, words)

    def block(self, head: _Token, kind: str, depth: int) -> Layer:
        """Parse ``{ … }`` after ``head``: a residual body or parallel branches."""
        opening = self.peek()
        if opening is None or opening.text != "{":
            raise _fail(head, f"{kind} needs a block in braces: {kind} {{ … }}", kind)
        if depth > MAX_DEPTH:
            raise _fail(head, f"blocks nest at most {MAX_DEPTH} deep", kind)
        self.i += 1
        branches = [self.sequence(depth, "|}", Conv if kind == "residual" else None)]
        while (token := self.peek()) is not None and token.text == "|":
            self.i += 1
            branches.append(self.sequence(depth, "|}", None))
        if self.peek() is None:
            raise _fail(head, "its block has no closing }", kind)
        self.i += 1
        if any(not branch for branch in branches):
            raise _fail(head, "every part of its block needs at least one layer", kind)
        if kind == "residual":
            if len(branches) > 1:
                raise _fail(head, "a residual block has one body; use parallel for branches", kind)
            return Residual(branches[0], at=(head.line, head.column))
        return Parallel(tuple(branches), at=(head.line, head.column))


def _resolve(found: list[_Statement], linear_last: type | None) -> tuple[Layer, ...]:
    """Give unwritten relu flags their defaults: on, except for the last ``linear_last`` layer."""
    layers = [layer for layer, _ in found]
    last = len(layers) - 1 if layers and linear_last is not None and isinstance(layers[-1], linear_last) else -1
    for index, (layer, written) in enumerate(found):
        if isinstance(layer, (Conv, Dense)) and not written:
            layers[index] = replace(layer, relu=index != last)
    return tuple(layers)


def _input(token: _Token) -> tuple[int, int, int]:
    parts = token.text.lower().split("x")
    if len(parts) != 3:
        raise _fail(token, "input is CxHxW, e.g. 1x28x28", "input")
    channels = _int(token, parts[0], "input channels", 1, MAX_INPUT_CHANNELS, "input")
    height = _int(token, parts[1], "input height", 1, MAX_INPUT_SIDE, "input")
    width = _int(token, parts[2], "input width", 1, MAX_INPUT_SIDE, "input")
    return channels, height, width


def _layer(kind: str, words: list[_Token]) -> _Statement:
    """One plain layer from its words."""
    head, at = words[0], (words[0].line, words[0].column)
    if kind in ("bn", "relu", "gap") and len(words) > 1:
        raise _fail(words[1], f"{kind} takes no options", kind)
    if kind == "bn":
        return BatchNorm(at=at), False
    if kind == "relu":
        return Relu(at=at), False
    if kind == "gap":
        return GlobalPool(at=at), False
    if kind == "dropout":
        if len(words) != 2 or not _FRACTION.fullmatch(words[-1].text):
            raise _fail(words[-1], "dropout takes one probability from 0 to below 1, e.g. dropout 0.5", kind)
        return Dropout(float(words[1].text), at=at), False
    if kind in ("conv", "fc", "maxpool", "avgpool"):
        if len(words) < 2:
            raise _fail(head, f"{kind} needs a size, e.g. {kind} {'2' if 'pool' in kind else '16'}", kind)
        return _sized(kind, words, at)
    raise _fail(head, "unknown layer (expected conv, maxpool, avgpool, gap, bn, relu, dropout, fc, residual, "
                "parallel, input or name)")


def _sized(kind: str, words: list[_Token], at: Position) -> _Statement:
    """conv, fc and the pools: a first number, then options."""
    first = words[1]
    if kind == "fc":
        out = _int(first, first.text, "fc's outputs", 1, MAX_FEATURES, kind)
        flags = _options(words[2:], kind, "", ("linear", "relu"))
        return Dense(out, relu="linear" not in flags, at=at), bool(flags)
    if kind == "conv":
        out = _int(first, first.text, "conv's channels", 1, MAX_CHANNELS, kind)
        opts = _options(words[2:], kind, "ksp", ("bn", "linear", "relu"))
        if "k" not in opts:
            raise _fail(first, "conv needs a kernel size, e.g. conv 16 k3", kind)
        kernel = _int(first, str(opts["k"]), "kernel", 1, MAX_KERNEL, kind)
        stride = _int(first, str(opts.get("s", 1)), "stride", 1, MAX_STRIDE, kind)
        padding = _int(first, str(opts.get("p", 0)), "padding", 0, MAX_KERNEL, kind)
        written = "linear" in opts or "relu" in opts
        return Conv(out, kernel, stride, padding, "bn" in opts, "linear" not in opts, at=at), written
    size = first.text[1:] if first.text.startswith("k") else first.text
    kernel = _int(first, size, "pool size", 1, MAX_KERNEL, kind)
    opts = _options(words[2:], kind, "sp", ())
    stride = _int(first, str(opts.get("s", kernel)), "stride", 1, MAX_STRIDE, kind)
    padding = _int(first, str(opts.get("p", 0)), "padding", 0, kernel // 2, kind)
    return Pool(kind[:3], kernel, stride, padding, at=at), False


def _options(words: list[_Token], layer: str, allowed: str, flags: tuple[str, ...]) -> dict[str, str]:
    """``k5 s2 p1`` and flag words after the first argument, each at most once."""
    found: dict[str, str] = {}
    for word in words:
        if word.text in flags:
            key, value = word.text, word.text
        elif (match := _OPTION.fullmatch(word.text)) and match.group(1) in allowed:
            key, value = match.group(1), match.group(2)
        else:
            expected = ", ".join([f"{c}N" for c in allowed] + list(flags)) or "none"
            raise _fail(word, f"unknown option {quoted(word.text, 40)} (expected {expected})", layer)
        if key in found or key in ("linear", "relu") and ("linear" in found or "relu" in found):
            raise _fail(word, f"option {quoted(word.text, 40)} repeats or contradicts another", layer)
        found[key] = value
    return found


def parse(text: str) -> Design:
    """Parse a spec into a :class:`Design`; raise :class:`DesignError` on anything wrong with it."""
    if not isinstance(text, str):
        raise DesignError(f"a design is text, got {type(text).__name__}")
    if len(text) > MAX_TEXT:
        raise DesignError(f"a design is at most {MAX_TEXT:,} characters, got {len(text):,}")
    parser = _Parser(_tokens(text))
    layers = parser.sequence(0, "", Dense)
    if not layers:
        raise DesignError("the design has no layers (e.g. input 1x28x28; conv 8 k3; fc 10)")
    if parser.input is None:
        raise DesignError("the design needs an input statement first, e.g. input 1x28x28")
    return Design(parser.name or "design", parser.input, layers)


def _format_layer(layer: Layer, linear_default: bool) -> str:
    if isinstance(layer, Conv):
        text = f"conv {layer.out} k{layer.kernel}"
        text += f" s{layer.stride}" * (layer.stride != 1) + f" p{layer.padding}" * (layer.padding != 0)
        text += " bn" * layer.bn
        return text + _relu_word(layer.relu, linear_default)
    if isinstance(layer, Dense):
        return f"fc {layer.out}" + _relu_word(layer.relu, linear_default)
    if isinstance(layer, Pool):
        text = f"{layer.kind}pool {layer.kernel}"
        return text + f" s{layer.stride}" * (layer.stride != layer.kernel) + f" p{layer.padding}" * (layer.padding != 0)
    if isinstance(layer, Dropout):
        return "dropout " + (f"{layer.p:.6f}".rstrip("0").rstrip(".") or "0")
    if isinstance(layer, Residual):
        return "residual { " + _format_sequence(layer.body, Conv) + " }"
    if isinstance(layer, Parallel):
        return "parallel { " + " | ".join(_format_sequence(branch, None) for branch in layer.branches) + " }"
    return {BatchNorm: "bn", Relu: "relu", GlobalPool: "gap"}[type(layer)]


def _relu_word(relu: bool, linear_default: bool) -> str:
    if relu == (not linear_default):
        return ""
    return " relu" if relu else " linear"


def _format_sequence(layers: tuple[Layer, ...], linear_last: type | None) -> str:
    last = len(layers) - 1 if linear_last is not None and layers and isinstance(layers[-1], linear_last) else -1
    return "; ".join(_format_layer(layer, index == last) for index, layer in enumerate(layers))


def format_design(design: Design) -> str:
    """The canonical one-line text of ``design``: ``parse(format_design(d)) == d`` (for ``?design=``)."""
    channels, height, width = design.input
    return f"name {design.name}; input {channels}x{height}x{width}; " + _format_sequence(design.layers, Dense)
