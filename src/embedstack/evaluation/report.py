"""`EvalReport`: an evaluation's metrics, a plain dict that a notebook shows as a table."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from embedstack.html_tables import html_table

TITLE_KEYS = ("model", "backend")  # in the title line, not in the rows


class EvalReport(dict[str, Any]):
    """Metric name → value, exactly as the plain dict it used to be (JSON, `report["spearman"]`,
    equality with dicts); `task` and `data` only name it, and are not keys, so they change none
    of that."""

    def __init__(
        self, metrics: Mapping[str, Any] | None = None, /, *, task: str = "", data: Any = None
    ) -> None:
        super().__init__(metrics or {})
        self.task = task
        self.data = data_name(data)

    @property
    def title(self) -> str:
        """'STS · data/stsb (test) · all-MiniLM-L6-v2 (onnx-int8)': what was measured, on what."""
        where = self.data + (f" ({self['split']})" if self.get("split") and self.data else "")
        model = str(self.get("model", ""))
        if self.get("backend"):
            model += f" ({self['backend']})"
        return " · ".join(part for part in (self.task, where, model) if part)

    def _repr_html_(self) -> str:
        rows = [(key, value) for key, value in self.items() if key not in TITLE_KEYS]
        return html_table(rows, ("metric", "value"), caption=self.title)


def data_name(data: Any) -> str:
    """A path names its data set; data passed in memory has no name to give."""
    return str(data) if isinstance(data, str | Path) else ""
