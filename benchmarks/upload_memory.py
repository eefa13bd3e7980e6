"""What large uploads to one browser session cost the server's memory, with the session budget and without it.

    python -m benchmarks.upload_memory                  # three 550 MB files
    python -m benchmarks.upload_memory --size-mb 100 --count 5

For each setting, the app is started on 127.0.0.1 (``tests.browser.serve``), one headless Chromium session opens
the Transfer page and uploads a probe through its zip uploader (which names the session id), then this process
PUTs the files straight to ``/_stcore/upload_file/{session}/{file}`` as the Streamlit frontend does (XSRF cookie
and header), streamed from a small buffer, the way a client that skips the browser's size check sends them.
After each upload it prints the HTTP status and the server's RSS (the server and every process it started, from
``/proc/*/smaps_rollup``), one second after the answer, and the highest RSS seen while the upload was under way
(sampled every 50 ms). Baseline, in the same run: ``CNN_EXPLORER_SESSION_UPLOAD_MB=0`` (no budget); then the
default budget. Asserts nothing.
"""

from __future__ import annotations

import argparse
import http.client
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from explorer import upload_budget
from tests.browser import CHROMIUM_FLAGS, chromium_path, serve, upload_session, watch_script_runs

MB = 2**20
CHUNK = b"\0" * MB  # the file's content, sent a MiB at a time: this process never holds the whole file
SETTINGS = {"no budget (baseline)": "0", f"budget {upload_budget.DEFAULT_SESSION_UPLOAD_MB} MB (default)": ""}


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants, from /proc."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            # smaps_rollup, not status's VmRSS: the kernel updates VmRSS lazily (it lagged a 50 MB upload)
            rollup = Path(f"/proc/{current}/smaps_rollup").read_text()
            total += next(int(line.split()[1]) * 1024 for line in rollup.splitlines() if line.startswith("Rss:"))
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(child) for child in (task / "children").read_text().split()]
        except (OSError, StopIteration):  # ended meanwhile, or a kernel thread without memory
            continue
    return total


class PeakSampler:
    """The highest tree RSS of ``pid`` while the ``with`` block runs, sampled every 50 ms."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak = pid, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss(self.pid))
            self._stop.wait(0.05)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _body(boundary: str, name: str, size: int) -> tuple[int, Iterator[bytes]]:
    """A multipart body with one file of ``size`` zero bytes: its length, and its parts a MiB at a time."""
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    def parts() -> Iterator[bytes]:
        yield head
        left = size
        while left > 0:
            yield CHUNK[:min(left, MB)]
            left -= MB
        yield tail

    return len(head) + size + len(tail), parts()


def put(url: str, xsrf: str, session_id: str, size: int) -> tuple[int, str]:
    """PUT one file of ``size`` bytes to ``session_id``'s upload route; the status and the answer's text."""
    address = urlsplit(url)
    boundary = uuid.uuid4().hex
    length, body = _body(boundary, "large.bin", size)
    connection = http.client.HTTPConnection(address.hostname or "127.0.0.1", address.port, timeout=600)
    try:
        connection.request("PUT", f"/_stcore/upload_file/{session_id}/{uuid.uuid4()}", body=body, headers={
            "Content-Type": f"multipart/form-data; boundary={boundary}", "Content-Length": str(length),
            "Cookie": f"_streamlit_xsrf={xsrf}", "X-Xsrftoken": xsrf})
        response = connection.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        connection.close()


def measure(browser: Any, setting: str, limit: str, size: int, count: int) -> list[tuple[str, str, float, float]]:
    """Rows (step, status, RSS after in MB, peak RSS during in MB) for one server setting."""
    rows: list[tuple[str, str, float, float]] = []
    with serve(env={upload_budget.ENV: limit}) as app:
        context = browser.new_context()
        try:
            watch_script_runs(context)
            page = context.new_page()
            page.set_default_timeout(120_000)
            session_id = upload_session(page, app.url)
            xsrf = {cookie["name"]: cookie["value"] for cookie in context.cookies()}["_streamlit_xsrf"]
            time.sleep(1)
            before = tree_rss(app.pid)
            rows.append(("session open", "", before / MB, before / MB))
            for index in range(1, count + 1):
                with PeakSampler(app.pid) as sampler:
                    status, text = put(app.url, xsrf, session_id, size)
                time.sleep(1)
                detail = f"{status}" if status == 204 else f"{status} {text[:60]}"
                rows.append((f"upload {index} ({size // MB} MB)", detail, tree_rss(app.pid) / MB, sampler.peak / MB))
        finally:
            context.close()
    print(f"\n{setting}")
    print(f"  {'step':<22} {'RSS after MB':>12} {'peak MB':>8}  HTTP")
    for step, detail, after, peak in rows:
        print(f"  {step:<22} {after:>12,.0f} {peak:>8,.0f}  {detail}")
    return rows


def main(argv: list[str] | None = None) -> None:
    """Measure both settings and print their tables."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.upload_memory", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=550, help="size of each file (MB, at most 600)")
    parser.add_argument("--count", type=int, default=3, help="files sent to the one session")
    args = parser.parse_args(argv)
    executable = chromium_path()
    if executable is None:
        raise SystemExit("needs a chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        try:
            for setting, limit in SETTINGS.items():
                measure(browser, setting, limit, args.size_mb * MB, args.count)
        finally:
            browser.close()


if __name__ == "__main__":
    main()
