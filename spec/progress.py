"""Progress of long operations, as one updating line on a terminal.

    with progress.task("eie: 10,000 vectors", total=len(program), unit="instructions") as t:
        for ... in ...:
            ...
            t.advance(note=layer_name)

    for epoch in progress.track(range(epochs), "retrain", unit="epochs"):
        ...

A task writes nothing unless the stream (stderr by default) is a terminal
(`isatty()`): pipes, files and captured output never see a progress line, so outputs
stay byte-identical. On a terminal the line appears only once the task has run for
`DELAY` seconds (short operations stay silent), is redrawn at most every `INTERVAL`
seconds, is cut to the terminal's width (a wrapped line could not be redrawn with a
carriage return), and is erased when the outermost task ends, also on an error or
Ctrl-C, so that what is printed next starts on a clean line.

Tasks nest: an inner task (k-means inside share-weights inside an `explore` trial) shows
after the outer ones on the same line, separated by " | ". Setting the environment
variable DLHWC_PROGRESS=0 turns progress off on a terminal too.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TextIO, TypeVar

DELAY = 0.5
"""Seconds a task runs before its line first appears."""

INTERVAL = 0.1
"""Least seconds between two redraws."""

T = TypeVar("T")


class Task:
    """One operation in progress: ``done`` of ``total`` units (total None: unknown)."""

    def __init__(self, label: str, total: int | None, unit: str, display: _Display | None):
        self.label = label
        self.total = total
        self.unit = unit
        self.done = 0
        self.note = ""
        self.started = time.monotonic()
        self._display = display

    def advance(self, n: int = 1, note: str | None = None) -> None:
        """``n`` more units are done; ``note`` (e.g. the layer) replaces the last one."""
        self.update(self.done + n, note)

    def update(self, done: int, note: str | None = None) -> None:
        """``done`` units are done in all."""
        self.done = done
        if note is not None:
            self.note = note
        if self._display is not None:
            self._display.draw()

    def text(self) -> str:
        """``label done/total unit (pct) note``, with the elapsed time."""
        if self.total:
            count = f"{self.done:,}/{self.total:,} {self.unit}".rstrip()
            count += f" ({100 * self.done / self.total:.0f}%)"
        else:
            count = f"{self.done:,} {self.unit}".rstrip()
        parts = [self.label, count]
        if self.note:
            parts.append(self.note)
        parts.append(f"{time.monotonic() - self.started:.0f}s")
        return " ".join(parts)


class _Display:
    """The line of the tasks running on one terminal stream."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.tasks: list[Task] = []
        self.shown = 0  # characters on the line now
        self.last = 0.0

    def draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not self.tasks or now - self.tasks[0].started < DELAY:
            return
        if not force and now - self.last < INTERVAL:
            return
        self.last = now
        width = max(20, shutil.get_terminal_size((80, 24)).columns - 1)
        line = " | ".join(t.text() for t in self.tasks)[:width]
        self._write("\r" + line + " " * max(0, self.shown - len(line)))
        self.shown = len(line)

    def clear(self) -> None:
        if self.shown:
            self._write("\r" + " " * self.shown + "\r")
            self.shown = 0

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            self.shown = 0  # the terminal went away: progress is not worth an error


_displays: dict[int, _Display] = {}


def enabled(stream: TextIO) -> bool:
    """Whether progress is drawn on ``stream``: a terminal, and DLHWC_PROGRESS is not 0."""
    if os.environ.get("DLHWC_PROGRESS", "1") == "0":
        return False
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


@contextmanager
def task(
    label: str, total: int | None = None, unit: str = "", stream: TextIO | None = None
) -> Iterator[Task]:
    """A task shown on ``stream`` (default: sys.stderr at the time of the call) while the
    block runs; its line is erased at the end of the outermost task."""
    stream = sys.stderr if stream is None else stream
    if not enabled(stream):
        yield Task(label, total, unit, None)
        return
    display = _displays.setdefault(id(stream), _Display(stream))
    t = Task(label, total, unit, display)
    display.tasks.append(t)
    try:
        yield t
    finally:
        display.tasks.remove(t)
        if display.tasks:
            display.draw(force=True)
        else:
            display.clear()
            del _displays[id(stream)]


def track(
    items: Iterable[T],
    label: str,
    total: int | None = None,
    unit: str = "",
    stream: TextIO | None = None,
) -> Iterator[T]:
    """The items of ``items``, counted as a task while they are consumed (``total``
    defaults to ``len(items)`` when it has one)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with task(label, total, unit, stream) as t:
        for item in items:
            yield item
            t.advance()
