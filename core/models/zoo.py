"""The models of the zoo and their facts: one :class:`ModelSpec` each, oldest architecture first.

Adding a from-scratch model is its own file in ``core/models/``, one entry here and its row in the
equivalence test (``register(spec)`` adds one at run time).
"""

from __future__ import annotations

import dataclasses

from core.models import alexnet, efficientnet, googlenet, inception, lenet, mobilenet, notes, resnet, vgg, xception
from core.models.base import ExplorerModel
from core.models.spec import ModelSpec, Paper, PretrainedSource, Reference, imagenet, torchvision_figures

_RESNET_PAPER = Paper(
    family="ResNet",
    year=2015,
    authors="Kaiming He, Xiangyu Zhang, Shaoqing Ren, Jian Sun",
    paper_title="Deep Residual Learning for Image Recognition",
    paper_url="https://arxiv.org/abs/1512.03385",
    task="Image classification (ILSVRC 2015 winner)",
    dataset="ImageNet-1k",
    input_size=224,
    idea="Skip connections let each block learn a residual F(x) = H(x) − x, so very deep networks still train.",
)

_VGG_PAPER = Paper(
    family="VGG",
    year=2014,
    authors="Karen Simonyan, Andrew Zisserman",
    paper_title="Very Deep Convolutional Networks for Large-Scale Image Recognition",
    paper_url="https://arxiv.org/abs/1409.1556",
    task="Image classification and localisation (ILSVRC 2014)",
    dataset="ImageNet-1k",
    input_size=224,
    idea="Depth from stacks of small 3×3 convolutions: two see 5×5, three see 7×7, with fewer weights.",
)



def _inception_shell() -> ExplorerModel:
    """Inception-v3 as Google's weights expect it: ImageNet-normalised inputs mapped to [-1, 1]."""
    return inception.Inception3(num_classes=1000, in_channels=3, transform_input=True)


def _googlenet_shell() -> ExplorerModel:
    """GoogLeNet as its ported weights expect it: ImageNet-normalised inputs mapped to Caffe's scaling."""
    return googlenet.GoogLeNet(num_classes=1000, in_channels=3, transform_input=True)


XCEPTION_URL = "https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-cadene/xception-43020ad28.pth"
XCEPTION_MB = 87.4  # 22.86 M float32 parameters and BN statistics (the release page gives no exact size)
# Cadene's "43020ad28" predates torch hub's rule and timm never checks it: the content is checked instead.
_XCEPTION_WEIGHTS = PretrainedSource(url=XCEPTION_URL, categories_from="ResNet18_Weights.IMAGENET1K_V1", resize=333,
                                     crop=299, mean=(0.5,) * 3, std=(0.5,) * 3, top1=78.892, source="timm",
                                     size_mb=XCEPTION_MB, hash_checked=False)


def _resnet(name: str, display: str, paper_gflops: float, torchvision_figures: tuple[Reference, ...]) -> ModelSpec:
    depth = int(name.removeprefix("resnet"))
    return ModelSpec(
        name=name,
        display_name=display,
        builder=getattr(resnet, name),
        pretrained=imagenet(f"ResNet{depth}_Weights.IMAGENET1K_V1"),
        notes_figures=notes.figures(name),
        references=(
            Reference("macs", paper_gflops * 1e9, "paper", "Table 1, reported as FLOPs"),
            Reference("depth", depth, "paper", "weight layers"),
            *torchvision_figures,
        ),
        **_RESNET_PAPER,
    )


