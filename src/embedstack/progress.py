"""Progress bars on stderr, so `--json` output on stdout stays machine-readable."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class _RateColumn(ProgressColumn):
    """Items per second: the number users compare between runs and machines."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        unit = task.fields.get("unit", "items")
        return Text(f"{speed:,.1f} {unit}/s" if speed else f"? {unit}/s")


@contextmanager
def progress_bar(
    total: int, description: str, *, enabled: bool = True, unit: str = "items"
) -> Iterator[Callable[[int], None]]:
    """Yield an `advance(n)` callback; draws a bar on stderr when `enabled`."""
    with progress_tasks([(description, total, unit)], enabled=enabled) as (advance,):
        yield advance


class Bar:
    """One bar: call it with the amount done; `add_total` grows its total (and shows it)."""

    def __init__(self, progress: Progress | None = None, task: TaskID | None = None) -> None:
        self._progress = progress
        self._task = task

    def __call__(self, n: float) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, n)

    def add_total(self, n: float) -> None:
        if self._progress is not None and self._task is not None:
            total = self._progress.tasks[self._task].total or 0
            self._progress.update(self._task, total=total + n, visible=True)


@contextmanager
def progress_tasks(
    tasks: Sequence[tuple[str, int | None, str]],
    *,
    enabled: bool = True,
    hidden: Sequence[str] = (),
) -> Iterator[tuple[Bar, ...]]:
    """Several bars at once, given as (description, total or None, unit); yields their `Bar`s.

    Bars named in `hidden` appear on their first `add_total` (a bar that may not apply, such
    as seconds of audio transcribed, stays out of a run that has none)."""
    if not enabled:
        yield tuple(Bar() for _ in tasks)
        return
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True)) as progress:
        ids = [
            progress.add_task(
                description, total=total, unit=unit, visible=description not in hidden
            )
            for description, total, unit in tasks
        ]
        yield tuple(Bar(progress, task) for task in ids)


@contextmanager
def status(message: str, *, enabled: bool = True) -> Iterator[None]:
    """A spinner on stderr for a wait of unknown length (loading a model), when `enabled`."""
    if not enabled:
        yield
        return
    with Console(stderr=True).status(message):
        yield


@contextmanager
def progress_with_status(
    total: int, description: str, *, enabled: bool = True, unit: str = "items"
) -> Iterator[Callable[[int, str], None]]:
    """A bar with a status text after it (a training loss); yields `update(n, status)`."""
    if not enabled:
        yield lambda n, status: None
        return
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True)) as progress:
        task = progress.add_task(description, total=total, unit=unit, status="")

        def update(n: int, status: str) -> None:
            progress.update(task, advance=n, status=status)

        yield update
