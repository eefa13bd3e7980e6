"""Start the real app (``streamlit run``) and a headless Chromium, for end-to-end tests and screenshots.

Every wait here is on a condition (the server's health check, Streamlit's script state on the page, a run's
status in the store), never a fixed pause; each names what it waited for when it times out.

After an interaction that makes Streamlit rerun the script (a button, Enter in a form, a select box, an
upload), wrap it in ``with rerun(page):`` — it returns once a new script run has *started and finished*,
so an assertion never looks at the page from before the rerun. Interactions that only change the browser
(opening an expander or a tab) need no wait beyond Playwright's own auto-waiting on the next locator.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import expect

from tests.conftest import wait_until

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
ACTIVE = ("queued", "running")  # run statuses that still hold a worker or a queue place
IDLE = '[data-testid="stApp"][data-test-connection-state="CONNECTED"][data-test-script-state="notRunning"]'

# Counts the script runs the page has seen: every change of stApp's data-test-script-state to "running",
# including the first render. Installed in every document (also after reload) by ``watch_script_runs``.
_COUNT_RUNS = """
(() => {
  window.__scriptRuns = 0;
  let last = null;
  const note = () => {
    const app = document.querySelector('[data-testid="stApp"]');
    const state = app ? app.getAttribute('data-test-script-state') : null;
    if (state === 'running' && last !== 'running') window.__scriptRuns += 1;
    last = state;
  };
  new MutationObserver(records => {
    for (const record of records) {
      if (record.type === 'attributes' && record.attributeName === 'data-test-script-state') {
        // The state this record changed *to* is the next record's old value, or the current one.
        const later = records.slice(records.indexOf(record) + 1)
          .find(r => r.target === record.target && r.attributeName === 'data-test-script-state');
        const state = later ? later.oldValue : record.target.getAttribute('data-test-script-state');
        if (state === 'running' && last !== 'running') window.__scriptRuns += 1;
        last = state;
      } else {
        note();
      }
    }
  }).observe(document, {subtree: true, childList: true, attributes: true, attributeOldValue: true,
                        attributeFilter: ['data-test-script-state']});
})();
"""


# Every element, picture, chart and table in the main column, against the column's content box.
OVERFLOW = """() => {
  const main = document.querySelector('[data-testid="stMainBlockContainer"]');
  const box = main.getBoundingClientRect(), style = getComputedStyle(main);
  const left = box.left + parseFloat(style.paddingLeft) - 1, right = box.right - parseFloat(style.paddingRight) + 1;
  const found = [];
  const selector = '[data-testid="stElementContainer"], img, canvas, svg.main-svg, ' +
                   '[data-testid="stGraphVizChart"] svg, table';
  for (const element of main.querySelectorAll(selector)) {
    const r = element.getBoundingClientRect();
    if (r.width === 0 || r.height === 0) continue;  // in a hidden tab
    if (r.left < left || r.right > right) {
      const owner = element.closest('[data-testid="stElementContainer"]');
      found.push(`${element.tagName} ${(owner && owner.className.match(/st-key-[^ ]+/)) || ''} ` +
                 `${Math.round(r.left)}–${Math.round(r.right)} outside ${Math.round(left)}–${Math.round(right)}`);
    }
  }
  if (document.documentElement.scrollWidth > window.innerWidth) found.push('the page scrolls sideways');
  return found;
}"""


def chromium_path() -> str | None:
    """Debian's chromium (Playwright's own browser download is not possible offline)."""
    for candidate in ("/usr/bin/chromium", shutil.which("chromium") or "", shutil.which("chromium-browser") or ""):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class App:
    """A running app: its base URL, its state directory (run store, checkpoints), its log and its server's pid."""

    url: str
    state_dir: Path
    log: Path
    pid: int = 0

    def log_tail(self, lines: int = 40) -> str:
        """The last lines the server wrote."""
        return _tail(self.log, lines)

    def store(self) -> Any:
        """The app's run store, read from the test process."""
        from core.runs import RunStore

        return RunStore(self.state_dir)


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=5) as response:
            return bool(response.read().strip() == b"ok")
    except OSError:
        return False


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@contextlib.contextmanager
def serve(timeout: float = 180, state_dir: str | Path | None = None, env: dict[str, str] | None = None) -> Iterator[App]:
    """Run ``streamlit run explorer/app.py`` on a free local port in its own process group; yield an App.

    The app keeps its runs in ``state_dir`` (default: a new temporary directory, removed afterwards) and looks
    for pretrained weights in ``state_dir/torch`` (``TORCH_HOME``), so what it offers does not depend on this
    machine's caches; ``env`` adds to the server's environment. On exit,
    every queued or running run in that store is asked to stop, then the server and every process it
    started (training workers included) are ended.
    """
    own_state = state_dir is None
    state = Path(state_dir or tempfile.mkdtemp(prefix="cnn-explorer-e2e-"))
    state.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = state / "streamlit.log"
    command = [sys.executable, "-m", "streamlit", "run", "explorer/app.py", "--server.port", str(port),
               "--server.address", "127.0.0.1", "--server.headless", "true",
               "--browser.gatherUsageStats", "false"]
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                   env={**os.environ, "PYTHONUNBUFFERED": "1", "CNN_EXPLORER_STATE": str(state),
                                        "TORCH_HOME": str(state / "torch"), **(env or {})})
    app = App(url, state, log_path, process.pid)
    try:
        def started() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"the app exited with {process.returncode}:\n{_tail(log_path)}")
            return _healthy(url)

        try:
            wait_until(started, timeout, f"the app's health check at {url}", poll=0.25)
        except TimeoutError as error:
            raise TimeoutError(f"{error}; the log ends:\n{_tail(log_path)}") from None
        yield app
    finally:
        try:
            stop_runs(state)
        finally:
            _end_process_group(process)
            if own_state:
                shutil.rmtree(state, ignore_errors=True)


