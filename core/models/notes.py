"""The course notes' figures for each architecture, as printed: data that registry entries carry.

The course notes are “CNN Architecture Documentation”, the Markdown document this project was built from. A
model the notes do not cover has none (its spec's ``notes_figures`` is empty) and simply has no fidelity panel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class NotesFigure:
    """One figure as the course notes print it."""

    label: str  # what the figure is, e.g. "Conv1 parameters"
    printed: str  # exactly as printed
    metric: str  # what to compute: see _computed()
    value: Any  # the notes' value: a number, or text for text metrics
    resolution: float = 0.0  # the printed precision; figures within half of it agree
    where: str = ""  # section of the notes
    reason: str = ""  # why the live or published figure differs, shown when it does
    note: str = ""  # context shown whatever the verdict


def _layer_label(module: str, where: str) -> str:
    """ "Conv1 (features.0)" when the notes name the layer in parentheses in ``where``, else the module name."""
    return f"{where[where.index('(') + 1:-1]} ({module})" if where.endswith(")") else module


def _params(module: str, count: int, where: str, reason: str = "") -> NotesFigure:
    return NotesFigure(f"{_layer_label(module, where)} parameters", f"{count:,}", f"layer_params:{module}", count,
                       1, where, reason)


def _output(module: str, shape: str, where: str, reason: str = "") -> NotesFigure:
    return NotesFigure(f"{_layer_label(module, where)} output", shape, f"layer_output:{module}", shape, 0, where,
                       reason)


_LENET_SHAPES = (
    "The notes' shapes assume an unpadded conv1 (28→24). Then pool2 leaves 4×4, too small for conv3's 5×5 "
    "kernel, and the 1×1×120 they give for conv3 could not come out. The paper fed 32×32 images; padding "
    "conv1 by 2 does the same for 28×28 digits and yields conv3's 1×1×120."
)
_BIASES = "The notes count weights only; with its {biases:,} biases the layer has {layer_params:,} parameters."
_FLOAT32 = "Float32 weights (4 bytes each) take {weight_mb} MB; the notes do not say what their memory column measures."

_FIGURES: dict[str, list[NotesFigure]] = {
    "lenet5": [
        NotesFigure("Authors", "Yann LeCun, Léon Bottou, Yoann Bengio, Patrick Haffner", "authors",
                    "Yann LeCun, Léon Bottou, Yoann Bengio, Patrick Haffner", where="LeNet-5 overview",
                    reason="A typo in the notes: the third author is Yoshua Bengio."),
        NotesFigure("Input", "28×28×1", "input", "28×28×1", where="LeNet-5 diagram"),
        NotesFigure("Total parameters", "~60,000", "params", 60_000, 10_000, "LeNet-5 layer details"),
        _output("features.0", "24×24×6", "LeNet-5 layer table (Conv1)", _LENET_SHAPES),
        _params("features.0", 156, "LeNet-5 layer table (Conv1)"),
        _output("features.2", "12×12×6", "LeNet-5 layer table (Pool1)", _LENET_SHAPES),
        _output("features.3", "8×8×16", "LeNet-5 layer table (Conv2)", _LENET_SHAPES),
        _params("features.3", 2_416, "LeNet-5 layer table (Conv2)"),
        _output("features.5", "4×4×16", "LeNet-5 layer table (Pool2)", _LENET_SHAPES),
        _output("features.6", "1×1×120", "LeNet-5 layer table (Conv3)"),
        _params("features.6", 48_120, "LeNet-5 layer table (Conv3)"),
        _params("classifier.1", 10_164, "LeNet-5 layer table (Dense1)"),
        _params("classifier.3", 850, "LeNet-5 layer table (Dense2)"),
        NotesFigure("Depth", "5 layers", "depth", 5, 1, "Architecture comparison",
                    note="Five weight layers; the paper calls it LeNet-5 but counts 7 layers with subsampling."),
        NotesFigure("Kernels", "5×5", "kernels", "5×5", where="Architecture comparison"),
        NotesFigure("FLOPs", "~20M", "macs", 20e6, 10e6, "Computational efficiency",
                    reason="The live model needs {macs_m} M multiply-accumulates ({flops_m} M FLOPs) per 28×28 "
                           "image; no counting convention gives 20 M for this network."),
        NotesFigure("Memory", "~1 MB", "weight_mb", 1.0, 1.0, "Computational efficiency", reason=_FLOAT32),
        NotesFigure("MNIST test accuracy", "99.2%", "mnist_accuracy", 99.2, 0.1, "LeNet-5 expected performance",
                    reason="The paper reports 0.95 % test error (99.05 %) for LeNet-5 without distortions; 99.2 % "
                           "is what the ReLU/max-pool version typically reaches. The Training page measures it."),
    ],
    "alexnet": [
        NotesFigure("Input", "227×227×3", "input", "227×227×3", where="AlexNet diagram"),
        NotesFigure("Total parameters", "~62.4 million", "params", 62.4e6, 0.1e6, "AlexNet layer details"),
        _output("features.0", "55×55×96", "AlexNet layer table (Conv1)"),
        _params("features.0", 34_848, "AlexNet layer table (Conv1)", _BIASES),
        _output("features.3", "27×27×96", "AlexNet layer table (Pool1)"),
        _params("features.4", 614_400, "AlexNet layer table (Conv2)", _BIASES),
        _output("features.7", "13×13×256", "AlexNet layer table (Pool2)"),
        _output("features.8", "13×13×384", "AlexNet layer table (Conv3)"),
        NotesFigure("Conv3 (features.8) output, in the diagram", "27×27×384", "layer_output:features.8", "27×27×384", 0,
                    "AlexNet diagram",
                    reason="The diagram's 27×27 is conv2's resolution: pool2 halves the map before conv3, "
                           "as the layer table (13×13×384) has it."),
        _params("features.8", 884_992, "AlexNet layer table (Conv3)",
                "884,992 is conv5's count (3·3·384·256 weights + 256 biases), repeated on conv3's line; conv3 "
                "has 3·3·256·384 weights + 384 biases = {layer_params:,}."),
        _params("features.10", 1_327_104, "AlexNet layer table (Conv4)", _BIASES),
        _params("features.12", 884_992, "AlexNet layer table (Conv5)"),
        _output("features.14", "6×6×256", "AlexNet layer table (Pool5)"),
        _params("classifier.0", 37_748_736, "AlexNet layer table (Dense1)", _BIASES),
        _params("classifier.3", 16_777_216, "AlexNet layer table (Dense2)", _BIASES),
        _params("classifier.6", 4_097_000, "AlexNet layer table (Dense3)"),
        NotesFigure("Depth", "8 layers", "depth", 8, 1, "AlexNet key innovations"),
        NotesFigure("Kernels", "11×5, 3×3", "kernels", "11×5, 3×3", where="Architecture comparison",
                    reason="A typo: AlexNet's kernels are 11×11 (conv1), 5×5 (conv2) and 3×3."),
        NotesFigure("Regularisation", "Dropout, LRN", "regularisation", "Dropout, LRN", where="Architecture comparison"),
        NotesFigure("Skip connections", "No", "skip", "none", where="Architecture comparison"),
        NotesFigure("FLOPs", "~1.5B", "macs", 1.5e9, 0.1e9, "Computational efficiency",
                    reason="The live single-stream network needs {macs_g} G multiply-accumulates ({flops_g} GFLOPs) "
                           "at 227×227; 1.5 B matches neither count."),
        NotesFigure("Memory", "~100 MB", "weight_mb", 100, 100, "Computational efficiency", reason=_FLOAT32),
        NotesFigure("ImageNet top-1", "63.3%", "top1", 63.3, 0.1, "AlexNet overview",
                    reason="The paper's one-network figure is 62.5 % (ILSVRC-2010 test, 37.5 % error); 63.3 % is its "
                           "ensemble of seven networks on ILSVRC-2012 validation (36.7 % error). torchvision's "
                           "56.5 % belongs to a different AlexNet variant."),
        NotesFigure("ImageNet top-5", "85.2%", "top5", 85.2, 0.1, "AlexNet overview",
                    reason="The paper's one-network figure is 83.0 % (ILSVRC-2010 test, 17.0 % error); we could not "
                           "trace 85.2 % to the paper."),
    ],
    "vgg16": [
        NotesFigure("Input", "224×224×3", "input", "224×224×3", where="VGG-16 diagram"),
        NotesFigure("Total parameters", "~138 million", "params", 138e6, 1e6, "VGG-16 layer details"),
        *[
            figure
            for layer, module, shape, count in [
                ("conv1_1", "features.0", "224×224×64", 1_792), ("conv1_2", "features.2", "224×224×64", 36_928),
                ("pool1", "features.4", "112×112×64", 0), ("conv2_1", "features.5", "112×112×128", 73_856),
                ("conv2_2", "features.7", "112×112×128", 147_584), ("pool2", "features.9", "56×56×128", 0),
                ("conv3_1", "features.10", "56×56×256", 295_168), ("conv3_2", "features.12", "56×56×256", 590_080),
                ("conv3_3", "features.14", "56×56×256", 590_080), ("pool3", "features.16", "28×28×256", 0),
                ("conv4_1", "features.17", "28×28×512", 1_180_160), ("conv4_2", "features.19", "28×28×512", 2_359_808),
                ("conv4_3", "features.21", "28×28×512", 2_359_808), ("pool4", "features.23", "14×14×512", 0),
                ("conv5_1", "features.24", "14×14×512", 2_359_808), ("conv5_2", "features.26", "14×14×512", 2_359_808),
                ("conv5_3", "features.28", "14×14×512", 2_359_808), ("pool5", "features.30", "7×7×512", 0),
                ("fc6", "classifier.0", "4096", 102_764_544), ("fc7", "classifier.3", "4096", 16_781_312),
                ("fc8", "classifier.6", "1000", 4_097_000),
            ]
            for figure in (_output(module, shape, f"VGG-16 layer table ({layer})"),
                           *([_params(module, count, f"VGG-16 layer table ({layer})")] if count else []))
        ],
        NotesFigure("Depth", "16 layers", "depth", 16, 1, "VGG-16 vs VGG-19"),
        NotesFigure("Convolutional layers", "13", "conv_layers", 13, 1, "VGG-16 vs VGG-19"),
        NotesFigure("Fully connected layers", "3", "dense_layers", 3, 1, "VGG-16 vs VGG-19"),
        NotesFigure("Kernels", "3×3 (uniform)", "kernels", "3×3", where="Architecture comparison"),
        NotesFigure("FLOPs", "~15B", "macs", 15e9, 1e9, "Computational efficiency",
                    note="torchvision's “GFLOPS” for VGG-16 (15.47) are multiply-accumulates too."),
        NotesFigure("FLOPs", "15.3B", "macs", 15.3e9, 0.1e9, "Key improvements over VGG",
                    reason="15.3 B counts the convolutions only ({conv_macs_g} G MACs); the three dense layers "
                           "add {dense_macs_g} G, for {macs_g} G in all."),
        NotesFigure("Memory", "~140 MB", "weight_mb", 140, 10, "Computational efficiency", reason=_FLOAT32),
        NotesFigure("ImageNet top-1", "71.3%", "top1", 71.3, 0.1, "VGG-16 vs VGG-19",
                    reason="Top-1 depends on the evaluation protocol; torchvision measures 71.59 % for its VGG-16 "
                           "weights with one 224×224 centre crop."),
        NotesFigure("ImageNet top-5", "89.8%", "top5", 89.8, 0.1, "VGG-16 vs VGG-19",
                    reason="torchvision measures 90.38 % top-5 for its VGG-16 weights (one centre crop)."),
        NotesFigure("ImageNet top-5", "72.8%", "top5", 72.8, 0.1, "VGG overview",
                    reason="72.8 % cannot be VGG-16's top-5 accuracy: the same notes give 89.8 %, and torchvision "
                           "measures 90.38 %. It is closer to a top-1 figure."),
    ],
    "vgg19": [
        NotesFigure("Total parameters", "~144 million", "params", 144e6, 1e6, "VGG-16 vs VGG-19"),
        NotesFigure("Depth", "19 layers", "depth", 19, 1, "VGG-16 vs VGG-19"),
        NotesFigure("Convolutional layers", "16", "conv_layers", 16, 1, "VGG-16 vs VGG-19"),
        NotesFigure("Fully connected layers", "3", "dense_layers", 3, 1, "VGG-16 vs VGG-19"),
        NotesFigure("Kernels", "3×3 (uniform)", "kernels", "3×3", where="Architecture comparison"),
        NotesFigure("FLOPs", "~19B", "macs", 19e9, 1e9, "Computational efficiency",
                    note="Every convolution and dense layer together need {macs_g} G multiply-accumulates "
                           "(torchvision reports 19.632); the notes round down."),
        NotesFigure("Memory", "~150 MB", "weight_mb", 150, 10, "Computational efficiency", reason=_FLOAT32),
        NotesFigure("ImageNet top-1", "71.0%", "top1", 71.0, 0.1, "VGG-16 vs VGG-19",
                    reason="torchvision measures 72.38 % for VGG-19, above VGG-16's 71.59 %; the notes' 71.0 % "
                           "would rank VGG-19 below VGG-16."),
        NotesFigure("ImageNet top-5", "89.9%", "top5", 89.9, 0.1, "VGG-16 vs VGG-19",
                    reason="torchvision measures 90.88 % top-5 for its VGG-19 weights (one centre crop)."),
    ],
    "inception_v3": [
        NotesFigure("Input", "299×299×3", "input", "299×299×3", where="InceptionV3 implementation tips"),
        NotesFigure("Kernels", "1×7, 7×1", "kernels", "1×7, 7×1", where="InceptionV3 architecture notes",
                    note="The factorised 7×7 convolutions; the live model also uses 1×3 and 3×1."),
    ],
    "xception": [
        NotesFigure("Input", "299×299×3", "input", "299×299×3", where="Xception implementation tips"),
        NotesFigure("Total parameters", "22.9M", "params", 22.9e6, 0.1e6, "Architecture comparison",
                    note="Keras reports 22,910,480: it also counts the {buffers:,} batch-norm moving statistics."),
        NotesFigure("Base model parameters", "22.9 million", "backbone_params", 22.9e6, 0.1e6,
                    "Xception transfer learning",
                    reason="The base model without its 1000-class dense layer has {backbone_m} M parameters; "
                           "22.9 M includes the classifier that transfer learning removes."),
        NotesFigure("Depth", "71 layers", "depth", 71, 1, "Architecture comparison",
                    note="71 counts each separable convolution as two layers (depthwise and pointwise); the "
                         "paper speaks of 36 convolutional layers."),
        NotesFigure("Kernels", "3×3 sep.conv.", "kernels", "3×3", where="Architecture comparison"),
        NotesFigure("Skip connections", "Yes (early)", "skip", "early blocks only", where="Architecture comparison",
                    reason="Every one of Xception's blocks has a skip connection (entry, middle and exit flow), "
                           "not only the early ones."),
        NotesFigure("Regularisation", "Batch Norm", "regularisation", "Batch Norm", where="Architecture comparison"),
        NotesFigure("FLOPs", "~8.4B", "macs", 8.4e9, 0.1e9, "Computational efficiency"),
        NotesFigure("Memory", "~90 MB", "weight_mb", 90, 10, "Computational efficiency"),
        NotesFigure("ImageNet top-1", "79.0%", "top1", 79.0, 0.1, "Performance comparison"),
        NotesFigure("ImageNet top-5", "94.5%", "top5", 94.5, 0.1, "Performance comparison"),
    ],
}


def _resnet_figures(blocks: str, params: str, flops: str, top1: str, extra: list[NotesFigure]) -> list[NotesFigure]:
    where = "ResNet variants"
    params_value = float(params.rstrip("M")) * 1e6
    flops_value = float(flops.rstrip("B")) * 1e9
    return [
        NotesFigure("Blocks per stage", blocks, "blocks", blocks, where=where),
        NotesFigure("Parameters", params, "params", params_value, 0.1e6, where,
                    note="The notes truncate {params:,} to one decimal."),
        NotesFigure("FLOPs", flops, "macs", flops_value, 0.1e9, where,
                    reason="The paper's Table 1 gives this figure; counting every convolution and the dense layer "
                           "of the live model gives {macs_g} G multiply-accumulates, as torchvision reports."),
        NotesFigure("ImageNet top-1", top1, "top1", float(top1.rstrip("%")), 0.1, where,
                    reason="Published top-1 depends on the training recipe and the evaluation; torchvision "
                           "measures {torchvision_top1} % for its IMAGENET1K_V1 weights with one centre crop."),
        NotesFigure("Kernels", "1×1, 3×3", "kernels", "1×1, 3×3", where="Architecture comparison",
                    note="Plus the 7×7 stem convolution."),
        NotesFigure("Skip connections", "Yes (residual blocks)", "skip", "every block", where="Architecture comparison"),
        *extra,
    ]


_FIGURES.update({
    "resnet18": _resnet_figures("2+2+2+2", "11.7M", "1.8B", "69.8%", []),
    "resnet34": _resnet_figures("3+4+6+3", "21.8M", "3.7B", "73.3%", []),
    "resnet50": _resnet_figures("3+4+6+3", "25.5M", "4.1B", "76.0%", [
        NotesFigure("Depth", "50 layers", "depth", 50, 1, "Key improvements over VGG"),
        NotesFigure("Stem output", "56×56×64", "stage_output:maxpool", "56×56×64", where="ResNet-50 details"),
        NotesFigure("Layer1 output", "56×56×256", "stage_output:layer1", "56×56×256", where="ResNet-50 details"),
        NotesFigure("Layer2 output", "28×28×512", "stage_output:layer2", "28×28×512", where="ResNet-50 details"),
        NotesFigure("Layer3 output", "14×14×1024", "stage_output:layer3", "14×14×1024", where="ResNet-50 details"),
        NotesFigure("Layer4 output", "7×7×2048", "stage_output:layer4", "7×7×2048", where="ResNet-50 details"),
        NotesFigure("Memory", "~100 MB", "weight_mb", 100, 10, "Computational efficiency"),
    ]),
    "resnet101": _resnet_figures("3+4+23+3", "44.5M", "7.8B", "77.4%", []),
    "resnet152": _resnet_figures("3+8+36+3", "60.2M", "11.3B", "77.6%", []),
})


def figures(name: str) -> tuple[NotesFigure, ...]:
    """The figures the notes print for architecture ``name`` (none for an architecture they do not cover)."""
    return tuple(_FIGURES.get(name, ()))
