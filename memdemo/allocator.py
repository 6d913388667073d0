"""glibc malloc tuning for a long-running server: one arena and a fixed mmap threshold, set before the models and
the server allocate, and heap trims (docs/operations.md). Imports only the standard library, so that app.py can
apply it first."""

from __future__ import annotations

import ctypes
import os

M_MMAP_THRESHOLD, M_ARENA_MAX = -3, -8  # glibc's mallopt parameters
MALLOC_ARENAS = 1  # one heap shared by every thread: the least fragmentation (docs/operations.md)
# Blocks from 256 kB up are mapped and unmapped, not left to fragment the heap: a run is as fast as at 1 MB (which let
# a soak's RSS grow more than 3x as much), while glibc's starting 128 kB made it 12-20% slower (malloc_tuning.md).
MMAP_THRESHOLD = 256 << 10


def glibc() -> ctypes.CDLL | None:
    """The C library if it is glibc (mallopt, malloc_trim), else None."""
    try:
        library = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    return library if hasattr(library, "malloc_trim") else None


def tune_malloc(arenas: int | None = MALLOC_ARENAS, mmap_threshold: int | None = MMAP_THRESHOLD) -> None:
    """Cap glibc's malloc arenas and fix its mmap threshold, each unless None or its environment variable is set.
    Uncapped, glibc gives each thread that finds the others busy an arena of its own; unfixed, it raises the threshold
    to the largest block freed (up to 32 MB), after which large buffers are carved from the heap. Both leave free
    memory scattered that a trim cannot return (docs/operations.md)."""
    libc = glibc()
    if libc is None:
        return
    if arenas is not None and "MALLOC_ARENA_MAX" not in os.environ:
        libc.mallopt(M_ARENA_MAX, arenas)
    if mmap_threshold is not None and "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        libc.mallopt(M_MMAP_THRESHOLD, mmap_threshold)
