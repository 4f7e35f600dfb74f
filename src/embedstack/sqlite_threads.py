"""One SQLite connection per thread, for objects that many threads share (a server's pool).

A `sqlite3.Connection` must not be used by two threads at once, and closing one while another
thread still iterates a cursor on it crashes the process. `ThreadConnections` gives each thread
its own connection, closes those of threads that have ended (a thread-per-request server would
otherwise run out of file descriptors), and closes the rest only once no operation is using
them (`using()` around each operation; `close()` waits for them). Used by the collection's
store and by the embedding cache.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class ClosedError(RuntimeError):
    """The connections were closed; callers turn this into their own error or fallback."""


class ThreadConnections:
    def __init__(self, open_connection: Callable[[], sqlite3.Connection]) -> None:
        self._open = open_connection
        self._local = threading.local()
        self._by_thread: dict[threading.Thread, sqlite3.Connection] = {}
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._active = 0  # operations in progress, in all threads
        self._generation = 0  # bumped by `reset()`: older connections are replaced on next use
        self.closed = False

    def get(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use (or after a `reset`)."""
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is not None and self._local.generation == self._generation:
            return db
        with self._lock:
            if self.closed:
                raise ClosedError("closed")
            if db is not None:  # made before a reset: it may still see an old file
                self._by_thread.pop(threading.current_thread(), None)
                db.close()
            for thread in [t for t in self._by_thread if not t.is_alive()]:
                self._by_thread.pop(thread).close()
            db = self._open()
            self._by_thread[threading.current_thread()] = db
            self._local.db, self._local.generation = db, self._generation
            return db

    @property
    def generation(self) -> int:
        """How many times `reset` was called: tells a caller whether a reset happened since."""
        return self._generation

    def reset(self) -> None:
        """Every thread opens a new connection on its next `get` (after a file was replaced)."""
        with self._lock:
            self._generation += 1

    @contextmanager
    def using(self) -> Iterator[None]:
        """Mark an operation in progress (nesting is fine); raises ClosedError once closed."""
        with self._lock:
            if self.closed:
                raise ClosedError("closed")
            self._active += 1
        try:
            yield
        finally:
            with self._lock:
                self._active -= 1
                if not self._active:
                    self._idle.notify_all()

    def close(self, then: Callable[[], None] | None = None) -> None:
        """Refuse new operations, wait for running ones, close every connection, then `then()`.

        Call it from outside any `using()` block, or it waits for itself.
        """
        with self._lock:
            self.closed = True
            while self._active:
                self._idle.wait()
            for db in self._by_thread.values():
                db.close()
            self._by_thread.clear()
            if then is not None:
                then()
