"""Page activity (issue 23): the server marks pages cheaply; a CPU run takes every core it may use while no page
is served, and leaves the server its share within about a second of one."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
import torch

from core import activity, runs, training, worker
from core.activity import PageActivity, ThreadShare
from tests.conftest import FAST, tiny, wait_until


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_mark_writes_the_file_at_most_once_a_second(tmp_path: Path) -> None:
    clock = FakeClock()
    marker = PageActivity(tmp_path / "state", clock=clock)
    assert marker.age() == float("inf")  # never marked: no page was served
    assert marker.mark() and marker.path.exists()  # the folder is made when missing
    old = time.time() - 60
    os.utime(marker.path, (old, old))
    clock.now += 0.5
    assert not marker.mark()  # within a second of the last write: no file operation at all
    assert marker.age() >= 59
    clock.now += 0.6
    assert marker.mark()
    assert marker.age() < 30  # written now (the machine may be slow, the test never asserts how slow)


def test_a_mark_in_the_future_reads_as_a_page_being_served(tmp_path: Path) -> None:
    marker = PageActivity(tmp_path)
    marker.mark()
    ahead = time.time() + 3600  # the wall clock was set back an hour after the mark
    os.utime(marker.path, (ahead, ahead))
    assert marker.age() == 0


def test_a_folder_that_cannot_be_written_is_no_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    marker = PageActivity(blocker / "state")
    assert marker.mark() is False and marker.age() == float("inf")


def test_settle_waits_only_at_the_start_of_a_busy_spell(tmp_path: Path) -> None:
    clock = FakeClock()
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock.now += seconds

    marker = PageActivity(tmp_path, clock=clock)
    assert marker.settle(1.0, sleep) == pytest.approx(1.0)  # the first page after a quiet spell
    clock.now += 0.2
    assert marker.settle(1.0, sleep) == 0  # workers have had their second already
    clock.now += activity.QUIET_SECONDS + 1  # quiet again: workers may have taken every core
    assert marker.settle(1.0, sleep) == pytest.approx(1.0)
    assert waits == [pytest.approx(1.0), pytest.approx(1.0)]


@pytest.mark.parametrize(("age", "expected"), [(float("inf"), 4), (10.0, 4), (5.0, 4), (4.9, 3), (0.0, 3)])
def test_threads_are_the_maximum_while_no_page_is_served(age: float, expected: int) -> None:
    assert activity.threads_now(4, 3, age, quiet=5.0) == expected


def test_threads_never_drop_below_one_nor_exceed_the_maximum() -> None:
    assert activity.threads_now(1, 0, 0.0) == 1
    assert activity.threads_now(0, 0, float("inf")) == 1
    assert activity.threads_now(2, 5, 0.0) == 2


@pytest.mark.parametrize(("cores", "workers", "expected"),
                         [(1, 1, (1, 1)), (2, 1, (2, 1)), (4, 1, (4, 3)), (4, 2, (2, 1)), (2, 4, (1, 1)), (16, 3, (5, 5))])
def test_each_worker_may_take_its_share_of_every_core(cores: int, workers: int, expected: tuple[int, int]) -> None:
    assert activity.worker_threads(cores, workers) == expected


def test_the_share_can_be_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(activity.SHARE_ENV, raising=False)
    assert activity.share_enabled()
    for off in ("0", "false", "No"):
        monkeypatch.setenv(activity.SHARE_ENV, off)
        assert not activity.share_enabled()


class FixedAge:
    """An activity marker whose age the test sets."""

    def __init__(self) -> None:
        self.value = float("inf")
        self.reads = 0

    def age(self) -> float:
        self.reads += 1
        return self.value


def test_thread_share_reads_the_marker_at_most_every_check_and_records_each_change() -> None:
    clock, marker = FakeClock(), FixedAge()
    before = torch.get_num_threads()
    share = ThreadShare(marker, 2, 1, check_every=0.5, clock=clock)  # type: ignore[arg-type]
    try:
        share.on_fit_start(None)
        assert share.threads == torch.get_num_threads() == 2
        marker.value = 0.0
        for _ in range(100):  # many fast batches inside half a second: one read (at fit start) so far
            share.on_step()
        assert marker.reads == 1 and share.threads == 2
        clock.now += 0.5
        share.on_step()
        assert share.threads == torch.get_num_threads() == 1
        assert [threads for _, threads in share.changes] == [2, 1]
    finally:
        torch.set_num_threads(before)


def test_a_cpu_run_takes_every_core_it_may_until_a_page_is_served(tmp_path: Path) -> None:
    store = runs.RunStore(tmp_path)
    marker = PageActivity(tmp_path)
    run_id = store.create_run(training.TrainConfig(epochs=10_000, device="cpu", **FAST))
    trainer = worker.Worker(store, "cpu", load_data=lambda name: tiny(), threads=(2, 1))
    thread = threading.Thread(target=trainer.take_one, name="training")
    thread.start()
    try:
        def threads() -> int | None:
            share = trainer.share
            return share.threads if share is not None else None

        wait_until(lambda: threads() == 2, 120, "the run to train on 2 threads while no page is served")
        marker.mark()
        wait_until(lambda: threads() == 1, 60, "the run to leave the server its core")
        def says_one_thread() -> bool:
            marker.mark()  # a page is still being served (written at most once a second)
            return "1 thread of" in (store.run(run_id).device or "")

        wait_until(says_one_thread, 120, "the run's device to say the threads it trains on now (at an epoch's end)")
        past = time.time() - 2 * activity.QUIET_SECONDS
        os.utime(marker.path, (past, past))  # the last page was served a while ago
        wait_until(lambda: threads() == 2, 60, "the run to take the core again")
        changes = trainer.share.changes if trainer.share is not None else []
        assert [count for _, count in changes][:3] == [2, 1, 2]
    finally:
        store.request_stop(run_id)
        thread.join(120)
    assert not thread.is_alive() and store.run(run_id).status == "stopped"
