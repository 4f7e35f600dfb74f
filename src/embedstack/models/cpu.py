"""What CPU this is: its model name and the SIMD flags that decide which runtime is fastest.

The runtime choice (runtime_choice.py) is cached per CPU, and benchmarks print the same line,
since a figure only compares with others measured on the same CPU.
"""

from __future__ import annotations

import contextlib
import functools
import platform
from dataclasses import dataclass
from pathlib import Path

# The flags that matter for inference: int8 dot products (VNNI, AMX-INT8), bf16 (AVX-512-BF16,
# AMX-BF16) and the vector widths below them.
SIMD_FLAGS = (
    "sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16",
    "avx_vnni", "amx_bf16", "amx_int8",
)  # fmt: skip


@dataclass(frozen=True)
class Cpu:
    model: str
    simd: tuple[str, ...]  # the SIMD_FLAGS this CPU has, in that order
    # "family 25 model 1": cloud VMs name every EPYC "AMD EPYC", yet two with the same flags
    # embedded the same query in 8.0 and 5.2 ms. Benchmarks print it; the runtime choice's key
    # (describe) leaves it out.
    generation: str = ""

    @property
    def has_bf16(self) -> bool:
        """bf16 matrix units or instructions (AMX or AVX-512-BF16): where bf16 inference pays."""
        return "amx_bf16" in self.simd or "avx512_bf16" in self.simd

    def describe(self) -> str:
        return f"{self.model} · SIMD: {' '.join(self.simd) or 'none'}"


@functools.cache
def this_cpu() -> Cpu:
    """From /proc/cpuinfo on Linux; elsewhere the platform's processor name and no flags."""
    model, flags = platform.processor() or platform.machine(), set()
    numbers: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name":
                model = value.strip()
            elif key in ("cpu family", "model"):
                numbers.setdefault(key, value.strip())
            elif key == "flags":
                flags = set(value.split())
            if flags and model:
                break
    generation = (
        f"family {numbers['cpu family']} model {numbers['model']}" if len(numbers) == 2 else ""
    )
    return Cpu(model, tuple(flag for flag in SIMD_FLAGS if flag in flags), generation)
