"""What a model sees: top-k predictions with latency, Grad-CAM in a perceptual colour map, feature maps of any
layer, and one image followed stage by stage with the receptive field of every position.

Each function runs on the device the model lives on (the image is moved there) and returns CPU tensors.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from core import devices
from core.analysis import tensors_in
from core.errors import InvalidArgumentError, NonFiniteOutputError
from core.models.base import ExplorerModel


@dataclass(frozen=True)
class Prediction:
    """Top-k classes with probabilities, and how long the forward pass took."""

    top: list[tuple[str, float]]
    class_index: int
    latency_ms: float


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's parameters (CPU for a model without any)."""
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def _forward_hooked(model: nn.Module, x: torch.Tensor, hooks: list[tuple[nn.Module, Callable]]) -> torch.Tensor:
    """Run ``x`` through ``model`` in eval mode on the model's device with forward ``hooks`` on the given
    modules, and remove the hooks again however the pass ends."""
    handles = [module.register_forward_hook(hook) for module, hook in hooks]
    model.eval()
    try:
        return model(x.to(model_device(model)))
    finally:
        for handle in handles:
            handle.remove()


def conv_layers(model: nn.Module) -> list[str]:
    """The layers Grad-CAM and the feature maps may read: those the model declares (``structure().cam_layers``,
    its convolutions in registration order); for a bare module, its convolutions."""
    declared = model.structure().cam_layers if isinstance(model, ExplorerModel) else None
    return list(declared) if declared is not None else [
        name for name, module in model.named_modules() if isinstance(module, nn.Conv2d)]


def conv_titles(model: nn.Module) -> dict[str, str]:
    """Each convolution's name as a reader meets it in a list: its place, PyTorch's name and what it holds, e.g.
    ``"conv 1 of 3 · features.0 (6 filters, 5×5)"``."""
    convs = [(name, module) for name, module in model.named_modules() if isinstance(module, nn.Conv2d)]
    titles = {}
    for i, (name, conv) in enumerate(convs, 1):
        height, width = conv.kernel_size
        filters = "1 filter" if conv.out_channels == 1 else f"{conv.out_channels:,} filters"
        titles[name] = f"conv {i} of {len(convs)} · {name} ({filters}, {height}×{width})"
    return titles


@torch.no_grad()
def default_cam_layer(model: nn.Module, x: torch.Tensor) -> str:
    """Grad-CAM's default: the last of its layers (:func:`conv_layers`) whose output still has a spatial map."""
    sizes: dict[str, int] = {}
    layers = conv_layers(model)
    _forward_hooked(model, x, [(model.get_submodule(name),
                                lambda m, i, o, name=name: sizes.__setitem__(name, o.shape[-1] * o.shape[-2]))
                               for name in layers])
    spatial = [name for name in layers if sizes.get(name, 0) > 1]
    return spatial[-1] if spatial else layers[-1]


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, classes: list[str] | tuple[str, ...], k: int = 5) -> Prediction:
    """Softmax top-k of one image (eval mode), timed on the model's device (the clock waits for the device)."""
    model.eval()
    device = model_device(model)
    x = x.to(device)
    devices.synchronize(device)
    start = time.perf_counter()
    logits = model(x)
    devices.synchronize(device)
    elapsed = (time.perf_counter() - start) * 1000
    if not bool(torch.isfinite(logits).all()):  # finite weights can still overflow (1e38 in float32): no "nan %"
        raise NonFiniteOutputError("The model's outputs for this image are not finite numbers (NaN or ±inf): its "
                                   "weights overflow in its arithmetic, so it cannot classify.")
    probabilities = logits.float().softmax(1)[0].cpu()
    values, indices = probabilities.topk(min(k, len(classes)))
    return Prediction([(classes[i], float(v)) for v, i in zip(values, indices.tolist(), strict=True)],
                      int(indices[0]), elapsed)


def _capture(model: nn.Module, layer: str):
    try:
        return model.get_submodule(layer)
    except AttributeError:
        raise InvalidArgumentError(f"The model has no layer {layer!r}.") from None


