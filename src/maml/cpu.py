"""CPU settings that must be in place before Paddle is imported: `configure()`, called once by
each entry point (the CLI, the pipeline's scripts, the benchmarks, the tests), never on import.

Two things cost Paddle's CPU wheel a factor of two to three on an AMD processor, both measured
in benchmarks/README.md: its GEMMs run in Intel MKL 2019, which on AMD takes a slow generic code
path unless `MKL_DEBUG_CPU_TYPE=5` selects its AVX2 kernels; and glibc's malloc serves each
large tensor with a fresh mmap, so every op pays page faults on its output. Neither changes
what is computed beyond float32 rounding. A value the user has set is left alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import warnings

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
HEAP_LIMIT = 1 << 30  # allocations up to 1 GiB come from (and return to) the heap


def is_amd() -> bool:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            return any("AuthenticAMD" in line for line in cpuinfo if line.startswith("vendor_id"))
    except OSError:
        return False


_applied: dict | None = None


def configure(threads: int | None = None) -> dict:
    """Apply the settings (and `threads`, if given, as OMP_NUM_THREADS) before Paddle is
    imported; returns the settings in effect, for provenance. A second call changes nothing."""
    global _applied
    if _applied is None:
        _applied = _tune()
        # Paddle warns at import that ccache (for compiling C++ extensions, which this project
        # has none of) is missing: two lines before every command's output and error
        warnings.filterwarnings("ignore", message="No ccache found")
    if threads is not None:
        os.environ["OMP_NUM_THREADS"] = str(threads)
    return dict(_applied)


def _tune() -> dict:
    """Both settings where they apply (a job started by the pipeline inherits the variable
    from the Snakemake process)."""
    if is_amd():
        os.environ.setdefault("MKL_DEBUG_CPU_TYPE", "5")
    effective = {name: os.environ[name] for name in ("MKL_DEBUG_CPU_TYPE", "MALLOC_MMAP_THRESHOLD_")
                 if name in os.environ}
    if platform.system() == "Linux" and "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c"))
            done = libc.mallopt(M_MMAP_THRESHOLD, HEAP_LIMIT) and libc.mallopt(M_TRIM_THRESHOLD,
                                                                               HEAP_LIMIT)
        except (OSError, AttributeError):  # not glibc
            done = False
        if done:
            effective["mallopt"] = f"mmap and trim thresholds {HEAP_LIMIT}"
    return effective



# The vector extensions that decide which code paths MKL and Paddle's kernels take, and so
# float32 rounding: results are bit-identical only between machines with the same ones.
VECTOR_EXTENSIONS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16",
                     "amx_tile", "amx_bf16", "amx_int8")


def machine() -> dict:
    """The CPU this process runs on: model, vector extensions and a short kind, e.g.
    'AMD EPYC (avx2)', for provenance and for saying where a bit-for-bit claim holds."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    extensions = [flag for flag in VECTOR_EXTENSIONS if flag in flags]
    wide = [name for flag, name in (("avx512f", "AVX-512"), ("amx_tile", "AMX")) if flag in flags]
    wide = wide or [name for flag, name in (("avx2", "AVX2"), ("avx", "AVX")) if flag in flags][:1]
    return {"cpu": model, "vector_extensions": extensions,
            "kind": f"{model} ({', '.join(wide) or 'no AVX'})"}
