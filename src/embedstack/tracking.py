"""Experiment tracking with MLflow: parameters, metrics, curves and models of fine-tunes and
evaluations, in a local SQLite file by default (no server to run).

MLflow is an extra (`pip install "embedstack[mlflow]"`) and is imported only when a run starts.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from embedstack.errors import InvalidInputError

DEFAULT_URI = "sqlite:///mlflow.db"  # in the working folder, beside the user's data
EXPERIMENT = "embedstack"


class Run:
    """One MLflow run: what finetune and eval log into."""

    def __init__(self, mlflow: Any, run: Any) -> None:
        self._mlflow = mlflow
        self.id: str = run.info.run_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        # MLflow keeps parameters as strings of at most 6000 characters.
        self._mlflow.log_params({k: str(v)[:6000] for k, v in params.items() if v is not None})

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        numbers = {
            _metric_name(k): float(v)
            for k, v in metrics.items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        }
        if numbers:
            self._mlflow.log_metrics(numbers, step=step)

    def log_sentence_transformer(self, folder: Path) -> None:
        """Log a sentence-transformers folder with MLflow's `sentence_transformers` flavor, so
        `mlflow.sentence_transformers.load_model(f"runs:/{id}/model")` gives it back."""
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
        # Explicit requirements: inferring them imports and probes the whole environment.
        self._mlflow.sentence_transformers.log_model(
            model, name="model", pip_requirements=["sentence-transformers", "torch"]
        )

    def log_file(self, path: Path) -> None:
        self._mlflow.log_artifact(str(path))


def _metric_name(name: str) -> str:
    """MLflow metric names allow letters, digits, `_-. :/` and must read as a clean relative
    path: '@' becomes `_at_`, anything else it rejects (a model's path) `_`."""
    name = re.sub(r"[^\w\-. :]", "_", name.replace("@", "_at_"))
    return name.lstrip("._ ") or "metric"


def resolve_uri(uri: str | None) -> str:
    """`--mlflow` with no value means the default SQLite file; a bare path means a file store."""
    if not uri:
        return DEFAULT_URI
    if "://" in uri or uri.startswith(("sqlite:", "file:", "databricks")):
        return uri
    return Path(uri).resolve().as_uri()


@contextmanager
def tracked_run(
    uri: str | None, run_name: str, tags: Mapping[str, str] | None = None
) -> Iterator[Run]:
    """Start an MLflow run under experiment "embedstack"; it ends as FAILED if the body raises."""
    try:
        import mlflow
        import mlflow.sentence_transformers  # noqa: F401  (the flavor is a lazy submodule)
    except ImportError as exc:
        raise InvalidInputError(
            f'--mlflow needs MLflow: pip install "embedstack[mlflow]" ({exc})'
        ) from None
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
    uri = resolve_uri(uri)
    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name(EXPERIMENT) is None:
        mlflow.create_experiment(EXPERIMENT, artifact_location=artifact_location(uri))
    mlflow.set_experiment(EXPERIMENT)
    nested = mlflow.active_run() is not None  # inside the caller's own run: a child of it
    with mlflow.start_run(run_name=run_name, tags=dict(tags or {}), nested=nested) as run:
        yield Run(mlflow, run)


def artifact_location(uri: str) -> str | None:
    """Models beside a SQLite database (`mlartifacts/` next to the file), not in whatever
    folder the first run happened to start in; other stores choose for themselves."""
    if not uri.startswith("sqlite:///"):
        return None
    database = Path(uri.removeprefix("sqlite:///"))
    return (database.resolve().parent / "mlartifacts").as_uri()


def require_mlflow() -> None:
    """Fail before hours of training when the extra is missing, not after."""
    if find_spec("mlflow") is None:
        raise InvalidInputError('--mlflow needs MLflow: pip install "embedstack[mlflow]"')
