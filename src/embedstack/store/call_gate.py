"""A gate that counts the calls in progress, for stores whose `close()` must wait for them.

Shared by the server-backed stores (PostgreSQL, Milvus): a call made after `close()` gets a
clear CollectionClosedError instead of a closed pool's or client's own exception.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from embedstack.errors import CollectionClosedError


class CallGate:
    """Counts calls in progress so that `close()` can wait for them; later calls fail clearly."""

    def __init__(self, closed_message: str) -> None:
        self.closed_message = closed_message
        self.active = 0
        self.closed = False
        self._idle = threading.Condition()

    @contextmanager
    def call(self) -> Iterator[None]:
        with self._idle:
            if self.closed:
                raise CollectionClosedError(self.closed_message)
            self.active += 1
        try:
            yield
        finally:
            with self._idle:
                self.active -= 1
                self._idle.notify_all()

    def close(self) -> bool:
        """Mark closed and wait for the calls in progress; False if it was closed already."""
        with self._idle:
            if self.closed:
                return False
            self.closed = True
            self._idle.wait_for(lambda: self.active == 0)
            return True
