"""OpenMP threads that stop spinning soon when they have no work, so that runs sharing the cores keep their speed.

torch's CPU kernels run on an OpenMP team (GNU libgomp in the pip wheels for Linux) of one thread per core.
Between parallel regions libgomp's idle threads spin (300,000 rounds by default) before they sleep.  One
process alone loses nothing by it; two training processes on the same cores do: each one's spinning threads
take the cores the other one's working threads need.  ``experiments/bench_side_by_side.py`` measures it
(figures and the command in docs/training.md, "Threads, phase by phase"): with libgomp's default, two
released HalfCheetahVel runs side by side each ran at a third of a lone run's speed; spinning 10,000 rounds
(``GOMP_SPINCOUNT=10000``) brought that to about half with no measurable cost to a lone run; sleeping at once
(``OMP_WAIT_POLICY=PASSIVE``) did a little better side by side and cost a lone run 7-12%.

libgomp reads these variables once, when torch loads it, so they have to be in the environment before
``import torch``.  :func:`shorten_openmp_spinning` runs when ``metarl`` is imported (the ``metarl`` command
imports it before torch) and sets ``GOMP_SPINCOUNT=10000`` unless

* the user set ``GOMP_SPINCOUNT`` or ``OMP_WAIT_POLICY`` to a non-empty value (their setting is kept as it
  is; an empty value counts as unset), or
* ``METARL_SET_OPENMP`` is ``0``, ``false``, ``no`` or ``off``: OpenMP keeps its own defaults (any other
  value leaves the setting on), or
* torch is already imported: then it is too late to change, and nothing is changed (a script or notebook
  that imports torch first gets OpenMP's defaults; import metarl first, or export the variable).

It never changes a number, only how idle threads wait.  Processes started from a metarl process (the local
Ray cluster metarl starts, the benchmarks' subprocesses) inherit the variable; a Ray worker on a cluster
started elsewhere sets it for itself when it imports metarl, if torch is not loaded in it yet.  Other OpenMP
runtimes (LLVM's libomp on macOS) ignore ``GOMP_SPINCOUNT``.
"""

from __future__ import annotations

import os
import sys

ENV_VAR = "METARL_SET_OPENMP"
SPIN_VAR = "GOMP_SPINCOUNT"
WAIT_VAR = "OMP_WAIT_POLICY"
SPIN_COUNT = "10000"


def switched_off(value: str | None) -> bool:
    """Whether an environment switch such as ``METARL_SET_OPENMP`` says off: ``0``, ``false``, ``no`` or ``off``
    (any case, surrounding blanks ignored); unset or anything else is on."""
    return value is not None and value.strip().lower() in ("0", "false", "no", "off")


def shorten_openmp_spinning(environ: dict[str, str] | None = None, torch_loaded: bool | None = None) -> str:
    """Set ``GOMP_SPINCOUNT=10000`` where that is still possible and wanted; return what was done.

    Returns ``"set"`` (set now), ``"user"`` (``GOMP_SPINCOUNT`` or ``OMP_WAIT_POLICY`` was already set:
    kept), ``"off"`` (``METARL_SET_OPENMP`` disables it) or ``"too late"`` (torch already imported: nothing
    changed).  ``environ`` and ``torch_loaded`` default to the process's environment and ``"torch" in sys.modules``.
    """
    env = os.environ if environ is None else environ
    if env.get(SPIN_VAR, "").strip() or env.get(WAIT_VAR, "").strip():
        return "user"
    if switched_off(env.get(ENV_VAR)):
        return "off"
    if ("torch" in sys.modules) if torch_loaded is None else torch_loaded:
        return "too late"
    env[SPIN_VAR] = SPIN_COUNT
    return "set"
