"""Shared fixtures: a fixed seed, a temporary state directory, a run store, and the app in a browser."""

from __future__ import annotations

import http.server
import io
import os
import stat
import sys
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import torch

from core import models
from core.models import opened

# A designed network (a residual and a parallel block) goes through every registry-parametrized test beside the zoo.
# No gap: a design's global pooling belongs to its feature maps, so the last map would be 1×1 (see the note).
DESIGNED = opened.design_name("name designed; input 1x32x32; conv 8 k3 p1 bn; residual { conv 8 k3 p1 bn; "
                              "conv 8 k3 p1 bn }; maxpool 2; parallel { conv 8 k1 | conv 8 k3 p1 }; maxpool 2; "
                              "conv 16 k3 p1; dropout 0.2; fc 10")
NAMES = [*models.names(), DESIGNED]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True, scope="session")
def _state_dir(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Runs, checkpoints and data sets of the whole test session go to a temporary state directory."""
    os.environ["CNN_EXPLORER_STATE"] = str(tmp_path_factory.mktemp("state"))
    os.environ["TORCH_HOME"] = str(tmp_path_factory.mktemp("torch"))  # no weights but what a test puts there
    # Ray starts its workers at nice 15: beside other work (two CPU hogs, the second test process) they get a few
    # per cent of a core and a 30 s Ray test takes many minutes. The local Ray instances the tests start (and the
    # app's, in the Ray browser test) run their workers at normal priority, as the app's own workers do.
    os.environ.setdefault("RAY_worker_niceness", "0")


# Helpers shared by test files (import them from here: no test file imports another) ---------------


def finished_run(store: Any, epochs: int = 2) -> str:
    """A run of ``tiny()`` trained to the end in this process into ``store`` (a RunStore); its id."""
    from core import runs, training

    run_id = store.create_run(training.TrainConfig(epochs=epochs, **FAST), status="running", worker="test")
    training.fit(training.TrainConfig(epochs=epochs, **FAST), tiny(), [runs.StoreCallback(store, run_id)],
                 run_id=run_id, checkpoint_dir=store.checkpoint_dir(run_id))
    return run_id


T = TypeVar("T")


def at_once(action: Callable[[], T], count: int, timeout: float = 60) -> list[T | Exception]:
    """Run ``action`` in ``count`` threads released together (a barrier); what each returned or raised."""
    start = threading.Barrier(count)
    results: list[T | Exception] = []

    def run() -> None:
        start.wait()
        try:
            results.append(action())
        except Exception as error:  # noqa: BLE001 (returned to the test, which asserts on it)
            results.append(error)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    if any(thread.is_alive() for thread in threads):
        raise TimeoutError(f"waited {timeout}s for {count} threads running {action}")
    return results


def wait_until(condition: Callable[[], T], timeout: float, what: str, poll: float = 0.1) -> T:
    """Call ``condition`` until it returns something truthy and return that; after ``timeout`` seconds raise
    ``TimeoutError("waited {timeout}s for {what}")``. The poll interval is a pause between checks, never a
    guess of how long something takes."""
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


def make_zip(members: dict[str, bytes], symlinks: tuple[str, ...] = ()) -> io.BytesIO:
    """A zip in memory with ``members`` (name → bytes) and symlink members pointing at /etc/passwd."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, payload in members.items():
            archive.writestr(name, payload)
        for name in symlinks:
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    buffer.seek(0)
    return buffer


FAST = dict(optimizer="adam", lr=3e-3, batch_size=16, weight_decay=0.0)  # a recipe that learns tiny() in a few epochs


def tiny(classes: int = 3, per_class: int = 24, size: int = 28, channels: int = 1):
    """A learnable toy set: each class is a bright square in its own corner."""
    from core import data

    generator = torch.Generator().manual_seed(0)
    images, labels = [], []
    for label in range(classes):
        for _ in range(per_class):
            image = torch.randint(0, 40, (channels, size, size), generator=generator, dtype=torch.uint8)
            row, column = divmod(label, 2)
            image[:, row * 14:row * 14 + 10, column * 14:column * 14 + 10] = 250
            images.append(image)
            labels.append(label)
    train, val, test = data._split(torch.stack(images), torch.tensor(labels), (0.6, 0.2), seed=0)
    return data.InMemoryData("tiny", tuple(map(str, range(classes))), train, val, test, (0.2,) * channels,
                             (0.3,) * channels)


def make_image_folder(root, classes=("circle", "square"), per_class: int = 6):
    """A tiny generated image folder: one sub-folder per class, plus files that are not images."""
    from PIL import Image, ImageDraw

    for label, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            picture = Image.new("RGB", (40 + i, 36), "white")
            draw = ImageDraw.Draw(picture)
            box = (8, 8, 30, 28)
            (draw.ellipse if label == 0 else draw.rectangle)(box, fill=(200, 30 * i, 40))
            picture.save(folder / f"{i}.{'png' if i % 2 else 'jpg'}")
        (folder / "notes.txt").write_text("not an image")
        (folder / ".DS_Store").write_bytes(b"\0")
    (root / "__MACOSX").mkdir()
    return root


class Recorder:
    """A subscriber that records every hook call, and the progress snapshots it was given."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.snapshots: list = []

    def __getattr__(self, name: str):
        if name.startswith("on_"):
            return lambda progress: (self.calls.append(name), self.snapshots.append(progress))
        raise AttributeError(name)


@pytest.fixture
def run_store(tmp_path: Path) -> Iterator[Any]:
    """A run store of its own; on teardown every run still queued or running in it is stopped."""
    from core.runs import RunStore
    from tests.browser import stop_runs

    store = RunStore(tmp_path / "store")
    yield store
    stop_runs(store.root)


# The app in a browser ------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Debian chromium for the session (skipped where there is none, an error in CI)."""
    from tests.browser import CHROMIUM_FLAGS, chromium_path

    executable = chromium_path()
    if executable is None:
        if os.environ.get("CI"):
            raise RuntimeError("CI must run the browser tests: install Debian's chromium (see tests/run.sh)")
        pytest.skip("no chromium on this machine: `apt-get install chromium` to run the browser tests")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context and page that count Streamlit's script runs (for ``tests.browser.rerun``)."""
    from playwright.sync_api import expect

    from tests.browser import watch_script_runs

    expect.set_options(timeout=60_000)  # a busy 2-core machine renders slowly; conditions, not sleeps
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    watch_script_runs(context)
    page = context.new_page()
    page.set_default_timeout(60_000)
    yield page
    context.close()


@pytest.fixture
def app() -> Iterator[Any]:
    """The app on its own server and state directory, for a test that starts runs; stopped, with every
    run it started, when the test ends (also when it fails)."""
    from tests.browser import serve

    with serve() as running:
        yield running
        print(f"--- the app's log ends ({running.log}):\n{running.log_tail()}")  # shown when the test fails


@pytest.fixture(scope="module")
def shared_app() -> Iterator[Any]:
    """One app for a module's tests that start no run; torn down like ``app``."""
    from tests.browser import serve

    with serve() as running:
        yield running


@pytest.fixture
def app_url(shared_app: Any) -> Iterator[str]:
    """The shared app's URL; after each test no run may be left active in it."""
    from tests.browser import stop_runs

    yield shared_app.url
    left = stop_runs(shared_app.state_dir)
    assert not left, f"the test left runs active in the shared app (use the `app` fixture): {left}"
class LocalHub(http.server.ThreadingHTTPServer):
    """A local HTTP server standing in for a download site (tests never reach the network).

    Serves ``files`` (name → bytes); a name in ``cut`` announces its full length and sends half.
    """

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cut: set[str] = set()
        super().__init__(("127.0.0.1", 0), LocalHubHandler)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/models"


class LocalHubHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (the http.server API)
        name = self.path.rsplit("/", 1)[-1]
        payload = self.server.files.get(name)
        if payload is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload[: len(payload) // 2] if name in self.server.cut else payload)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(autouse=True, scope="module")
def _stop_app_workers() -> Iterator[None]:
    """Stop the training workers that pages of this module started (and forget them: later modules start anew)."""
    yield
    services = sys.modules.get("explorer.services")
    if services is not None:
        services.supervisor().close()
        services.supervisor.clear()


@pytest.fixture(scope="module")
def digits_run() -> str:
    """A LeNet-5 trained on the bundled digits through the app's services, in the test session's run store."""
    from core import training
    from explorer import services

    run_id = services.submit(training.preset("Fast", arch="lenet5", dataset="digits", epochs=3))
    assert services.run_store().wait(run_id, timeout=300) == "completed"
    return run_id


@pytest.fixture(scope="module")
def ray_instance() -> Iterator[Any]:
    """A local Ray instance with 2 CPUs for the module (started here, shut down at the end)."""
    ray = pytest.importorskip("ray", reason="Ray is not installed: pip install -r requirements-ray.txt")
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 2**20, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()
