"""OpenMP threads that sleep when they have no work, so that runs sharing the cores do not fall off a cliff.

torch's CPU kernels run on an OpenMP team (GNU libgomp in the pip wheels for Linux) of one thread per core.
Between parallel regions libgomp's idle threads spin for a while before they sleep.  One process alone
loses nothing by it; two training processes on the same cores do: each one's spinning threads take the
cores the other one's working threads need.  Measured with ``experiments/bench_side_by_side.py`` on the
released HalfCheetahVel config, two runs side by side each kept 27-32% of a lone run's speed with
libgomp's default and 54-59% with ``OMP_WAIT_POLICY=PASSIVE`` (figures and the command in
docs/training.md).

libgomp reads ``OMP_WAIT_POLICY`` once, when torch loads it, so the variable has to be in the environment
before ``import torch``.  :func:`prefer_passive_openmp` runs when ``metarl`` is imported (the ``metarl``
command imports it before torch) and sets ``OMP_WAIT_POLICY=PASSIVE`` unless

* the user set ``OMP_WAIT_POLICY`` themselves (their value is kept), or
* ``METARL_OPENMP_PASSIVE=0`` (also ``false``, ``no``, ``off``): OpenMP keeps its own default, or
* torch is already imported: then it is too late to change, and nothing is changed.

It never changes a number, only how idle threads wait.  Child processes (Ray workers, the benchmarks'
subprocesses) inherit the variable.
"""

from __future__ import annotations

import os
import sys

ENV_VAR = "METARL_OPENMP_PASSIVE"
OMP_VAR = "OMP_WAIT_POLICY"


def prefer_passive_openmp(environ: dict[str, str] | None = None, torch_loaded: bool | None = None) -> str:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` where that is still possible and wanted; return what was done.

    Returns ``"set"`` (set now), ``"user"`` (``OMP_WAIT_POLICY`` was already set: kept), ``"off"``
    (``METARL_OPENMP_PASSIVE`` disables it) or ``"too late"`` (torch already imported: nothing changed).
    ``environ`` and ``torch_loaded`` default to the process's environment and ``"torch" in sys.modules``.
    """
    env = os.environ if environ is None else environ
    if env.get(OMP_VAR, "").strip():
        return "user"
    if env.get(ENV_VAR, "1").strip().lower() in ("0", "false", "no", "off"):
        return "off"
    if ("torch" in sys.modules) if torch_loaded is None else torch_loaded:
        return "too late"
    env[OMP_VAR] = "PASSIVE"
    return "set"