SPECS: list[ModelSpec] = [
    ModelSpec(
        name="lenet5",
        display_name="LeNet-5",
        family="LeNet",
        builder=lenet.lenet5,
        notes_figures=notes.figures("lenet5"),
        year=1998,
        authors="Yann LeCun, Léon Bottou, Yoshua Bengio, Patrick Haffner",
        paper_title="Gradient-Based Learning Applied to Document Recognition",
        paper_url="http://yann.lecun.com/exdb/publis/pdf/lecun-01a.pdf",
        task="Handwritten digit recognition (postal codes, cheques)",
        dataset="MNIST",
        input_size=28,
        in_channels=1,
        num_classes=10,
        mean=(0.1307,),
        std=(0.3081,),
        idea="Learned convolution filters, subsampling and a small classifier, trained end to end by backpropagation.",
        references=(
            Reference("mnist_accuracy", 99.05, "paper", "0.95 % test error, no distortions"),
            Reference("depth", 7, "paper", "layers counted with subsampling: C1 S2 C3 S4 C5 F6 output"),
        ),
    ),
    ModelSpec(
        name="alexnet",
        display_name="AlexNet",
        family="AlexNet",
        builder=alexnet.alexnet,
        notes_figures=notes.figures("alexnet"),
        year=2012,
        authors="Alex Krizhevsky, Ilya Sutskever, Geoffrey E. Hinton",
        paper_title="ImageNet Classification with Deep Convolutional Neural Networks",
        paper_url="https://papers.nips.cc/paper/4824-imagenet-classification-with-deep-convolutional-neural-networks.pdf",
        task="Image classification (ILSVRC 2012 winner)",
        dataset="ImageNet-1k",
        input_size=227,
        idea="A deep CNN trained on GPUs with ReLU, dropout, overlapping pooling and heavy augmentation.",
        references=(
            Reference("top1", 62.5, "paper", "one network, ILSVRC-2010 test (37.5 % top-1 error)"),
            Reference("top5", 83.0, "paper", "one network, ILSVRC-2010 test (17.0 % top-5 error)"),
            Reference("depth", 8, "paper", "5 convolutional + 3 fully connected"),
            Reference("params", 61_100_840, "torchvision", "torchvision's alexnet is a different, later variant",
                      same_network=False),
            Reference("top1", 56.522, "torchvision", "torchvision's alexnet variant, not this network",
                      same_network=False),
        ),
    ),
    ModelSpec(
        name="vgg16",
        display_name="VGG-16",
        builder=vgg.vgg16,
        pretrained=imagenet("VGG16_Weights.IMAGENET1K_V1"),
        notes_figures=notes.figures("vgg16"),
        references=(Reference("depth", 16, "paper", "13 conv + 3 FC, configuration D"),
                    *torchvision_figures(138_357_544, 15.47, 71.592, 90.382)),
        **_VGG_PAPER,
    ),
    ModelSpec(
        name="vgg19",
        display_name="VGG-19",
        builder=vgg.vgg19,
        pretrained=imagenet("VGG19_Weights.IMAGENET1K_V1"),
        notes_figures=notes.figures("vgg19"),
        references=(Reference("depth", 19, "paper", "16 conv + 3 FC, configuration E"),
                    *torchvision_figures(143_667_240, 19.632, 72.376, 90.876)),
        **_VGG_PAPER,
    ),
    ModelSpec(
        name="inception_v3",
        display_name="Inception-v3",
        family="Inception",
        builder=inception.inception_v3,
        pretrained=imagenet("Inception_V3_Weights.IMAGENET1K_V1", shell=_inception_shell),
        notes_figures=notes.figures("inception_v3"),
        year=2015,
        authors="Christian Szegedy, Vincent Vanhoucke, Sergey Ioffe, Jonathon Shlens, Zbigniew Wojna",
        paper_title="Rethinking the Inception Architecture for Computer Vision",
        paper_url="https://arxiv.org/abs/1512.00567",
        task="Image classification",
        dataset="ImageNet-1k",
        input_size=299,
        idea="Parallel branches of factorised convolutions (n×1 then 1×n), efficient grid reductions, "
             "an auxiliary classifier and label smoothing.",
        references=(
            Reference("depth", 42, "paper", "“42 layers deep”, section 6"),
            *torchvision_figures(27_161_264, 5.713, 77.294, 93.45),
        ),
    ),
    ModelSpec(
        name="xception",
        display_name="Xception",
        family="Xception",
        builder=xception.xception,
        pretrained=_XCEPTION_WEIGHTS,
        notes_figures=notes.figures("xception"),
        year=2017,
        authors="François Chollet",
        paper_title="Xception: Deep Learning with Depthwise Separable Convolutions",
        paper_url="https://arxiv.org/abs/1610.02357",
        task="Image classification",
        dataset="ImageNet-1k (and Google's JFT)",
        input_size=299,
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        idea="Replace Inception modules by depthwise separable convolutions (map space, then channels), "
             "with residual connections throughout.",
        references=(
            Reference("params", 22_855_952, "paper", "Table 3"),
            Reference("top1", 79.0, "paper", "Table 1, ImageNet validation"),
            Reference("top5", 94.5, "paper", "Table 1, ImageNet validation"),
            Reference("depth", 36, "paper", "“36 convolutional layers” in the feature extraction base"),
            Reference("params", 22_910_480, "Keras", "counts the 54,528 batch-norm moving statistics too"),
            Reference("depth", 81, "Keras", "Keras applications table, its own layer count"),
            Reference("top1", 78.892, "timm", "legacy_xception, weights ported from Keras"),
            Reference("top5", 94.292, "timm", "legacy_xception, weights ported from Keras"),
        ),
    ),
    _resnet("resnet18", "ResNet-18", 1.8, torchvision_figures(11_689_512, 1.814, 69.758, 89.078)),
    _resnet("resnet34", "ResNet-34", 3.6, torchvision_figures(21_797_672, 3.664, 73.314, 91.42)),
    dataclasses.replace(_resnet("resnet50", "ResNet-50", 3.8, torchvision_figures(25_557_032, 4.089, 76.13, 92.862)),
            featured_in=("stages",)),
    _resnet("resnet101", "ResNet-101", 7.6, torchvision_figures(44_549_160, 7.801, 77.374, 93.546)),
    _resnet("resnet152", "ResNet-152", 11.3, torchvision_figures(60_192_808, 11.514, 78.312, 94.046)),
    # The related architectures the course notes name after the eleven (their evolution chart and
    # "Related Architectures"); the notes print no figures for them, so they have no fidelity panel.
    ModelSpec(
        name="googlenet",
        display_name="GoogLeNet",
        family="Inception",
        builder=googlenet.googlenet,
        pretrained=imagenet("GoogLeNet_Weights.IMAGENET1K_V1", shell=_googlenet_shell),
        year=2014,
        authors="Christian Szegedy, Wei Liu, Yangqing Jia, Pierre Sermanet, Scott Reed, Dragomir Anguelov, "
                "Dumitru Erhan, Vincent Vanhoucke, Andrew Rabinovich",
        paper_title="Going Deeper with Convolutions",
        paper_url="https://arxiv.org/abs/1409.4842",
        task="Image classification and detection (ILSVRC 2014 winner)",
        dataset="ImageNet-1k",
        input_size=224,
        idea="Inception modules: 1×1, 3×3 and 5×5 convolutions and a pooling path side by side, with 1×1 "
             "reductions keeping the cost down; two auxiliary classifiers help the gradient reach the early layers.",
        references=(
            Reference("depth", 22, "paper", "layers with parameters (27 counting pooling)"),
            Reference("macs", 1.5e9, "paper", "“a computational budget of 1.5 billion multiply-adds”"),
            Reference("params", 6_624_904, "torchvision", "without the auxiliary heads, which only training uses"),
            Reference("macs", 1.498e9, "torchvision", "IMAGENET1K_V1 metadata (_ops, reported as GFLOPS)"),
            Reference("top1", 69.778, "torchvision", "ImageNet-1k weights, IMAGENET1K_V1 metadata"),
            Reference("top5", 89.53, "torchvision", "ImageNet-1k weights, IMAGENET1K_V1 metadata"),
        ),
    ),
    ModelSpec(
        name="mobilenet_v2",
        display_name="MobileNetV2",
        family="MobileNet",
        builder=mobilenet.mobilenet_v2,
        pretrained=imagenet("MobileNet_V2_Weights.IMAGENET1K_V1"),
        year=2018,
        authors="Mark Sandler, Andrew Howard, Menglong Zhu, Andrey Zhmoginov, Liang-Chieh Chen",
        paper_title="MobileNetV2: Inverted Residuals and Linear Bottlenecks",
        paper_url="https://arxiv.org/abs/1801.04381",
        task="Image classification on mobile devices",
        dataset="ImageNet-1k",
        input_size=224,
        idea="Inverted residuals: expand to many channels with a 1×1, filter them with a cheap depthwise 3×3, "
             "project back through a linear (no ReLU) bottleneck; the skip joins the thin ends.",
        references=(
            Reference("params", 3.4e6, "paper", "Table 4, “3.4M”"),
            Reference("macs", 300e6, "paper", "Table 4, “300M” multiply-adds"),
            Reference("top1", 72.0, "paper", "Table 4, ImageNet"),
            *torchvision_figures(3_504_872, 0.301, 71.878, 90.286),
        ),
    ),
    ModelSpec(
        name="efficientnet_b0",
        display_name="EfficientNet-B0",
        family="EfficientNet",
        builder=efficientnet.efficientnet_b0,
        pretrained=imagenet("EfficientNet_B0_Weights.IMAGENET1K_V1"),
        year=2019,
        authors="Mingxing Tan, Quoc V. Le",
        paper_title="EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks",
        paper_url="https://arxiv.org/abs/1905.11946",
        task="Image classification",
        dataset="ImageNet-1k",
        input_size=224,
        idea="A searched baseline of MBConv blocks with squeeze-and-excitation, then one compound coefficient "
             "scales depth, width and resolution together (B0 is the baseline that B1–B7 grow from).",
        references=(
            Reference("params", 5.3e6, "paper", "Table 2, “5.3M”"),
            Reference("macs", 0.39e9, "paper", "Table 2, “0.39B FLOPS” (counted as multiply-adds)"),
            Reference("top1", 77.1, "paper", "Table 2, ImageNet"),
            Reference("top5", 93.3, "paper", "Table 2, ImageNet"),
            *torchvision_figures(5_288_548, 0.386, 77.692, 93.532),
        ),
    ),
]
