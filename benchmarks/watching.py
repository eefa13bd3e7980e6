"""Does watching a run slow it down? LeNet-5 on digits, started from the app, with no tab and with three tabs.

    python -m benchmarks.watching [--epochs 150] [--rounds 1] [--browser-cpus 0]

Starts the real app (``streamlit run``) on a fresh state folder and headless Chromium (Debian's
/usr/bin/chromium). Each round starts one run from the Training page and closes the tab (nobody
watches), then starts another and keeps three tabs on its live page. Throughput is the run's own
images/s (images trained / training time, as its worker recorded it). Target: watched / alone ≥ 0.9.
Runs of one round use the same config, so only the watching differs; rounds alternate the order.

Here the browser shares the machine with the worker, which a lecture's browsers (on the students' and
the lecturer's own machines) do not: ``--browser-cpus 0`` keeps Chromium on CPU 0 (Linux ``taskset``),
a stand-in for browsers elsewhere, so the table shows what the server's side of watching costs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from core.runs import RunStore
from tests.browser import CHROMIUM_FLAGS, chromium_path, running_app, wait_until_idle


def _start_run(page, url: str, epochs: int) -> str:
    """Start LeNet-5 on digits (the page's defaults) for ``epochs`` from the Training page; the run id."""
    page.goto(f"{url}/training")
    wait_until_idle(page)
    page.get_by_text("Hyperparameters").click()
    field = page.get_by_role("spinbutton", name="Epochs")
    field.fill(str(epochs))
    field.press("Enter")  # submits the form
    page.wait_for_url("**run=*", timeout=120_000)
    return page.url.split("run=")[1].split("&")[0]


def _finish(store: RunStore, run_id: str) -> float:
    """Wait for the run to end; its images per second."""
    status = store.wait(run_id, timeout=1800, poll=0.5)
    if status != "completed":
        raise RuntimeError(f"run {run_id} ended {status}: {store.run(run_id).message}")
    return float((store.run(run_id).progress or {})["images_per_second"])


def browser_cpu_seconds() -> float:
    """CPU seconds (user + system) used so far by the running Chromium processes (Linux /proc; 0 elsewhere)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)
            if "chrom" not in fields[0]:
                continue
            values = fields[1].split()
            total += int(values[11]) + int(values[12])  # utime, stime (fields 14 and 15 of proc(5))
        except (OSError, IndexError, ValueError):
            continue  # a process that ended meanwhile
    return total / os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 0.0


def measure(browser, url: str, store: RunStore, epochs: int, tabs: int) -> tuple[float, float, float]:
    """One run watched by ``tabs`` tabs (0: the starting tab leaves at once); (images/s, wall seconds, the
    browser's CPU in % of one core over the run, tabs opening included)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    started, cpu = time.perf_counter(), browser_cpu_seconds()
    run_id = _start_run(page, url, epochs)
    if tabs == 0:
        page.goto("about:blank")
    else:
        for _ in range(tabs - 1):
            other = context.new_page()
            other.goto(f"{url}/training?run={run_id}")
    try:
        rate = _finish(store, run_id)
        wall = time.perf_counter() - started
        browser_share = 100 * (browser_cpu_seconds() - cpu) / wall
    finally:
        context.close()
    return rate, wall, browser_share


def _browser(cpus: str | None, folder: str) -> str:
    """Chromium's path, or a wrapper that starts it on these CPUs only."""
    path = chromium_path()
    assert path is not None
    if not cpus:
        return path
    if shutil.which("taskset") is None:
        raise SystemExit("--browser-cpus needs taskset (util-linux)")
    wrapper = Path(folder) / "chromium-on-cpus"
    wrapper.write_text(f'#!/bin/sh\nexec taskset -c {cpus} {path} "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the table."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.watching", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=150, help="epochs per run (aim for 20–40 s per run)")
    parser.add_argument("--rounds", type=int, default=1, help="pairs of runs (alone, watched), order alternating")
    parser.add_argument("--tabs", type=int, default=3, help="tabs on the live page of the watched run")
    parser.add_argument("--browser-cpus", help="run Chromium on these CPUs only (taskset list, e.g. 0)")
    args = parser.parse_args(argv)
    if chromium_path() is None:
        print("needs chromium (apt-get install chromium)", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    state = tempfile.mkdtemp(prefix="watching-")
    store = RunStore(Path(state))
    results: dict[int, list[tuple[float, float, float]]] = {0: [], args.tabs: []}
    with running_app(state_dir=state) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_browser(args.browser_cpus, state), args=CHROMIUM_FLAGS)
        try:
            measure(browser, url, store, 2, 0)  # warm-up: the worker starts, data and model code load
            for round_ in range(args.rounds):
                order = [0, args.tabs] if round_ % 2 == 0 else [args.tabs, 0]
                for tabs in order:
                    results[tabs].append(measure(browser, url, store, args.epochs, tabs))
                    rate, _, share = results[tabs][-1]
                    print(f"round {round_ + 1}, {tabs} tabs: {rate:,.0f} images/s, browser {share:.0f} % of a core",
                          file=sys.stderr)
        finally:
            browser.close()
    alone = statistics.median(rate for rate, _, _ in results[0])
    watched = statistics.median(rate for rate, _, _ in results[args.tabs])
    where = f"Chromium on CPUs {args.browser_cpus}" if args.browser_cpus else f"Chromium on any of {os.cpu_count()} CPUs"
    print(f"LeNet-5 on digits, {args.epochs} epochs per run, {args.rounds} round(s), {where}; medians")
    print("| browser tabs on the live page | images/s | run wall time (s) | browser CPU (% of a core) | ratio to alone |")
    print("|---|---|---|---|---|")
    for tabs, label in ((0, "none"), (args.tabs, str(args.tabs))):
        rate = statistics.median(r for r, _, _ in results[tabs])
        wall = statistics.median(w for _, w, _ in results[tabs])
        share = statistics.median(c for _, _, c in results[tabs])
        print(f"| {label} | {rate:,.0f} | {wall:.1f} | {share:.0f} | {rate / alone:.2f} |")
    pairs = [w / a for (a, _, _), (w, _, _) in zip(results[0], results[args.tabs], strict=True)]
    print(f"watched / alone = {watched / alone:.2f} (target ≥ 0.9); round by round: "
          + ", ".join(f"{ratio:.2f}" for ratio in pairs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
