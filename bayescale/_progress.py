"""Progress of long work on stderr: what runs now, how many of its parts are done, for how long.

NumPyro's progress bar cannot follow bayescale's sampler: the MAP search, warmup and
draws of every chain of every problem in a bucket are one compiled call, which reports
nothing until it returns. What can be known honestly is which step runs (compiling,
sampling, summarizing), how many problems, laws or refits are done, and the time spent.

On a terminal that is one line, rewritten in place, refreshed every second and cleared
when the work is done (or left, saying where it stopped, when it failed); nested work (a
refit inside a comparison) extends the line of the work around it. Elsewhere (a log file,
a captured stream), progress that was asked for prints one line per finished step, with
its duration, and one when the work is done. The default is to show progress only when
stderr is a terminal.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import threading
import time
import warnings
from collections.abc import Iterator

__all__ = ["Task", "enabled", "task"]

#: Seconds between refreshes of the line on a terminal, so the elapsed time keeps moving.
_REFRESH = 1.0


def enabled(progress: bool | None) -> bool:
    """Whether to show progress: ``progress`` when given, else whether stderr is a terminal."""
    if progress is not None:
        return bool(progress)
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes} min {seconds:02d} s"


class Task:
    """One piece of work on the progress line: a label, parts done out of a total, the current step.

    Created by :func:`task`; a task of disabled progress does nothing.
    """

    def __init__(self, label: str, total: int | None, line: _Line | None):
        self.label = label
        self.total = total
        self.done = 0
        self.step: str | None = None
        self._line = line

    def text(self) -> str:
        """Return the task as shown on the line: ``label done/total: step``."""
        count = f" {self.done}/{self.total}" if self.total is not None else ""
        return f"{self.label}{count}" + (f": {self.step}" if self.step else "")

    @property
    def shown(self) -> bool:
        """Whether the task is on the progress line; pass it as ``progress=`` to work done inside it."""
        return self._line is not None

    def subtask(self, label: str, *, total: int | None = None):
        """Return a task inside this one, shown when this one is (a context manager, as :func:`task`)."""
        return task(label, total=total, progress=self.shown)

    def advance(self, count: int = 1) -> None:
        """Count ``count`` more parts as done (shown for a task with a total)."""
        self.done += count
        if self._line is not None and self.total is not None and count:
            self._line.counted(self)

    @contextlib.contextmanager
    def phase(self, step: str) -> Iterator[None]:
        """Show ``step`` (e.g. "compiling") as what this task is doing while the block runs."""
        if self._line is None:
            yield
            return
        self.step = step
        self._line.redraw()
        start = time.monotonic()
        try:
            yield
        finally:
            self._line.finished(self, time.monotonic() - start)
            self.step = None


class _Line:
    """The progress line of the tasks now running on one stream, outermost first."""

    def __init__(self, stream):
        self.stream = stream
        self.tasks: list[Task] = []
        self.start = time.monotonic()
        self.terminal = bool(getattr(stream, "isatty", None) and stream.isatty())
        self.lock = threading.RLock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._showwarning = None

    def path(self) -> str:
        return " > ".join(task.text() for task in self.tasks)

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # a closed or broken stream must not stop the work
            pass

    def _clear(self) -> None:
        if self.terminal:
            self._write("\r\x1b[K")

    def redraw(self) -> None:
        """Rewrite the line (on a terminal; elsewhere only finished steps are printed)."""
        if not self.terminal:
            return
        with self.lock:
            path, elapsed = self.path(), f"  [{_duration(time.monotonic() - self.start)}]"
            # A wrapped line cannot be rewritten: cut the outer tasks, keep the innermost and the time.
            room = shutil.get_terminal_size().columns - 1 - len("bayescale: ") - len(elapsed)
            if len(path) > room:
                path = "..." + path[len(path) - max(room - 3, 0) :]
            self._write(f"\rbayescale: {path}{elapsed}\x1b[K")

    def counted(self, task: Task) -> None:
        if self.terminal:
            self.redraw()
        else:
            with self.lock:
                self._write(f"bayescale: {self.path()}  [{_duration(time.monotonic() - self.start)}]\n")

    def finished(self, task: Task, seconds: float) -> None:
        if self.terminal:
            self.redraw()
        else:
            with self.lock:
                self._write(f"bayescale: {self.path()} ({_duration(seconds)})\n")

    def open(self) -> None:
        """Start refreshing the line, and clear it for warnings printed meanwhile (on a terminal)."""
        if not self.terminal:
            return
        self._showwarning = warnings.showwarning

        def showwarning(*args, **kwargs):
            with self.lock:
                self._clear()
                self._showwarning(*args, **kwargs)
                self.redraw()

        warnings.showwarning = showwarning
        self._ticker = threading.Thread(target=self._tick, name="bayescale-progress", daemon=True)
        self._ticker.start()

    def _tick(self) -> None:
        while not self._stop.wait(_REFRESH):
            self.redraw()

    def close(self, label: str, failed: bool) -> None:
        """Stop refreshing; say where failed work stopped, and off a terminal how long the work took."""
        if self._ticker is not None:
            self._stop.set()
            self._ticker.join()
            warnings.showwarning = self._showwarning
        with self.lock:
            self._clear()
            elapsed = _duration(time.monotonic() - self.start)
            if failed:
                self._write(f"bayescale: {self.path()}: stopped after {elapsed}\n")
            elif not self.terminal:
                self._write(f"bayescale: {label}: done in {elapsed}\n")


_active: _Line | None = None  # the line of the outermost task running, if any


@contextlib.contextmanager
def task(label: str, *, total: int | None = None, progress: bool | None = None) -> Iterator[Task]:
    """Run a block as a task on the progress line of stderr.

    Parameters
    ----------
    label : str
        What the task is, e.g. ``"fit chinchilla (laplace)"`` or ``"compare 3 laws"``.
    total : int, optional
        How many parts it has (problems, laws, refits), counted with :meth:`Task.advance`.
    progress : bool, optional
        Show it; by default only when stderr is a terminal. A task inside another extends
        the line of the outer one.

    Yields
    ------
    Task
    """
    global _active
    if not enabled(progress):
        yield Task(label, total, None)
        return
    outermost = _active is None
    if outermost:
        _active = _Line(sys.stderr)
        _active.open()
    line = _active
    current = Task(label, total, line)
    with line.lock:
        line.tasks.append(current)
    line.redraw()
    failed = True
    try:
        yield current
        failed = False
    finally:
        if outermost:
            line.close(label, failed)
            _active = None
        with line.lock:
            line.tasks.remove(current)
        if not outermost:
            line.redraw()
