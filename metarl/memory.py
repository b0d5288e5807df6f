"""Keep freed memory in the process, so that the learner's large temporaries do not fault in fresh pages.

A meta-update allocates and frees tensors of tens of megabytes many times (``[T, N, 100]`` float32 is 64 MB
for the released Ant configs).  glibc's ``malloc`` serves blocks above its mmap threshold (which slides up
to at most 32 MiB) with a fresh ``mmap`` and returns them to the kernel on ``free``, so every such
temporary starts with page faults in which the kernel zeroes its pages.  :func:`keep_freed_memory` tells
glibc to serve every block from its heap and not to give freed memory back, so the same pages are reused
from one temporary to the next.  ``experiments/bench_memory.py`` measures both settings, each in its own
process, on the released AntVel shapes (figures in docs/training.md); the price is a higher resident size,
since the peak stays reserved.

It only changes how memory is obtained, never a number.  The trainer applies it; with the environment
variable ``METARL_KEEP_FREED_MEMORY=0`` nothing is changed and glibc keeps its own (sliding) defaults.  On
systems without glibc (macOS, Windows, musl) it does nothing.
"""

from __future__ import annotations

import ctypes
import os

from metarl.threads import switched_off

# mallopt parameters, from glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_KEEP = {_M_MMAP_MAX: 0, _M_TRIM_THRESHOLD: 2**31 - 1}

ENV_VAR = "METARL_KEEP_FREED_MEMORY"


def _mallopt():
    """glibc's ``mallopt``, or None where the C library is not glibc."""
    try:
        libc = ctypes.CDLL(None)  # the C library the process runs on
    except (OSError, TypeError):  # TypeError: Windows has no process-wide handle
        return None
    if not hasattr(libc, "gnu_get_libc_version") or not hasattr(libc, "mallopt"):  # only glibc has the first
        return None
    fn = libc.mallopt
    fn.argtypes = [ctypes.c_int, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


def keep_freed_memory(enable: bool | None = None) -> bool:
    """Serve large allocations from the heap and keep freed memory (glibc only); return whether it is in effect.

    ``enable=None`` reads ``METARL_KEEP_FREED_MEMORY`` (``0``, ``false``, ``no`` or ``off`` disable it;
    unset or anything else enables it).  Disabled, nothing is changed: glibc offers no call that restores
    its sliding mmap threshold once ``mallopt`` has set it, so a process that was switched stays switched.
    """
    if enable is None:
        enable = not switched_off(os.environ.get(ENV_VAR))
    if not enable:
        return False
    mallopt = _mallopt()
    if mallopt is None:
        return False
    results = [mallopt(param, value) for param, value in _KEEP.items()]
    return all(r == 1 for r in results)
