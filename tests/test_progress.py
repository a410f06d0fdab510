"""spec/progress.py: one updating line on a terminal, nothing anywhere else."""

import io
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from dlhwc.spec import progress

ROOT = Path(__file__).resolve().parent.parent


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def no_delay(monkeypatch):
    monkeypatch.setattr(progress, "DELAY", 0.0)
    monkeypatch.setattr(progress, "INTERVAL", 0.0)
    monkeypatch.delenv("DLHWC_PROGRESS", raising=False)


def test_silent_when_not_a_terminal(no_delay):
    stream = io.StringIO()
    assert list(progress.track(range(5), "work", unit="steps", stream=stream)) == list(range(5))
    with progress.task("outer", total=3, stream=stream) as t:
        t.advance(note="layer fc1")
    assert stream.getvalue() == ""


def test_silent_on_captured_stderr(no_delay, capsys):
    for _ in progress.track(range(3), "work"):
        pass
    assert capsys.readouterr().err == ""


def test_writes_one_updating_line_on_a_terminal_and_erases_it(no_delay):
    stream = FakeTerminal()
    for _ in progress.track(range(3), "retrain", unit="epochs", stream=stream):
        pass
    text = stream.getvalue()
    assert "\n" not in text
    assert "retrain 0/3 epochs (0%)" not in text  # drawn after a unit is done
    assert "retrain 1/3 epochs (33%)" in text
    assert "retrain 3/3 epochs (100%)" in text
    # The last write blanks the line and returns to its start.
    last = text.rsplit("\r", 2)
    assert text.endswith("\r") and last[-2].strip() == ""


def test_nested_tasks_share_the_line(no_delay):
    stream = FakeTerminal()
    with progress.task("share-weights", total=2, unit="layers", stream=stream) as outer:
        outer.advance(note="fc1")
        with progress.task("k-means", unit="iterations", stream=stream) as inner:
            inner.advance()
    text = stream.getvalue()
    assert "share-weights 1/2 layers (50%) fc1" in text
    assert "| k-means 1 iterations" in text
    assert text.endswith("\r")


def test_waits_before_the_first_draw(monkeypatch):
    monkeypatch.setattr(progress, "DELAY", 3600.0)
    stream = FakeTerminal()
    for _ in progress.track(range(100), "quick", stream=stream):
        pass
    assert stream.getvalue() == ""


def test_turned_off_by_environment(no_delay, monkeypatch):
    monkeypatch.setenv("DLHWC_PROGRESS", "0")
    stream = FakeTerminal()
    for _ in progress.track(range(3), "work", stream=stream):
        pass
    assert stream.getvalue() == ""


def test_erased_on_error(no_delay):
    stream = FakeTerminal()
    with pytest.raises(KeyboardInterrupt):
        with progress.task("sim", total=10, stream=stream) as t:
            t.advance()
            raise KeyboardInterrupt
    assert stream.getvalue().endswith("\r")
    assert progress._displays == {}


def test_a_real_terminal_gets_the_line():
    """stderr on a pty: the line is drawn; the same program with stderr on a pipe: nothing."""
    code = (
        "from dlhwc.spec import progress\n"
        "progress.DELAY = progress.INTERVAL = 0.0\n"
        "for _ in progress.track(range(4), 'work', unit='steps'):\n"
        "    pass\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "DLHWC_PROGRESS"}
    master, slave = pty.openpty()
    try:
        subprocess.run(
            [sys.executable, "-c", code], stderr=slave, cwd=ROOT, env=env, check=True, timeout=60
        )
        os.close(slave)
        seen = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(master)
    assert b"work 4/4 steps (100%)" in seen
    piped = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, cwd=ROOT, env=env, check=True
    )
    assert piped.stderr == b""
