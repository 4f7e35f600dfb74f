"""The machine a benchmark ran on, printed with every table: figures only compare side by side
on one CPU, and the CPU differs between sessions (AVX2 only, or AVX-512 with VNNI and AMX)."""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime

from embedstack.models.cpu import this_cpu


def machine() -> dict:
    """CPU model, cores, the SIMD flags that matter for inference, date and Python."""
    cpu = this_cpu()
    return {
        "cpu": f"{cpu.model} ({cpu.generation})" if cpu.generation else cpu.model,
        "cores": os.cpu_count(),
        "simd": list(cpu.simd),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
    }


def cpu_line() -> str:
    """'CPU: AMD EPYC (family 25 model 1) · 2 CPUs · SIMD: sse4_2 avx avx2 fma'"""
    info = machine()
    return f"CPU: {info['cpu']} · {info['cores']} CPUs · SIMD: {' '.join(info['simd']) or 'none'}"
