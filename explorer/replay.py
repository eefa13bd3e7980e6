"""Replay: a finished run shown again on the live view, as it looked while it trained, at 1× to 60× its pace.

For a lecture in which training live would take too long. The store holds every step and epoch row with the
seconds since the run started (``elapsed``); a replay at speed s, t seconds after it began, shows the rows recorded
by t × s: the progress line and the live curves (the same SVG as the live view), redrawn by a fragment every
``EVERY`` seconds, then the run's own test figures at the end. ``?replay=30`` beside ``?run=ID`` opens it at 30×
(with ``?present=1`` in presenter mode). A replay only reads the store.

The time → rows logic is pure (``Clock``, ``Recording.at``) and tested without Streamlit.
"""

from __future__ import annotations

import bisect
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import streamlit as st

from core.runs import RunRecord
from explorer import live_curves, presenter, services, training_view, widgets

SHOWN_KEY = "replay-shown-run"  # the run the replay control was last drawn for
PARAM = "replay"  # the URL parameter (and the speed control's key): ?replay=30 replays at 30×
OFF = "off"
SPEEDS = ("1", "5", "10", "30", "60")
# The fragment's refresh while playing: at 60× each redraw moves the curves by 30 recorded seconds. Nothing
# trains while a lecture replays, so the browser's ~80 ms per redraw (see training_view.LIVE_EVERY) is spare.
EVERY = 0.5

Rows = list[dict[str, float]]


def _reach(rows: Sequence[dict[str, float]]) -> list[float]:
    """The latest ``elapsed`` up to each row (a running maximum: a prefix of the rows is shown, never a gap)."""
    return list(itertools.accumulate((float(row["elapsed"]) for row in rows), max))


@dataclass(frozen=True)
class Recording:
    """A run's step and epoch rows, in the order they were logged, with when each was recorded."""

    steps: Rows
    epochs: Rows
    _step_reach: list[float] = field(init=False, repr=False, compare=False)
    _epoch_reach: list[float] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_step_reach", _reach(self.steps))
        object.__setattr__(self, "_epoch_reach", _reach(self.epochs))

    @property
    def duration(self) -> float:
        """Seconds from the run's start to its last recorded row (0 with none)."""
        return max(self._step_reach[-1:] + self._epoch_reach[-1:] + [0.0])

    def at(self, seconds: float) -> tuple[Rows, Rows]:
        """The step and epoch rows recorded by ``seconds`` after the run started: none before the first,
        all from ``duration`` on, and never fewer for a later time."""
        return (self.steps[:bisect.bisect_right(self._step_reach, seconds)],
                self.epochs[:bisect.bisect_right(self._epoch_reach, seconds)])


@dataclass(frozen=True)
class Clock:
    """Where a replay is: ``position`` recorded seconds at the monotonic time ``since`` (None: paused), moving
    ``speed`` recorded seconds per second while it plays."""

    speed: float
    position: float = 0.0
    since: float | None = None

    @property
    def playing(self) -> bool:
        return self.since is not None

    def at(self, now: float, end: float) -> float:
        """The recorded second shown at monotonic time ``now``, at most ``end``."""
        moved = (now - self.since) * self.speed if self.since is not None else 0.0
        return max(0.0, min(end, self.position + moved))

    def play(self, now: float, end: float) -> Clock:
        """Playing from where it is (from the start again once it has reached ``end``)."""
        position = self.at(now, end)
        return replace(self, position=0.0 if position >= end else position, since=now)

    def pause(self, now: float, end: float) -> Clock:
        """Paused where it is."""
        return replace(self, position=self.at(now, end), since=None)

    def with_speed(self, speed: float, now: float, end: float) -> Clock:
        """Going on from where it is at another speed."""
        return replace(self, speed=speed, position=self.at(now, end), since=now if self.playing else None)

    def restart(self, now: float, end: float) -> Clock:
        """At the start: playing on if it was playing, paused if it was paused or had reached ``end`` (where the
        page offers "Play again", not "Pause")."""
        return replace(self, position=0.0, since=now if self.playing and self.at(now, end) < end else None)

    def to_end(self, end: float) -> Clock:
        """At the end, paused."""
        return replace(self, position=end, since=None)


def speed_choice() -> int | None:
    """The replay control of a finished run (kept in the URL: ``?replay=30``): its speed, or None when off."""
    choice = widgets.url_choice(PARAM, (OFF, *SPEEDS), OFF, lambda: st.segmented_control(
        "Replay", (OFF, *SPEEDS), required=True, key=PARAM,
        format_func=lambda option: "Off" if option == OFF else f"{option}×",
        help="Play the run again on the live view as it was recorded, this many times faster: for a lecture in "
             "which training live would take too long. Add ?replay=30 to the run's link to open it that way."))
    return None if choice in (None, OFF) else int(choice)


