"""Ingest on a Ray cluster: files parsed and chunked by Ray tasks, chunks embedded by a pool of
Ray actors (each loads the model once), both as Ray Data `map_batches` stages.

The results stream back to this process, which commits them file by file exactly as the
plain ingest does (`Ingestor`: the same manifest and skip logic, one transaction per file, the
same report and progress bars), so any store works and a crash leaves every file whole.
Workers read the files by path and load the model by name: on a cluster of several machines
the files and the model must be at the same paths on every node (a shared folder).

Ray is imported only here, and only when a run starts (the `ray` extra).
"""

from __future__ import annotations

import contextlib
import os
import pickle
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embedstack.errors import EmbedstackError, IngestError, InvalidInputError, ModelLoadError
from embedstack.ingest.discovery import FileProblem
from embedstack.ingest.pipeline import FilePreparer, Ingestor, Prepared, report_skipped
from embedstack.ingest.report import IngestReport
from embedstack.models import EmbeddingModel
from embedstack.models.registry import backend_factory
from embedstack.types import SourceRecord

LOCAL = "local"  # start a Ray cluster on this machine for the run, reachable on loopback only
CHUNK, UNCHANGED, FAILED = "chunk", "unchanged", "failed"  # what a row of the stream is
MAX_PARSE_BLOCKS = 256  # files are split into at most this many parse tasks' inputs
# A local cluster is Ray's single-machine mode: with this, Ray takes 127.0.0.1 as the node's
# address and its servers (GCS, raylet, workers, agents) listen there only. Without it Ray
# turns "127.0.0.1" into the machine's network address and listens on every interface.
LOOPBACK_ONLY = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}


def import_ray() -> Any:
    """Ray, or a clear error naming the extra to install."""
    try:
        import ray
        import ray.data  # noqa: F401  (Ray Data comes with the "data" extra of ray)
    except ImportError as exc:
        raise ModelLoadError(
            f'ingest with Ray needs ray[data] ({exc}): pip install "embedstack[ray]"'
        ) from exc
    return ray


@contextlib.contextmanager
def ray_cluster(address: str = LOCAL, *, num_cpus: int | None = None) -> Iterator[Any]:
    """Connect to Ray for the duration of a run, and disconnect after.

    A Ray already initialised in this process (the caller's own `ray.init`) is used as it is
    and left running. Otherwise `address` is `"local"` (a new cluster on this machine, bound
    to 127.0.0.1, no dashboard, no usage statistics, stopped after the run), `"auto"` (a
    cluster started with `ray start` on this machine) or a cluster's address
    (`"host:6379"`, `"ray://host:10001"`).
    """
    if not isinstance(address, str) or not address.strip():
        raise InvalidInputError(f"ray must be 'local' or a Ray cluster's address, got {address!r}")
    if address == LOCAL:
        for key, value in LOOPBACK_ONLY.items():
            os.environ.setdefault(key, value)  # read when Ray is imported, and by its processes
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    if address == LOCAL:
        _loopback_node_address()
    settings = {k: v for k, v in os.environ.items() if k.startswith("EMBEDSTACK_")}
    if address == LOCAL:
        ray.init(
            address=LOCAL,
            num_cpus=num_cpus,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    else:
        try:  # the workers read the same EMBEDSTACK_* settings (threads, cache folder) as here
            ray.init(address=address, runtime_env={"env_vars": settings}, log_to_driver=False)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise InvalidInputError(f"cannot connect to Ray at {address}: {exc}") from exc
    try:
        yield ray
    finally:
        ray.shutdown()


def _loopback_node_address() -> None:
    """Single-machine mode in this process too, when Ray was imported before the variable was
    set (the constant is read at import; Ray's own processes read the variable)."""
    from ray._private import ray_constants

    if os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER") == "0":
        ray_constants.ENABLE_RAY_CLUSTER = False


class RayIngestor(Ingestor):
    """`Ingestor` whose parsing and embedding run on the Ray cluster this process is connected
    to (see `ray_cluster`); committing stays here."""

    def _ingest_files(
        self,
        files: list[Path],
        known: dict[str, SourceRecord],
        report: IngestReport,
        files_done: Callable[[int], None],
        chunks_done: Callable[[int], None],
    ) -> None:
        if not files:
            return
        try:
            for path, rows in _file_results(self._dataset(files, known)):
                chunks = self._collect(path, rows, report)
                if chunks is not None:
                    prepared, vectors = chunks
                    self._store_file(prepared, vectors, report)
                    chunks_done(len(vectors))
                files_done(1)
        except EmbedstackError:
            raise
        except Exception as exc:  # a worker died, the model failed to load on a node, ...
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else repr(exc)
            raise IngestError(
                f"the Ray run stopped ({type(exc).__name__}: {reason}); "
                "the files committed before it are kept"
            ) from exc

    def _dataset(self, files: list[Path], known: dict[str, SourceRecord]) -> Any:
        """Files -> (parse tasks) -> chunk rows -> (embedding actors) -> rows with vectors."""
        ray = import_ray()
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True  # files come back in the given order
        context.enable_progress_bars = False  # ours count files and chunks
        items = [{"path": str(path), "known": pickle.dumps(known.get(str(path)))} for path in files]
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        dataset = ray.data.from_items(items, override_num_blocks=min(len(items), MAX_PARSE_BLOCKS))
        dataset = dataset.map_batches(
            prepare_batch,
            fn_kwargs={"preparer": self.preparer},
            batch_size=1,
            batch_format="numpy",
            num_cpus=1,
        )
        return dataset.map_batches(
            ChunkEmbedder,
            fn_constructor_kwargs={"model": ModelName.of(self.model)},
            batch_size=self.batch_chunks,
            batch_format="numpy",
            num_cpus=1,
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=cpus),
        )

    def _collect(
        self, path: str, rows: list[dict[str, Any]], report: IngestReport
    ) -> tuple[Prepared, np.ndarray] | None:
        """One file's rows: its prepared chunks and their vectors, or None (reported)."""
        failed = next((row for row in rows if row["status"] == FAILED), None)
        if failed is not None:
            report_skipped(report, path, FileProblem(path, str(failed["reason"])))
            return None
        if rows[0]["status"] == UNCHANGED:
            report_skipped(report, path, None)
            return None
        prepared: Prepared = pickle.loads(rows[0]["payload"])
        vectors = np.stack([row["vector"] for row in rows]).astype(np.float32, copy=False)
        return prepared, vectors


