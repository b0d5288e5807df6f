"""metarl: Model-Agnostic Meta-Learning (MAML-TRPO) on fast batched MuJoCo task environments.

For scripts: :func:`train`, :func:`evaluate`, :func:`load_run` (a :class:`Run` adapts and acts); the
building blocks (policy, sampler, inner step, meta-update) are in their modules.  ``metarl.envs`` holds
the task environments (importing it registers the ``metarl/`` gymnasium ids).
"""

from __future__ import annotations

from typing import Any

from metarl.threads import shorten_openmp_spinning

__version__ = "0.1.0"

# Before anything imports torch: idle OpenMP threads spin briefly, then sleep, so that runs sharing the cores
# keep their speed (metarl/threads.py; METARL_SET_OPENMP=0 or the user's own GOMP_SPINCOUNT/OMP_WAIT_POLICY
# leave OpenMP alone).
shorten_openmp_spinning()

# The API pulls in torch, gymnasium and MuJoCo; it is loaded on first use so that `import metarl.envs`
# (envs only) stays light.
_LAZY = {
    "train": "metarl.api",
    "evaluate": "metarl.api",
    "load_run": "metarl.api",
    "Run": "metarl.api",
    "AdaptationCurve": "metarl.api",
    "TrainConfig": "metarl.config",
    "load_config": "metarl.config",
    "GaussianMLPPolicy": "metarl.policy",
    "LinearFeatureBaseline": "metarl.baseline",
    "MAMLTRPO": "metarl.maml",
    "MAMLSettings": "metarl.maml",
    "Sampler": "metarl.sampler",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'metarl' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_LAZY))
