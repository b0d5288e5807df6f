"""Benchmarks, comparisons and scripts, run as ``python -m experiments.<name>``.

``metarl`` is imported first so that the scripts' OpenMP threads wait as ``metarl train``'s do: its import
sets ``GOMP_SPINCOUNT`` before torch is loaded (``metarl/threads.py``).
"""

import metarl  # noqa: F401
