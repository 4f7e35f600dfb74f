"""What every command group shares: the consoles, the one-line errors, JSON output, option types.

Every user error prints one line, `error: ...`, on stderr and exits with code 2.
"""

from __future__ import annotations

import functools
import json
import math
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console

from embedstack.collection import Collection
from embedstack.errors import EmbedstackError
from embedstack.tracking import DEFAULT_URI

out = Console()
err = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

CollectionArg = Annotated[Path, typer.Argument(help="Collection folder.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON only.")]
ModelOpt = Annotated[
    str, typer.Option(help="Catalog name, model folder/.onnx path, or openai:NAME with --base-url.")
]
BaseUrlOpt = Annotated[
    str | None, typer.Option(help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8080/v1.")
]
BackendOpt = Annotated[
    str | None,
    typer.Option(
        help="auto (fastest faithful on this CPU) | onnx-int8 | onnx | openvino | openvino-bf16 "
        "| torch (per model: `embedstack models info NAME`)."
    ),
]
BatchOpt = Annotated[int, typer.Option(help="Texts per encoder batch.")]
StoreOpt = Annotated[
    str | None,
    typer.Option(
        help="Where a new collection keeps its rows: local (the folder, default), "
        "postgresql://user@host/db, milvus://host:19530 or milvus-lite:FILE.db."
    ),
]
ModeOpt = Annotated[str, typer.Option(help="hybrid | dense | keyword.")]
MlflowOpt = Annotated[
    bool, typer.Option("--mlflow", help="Log parameters, metrics (and models) to MLflow.")
]
MlflowUriOpt = Annotated[
    str,
    typer.Option(envvar="MLFLOW_TRACKING_URI", help="MLflow tracking URI (default: a file here)."),
]
DEFAULT_MLFLOW_URI = DEFAULT_URI  # a light import: MLflow itself loads only when a run starts
RerankOpt = Annotated[
    str | None,
    typer.Option(help="Rerank the top candidates: 'builtin' or a CrossEncoder folder."),
]


def fail(message: str) -> NoReturn:
    print("error: " + " ".join(message.split()), file=sys.stderr)
    raise typer.Exit(2)


def user_errors(command: F) -> F:
    """Turn EmbedstackError (and OS errors on user paths) into one line and exit code 2.

    sqlite3.Error is a last line of defence: the store should raise EmbedstackError, but a
    damaged database must never show a CLI user a traceback.
    """

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except EmbedstackError as exc:
            fail(str(exc))
        except OSError as exc:
            fail(f"{exc.filename or ''}: {exc.strerror or exc}")
        except sqlite3.Error as exc:
            fail(f"database error: {exc}")

    return wrapper  # type: ignore[return-value]


def escape_controls(text: str) -> str:
    """`text` with control characters escaped, so a file name holding a newline or a
    terminal escape sequence prints as one harmless line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def print_json(value: Any) -> None:
    """`value` as strict JSON: NaN and infinity (which `json` would write bare) become null."""
    sys.stdout.write(json.dumps(finite(value), ensure_ascii=False, allow_nan=False) + "\n")


def finite(value: Any) -> Any:
    """`value` with every non-finite float, in dicts, lists and tuples, replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite(item) for item in value]
    return value


def parse_filter(raw: str | None) -> dict | None:
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        fail(f"--filter is not valid JSON: {exc.msg} at position {exc.pos}")
    if not isinstance(value, dict):
        fail('--filter must be a JSON object, e.g. \'{"lang": "en"}\'')
    return value


def open_existing(path: Path) -> Collection:
    return Collection.open(path, create=False)


def load_model_with_status(kb: Collection) -> None:
    """Loading a model takes seconds: show a spinner instead of a silent pause."""
    with err.status(f"Loading {kb.config.model}…"):
        _ = kb.model


def check_model(model: str, base_url: str | None) -> None:
    """Fail on an unknown model name before reading a large input."""
    from embedstack.models import find_spec
    from embedstack.models.kmer_backend import is_kmer_name

    # kmer-dna-k6 and the like are names a resolver knows, not catalog entries
    named = is_kmer_name(model) or model.startswith("openai:") or Path(model).exists()
    if base_url is None and not named:
        find_spec(model)


def load_encoder(model: str, backend: str | None, base_url: str | None = None):
    from embedstack.models import load_model

    with err.status(f"Loading {model}…"):
        return load_model(model, backend, base_url=base_url)


def track_eval(uri: str, command: str, params: dict[str, Any], metrics: dict[str, Any]) -> None:
    """Log one evaluation to MLflow and say which run it is (on stderr: --json stays clean)."""
    from embedstack.tracking import tracked_run

    with tracked_run(uri, f"eval {command}", {"embedstack.command": f"eval {command}"}) as run:
        run.log_params(params)
        run.log_metrics(metrics)
    err.print(f"MLflow run {run.id} ({uri})")
