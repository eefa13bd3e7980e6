"""Does a CPU run train faster when it takes the web server's core while no page is served? The same LeNet-5 run
started from the Training page of two apps in the same benchmark: one with the shared count always
(``CNN_EXPLORER_SHARE_IDLE_CORES=0``, the policy before issue 23: the worker leaves one core to the server) and
one taking every core while no page was served for a few seconds (``core.activity``), each with one tab on the
run's live page, as a lecture has.

    python -m benchmarks.idle_cores [--epochs 150] [--rounds 2] [--dataset digits]

Throughput is the run's own images/s (as its worker recorded it); wall is from pressing Start to the end of the
run, page loads included. Rounds alternate which app goes first. Needs Debian's chromium.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.watching import _finish, _start_run
from core.runs import RunStore
from tests.browser import CHROMIUM_FLAGS, chromium_path, serve

POLICIES = {"shared count always (before)": "0", "every core while no page is served (after)": "1"}


def measure(browser, url: str, store: RunStore, epochs: int) -> tuple[float, float]:
    """One run watched by one tab: (images/s, wall seconds from Start to its end)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        started = time.perf_counter()
        run_id = _start_run(page, url, epochs)  # the tab stays on the run's live page
        rate = _finish(store, run_id)
        return rate, time.perf_counter() - started
    finally:
        context.close()


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the table."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.idle_cores", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=150, help="epochs of LeNet-5 on digits per run")
    parser.add_argument("--rounds", type=int, default=2, help="runs per policy, the order alternating")
    args = parser.parse_args(argv)
    if chromium_path() is None:
        print("needs chromium (apt-get install chromium)", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    results: dict[str, list[tuple[float, float]]] = {name: [] for name in POLICIES}
    with sync_playwright() as playwright, contextlib.ExitStack() as stack:
        apps = {}
        for name, share in POLICIES.items():
            state = Path(tempfile.mkdtemp(prefix="idle-cores-"))
            app = stack.enter_context(serve(state_dir=state, env={"CNN_EXPLORER_SHARE_IDLE_CORES": share}))
            apps[name] = (app.url, RunStore(state))
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
        stack.callback(browser.close)
        for url, store in apps.values():
            measure(browser, url, store, 2)  # warm-up: the worker starts, data and model code load
        for round_ in range(args.rounds):
            order = list(POLICIES) if round_ % 2 == 0 else list(reversed(POLICIES))
            for name in order:
                results[name].append(measure(browser, *apps[name], args.epochs))
                rate, wall = results[name][-1]
                print(f"round {round_ + 1}, {name}: {rate:,.0f} images/s, {wall:.1f} s", file=sys.stderr)
    before = statistics.median(rate for rate, _ in results[next(iter(POLICIES))])
    print(f"LeNet-5 on digits, {args.epochs} epochs per run, one tab on the live page, {args.rounds} round(s); medians")
    print("| CPU worker's threads | images/s | wall from Start (s) | ratio to before |")
    print("|---|---|---|---|")
    for name, runs in results.items():
        rate, wall = statistics.median(r for r, _ in runs), statistics.median(w for _, w in runs)
        print(f"| {name} | {rate:,.0f} | {wall:.1f} | {rate / before:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