@contextlib.contextmanager
def running_app(timeout: float = 180, state_dir: str | None = None) -> Iterator[str]:
    """``serve``, yielding only the base URL (the screenshot script's interface)."""
    with serve(timeout, state_dir) as app:
        yield app.url


def stop_runs(state_dir: str | Path, timeout: float = 120) -> list[str]:
    """Ask every queued or running run stored in ``state_dir`` to stop and wait until none is active.

    Returns the ids that were active. Without a run database there is nothing to stop; a store that cannot
    take stop requests (runs inside the server process) is left to the server's end.
    """
    if not (Path(state_dir) / "runs.sqlite").exists():
        return []
    from core.runs import RunStore

    store = RunStore(Path(state_dir))
    active = [run.id for run in store.runs(10_000) if run.status in ACTIVE]
    request_stop = getattr(store, "request_stop", None)
    if active and request_stop is not None:
        for run_id in active:
            request_stop(run_id)
        wait_until(lambda: all(store.run(run_id).status not in ACTIVE for run_id in active), timeout,
                   f"runs {', '.join(active)} to stop")
    return active


def _end_process_group(process: subprocess.Popen[Any]) -> None:
    """SIGTERM to the server's process group, SIGKILL after 20 s."""
    for sig, grace in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=grace)
            break
        except subprocess.TimeoutExpired:
            continue
    # Whatever the server started (a training worker) is in its group too; make sure none survives.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def watch_script_runs(context: Any) -> None:
    """Count Streamlit script runs in every page of a Playwright browser context (see ``rerun``)."""
    context.add_init_script(_COUNT_RUNS)


def script_runs(page: Any) -> int:
    """How many script runs the page's document has seen."""
    return int(page.evaluate("window.__scriptRuns || 0"))


def wait_until_idle(page: Any, timeout_ms: int = 120_000, after: int = 0) -> None:
    """Wait until more than ``after`` script runs have started in this document and the last has finished.

    After ``goto`` or ``reload`` the default (``after=0``) waits for the first run. Pages without the run
    counter (a context not passed to ``watch_script_runs``) wait only for the idle state.
    """
    page.wait_for_function(
        "([after, idle]) => (window.__scriptRuns === undefined || window.__scriptRuns > after)"
        " && document.querySelector(idle) !== null",
        arg=[after, IDLE], timeout=timeout_ms)


