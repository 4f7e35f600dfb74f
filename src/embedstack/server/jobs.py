"""Ingest jobs: uploaded files are ingested in the background while clients poll or stream.

One ingest runs at a time (embedding is CPU-bound; two at once would only share the cores);
the others wait in order. A job's state only moves forward, and every change bumps `version`,
so a stream sends each change once.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from embedstack.collection import Collection
from embedstack.errors import EmbedstackError
from embedstack.ingest.options import IngestOptions
from embedstack.server.errors import HTTPError

KEPT_JOBS = 1000  # finished jobs remembered for polling; the oldest are forgotten first
FINISHED = ("done", "failed")


@dataclass
class Job:
    id: str
    collection: str
    files: list[str]
    state: str = "queued"  # queued -> running -> done | failed
    files_total: int = 0
    files_done: int = 0
    chunks_done: int = 0
    report: dict[str, Any] | None = None
    error: str | None = None
    created: float = field(default_factory=time.time)
    version: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class IngestJobs:
    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="ingest")

    def start(
        self,
        name: str,
        collection: Collection,
        paths: list[Path],
        options: IngestOptions,
        finished: Callable[[], None] = lambda: None,
    ) -> Job:
        job = Job(uuid.uuid4().hex[:16], name, [p.name for p in paths], files_total=len(paths))
        with self._lock:
            self._jobs[job.id] = job
            for old in [j for j in self._jobs.values() if j.state in FINISHED][:-KEPT_JOBS]:
                del self._jobs[old.id]
        try:
            future = self._executor.submit(self._run, job, collection, paths, options, finished)
        except BaseException:  # shutting down: no job, and the caller still owns `finished`
            with self._lock:
                self._jobs.pop(job.id, None)
            raise
        # A job cancelled before it ran (the server closing) still calls `finished`.
        future.add_done_callback(lambda f: finished() if f.cancelled() else None)
        return job

    def _update(self, job: Job, **changes: Any) -> None:
        with self._lock:
            for key, value in changes.items():
                setattr(job, key, value)
            job.version += 1

    def _run(
        self,
        job: Job,
        collection: Collection,
        paths: list[Path],
        options: IngestOptions,
        finished: Callable[[], None],
    ) -> None:
        def progress(event: str, n: int) -> None:
            if event == "files_total":
                self._update(job, files_total=n)
            else:
                self._update(job, **{event: getattr(job, event) + n})

        try:
            self._update(job, state="running")
            report = collection.ingest(paths, options, on_progress=progress)
            self._update(job, state="done", report=_file_names(report.to_dict()))
        except EmbedstackError as exc:  # the server's folders are not the client's business
            error = str(exc).replace(str(collection.folder), repr(job.collection))
            self._update(job, state="failed", error=error)
        except Exception as exc:  # a bug: the job says so instead of hanging at "running"
            self._update(job, state="failed", error=f"internal error: {type(exc).__name__}")
            raise
        finally:
            finished()

    def get(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                raise HTTPError(404, f"no ingest job {job_id!r}", "job_not_found", "id")
            return job

    def snapshot(self, job_id: str) -> dict[str, Any]:
        job = self.get(job_id)
        with self._lock:
            return job.to_dict()

    async def changes(self, job_id: str, poll: float = 0.1) -> AsyncIterator[dict[str, Any]]:
        """The job each time it changes, ending with its finished state."""
        seen = -1
        while True:
            current = self.snapshot(job_id)
            if current["version"] != seen:
                seen = current["version"]
                yield current
            if current["state"] in FINISHED:
                return
            await asyncio.sleep(poll)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


def _file_names(report: dict[str, Any]) -> dict[str, Any]:
    """The report with file names in place of the server's paths."""
    files = report["files"]
    for kind in ("added", "updated", "removed"):
        files[kind] = [Path(path).name for path in files[kind]]
    files["failed"] = [{**f, "path": Path(f["path"]).name} for f in files["failed"]]
    return report