def view(run: RunRecord) -> bool:
    """The replay control of an ended run; while a speed is chosen, the replay (True), drawn instead of the
    run's results; False when the replay is off. Another run opened from the history (or started) opens
    without a replay: the speed belongs to the run it was chosen for."""
    shown = st.session_state.get(SHOWN_KEY)
    st.session_state[SHOWN_KEY] = run.id
    if shown is not None and shown != run.id:
        st.session_state[PARAM] = OFF  # before the control is drawn: url_choice keeps it and clears the URL
    speed = speed_choice()
    key = f"replay-clock-{run.id}"
    if speed is None:
        st.session_state.pop(key, None)  # opened again, a replay starts from the beginning
        st.session_state.pop(f"replay-rows-{run.id}", None)
        return False
    recording = _recording(run)
    if not recording.duration:
        st.info("Nothing was recorded while this run trained: there is nothing to replay.", icon=":material/info:")
        return True
    now, end = time.monotonic(), recording.duration
    clock = st.session_state.get(key)
    if not isinstance(clock, Clock):
        clock = Clock(speed, 0.0, now)  # opening a replay plays it
    elif clock.speed != speed:
        clock = clock.with_speed(speed, now, end)
    st.session_state[key] = clock
    _buttons(key, end)
    _screen(run, recording, key)
    return True


def _recording(run: RunRecord) -> Recording:
    """The run's rows, read once per replay (and again if the run changed since, e.g. resumed)."""
    key = f"replay-rows-{run.id}"
    kept = st.session_state.get(key)
    version = (run.updated, run.status)
    if kept is None or kept[0] != version:
        store = services.run_store()
        kept = (version, Recording(store.metrics(run.id, "step"), store.metrics(run.id, "epoch")))
        st.session_state[key] = kept
    return kept[1]


def _buttons(key: str, end: float) -> None:
    """Play / Pause, From the start, Jump to the end."""
    clock: Clock = st.session_state[key]
    shown = clock.at(time.monotonic(), end)

    def change(how: str) -> None:
        now, current = time.monotonic(), st.session_state[key]
        st.session_state[key] = {"play": lambda: current.play(now, end), "pause": lambda: current.pause(now, end),
                                 "start": lambda: current.restart(now, end),
                                 "end": lambda: current.to_end(end)}[how]()

    row = st.container(horizontal=True)  # side by side, each as wide as its label
    if clock.playing and shown < end:
        row.button("Pause", key=f"{key}-pause", icon=":material/pause:", on_click=change, args=("pause",))
    else:
        row.button("Play again" if shown >= end else "Play", key=f"{key}-play", icon=":material/play_arrow:",
                          on_click=change, args=("play",))
    row.button("From the start", key=f"{key}-start", icon=":material/replay:", on_click=change,
                      args=("start",))
    row.button("Jump to the end", key=f"{key}-end", icon=":material/skip_next:", on_click=change,
                      args=("end",), disabled=shown >= end)


def _screen(run: RunRecord, recording: Recording, key: str) -> None:
    """The live view at the replay's time, redrawn by a fragment while it plays; at the end, the run's figures."""
    end = recording.duration
    clock: Clock = st.session_state[key]
    if clock.at(time.monotonic(), end) >= end:
        _frame(run, recording, end, clock.speed)
        training_view.show_test_figures(run)
        training_view.downloads(run)  # (the figures' caption says where the checkpoint is)
        return

    @st.fragment(run_every=EVERY if clock.playing else None)
    def frame() -> None:
        now: Clock = st.session_state[key]
        seconds = now.at(time.monotonic(), end)
        if seconds >= end:
            st.rerun()  # the end: the whole page again, with the run's figures and no more polling
        _frame(run, recording, seconds, now.speed)

    frame()


def _frame(run: RunRecord, recording: Recording, seconds: float, speed: float) -> None:
    """The progress line and the curves as the live view showed them ``seconds`` after the run started."""
    steps, epochs = recording.at(seconds)
    progress = run.progress or {}
    total = progress.get("total_steps") or max([row["step"] for row in recording.steps + recording.epochs] + [1])
    planned = progress.get("epochs") or run.config["epochs"]
    latest = max(steps[-1:] + epochs[-1:], key=lambda row: row["step"], default=None)
    done = min(latest["step"] / total, 1.0) if latest else 0.0
    epoch = f"Epoch {int(latest['epoch'])}/{planned}" if latest else "Starting"
    st.progress(done, text=f"Replay at {speed:g}× · {epoch} · {done:.0%} · "
                           f"{training_view.duration(seconds)} of {training_view.duration(recording.duration)} "
                           "as recorded")
    if not (steps or epochs):
        st.info("Loading the data and building the model…", icon=":material/hourglass_top:")
        return
    steps_per_epoch = total / planned if planned else 0
    scale = live_curves.PRESENTER_SCALE if presenter.active() else 1.0
    image = live_curves.svg(training_view.thinned(steps[-training_view.STEP_POINTS:]), epochs, steps_per_epoch, scale)
    st.image(image, width="stretch", alt=live_curves.ALT)
