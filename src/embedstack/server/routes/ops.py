"""Health and metrics, for load balancers and Prometheus."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Response

from embedstack.server.deps import State, require_key

router = APIRouter(tags=["operations"])


@router.get("/health", summary="Is the server up")
def health(state: State) -> dict[str, Any]:
    return {"status": "ok", "model": state.models.default,
            "collections": len(state.collections.names())}  # fmt: skip


@router.get("/metrics", summary="Prometheus metrics", dependencies=[Depends(require_key)])
def metrics(state: State) -> Response:
    return Response(state.metrics.render(), media_type=state.metrics.content_type)
