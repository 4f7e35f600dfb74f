"""Experiment tracking with MLflow: parameters, metrics, curves and models of fine-tunes and
evaluations, in a local SQLite file by default (no server to run).

MLflow is an extra (`pip install "embedstack[mlflow]"`) and is imported only when a run starts.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
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

        model = SentenceTransformer(str(folder), device="cpu")
        # Explicit requirements: inferring them imports and probes the whole environment.
        self._mlflow.sentence_transformers.log_model(
            model, name="model", pip_requirements=["sentence-transformers", "torch"]
        )

    def log_file(self, path: Path) -> None:
        self._mlflow.log_artifact(str(path))


def _metric_name(name: str) -> str:
    """MLflow metric names allow letters, digits and _-./ and spaces; '@' is not among them."""
    return name.replace("@", "_at_")


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
    mlflow.set_tracking_uri(resolve_uri(uri))
    mlflow.set_experiment(EXPERIMENT)
    with mlflow.start_run(run_name=run_name, tags=dict(tags or {})) as run:
        yield Run(mlflow, run)
