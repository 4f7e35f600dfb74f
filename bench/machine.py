"""The machine a benchmark ran on, printed with every table: figures only compare side by side
on one CPU, and the CPU differs between sessions (AVX2 only, or AVX-512 with VNNI and AMX)."""

from __future__ import annotations

import contextlib
import os
import platform
from datetime import UTC, datetime
from pathlib import Path

SIMD = (
    "sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16",
    "avx_vnni", "amx_bf16", "amx_int8",
)  # fmt: skip


def machine() -> dict:
    """CPU model, cores, the SIMD flags that matter for inference, date and Python."""
    model, flags = platform.processor() or platform.machine(), set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "simd": [flag for flag in SIMD if flag in flags],
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
    }


def cpu_line() -> str:
    """'CPU: AMD EPYC 7B13 · 2 CPUs · SIMD: sse4_2 avx avx2 fma'"""
    info = machine()
    return f"CPU: {info['cpu']} · {info['cores']} CPUs · SIMD: {' '.join(info['simd']) or 'none'}"
