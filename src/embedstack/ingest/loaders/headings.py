"""The stack of open headings while walking a document top to bottom."""

from __future__ import annotations


class HeadingTrail:
    """`enter(level, title)` for each heading; `path` is the outline down to the current one."""

    def __init__(self) -> None:
        self._open: list[tuple[int, str]] = []

    def enter(self, level: int, title: str) -> None:
        while self._open and self._open[-1][0] >= level:
            self._open.pop()
        self._open.append((level, " ".join(title.split())))

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(title for _, title in self._open)
