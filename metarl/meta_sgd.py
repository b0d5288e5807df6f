"""The inner step's options on MAMLTRPO's machinery, and Meta-SGD with the TRPO outer step.

Meta-SGD (Li, Zhou, Chen & Li 2017) learns one inner step size per parameter entry, ``alpha`` of the
parameters' shapes, initialised at ``inner_step_size``::

    theta'_i = theta - alpha (elementwise) grad L_i(theta)
    (theta, alpha) <- outer step on  sum_i L_i^surr(theta'_i(theta, alpha))

The step sizes live in the learner's parameter dict as ``step_size.<name>`` (metarl.adaptation), so the
outer optimiser (TRPO here, Adam for promp / maml_ppo), the checkpoints and the evaluation see them as
parameters; the sampler and the policy ignore them.
"""

from __future__ import annotations

from typing import Any, Sequence

from metarl.adaptation import AdaptationData, adaptation_path, split_step_sizes
from metarl.maml import MAMLTRPO
from metarl.policy import Params


class InnerStepLearner(MAMLTRPO):
    """MAMLTRPO's advantages, surrogate, KL and TRPO step with the inner step's options.

    ``estimator`` chooses the inner loss (``reinforce`` or ProMP's ``lvc``); Meta-SGD step sizes are
    taken from the parameter dict when it holds them, else the scalar ``inner_step_size`` is used.
    """

    estimator: str = "reinforce"

    def adaptation_path(self, params: Params, inner: Sequence[AdaptationData], create_graph: bool = True) -> list[Params]:
        """Task-batched parameters before each inner step and after the last (metarl.adaptation.adaptation_path)."""
        policy_params, sizes = split_step_sizes(params)
        step = sizes if sizes is not None else self.s.inner_step_size
        return adaptation_path(self.policy, policy_params, inner, [step] * len(inner), self.s.first_order,
                               create_graph, self.estimator)

    def adapt(self, params: Params, inner: Sequence[AdaptationData], create_graph: bool = True) -> Params:
        return self.adaptation_path(params, inner, create_graph)[-1]

    def state_dict(self) -> dict[str, Any]:
        """Outer-optimiser state carried from one meta-iteration to the next (none for TRPO)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            raise ValueError(f"algorithm state: {type(self).__name__} keeps none, got keys {sorted(state)}")


class MetaSGDTRPO(InnerStepLearner):
    """MAML-TRPO whose TRPO step moves the policy parameters and the per-parameter step sizes together.

    The meta-gradient and the KL's Hessian flow into ``alpha`` through the inner step exactly as into
    theta, so MAMLTRPO.meta_update is used unchanged on the joint parameter dict.
    """
