"""Keep freed memory in the process, so that the learner's large temporaries do not fault in fresh pages.

A meta-update allocates and frees tensors of tens of megabytes many times (``[T, N, 100]`` float32 is 64 MB
for the released Ant configs).  glibc's ``malloc`` serves blocks above its mmap threshold (at most 32 MB)
with a fresh ``mmap`` and returns them to the kernel on ``free``, so every such temporary starts with page
faults in which the kernel zeroes its pages: measured on the released AntVel shapes, that was 14 s of
system time in a 38 s benchmark and made the TRPO update about 20% slower (``experiments/bench_meta.py``
compares both settings in the same run).  :func:`keep_freed_memory` tells glibc to serve every block from
its heap and not to give freed memory back, so the same pages are reused from one temporary to the next.
The price is a higher resident size (the peak stays reserved: +17% on that benchmark).

It only changes how memory is obtained, never a number.  It is applied by the trainer; set the
environment variable ``METARL_KEEP_FREED_MEMORY=0`` to keep the C library's defaults.  On systems without
glibc (macOS, Windows, musl) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

# mallopt parameters, from glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_MMAP_MAX = -4
_GLIBC_DEFAULTS = {_M_TRIM_THRESHOLD: 128 * 1024, _M_MMAP_THRESHOLD: 128 * 1024, _M_MMAP_MAX: 65536}
_KEEP = {_M_MMAP_MAX: 0, _M_TRIM_THRESHOLD: 2**31 - 1}

ENV_VAR = "METARL_KEEP_FREED_MEMORY"


def _mallopt():
    """glibc's ``mallopt``, or None where the C library is not glibc."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        if not hasattr(libc, "gnu_get_libc_version"):  # only glibc has it
            return None
        fn = libc.mallopt
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


def keep_freed_memory(enable: bool | None = None) -> bool:
    """Serve large allocations from the heap and keep freed memory (``enable=False`` restores glibc's defaults).

    ``enable=None`` reads ``METARL_KEEP_FREED_MEMORY`` (``0`` disables, anything else or unset enables).
    Returns whether the kept-memory setting is in effect afterwards (False without glibc).
    """
    if enable is None:
        enable = os.environ.get(ENV_VAR, "1").strip() not in ("0", "false", "no", "off")
    mallopt = _mallopt()
    if mallopt is None:
        return False
    settings = _KEEP if enable else _GLIBC_DEFAULTS
    ok = all(mallopt(param, value) == 1 for param, value in settings.items())
    return bool(enable and ok)
