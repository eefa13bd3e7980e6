"""The Ray executor under faults (issue 19, defect 8): a store actor that dies is restarted, or replaced when it is
gone for good, and a task that keeps failing before it can claim its run is tried again after growing pauses, a
bounded number of times, and then its run fails saying why.

Against a local Ray instance with 2 CPUs (skipped where Ray is not installed); each test has its own store and
executor, closed at its end.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core import executors, training
from tests.conftest import wait_until

pytestmark = pytest.mark.slow  # a Ray instance and its worker processes

HEARTBEAT_TIMEOUT = 15.0  # as in test_executors: a Ray task on a busy 2-core machine answers slowly
DIGITS = dict(arch="lenet5", dataset="digits", optimizer="adam", lr=3e-3, weight_decay=0.0, batch_size=32)


@pytest.fixture
def executor(tmp_path: Path, ray_instance: Any) -> Iterator[executors.RayExecutor]:
    """A Ray executor serving a fresh store; every active run is stopped and the executor closed afterwards."""
    serving = executors.RayExecutor(tmp_path, cpus_per_run=1, poll=0.1, heartbeat_timeout=HEARTBEAT_TIMEOUT)
    serving.start()
    try:
        yield serving
    finally:
        for run in serving.store.runs():
            if run.status in ("queued", "running"):
                serving.store.request_stop(run.id)
        serving.close()


def _actor_pid(executor: executors.RayExecutor) -> int:
    return int(executors.wait_for(executor._service.ping.remote()))


def test_a_store_actor_whose_process_dies_is_restarted_and_the_run_goes_on(executor: executors.RayExecutor) -> None:
    """The actor's process is killed while a run trains: Ray restarts it, the trainer's writes wait for it, and the
    run goes on (it used to fail: every write of the run raised Ray's actor error)."""
    store = executor.store
    run_id = store.create_run(training.TrainConfig(epochs=500, seed=5, **DIGITS))
    executor.ensure()
    wait_until(lambda: store.metrics(run_id, "epoch"), 240, f"run {run_id}'s first epoch")
    first = _actor_pid(executor)
    os.kill(first, signal.SIGKILL)
    steps = store.metrics(run_id, "step")[-1]["step"]
    wait_until(lambda: store.metrics(run_id, "step")[-1]["step"] > steps + 20, 240,
               "the run to log steps after the store actor was killed")
    assert store.run(run_id).status == "running"
    assert _actor_pid(executor) != first
    assert store.request_stop(run_id) == "stopping"
    assert store.wait(run_id, timeout=120) == "stopped", store.run(run_id).message
    assert "last" in store.checkpoints(run_id)


def test_a_store_actor_killed_for_good_is_replaced_and_the_queue_trains(executor: executors.RayExecutor,
                                                                        ray_instance: Any) -> None:
    """``ray.kill`` ends the actor without a restart: the executor starts another, and queued runs train (they
    used to be sent to the dead actor's tasks, which failed, and were sent again, forever)."""
    store = executor.store
    dead = executor._service
    ray_instance.kill(dead)
    run_id = store.create_run(training.TrainConfig(epochs=1, seed=6, **DIGITS))
    executor.ensure()
    assert store.wait(run_id, timeout=240) == "completed", store.run(run_id).message
    assert executor._service is not dead


def _cannot_start(*_: object) -> str:
    """A task body that fails before it claims its run (as a node whose environment cannot import the trainer)."""
    raise RuntimeError("this node cannot import the trainer")


def test_a_task_that_keeps_failing_before_its_claim_is_sent_a_bounded_number_of_times(
        executor: executors.RayExecutor, ray_instance: Any, caplog: pytest.LogCaptureFixture) -> None:
    """Each try waits twice as long as the one before; after the bound the run fails with the reason, and Resume
    queues it again (it used to be sent again every half second, forever, while the page said it was starting)."""
    store = executor.store
    trainer, executor._task = executor._task, ray_instance.remote(_cannot_start)
    executor.retry_first, executor.retry_most = 0.05, 3
    sent: list[str] = []
    submit = executor._submit
    executor._submit = lambda run: (sent.append(run.id), submit(run))[1]  # type: ignore[method-assign]
    run_id = store.create_run(training.TrainConfig(epochs=1, seed=7, **DIGITS))
    with caplog.at_level("WARNING", logger="core.executors"):
        executor.ensure()
        assert store.wait(run_id, timeout=120) == "failed"
    assert sent == [run_id] * 3
    message = store.run(run_id).message
    assert message.startswith("Its Ray task failed 3 times in a row before it could start training (RuntimeError: "
                              "this node cannot import the trainer)"), message
    assert "task 1 of 3 failed before it could start" in caplog.text and "the next in 0.05 s" in caplog.text
    assert "task 2 of 3" in caplog.text and "the next in 0.1 s" in caplog.text
    assert caplog.text.count("Traceback") <= 1
    wait_until(lambda: executor.problem is None, 30, "the executor to stop reporting the failed run")
    executor._task = trainer
    store.resume(run_id)
    assert store.wait(run_id, timeout=240) == "completed", store.run(run_id).message
