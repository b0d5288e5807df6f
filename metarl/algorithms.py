"""Which meta-learner a run uses: ``algo.name`` and ``algo.learn_inner_step_size`` (docs/algorithms.md).

Every learner offers the trainer the same calls: ``advantages(batch)``, ``adapt(params, inner,
create_graph)`` and ``meta_update(params, inner, post) -> (new_params, stats)``; the state an outer
optimiser carries between meta-iterations goes through :func:`algorithm_state` / :func:`load_algorithm_state`.
"""

from __future__ import annotations

from typing import Any

from metarl.adaptation import with_step_sizes
from metarl.baseline import LinearFeatureBaseline
from metarl.config import ALGORITHMS, AlgoConfig, ConfigError
from metarl.maml import MAMLTRPO
from metarl.policy import GaussianMLPPolicy, Params


def make_algorithm(cfg: AlgoConfig, policy: GaussianMLPPolicy, baseline: LinearFeatureBaseline) -> MAMLTRPO:
    """The learner named by ``cfg.name``, with Meta-SGD step sizes if ``cfg.learn_inner_step_size``.

    ``maml_trpo`` without Meta-SGD is :class:`metarl.maml.MAMLTRPO` itself, the paper's method.
    """
    from metarl.maml_ppo import MAMLPPO
    from metarl.meta_sgd import MetaSGDTRPO
    from metarl.promp import ProMP

    if cfg.name == "maml_trpo":
        return MetaSGDTRPO(policy, baseline, cfg) if cfg.learn_inner_step_size else MAMLTRPO(policy, baseline, cfg)
    if cfg.name == "promp":
        return ProMP(policy, baseline, cfg)
    if cfg.name == "maml_ppo":
        return MAMLPPO(policy, baseline, cfg)
    raise ConfigError(f"config field 'algo.name': unknown algorithm {cfg.name!r}; valid: {list(ALGORITHMS)}")


def initial_params(cfg: AlgoConfig, policy_params: Params) -> Params:
    """A fresh run's learner parameters: the policy's, plus Meta-SGD step sizes at ``inner_step_size`` if learned."""
    return with_step_sizes(policy_params, cfg.inner_step_size) if cfg.learn_inner_step_size else dict(policy_params)


def algorithm_state(algo: MAMLTRPO) -> dict[str, Any]:
    """The outer optimiser's state to checkpoint: a plain dict of tensors, numbers and lists ({} for TRPO)."""
    return algo.state_dict() if hasattr(algo, "state_dict") else {}


def load_algorithm_state(algo: MAMLTRPO, state: dict[str, Any]) -> None:
    if hasattr(algo, "load_state_dict"):
        algo.load_state_dict(state)
    elif state:
        raise ValueError(f"algorithm state: {type(algo).__name__} keeps none, got keys {sorted(state)}")
