"""Refuse oversized bodies with 413 before they are read into memory.

A pure ASGI middleware: the declared Content-Length is checked first, and the bytes actually
received are counted too (a chunked upload declares none), so a 50 MB body costs a 413, not
50 MB of RAM. Multipart uploads have their own, larger limit.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from embedstack.server.errors import envelope

MB = 1024 * 1024


class BodyTooLarge(HTTPException):
    """Raised while the body is read; an HTTPException, so the route's 413 handler answers."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, limit_message(limit))


def limit_message(limit: int) -> str:
    return f"the request body is larger than the limit of {limit / MB:g} MB"


class BodyLimit:
    def __init__(self, app: ASGIApp, json_bytes: int, upload_bytes: int) -> None:
        self.app = app
        self.json_bytes = json_bytes
        self.upload_bytes = upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        multipart = headers.get(b"content-type", b"").startswith(b"multipart/")
        limit = self.upload_bytes if multipart else self.json_bytes
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._refuse(scope, receive, send, limit)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(scope, receive, send, limit)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        response = envelope(
            413, limit_message(limit), "limit_exceeded", headers={"Connection": "close"}
        )
        await response(scope, receive, send)
