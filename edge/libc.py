"""The C library the process already has, for the calls Python does not wrap.

``ctypes.CDLL(None)`` is that library as loaded: ``ctypes.util.find_library("c")`` would run
``ldconfig -p`` (a fork of the whole daemon) at every call.  Where it lacks a call (musl has
no ``malloc_trim`` nor ``mallopt``), the call does nothing: each is an optimisation, or, for
``adjtimex``, its caller says what no answer means.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools

_M_MMAP_THRESHOLD = -3  # glibc's malloc.h
_M_ARENA_MAX = -8


@functools.cache
def libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def give_back_freed_memory() -> None:
    """Return to the system the free pages of every malloc arena, after work that allocated much
    and freed it (the voice's clips at start: ~0.7 MiB a thread's arena would otherwise hold)."""
    with contextlib.suppress(OSError, AttributeError):
        libc().malloc_trim(0)


def keep_big_blocks_mapped(threshold: int = 128 * 1024) -> None:
    """Serve blocks of ``threshold`` bytes or more by mmap, given back when freed, for good.

    glibc raises its threshold to the size of a freed mmap'd block, and from then on such
    blocks come from the heap and stay: after scrypt's 16 MiB buffer, each console login left
    the daemon about 17 MiB bigger (bench/console_bench.py --rss)."""
    with contextlib.suppress(OSError, AttributeError):
        libc().mallopt(_M_MMAP_THRESHOLD, threshold)


def one_malloc_arena() -> None:
    """Serve every thread's malloc from one arena; call it before threads start.

    glibc gives each thread that allocates an arena of its own (up to eight per core), each
    keeping its free pages and its fragments.  The daemon's threads wait nearly always, and
    what they allocate they allocate holding the GIL, so they would not contend for one:
    0.5 MiB less resident idle, every feature on (bench/memory_map.py, MALLOC_ARENA_MAX=1)."""
    with contextlib.suppress(OSError, AttributeError):
        libc().mallopt(_M_ARENA_MAX, 1)