def target_class(logits: torch.Tensor, class_index: int | None) -> int:
    """``class_index``, or the top class of ``logits`` when None; an index the model lacks is refused."""
    if class_index is None:
        return int(logits[0].argmax())
    if not 0 <= class_index < logits.shape[1]:
        raise InvalidArgumentError(f"The model has {logits.shape[1]} classes; there is no class {class_index}.")
    return class_index


def activation_and_gradient(model: nn.Module, x: torch.Tensor, layer: str,
                            class_index: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """``layer``'s output (1 × C × h × w) and the class score's gradient there (default: the top class)."""
    module = _capture(model, layer)
    store: dict[str, torch.Tensor] = {}

    def keep(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        output.register_hook(lambda grad: store.__setitem__("grad", grad))
        store["activation"] = output

    with torch.enable_grad():
        x = x.to(model_device(model)).detach().requires_grad_(True)
        logits = _forward_hooked(model, x, [(module, keep)])
        torch.autograd.grad(logits[0, target_class(logits, class_index)], x)  # no parameter gradients left behind
    return store["activation"].detach(), store["grad"].detach()


def scaled_cam(cam: torch.Tensor, size: torch.Size) -> torch.Tensor:
    """A class activation map (h × w, positive evidence only) upsampled to ``size`` and scaled to [0, 1]."""
    cam = F.interpolate(F.relu(cam)[None, None], size=size, mode="bilinear", align_corners=False)[0, 0].cpu()
    return cam / cam.max() if cam.max() > 0 else cam


def grad_cam(model: nn.Module, x: torch.Tensor, layer: str, class_index: int | None = None) -> torch.Tensor:
    """Grad-CAM heat map (H × W of the input, values in [0, 1]) for ``class_index`` (default: the top class).

    Weights each channel of ``layer``'s output by the mean gradient of the class score, keeps the
    positive evidence (ReLU), and upsamples to the input size.
    """
    activation, gradient = activation_and_gradient(model, x, layer, class_index)
    weights = gradient.mean(dim=(2, 3), keepdim=True)
    return scaled_cam((weights * activation).sum(1)[0], x.shape[-2:])


@torch.no_grad()
def feature_maps(model: nn.Module, x: torch.Tensor, layer: str, limit: int = 32) -> torch.Tensor:
    """The first ``limit`` channels of ``layer``'s output (C × h × w), each scaled to [0, 1]."""
    module = _capture(model, layer)
    store: dict[str, torch.Tensor] = {}
    _forward_hooked(model, x, [(module, lambda _m, _i, output: store.__setitem__("maps", output))])
    maps = store["maps"][0, :limit].float().cpu()
    low = maps.amin(dim=(1, 2), keepdim=True)
    high = maps.amax(dim=(1, 2), keepdim=True)
    return (maps - low) / (high - low).clamp(min=1e-8)


# Colour maps as 17 evenly spaced stops, interpolated linearly: "turbo" (Google's improved rainbow: blue → green →
# yellow → red, readable on warm and cold photos alike) and "inferno" (perceptually uniform, black → purple →
# yellow). Sampled from their published polynomial fits, so no plotting library is needed.
COLORMAPS: dict[str, tuple[str, ...]] = {
    "turbo": ("#23171b", "#493eaf", "#446aee", "#3295f7", "#26bde1", "#29ddbb", "#40f392", "#66fd6d", "#96fa50",
              "#c6eb3b", "#eed02d", "#ffab24", "#ff801d", "#ee5415", "#c92d0c", "#a11202", "#900d00"),
    "inferno": ("#000000", "#0b062c", "#21094a", "#3b0c5d", "#561168", "#70176c", "#8a1f69", "#a22960", "#ba3652",
                "#cf453e", "#e2582a", "#f16f18", "#f98a0f", "#faa913", "#f7cb2c", "#f3ea5d", "#faffa8"),
}


def _stops(name: str) -> torch.Tensor:
    if name not in COLORMAPS:
        raise InvalidArgumentError(f"Unknown colour map {name!r}; choose one of {', '.join(COLORMAPS)}.")
    return torch.tensor([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in COLORMAPS[name]], dtype=torch.float32)


def colorize(values: torch.Tensor, colormap: str = "turbo") -> torch.Tensor:
    """Map values in [0, 1] (any shape) to colours: shape + (3,), uint8."""
    stops = _stops(colormap)
    position = values.float().clamp(0, 1).nan_to_num(0) * (len(stops) - 1)
    low = position.floor().long().clamp(max=len(stops) - 2)
    fraction = (position - low).unsqueeze(-1)
    return (stops[low] * (1 - fraction) + stops[low + 1] * fraction).round().to(torch.uint8)


def plotly_colorscale(colormap: str = "turbo") -> list[list[float | str]]:
    """The colour map as a Plotly colour scale, so a chart's colour bar matches the images."""
    stops = COLORMAPS[colormap]
    return [[i / (len(stops) - 1), colour] for i, colour in enumerate(stops)]


def overlay(image: torch.Tensor, heat: torch.Tensor, alpha: float = 0.5, colormap: str = "turbo") -> torch.Tensor:
    """Blend a heat map in [0, 1], coloured with ``colormap``, onto an H × W × 3 uint8 image; returns uint8.

    ``alpha`` is the heat map's opacity (0: the photo only, 1: the heat map only).
    """
    if not 0 <= alpha <= 1:
        raise InvalidArgumentError(f"The opacity must lie between 0 and 1, got {alpha}.")
    if image.shape[:2] != heat.shape:
        raise InvalidArgumentError(f"The heat map ({tuple(heat.shape)}) and the image ({tuple(image.shape[:2])}) "
                                   "differ in size.")
    coloured = colorize(heat, colormap).float()
    return (image.float() * (1 - alpha) + coloured * alpha).round().clamp(0, 255).to(torch.uint8)


# ---------------------------------------------------------------------------------------------------------------
# Following one image through the network: stage by stage, with the receptive field of every position.

@dataclass(frozen=True)
class Window:
    """Where position (0, 0) of a layer's map looks in the input, as a box that may reach past the image's edges
    (padding), and how many input pixels one step along the map moves it."""

    top: int
    left: int
    height: int
    width: int
    jump_y: int = 1
    jump_x: int = 1

    def grow(self, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int],
             dilation: tuple[int, int] = (1, 1)) -> Window:
        """The window after a sliding operation (convolution or pooling) on this one's map."""
        return Window(
            top=self.top - padding[0] * self.jump_y,
            left=self.left - padding[1] * self.jump_x,
            height=self.height + (kernel[0] - 1) * dilation[0] * self.jump_y,
            width=self.width + (kernel[1] - 1) * dilation[1] * self.jump_x,
            jump_y=self.jump_y * stride[0],
            jump_x=self.jump_x * stride[1],
        )

    @staticmethod
    def union(windows: list[Window]) -> Window:
        """Where paths merge (addition, concatenation) a position sees everything any of its inputs sees."""
        top = min(w.top for w in windows)
        left = min(w.left for w in windows)
        bottom = max(w.top + w.height for w in windows)
        right = max(w.left + w.width for w in windows)
        return Window(top, left, bottom - top, right - left, max(w.jump_y for w in windows),
                      max(w.jump_x for w in windows))

    def box(self, row: int, col: int, image_size: tuple[int, int] | None = None) -> tuple[int, int, int, int]:
        """(top, left, bottom, right) in input pixels of position (row, col)'s receptive field; bottom and right
        exclusive; clipped to an ``image_size`` (height, width) if given."""
        top, left = self.top + row * self.jump_y, self.left + col * self.jump_x
        bottom, right = top + self.height, left + self.width
        if image_size is not None:
            top, left = max(top, 0), max(left, 0)
            bottom, right = min(bottom, image_size[0]), min(right, image_size[1])
        return top, left, bottom, right


def _pair(value: int | tuple[int, ...]) -> tuple[int, int]:
    return (value[0], value[-1]) if isinstance(value, tuple) else (int(value), int(value))


def _sliding(module: nn.Module, input_shape: torch.Size) -> tuple[tuple[int, int], ...] | None:
    """(kernel, stride, padding, dilation) of a convolution or pooling module, None for anything else."""
    if isinstance(module, nn.Conv2d):
        padding = module.padding if not isinstance(module.padding, str) else (
            (0, 0) if module.padding == "valid" else tuple((k - 1) * d // 2 for k, d in
                                                           zip(module.kernel_size, module.dilation, strict=True)))
        return (_pair(module.kernel_size), _pair(module.stride), _pair(tuple(padding)), _pair(module.dilation))
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        stride = module.stride if module.stride is not None else module.kernel_size
        return (_pair(module.kernel_size), _pair(stride), _pair(module.padding),
                _pair(getattr(module, "dilation", 1)))
    if isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        height, width = int(input_shape[-2]), int(input_shape[-1])
        size = module.output_size
        requested = size if isinstance(size, tuple) else (size, size)
        out_h, out_w = int(requested[0] or height), int(requested[-1] or width)
        kernel = (-(-height // out_h), -(-width // out_w))
        return kernel, (max(1, height // out_h), max(1, width // out_w)), (0, 0), (1, 1)
    return None


class _WindowTracker(TorchFunctionMode):
    """Carries a Window along every tensor operation; convolution and pooling modules grow it (see _track)."""

    def __init__(self) -> None:
        super().__init__()
        self.windows: dict[int, tuple[torch.Tensor, Window]] = {}  # the tensor is kept alive: id() stays unique

    def get(self, tensor: torch.Tensor) -> Window | None:
        entry = self.windows.get(id(tensor))
        return entry[1] if entry else None

    def set(self, tensor: torch.Tensor, window: Window) -> None:
        self.windows[id(tensor)] = (tensor, window)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        known = [w for w in (self.get(t) for t in tensors_in((args, kwargs))) if w is not None]
        if known:
            merged = known[0] if len(known) == 1 else Window.union(known)
            for tensor in tensors_in(out):
                self.set(tensor, merged)
        return out


@dataclass(frozen=True)
class Stage:
    """One stage of the network as one image passes through it."""

    label: str
    layer: str  # the module whose output ends the stage
    shape: tuple[int, ...]  # C × H × W
    channels: tuple[int, ...]  # the channels shown: the most active ones
    maps: torch.Tensor  # len(channels) × H × W, each scaled to [0, 1]
    window: Window  # the receptive field of position (0, 0) and its step


def _stage_layers(model: nn.Module) -> list[tuple[str, str]]:
    """(label, module name) of the model's stages; the top-level children for a model that declares none."""
    declared = list(getattr(model, "stages", ()))
    return declared or [(name, name) for name, _ in model.named_children()]


@torch.no_grad()
def stages(model: nn.Module, x: torch.Tensor, shown: int = 6) -> list[Stage]:
    """Follow one image (1 × C × H × W) through ``model``: at the end of every stage, its tensor shape, the
    ``shown`` most active feature maps and the receptive field of its positions in the input."""
    if x.dim() != 4 or x.shape[0] != 1:
        raise InvalidArgumentError(f"Follow one image at a time (1 × C × H × W), got {tuple(x.shape)}.")
    wanted = {layer: label for label, layer in _stage_layers(model)}
    names = {module: name for name, module in model.named_modules()}
    tracker = _WindowTracker()
    found: dict[str, tuple[torch.Tensor, Window]] = {}

    def track(module: nn.Module, inputs: tuple, output: object) -> None:
        outputs = list(tensors_in(output))
        if not list(module.children()):  # a leaf: its output sees what its input saw, through its window
            source = next(iter(tensors_in(inputs)), None)
            window = (tracker.get(source) if source is not None else None) or Window(0, 0, 1, 1)
            sliding = _sliding(module, source.shape) if source is not None else None
            for tensor in outputs:
                tracker.set(tensor, window.grow(*sliding) if sliding is not None else window)
        name = names[module]
        if name in wanted and name not in found and outputs and outputs[0].dim() == 4:
            found[name] = (outputs[0].detach().clone(), tracker.get(outputs[0]) or Window(0, 0, 1, 1))

    x = x.to(model_device(model))
    tracker.set(x, Window(0, 0, 1, 1))
    with tracker:
        _forward_hooked(model, x, [(module, track) for module in names if not list(module.children())
                                   or names[module] in wanted])
    result = []
    for layer, label in wanted.items():
        if layer not in found:
            continue
        output, window = found[layer]
        maps = output[0].float().cpu()
        channels = maps.mean(dim=(1, 2)).topk(min(shown, len(maps))).indices.tolist()
        chosen = maps[channels]
        # Each map on its own scale; 1×1 maps (one value each) on a scale shared across the channels shown.
        dims = (1, 2) if chosen[0].numel() > 1 else (0, 1, 2)
        low = chosen.amin(dim=dims, keepdim=True)
        high = chosen.amax(dim=dims, keepdim=True)
        result.append(Stage(label, layer, tuple(maps.shape), tuple(channels),
                            (chosen - low) / (high - low).clamp(min=1e-8), window))
    return result


@dataclass(frozen=True)
class ConvAt:
    """One output value of the first convolution, worked out by hand: the kernel, the input patch under it,
    their weighted sum, and the value PyTorch's convolution produced there."""

    layer: str
    channel: int
    row: int
    col: int
    kernel: torch.Tensor  # C_in × kh × kw (the channels of the kernel's group)
    patch: torch.Tensor  # C_in × kh × kw: the conv's input under the kernel (0 where it overhangs the padding)
    bias: float
    weighted_sum: float  # Σ kernel · patch + bias, computed here in float64
    output: float  # the convolution's own output at (channel, row, col)
    box: tuple[int, int, int, int]  # the patch in input pixels (top, left, bottom, right), possibly past the edges
    map_size: tuple[int, int]  # the first convolution's output height and width


class _CaptureDoneError(Exception):
    """Stops a forward pass once the first convolution has run."""


def first_conv(model: nn.Module, x: torch.Tensor) -> tuple[str, torch.Tensor, torch.Tensor]:
    """The first convolution that runs: its name, its input and its output (the rest of the pass is skipped)."""
    convolutions: dict[nn.Module, str] = {module: name for name, module in model.named_modules()
                                          if isinstance(module, nn.Conv2d)}
    if not convolutions:
        raise InvalidArgumentError("The model has no convolution.")
    store: dict[str, object] = {}

    def capture(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        store.update(name=convolutions[module], input=inputs[0].detach(), output=output.detach())
        raise _CaptureDoneError

    try:
        with torch.no_grad():
            _forward_hooked(model, x, [(module, capture) for module in convolutions])
    except _CaptureDoneError:
        pass
    return str(store["name"]), store["input"], store["output"]  # type: ignore[return-value]


def first_conv_at(model: nn.Module, x: torch.Tensor, channel: int, row: int, col: int) -> ConvAt:
    """The first convolution's output at (channel, row, col) for image ``x``, recomputed as a weighted sum."""
    name, conv_input, conv_output = first_conv(model, x)
    conv = model.get_submodule(name)
    assert isinstance(conv, nn.Conv2d)
    out_channels, height, width = conv_output.shape[1:]
    if not (0 <= channel < out_channels and 0 <= row < height and 0 <= col < width):
        raise InvalidArgumentError(f"{name} has {out_channels} channels of {height}×{width}; "
                                   f"there is no position ({channel}, {row}, {col}).")
    (kh, kw), (sh, sw), (dh, dw) = _pair(conv.kernel_size), _pair(conv.stride), _pair(conv.dilation)
    sliding = _sliding(conv, conv_input.shape)
    assert sliding is not None
    ph, pw = sliding[2]
    group_size = conv.in_channels // conv.groups
    group = channel // (out_channels // conv.groups)
    padded = F.pad(conv_input[0, group * group_size:(group + 1) * group_size].double(), (pw, pw, ph, ph))
    top, left = row * sh, col * sw
    patch = padded[:, top:top + (kh - 1) * dh + 1:dh, left:left + (kw - 1) * dw + 1:dw]
    kernel = conv.weight[channel].detach().double().cpu()
    bias = float(conv.bias[channel].detach()) if conv.bias is not None else 0.0
    weighted = float((kernel * patch.cpu()).sum()) + bias
    box = (top - ph, left - pw, top - ph + (kh - 1) * dh + 1, left - pw + (kw - 1) * dw + 1)
    return ConvAt(name, channel, row, col, kernel.float(), patch.float().cpu(), bias, weighted,
                  float(conv_output[0, channel, row, col]), box, (int(height), int(width)))
