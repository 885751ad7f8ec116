"""tradectl's one progress bar, for commands that can run long (`stream`, `backtest`,
`replay`): a rich bar on stderr with the count, the rate and the time left.

It appears only on a terminal and only once the command has run for a second, so
short runs, scripts and pipes see nothing extra, and stdout (the command's output)
is never touched. `advance` may be called from any thread: `tradectl stream`
calls it from the thread gRPC pulls the messages with.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Final, Protocol

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, Task, TaskID

PROGRESS_AFTER_S: Final = 1.0


class Advance(Protocol):
    """Called with what is done of how much; `phase` names a stage with its own bar."""

    def __call__(self, done: int, total: int, phase: str = "") -> None: ...


def on_terminal(console: Console | None = None) -> bool:
    """Whether a bar can show: `console` (default: stderr) is a terminal."""
    from rich.console import Console

    return (console if console is not None else Console(stderr=True)).is_terminal


@contextmanager
def progress_bar(
    unit: str,
    *,
    labels: Mapping[str, str] | None = None,
    enabled: bool = True,
    console: Console | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[Advance]:
    """Yield `advance(done, total, phase="")`; the bar shows once PROGRESS_AFTER_S has
    passed since entering, if `console` (default: stderr) is a terminal. A phase's
    bar is labelled `labels[phase]`, else the phase, else `unit`; the rate is in
    `unit` a second. The bar is removed when the block ends."""
    from rich.console import Console

    shown = console if console is not None else Console(stderr=True)
    started = clock()
    lock = threading.Lock()
    bar: list[Progress] = []  # empty until shown
    tasks: dict[str, TaskID] = {}

    def advance(done: int, total: int, phase: str = "") -> None:
        if not enabled or not shown.is_terminal:
            return
        with lock:
            if not bar:
                if clock() - started < PROGRESS_AFTER_S:
                    return
                bar.append(_start(shown))
            if phase not in tasks:
                label = (labels or {}).get(phase, phase) or unit
                tasks[phase] = bar[0].add_task(label, total=total, unit=unit)
            bar[0].update(tasks[phase], completed=done, total=total)

    try:
        yield advance
    finally:
        with lock:
            if bar:
                bar[0].stop()


def _start(console: Console) -> Progress:
    # Imported here: only a command that runs long enough to show the bar needs it.
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class RateColumn(ProgressColumn):
        """Items a second, in the task's unit: `12,345 ticks/s`."""

        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            if speed is None:
                return Text("")
            unit = task.fields.get("unit", "")
            return Text(f"{speed:,.0f} {unit}/s", style="progress.data.speed")

    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
        transient=True,  # gone when done: the command's own output follows
    )
    progress.start()
    return progress
