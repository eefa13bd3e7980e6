"""Replay of a finished run on the Training page: the time → rows logic, the clock, and the page through AppTest."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from explorer.replay import Clock, Recording
from tests.apptest import open_page


def _recording(run_id: str) -> Recording:
    from explorer import services

    store = services.run_store()
    return Recording(store.metrics(run_id, "step"), store.metrics(run_id, "epoch"))


def test_a_recording_shows_nothing_at_the_start_everything_at_the_end_and_more_as_time_goes(digits_run: str) -> None:
    recording = _recording(digits_run)
    assert recording.steps and len(recording.epochs) == 3
    assert recording.at(0.0) == ([], [])
    assert recording.at(recording.duration) == (recording.steps, recording.epochs)
    assert recording.at(recording.duration * 10) == (recording.steps, recording.epochs)
    shown = [recording.at(recording.duration * i / 50) for i in range(51)]
    for (steps, epochs), (later_steps, later_epochs) in zip(shown, shown[1:], strict=False):
        assert later_steps[:len(steps)] == steps and len(later_steps) >= len(steps)
        assert later_epochs[:len(epochs)] == epochs and len(later_epochs) >= len(epochs)
    first, last = recording.steps[0]["elapsed"], recording.steps[-1]["elapsed"]
    for seconds in (first, (first + last) / 2):
        steps, epochs = recording.at(seconds)
        assert all(row["elapsed"] <= seconds for row in steps + epochs)
        assert 0 < len(steps) < len(recording.steps), "between the first and the last row, part of the curve"


def test_a_recording_with_elapsed_going_back_shows_a_prefix_never_a_gap() -> None:
    rows = [{"step": i, "epoch": 1, "elapsed": e} for i, e in enumerate([1.0, 2.0, 1.5, 3.0])]
    recording = Recording(rows, [])
    assert recording.duration == 3.0
    assert recording.at(1.7)[0] == rows[:1]
    assert recording.at(2.0)[0] == rows[:3]


def test_the_clock_plays_pauses_changes_speed_and_jumps() -> None:
    clock = Clock(speed=30, position=0.0, since=100.0)
    assert clock.at(100.0, end=60) == 0 and clock.at(101.0, end=60) == 30 and clock.at(150.0, end=60) == 60
    paused = clock.pause(101.0, end=60)
    assert not paused.playing and paused.at(500.0, end=60) == 30
    slower = clock.with_speed(5, 101.0, end=60)
    assert slower.playing and slower.at(102.0, end=60) == 35
    assert paused.with_speed(60, 200.0, end=60).at(300.0, end=60) == 30  # paused stays paused
    ended = clock.to_end(60)
    assert ended.at(1e9, end=60) == 60 and not ended.playing
    again = ended.play(400.0, end=60)
    assert again.at(400.0, end=60) == 0 and again.at(401.0, end=60) == 30, "Play at the end starts again"
    assert paused.play(200.0, end=60).at(200.5, end=60) == 45, "Play goes on from where it paused"
    assert clock.restart(101.0, end=60).at(102.0, end=60) == 30, "From the start while playing plays on"
    assert not paused.restart(200.0, end=60).playing and paused.restart(200.0, end=60).at(300.0, end=60) == 0
    played_out = clock.restart(500.0, end=60)  # (reached the end at 102: the page offered "Play again")
    assert not played_out.playing and played_out.at(900.0, end=60) == 0, "From the start after the end waits"


def _progress(at: AppTest) -> str:
    return str(at.get("progress")[0].proto.text)


def _metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def _at(at: AppTest, run_id: str, clock: Clock) -> AppTest:
    at.session_state[f"replay-clock-{run_id}"] = clock
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _final(run_id: str) -> dict[str, str]:
    from explorer import services, training_view

    run = services.run(run_id)
    return {"Test accuracy": f"{run.test['accuracy']:.2%}", "Test loss": f"{run.test['loss']:.4f}",
            "Training time": training_view.duration(run.elapsed)}


@pytest.mark.parametrize("present", ["0", "1"])
def test_a_replay_from_the_url_plays_the_curves_and_reaches_the_runs_final_figures(digits_run: str,
                                                                                   present: str) -> None:
    at = open_page("training", run=digits_run, replay="60", present=present)
    assert at.segmented_control(key="replay").value == "60"
    assert at.query_params["replay"] == "60"
    _at(at, digits_run, Clock(60, 0.0, None))  # paused at the start
    assert _progress(at).startswith("Replay at 60× · Starting · 0%")
    assert not at.get("image") and "Test accuracy" not in _metrics(at)
    assert [b.label for b in at.button if b.key and b.key.startswith("replay-")] == [
        "Play", "From the start", "Jump to the end"]
    first = _recording(digits_run).steps[0]["elapsed"]
    _at(at, digits_run, Clock(60, first, None))  # part of the curves, no figures yet
    assert " · Epoch " in _progress(at) and "Test accuracy" not in _metrics(at)
    assert at.get("image"), "the live curves, as an image"
    at.button(key=f"replay-clock-{digits_run}-end").click().run()
    assert not at.exception
    assert _progress(at).startswith("Replay at 60× · Epoch 3/3 · 100%")
    assert {k: v for k, v in _metrics(at).items() if k in _final(digits_run)} == _final(digits_run)
    assert at.button(key=f"replay-clock-{digits_run}-play").label == "Play again"
    assert any(d.label == "Best checkpoint" for d in at.download_button), "the checkpoint the figures name"


def test_a_replay_that_plays_on_reaches_the_end_by_itself(digits_run: str) -> None:
    import time

    at = open_page("training", run=digits_run, replay="10")
    _at(at, digits_run, Clock(10, 0.0, time.monotonic() - 1e6))  # started long ago
    assert {k: v for k, v in _metrics(at).items() if k in _final(digits_run)} == _final(digits_run)


def test_changing_the_speed_keeps_the_place_and_the_url(digits_run: str) -> None:
    at = open_page("training", run=digits_run, replay="60")
    end = _recording(digits_run).duration
    _at(at, digits_run, Clock(60, end / 2, None))
    at.segmented_control(key="replay").set_value("5").run()
    assert not at.exception
    assert at.query_params["replay"] == "5"
    clock = at.session_state[f"replay-clock-{digits_run}"]
    assert clock.speed == 5 and clock.position == pytest.approx(end / 2) and not clock.playing
    assert _progress(at).startswith("Replay at 5× ·")


def test_replay_off_shows_the_finished_run_and_leaves_the_url(digits_run: str) -> None:
    at = open_page("training", run=digits_run, replay="30")
    at.segmented_control(key="replay").set_value("off").run()
    assert not at.exception
    assert "replay" not in at.query_params
    assert not at.get("progress")
    assert any(b.label == "Resume" for b in at.button) or any(p.proto.id for p in at.get("plotly_chart"))
    assert _metrics(at)["Test accuracy"] == _final(digits_run)["Test accuracy"]


def test_a_replay_only_reads_the_store(digits_run: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.runs import RunStore
    from explorer import services

    store = services.run_store()
    before = store.run(digits_run), store.metrics(digits_run, "step"), store.metrics(digits_run, "epoch")

    def refused(*args: object, **kwargs: object) -> None:
        raise AssertionError("a replay wrote to the run store")

    monkeypatch.setattr(RunStore, "_write", refused)
    monkeypatch.setattr(RunStore, "_transaction", refused)
    at = open_page("training", run=digits_run, replay="60")
    _at(at, digits_run, Clock(60, 0.0, None))
    at.button(key=f"replay-clock-{digits_run}-play").click().run()
    _at(at, digits_run, Clock(60, 0.0, None))  # paused at the start again: a short recording plays out at once
    at.button(key=f"replay-clock-{digits_run}-end").click().run()
    assert not at.exception
    assert (store.run(digits_run), store.metrics(digits_run, "step"), store.metrics(digits_run, "epoch")) == before


def test_a_run_with_nothing_recorded_says_so(monkeypatch: pytest.MonkeyPatch, digits_run: str) -> None:
    from core.runs import RunStore

    monkeypatch.setattr(RunStore, "metrics", lambda self, run_id, kind="epoch", after_step=-1: [])
    at = open_page("training", run=digits_run, replay="5")
    assert any("nothing to replay" in i.value for i in at.info)


def test_another_run_opened_from_the_history_opens_without_a_replay(digits_run: str) -> None:
    from explorer import services
    from tests.conftest import finished_run

    other = finished_run(services.run_store(), epochs=1)
    at = open_page("training", run=digits_run, replay="30")
    assert at.segmented_control(key="replay").value == "30"
    at.selectbox(key="open-run").set_value(other).run()
    assert not at.exception
    assert at.segmented_control(key="replay").value == "off" and "replay" not in at.query_params
    assert at.query_params["run"] == [other] or at.query_params["run"] == other
