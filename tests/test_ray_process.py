"""The Ray executor outside the web server (issue 19, defect 8): the app starts ``python -m core.executors serve`` as
a child, never imports Ray itself, says why the queue waits when the child cannot serve it, starts another when it
dies, and a clean stop leaves no Ray process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from core import ray_serve, runs, training
from explorer import ray_process
from tests.conftest import wait_until

ROOT = Path(__file__).resolve().parents[1]


def _children() -> dict[int, list[int]]:
    """Every process's children, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    return children


def descendants(pid: int) -> set[int]:
    """The processes started, directly or not, by ``pid``."""
    found, children, waiting = set(), _children(), [pid]
    while waiting:
        for child in children.get(waiting.pop(), []):
            if child not in found:
                found.add(child)
                waiting.append(child)
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` is a process that has not exited (a zombie has)."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def test_the_web_server_never_imports_ray(tmp_path: Path) -> None:
    script = ("import sys; from explorer import ray_process; ray_process.RayProcess(sys.argv[1]); "
              "print('ray' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path)], cwd=ROOT, capture_output=True,
                            text=True, timeout=120, check=True)
    assert result.stdout.strip() == "False"


def test_a_child_that_cannot_serve_is_said_and_started_again_after_a_pause(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    problem = "Ray could not be started or reached (ConnectionError: no cluster at 10.0.0.9:6379)."
    exits = ("import json, os, sys; from pathlib import Path; path = Path(sys.argv[1]); path.parent.mkdir("
             "parents=True, exist_ok=True); path.write_text(json.dumps({'pid': os.getpid(), 'problem': sys.argv[2]}));"
             f" sys.exit({ray_serve.CANNOT_START})")
    monkeypatch.setattr(ray_process, "FIRST_PAUSE", 0.5)
    executor = ray_process.RayProcess(tmp_path, check_every=0.1)
    monkeypatch.setattr(executor, "_command", lambda: [sys.executable, "-c", exits,
                                                        str(ray_serve.status_path(tmp_path)), problem])
    try:
        executor.ensure()
        wait_until(lambda: executor.problem is not None and "exited (code 3)" in executor.problem, 60,
                   "the problem said")
        assert problem in (executor.problem or "") and "ray-executor.log" in (executor.problem or "")
        wait_until(lambda: executor.started >= 3, 60, "a third start")  # started again, each time after a longer pause
        assert executor.pause > ray_process.FIRST_PAUSE
    finally:
        executor.close()
    started = executor.started
    assert executor.pid() is None and executor.started == started  # closed: none started after


@pytest.mark.slow
def test_runs_train_on_a_child_executor_that_is_replaced_when_killed_and_leaves_nothing_when_stopped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("ray", reason="Ray is not installed: pip install -r requirements-ray.txt")
    monkeypatch.setattr(ray_process, "FIRST_PAUSE", 0.5)
    monkeypatch.setenv("RAY_DEDUP_LOGS", "0")
    store = runs.RunStore(tmp_path)
    config = training.preset("Fast", arch="lenet5", dataset="digits", epochs=1, device="cpu")
    executor = ray_process.RayProcess(tmp_path, check_every=0.2)
    try:
        first = store.create_run(config)
        executor.ensure()
        wait_until(lambda: store.run(first).status == "completed", 300, "the first run trained on Ray")
        killed = executor.pid()
        assert killed is not None and json.loads(ray_serve.status_path(tmp_path).read_text())["problem"] is None
        left = descendants(killed)
        os.kill(killed, signal.SIGKILL)  # as when Ray's head is lost and the driver exits
        wait_until(lambda: executor.pid() not in (None, killed), 60, "another executor process")
        wait_until(lambda: not any(alive(pid) for pid in left), 60, "every Ray process of the killed executor gone")
        second = store.create_run(config)
        wait_until(lambda: store.run(second).status == "completed", 300, "the second run trained on Ray")
        serving = executor.pid()
        assert serving is not None
        helpers = descendants(serving)
        assert helpers, "a local Ray instance runs under the executor process"
    finally:
        executor.close()
    assert not alive(serving)
    wait_until(lambda: not any(alive(pid) for pid in helpers), 60, "every Ray process of the executor gone")
