"""Every error, from any route, as OpenAI's envelope: {"error": {message, type, param, code}}.

One handler per kind of failure: embedstack's own errors carry their HTTP status, request
validation becomes 422 naming the field, Starlette's (404 route, 405 method) keep theirs, and
anything unexpected is a 500 whose details go to the log, not the client.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from embedstack.errors import CollectionClosedError, EmbedstackError

log = logging.getLogger("embedstack.server")


class HTTPError(EmbedstackError):
    """An error the server itself raises, with its status, code and field."""

    def __init__(self, status: int, message: str, code: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.param = param


def envelope(
    status: int,
    message: str,
    code: str,
    param: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    kind = (
        "authentication_error" if status == 401
        else "server_error" if status >= 500
        else "invalid_request_error"
    )  # fmt: skip
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def error_code(exc: BaseException) -> str:
    """`CollectionNotFoundError` -> "collection_not_found": one code per exception class."""
    name = type(exc).__name__.removesuffix("Error") or "error"
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _embedstack_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, EmbedstackError)
    if isinstance(exc, HTTPError):
        return envelope(exc.status, str(exc), exc.code, exc.param)
    if isinstance(exc, CollectionClosedError):  # deleted meanwhile; its folder is not news
        message = "the collection was deleted while this request ran"
        return envelope(404, message, "collection_not_found")
    status = exc.status
    if status >= 500:
        log.warning("%s %s: %s", request.method, request.url.path, exc)
    return envelope(status, str(exc), error_code(exc), getattr(exc, "param", None))


def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first: dict[str, Any] = errors[0] if errors else {}
    # The top-level field; deeper parts of a union's location name its member types, which
    # mean nothing to a client ("input.list[int].0").
    location = list(first.get("loc", ()))
    if location[:1] in (["body"], ["query"], ["path"], ["header"], ["cookie"]):
        location = location[1:]  # where the field was sent; the field itself comes next
    param = str(location[0]) if location else None
    message = first.get("msg", "invalid request")
    if first.get("type") == "json_invalid":
        error = first.get("ctx", {}).get("error", "")
        message, param = f"the body is not valid JSON: {error}", None
    elif param:
        message = f"{param}: {message}"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem{'s' * (len(errors) > 2)})"
    return envelope(422, message, "invalid_input", param)


def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {401: "invalid_api_key", 404: "not_found", 405: "method_not_allowed",
            413: "limit_exceeded"}.get(exc.status_code, "http_error")  # fmt: skip
    return envelope(exc.status_code, str(exc.detail), code, headers=exc.headers)


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("%s %s failed", request.method, request.url.path, exc_info=exc)
    return envelope(500, "internal server error (the server log has the details)", "internal")


def install_handlers(app: FastAPI) -> None:
    app.add_exception_handler(EmbedstackError, _embedstack_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
