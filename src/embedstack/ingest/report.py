"""`IngestReport`: what one ingest run did, file by file (the CLI prints it; `--json` gives it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from embedstack.ingest.discovery import FileProblem


@dataclass
class IngestReport:
    """What an ingest did, file by file; `failed` lists (path, reason)."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[FileProblem] = field(default_factory=list)
    chunks_added: int = 0
    chunks_removed: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_dict(self) -> dict[str, Any]:
        return {
            "added": len(self.added),
            "updated": len(self.updated),
            "removed": len(self.removed),
            "unchanged": len(self.unchanged),
            "failed": len(self.failed),
            "chunks_added": self.chunks_added,
            "chunks_removed": self.chunks_removed,
            "seconds": round(self.seconds, 3),
            "files": {
                "added": self.added,
                "updated": self.updated,
                "removed": self.removed,
                "failed": [{"path": p.path, "reason": p.reason} for p in self.failed],
            },
        }