def _file_results(dataset: Any) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """(path, that file's rows) as soon as all of a file's rows have come back."""
    waiting: dict[str, list[dict[str, Any]]] = {}
    for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
        for i in range(len(batch["path"])):
            row = {key: column[i] for key, column in batch.items()}
            path = str(row["path"])
            rows = waiting.setdefault(path, [])
            rows.append(row)
            if len(rows) == int(row["count"]):
                del waiting[path]
                rows.sort(key=lambda r: int(r["index"]))
                yield path, rows


# ---- what runs on the workers ----------------------------------------------------------------


@dataclass(frozen=True)
class ModelName:
    """How a worker loads the collection's model itself: by catalog name or path, and backend."""

    name: str
    backend: str | None

    @classmethod
    def of(cls, model: EmbeddingModel) -> ModelName:
        try:
            backend_factory(model.backend)
            backend: str | None = model.backend
        except EmbedstackError:  # e.g. an endpoint's model: its name says how to reach it
            backend = None
        return cls(model.name, backend)


@dataclass
class _Rows:
    """Columns of the rows one parse task gives back, one row per chunk."""

    columns: dict[str, list[Any]] = field(
        default_factory=lambda: {
            key: [] for key in ("path", "status", "reason", "index", "count", "embed", "payload")
        }
    )

    def add(self, path: str, status: str, index: int = 0, count: int = 1, **values: Any) -> None:
        row = {"path": path, "status": status, "index": index, "count": count, "reason": "",
               "embed": "", "payload": b"", **values}  # fmt: skip
        for key, column in self.columns.items():
            column.append(row[key])

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            key: np.array(column, dtype=np.int64 if key in ("index", "count") else object)
            for key, column in self.columns.items()
        }


def prepare_batch(batch: dict[str, np.ndarray], preparer: FilePreparer) -> dict[str, np.ndarray]:
    """Parse and chunk files (a Ray task): one row per chunk, or one row for a file with
    nothing to embed (unchanged, or failed with the reason). The file's chunk texts, metadata
    and manifest entry travel once, pickled, in its first row."""
    rows = _Rows()
    for path, known in zip(batch["path"], batch["known"], strict=True):
        result = preparer.prepare_or_problem(Path(path), pickle.loads(known))
        if result is None:
            rows.add(path, UNCHANGED)
        elif isinstance(result, FileProblem):
            rows.add(path, FAILED, reason=result.reason)
        else:
            inputs, result.embed_inputs = result.embed_inputs, []
            payload = pickle.dumps(result)
            for index, text in enumerate(inputs):
                rows.add(path, CHUNK, index, len(inputs), embed=text,
                         payload=payload if index == 0 else b"")  # fmt: skip
    return rows.arrays()


class ChunkEmbedder:
    """A Ray actor that loads the model once and embeds batches of chunk rows."""

    def __init__(self, model: ModelName) -> None:
        from embedstack.models import load_model
        from embedstack.settings import reload_settings

        # One encoder thread per CPU Ray gave this actor, not one per core of the machine.
        os.environ["EMBEDSTACK_THREADS"] = "1"
        reload_settings()
        try:
            self.model = load_model(model.name, model.backend)
        except ModelLoadError:
            # The driver's runtime may be `auto`'s pick on its CPU (bf16 on AMX, OpenVINO)
            # that this node lacks: this node's own choice embeds faithfully all the same.
            self.model = load_model(model.name)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        vectors = np.zeros((len(batch["path"]), self.model.dim), dtype=np.float32)
        todo = np.flatnonzero(batch["status"] == CHUNK)
        if len(todo):
            try:
                vectors[todo] = self.model.encode_document(list(batch["embed"][todo]))
            except InvalidInputError:  # an item the model cannot embed: find its file
                self._by_file(batch, todo, vectors)
        return {**batch, "vector": vectors}

    def _by_file(self, batch: dict[str, np.ndarray], todo: np.ndarray, vectors: np.ndarray):
        """Embed file by file; a file that fails is marked failed with the reason."""
        status, reason = batch["status"].copy(), batch["reason"].copy()
        for path in dict.fromkeys(batch["path"][todo]):
            rows = todo[batch["path"][todo] == path]
            try:
                vectors[rows] = self.model.encode_document(list(batch["embed"][rows]))
            except InvalidInputError as exc:
                status[rows], reason[rows] = FAILED, str(exc)
        batch["status"], batch["reason"] = status, reason
