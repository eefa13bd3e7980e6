"""The app's pages, in one list: the entry script builds its navigation from it and Home lists every page from it,
so a new page cannot be left off Home."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PageInfo:
    """One page: its script (relative to the entry script), title, icon, address and what it offers."""

    script: str
    title: str
    icon: str
    url_path: str
    blurb: str


# The default page is served at "/" and never at its own pathname (Streamlit reserves that pathname for it but
# answers "Page not found" there), so Home reserves "index" and a hidden page at HOME_ALIAS leads to "/".
HOME = PageInfo("../pages/home.py", "Home", ":material/home:", "index", "What the explorer is and where to go.")
HOME_ALIAS = "home"
PAGES = [
    HOME,
    PageInfo("../pages/architectures.py", "Architectures", ":material/account_tree:", "architectures",
             "Layer tables, parameter counts, receptive fields, a block diagram, the source code and the fidelity "
             "panel."),
    PageInfo("../pages/compare.py", "Compare", ":material/compare_arrows:", "compare",
             "The comparison tables rebuilt from the live models, MACs against accuracy, where the parameters live, "
             "measured latency."),
    PageInfo("../pages/training.py", "Training", ":material/monitoring:", "training",
             "Train a model on digits, MNIST, Fashion-MNIST or CIFAR-10 and watch the curves live; confusion matrix, "
             "per-class scores, mistakes."),
    PageInfo("../pages/transfer.py", "Transfer learning", ":material/move_up:", "transfer",
             "Fine-tune an ImageNet backbone on your own images with the notes' three strategies, and race them."),
    PageInfo("../pages/classify.py", "Classify", ":material/image_search:", "classify",
             "Upload or photograph an image and see what a model sees: each preprocessing step, top-k, Grad-CAM, "
             "feature maps."),
    PageInfo("../pages/inside.py", "Inside the network", ":material/layers:", "inside",
             "One image followed stage by stage, the receptive field of any position, and a convolution computed "
             "by hand."),
]
