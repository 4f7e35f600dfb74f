"""A blocking iterator (an LLM's stream) served as an async stream that stops when the client
goes away.

Starlette iterates a plain generator one `next` at a time in its thread pool and, when the
client disconnects, just stops asking: the generator is left open until garbage collection,
and with it the LLM's turn (`SerializedChatModel`) and the generation itself, so the next
request waited for the client's timeout. Here one worker thread drives the iterator and closes
it itself (a generator cannot be closed from another thread while it runs) once the response
is cancelled or done. `submit` picks the thread: the LLM's own (`SerializedChatModel.submit`)
for a generation.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TypeVar

T = TypeVar("T")
_END = object()


async def stream_in_thread(
    start: Callable[[], Iterator[T]], submit: Callable[[Callable[[], None]], object] | None = None
) -> AsyncIterator[T]:
    """The items of `start()`, produced in a worker thread (`submit`'s, else the event loop's
    executor); leaving early closes the iterator."""
    loop = asyncio.get_running_loop()
    items: asyncio.Queue[object] = asyncio.Queue()
    stop = threading.Event()

    def produce() -> None:
        try:
            if stop.is_set():  # the client left while this waited for its thread
                return
            iterator = start()
            try:
                for item in iterator:
                    loop.call_soon_threadsafe(items.put_nowait, item)
                    if stop.is_set():
                        break
            finally:
                close = getattr(iterator, "close", None)
                if close is not None:
                    close()
        except BaseException as exc:  # handed to the reader below
            loop.call_soon_threadsafe(items.put_nowait, exc)
        finally:
            loop.call_soon_threadsafe(items.put_nowait, _END)

    if submit is None:
        loop.run_in_executor(None, produce)
    else:
        submit(produce)
    try:
        while (item := await items.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()  # the worker closes the iterator at its next item
