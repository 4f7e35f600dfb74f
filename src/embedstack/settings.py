"""One settings object, read once from `EMBEDSTACK_*` environment variables.

Explicit arguments always win; these are the defaults for the cache folder, the CPU threads,
API keys and the local LLM's runtime. Nothing here changes the environment.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from embedstack.errors import InvalidInputError


@dataclass(frozen=True)
class Settings:
    cache_dir: Path  # EMBEDSTACK_CACHE_DIR, else $XDG_CACHE_HOME/embedstack, else ~/.cache/…
    threads: int | None  # EMBEDSTACK_THREADS; None: the CPUs this process may use
    api_key: str | None  # EMBEDSTACK_API_KEY, else OPENAI_API_KEY (for endpoints)
    llm_runtime: str = "auto"  # EMBEDSTACK_LLM_RUNTIME: auto, llamacpp or transformers

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        if environ.get("EMBEDSTACK_CACHE_DIR"):
            cache_dir = Path(environ["EMBEDSTACK_CACHE_DIR"]).expanduser()
        else:
            base = environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
            cache_dir = Path(base) / "embedstack"
        threads = None
        raw = environ.get("EMBEDSTACK_THREADS", "").strip()
        if raw:
            try:
                threads = max(1, int(raw))
            except ValueError:
                raise InvalidInputError(
                    f"EMBEDSTACK_THREADS must be a whole number, got {raw!r}"
                ) from None
        api_key = environ.get("EMBEDSTACK_API_KEY") or environ.get("OPENAI_API_KEY") or None
        llm_runtime = environ.get("EMBEDSTACK_LLM_RUNTIME", "").strip().lower() or "auto"
        return cls(cache_dir=cache_dir, threads=threads, api_key=api_key, llm_runtime=llm_runtime)


@functools.cache
def get_settings() -> Settings:
    """The process's settings, read from the environment on first use."""
    return Settings.from_environ()


def reload_settings() -> Settings:
    """Read the environment again (tests that change it; a long-lived server after a reload)."""
    get_settings.cache_clear()
    return get_settings()