@contextlib.contextmanager
def rerun(page: Any, timeout_ms: int = 120_000, seen_within_ms: int = 15_000) -> Iterator[None]:
    """Run the block (an interaction), then wait until the rerun it caused has started and finished.

    A very short rerun can leave no trace in the DOM (React may batch "running" and "notRunning" into one
    render), so when no new run is seen within ``seen_within_ms`` this settles for the app being idle; the
    caller's next ``expect`` then waits for what the rerun shows.
    """
    before = script_runs(page)
    yield
    try:
        wait_until_idle(page, min(seen_within_ms, timeout_ms), after=before)
    except PlaywrightTimeoutError:
        wait_until_idle(page, timeout_ms)


def wait_until_drawn(page: Any, timeout_ms: int = 60_000) -> None:
    """Wait until the visible charts have drawn (plotly's SVG, Graphviz's SVG) and no element is a skeleton."""
    page.wait_for_function(
        "() => { const shown = sel => [...document.querySelectorAll(sel)].filter(e => e.offsetParent !== null);"
        " return shown('[data-testid=\"stSkeleton\"]').length === 0"
        " && shown('[data-testid=\"stPlotlyChart\"]').every(c => c.querySelector('.main-svg'))"
        " && shown('[data-testid=\"stGraphVizChart\"]').every(c => c.querySelector('svg')); }",
        timeout=timeout_ms)


def open_page(page: Any, url: str, timeout_ms: int = 120_000) -> None:
    """Load ``url`` and wait for its first script run to finish."""
    page.goto(url)
    wait_until_idle(page, timeout_ms)


# Uploads straight to the server, as a client that skips the browser's checks ------------------------------------

UPLOAD_ROUTE = "/_stcore/upload_file"


def upload_session(page: Any, url: str) -> str:
    """Open the Transfer page's zip uploader in ``page``, upload a few bytes through it and return the session id
    its upload URL names (the id lives in the browser; the server's runtime is in another process)."""
    open_page(page, f"{url}/transfer")
    with rerun(page):
        page.get_by_text("Upload a zip of class folders").click()
    with page.expect_request(lambda request: request.method == "PUT" and UPLOAD_ROUTE in request.url) as put:
        page.locator('.st-key-transfer-zip input[type="file"]').set_input_files(
            files=[{"name": "probe.zip", "mimeType": "application/zip", "buffer": b"PK"}])
    session_id = put.value.url.split(UPLOAD_ROUTE + "/", 1)[1].split("/")[0]
    wait_until_idle(page)
    return session_id


def put_upload(page: Any, url: str, session_id: str, file_id: str, data: bytes, timeout_ms: float = 300_000) -> Any:
    """PUT one file to the upload route as the Streamlit frontend does (multipart, XSRF cookie and header, with
    this page's cookies); Playwright's APIResponse (``.status``, ``.text()``)."""
    cookies = {cookie["name"]: cookie["value"] for cookie in page.context.cookies()}
    return page.request.put(f"{url}{UPLOAD_ROUTE}/{session_id}/{file_id}", timeout=timeout_ms,
                            headers={"X-Xsrftoken": cookies.get("_streamlit_xsrf", "")},
                            multipart={"file": {"name": f"{file_id}.bin", "mimeType": "application/octet-stream",
                                                "buffer": data}})


def draw_a_one(page: Any, pad: Any, timeout_ms: int = 60_000) -> None:
    """Draw a vertical stroke (a 1) on the drawing pad ``pad`` (a canvas locator) with the mouse."""
    pad.wait_for(state="visible", timeout=timeout_ms)
    box = pad.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + 140, box["y"] + 40)
    page.mouse.down()
    for step in range(1, 21):
        page.mouse.move(box["x"] + 140, box["y"] + 40 + step * 10)
    page.mouse.up()


def no_exception(page: Any) -> None:
    """The page shows no Streamlit exception box and no traceback."""
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)
    expect(page.get_by_text("Traceback")).to_have_count(0)
