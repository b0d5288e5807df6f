"""The batched task env: ``num_envs`` slots, each with its own task, stepped together.

Episode bookkeeping lives here, shared by every task family; subclasses only say how to reset slots and
how one step maps actions to observations, rewards and terminations for all slots at once.

Conventions (gymnasium ``VectorEnv`` with autoreset disabled):

* every episode has a fixed horizon; at step ``horizon`` every slot that has not terminated reports
  ``truncated``, and the next ``step`` raises until that slot is reset (each slot has its own clock, so
  ``reset(options={"reset_mask": mask})`` can restart some slots while others run on);
* a terminated slot stays terminated: it is not simulated any more, repeats its last observation, earns
  reward 0 and reports ``terminated=True`` until the next reset, so a sampler can mask it;
* actions outside the action space are clipped to it (the paper's environments clip the policy's raw
  Gaussian sample); non-finite actions and wrong shapes raise.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import gymnasium
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from .tasks import TaskSpace, check_count


class EpisodeBook:
    """Per-slot episode bookkeeping shared by every task vector env (see the module docstring's rules).

    It keeps each slot's clock, which slots terminated (frozen: last observation repeated, reward 0) and
    whether a slot reached the horizon, so that :class:`BatchedTaskEnv` and the general
    :class:`metarl.envs.TaskSyncVectorEnv` follow exactly the same episode rules.
    """

    def __init__(self, num_envs: int, horizon: int, obs_shape: tuple[int, ...]) -> None:
        self.num_envs, self.horizon = num_envs, horizon
        self.t = np.full(num_envs, horizon, dtype=np.int64)  # every slot needs a first reset
        self.needs_reset = True
        self.reset_once = False
        self.terminated = np.zeros(num_envs, dtype=bool)
        self.any_terminated = False
        self.obs = np.zeros((num_envs, *obs_shape), dtype=np.float64)
        self.frozen_obs = np.zeros((num_envs, *obs_shape), dtype=np.float64)

    def reset_mask(self, options: dict[str, Any] | None) -> np.ndarray:
        """The slots a ``reset(options=...)`` call restarts (all without ``reset_mask``)."""
        mask = np.ones(self.num_envs, dtype=bool)
        if options:
            unknown = set(options) - {"reset_mask"}
            if unknown:
                raise ValueError(f"options: unknown keys {sorted(unknown)}; the only option is 'reset_mask'")
            mask = np.asarray(options["reset_mask"])
            if mask.shape != (self.num_envs,) or mask.dtype != np.bool_:
                raise ValueError(
                    f"options['reset_mask']: expected a bool array of shape ({self.num_envs},), "
                    f"got {mask.dtype} {mask.shape}"
                )
        return mask

    def expand_seeds(self, seed: object) -> list[int | None]:
        """``seed=s`` gives slot ``i`` the seed ``s + i``; a sequence gives one seed (or None) per slot."""
        if isinstance(seed, (int, np.integer)) and not isinstance(seed, (bool, np.bool_)):
            if seed < 0:
                raise ValueError(f"seed: expected a non-negative integer, got {seed}")
            return [int(seed) + i for i in range(self.num_envs)]
        if isinstance(seed, (str, bytes)) or not isinstance(seed, (Sequence, np.ndarray)):
            raise ValueError(
                f"seed: expected a non-negative integer (slot i gets seed + i) or one integer per slot, "
                f"got {type(seed).__name__} {seed!r}"
            )
        seeds = list(seed)
        if len(seeds) != self.num_envs:
            raise ValueError(f"seed: got {len(seeds)} seeds for {self.num_envs} slots; pass one per slot or an int")
        for s in seeds:
            if s is not None and (not isinstance(s, (int, np.integer)) or isinstance(s, (bool, np.bool_)) or s < 0):
                raise ValueError(f"seed: every per-slot seed must be a non-negative integer or None, got {s!r}")
        return [None if s is None else int(s) for s in seeds]

    def restart(self, ids: np.ndarray, obs: np.ndarray) -> np.ndarray:
        """Slots ``ids`` start a new episode with observations ``obs``; returns every slot's observation."""
        current = self.obs.copy()
        current[ids] = obs
        self.obs = current
        self.terminated[ids] = False
        self.any_terminated = bool(self.terminated.any())
        self.t[ids] = 0
        self.needs_reset = bool((self.t >= self.horizon).any())
        self.reset_once = True
        return current.copy()

    def live_slots(self) -> np.ndarray | None:
        """Before a step: the slots to simulate (None: all), or an error if a slot must be reset first."""
        if self.needs_reset:
            raise RuntimeError(self._reset_message())
        return np.flatnonzero(~self.terminated) if self.any_terminated else None

    def record(self, obs: np.ndarray, reward: np.ndarray, terminated: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """After a step: freeze terminated slots, advance the clocks, report truncation at the horizon."""
        if self.any_terminated:
            frozen = self.terminated
            obs[frozen] = self.frozen_obs[frozen]
            reward[frozen] = 0.0
            terminated |= frozen
        if terminated.any():
            newly = terminated & ~self.terminated
            self.frozen_obs[newly] = obs[newly]
            self.any_terminated = True
        self.terminated = terminated
        self.obs = obs
        self.t += 1
        at_horizon = self.t >= self.horizon
        if at_horizon.any():
            truncated = at_horizon & ~terminated
            self.needs_reset = True
        else:
            truncated = np.zeros(self.num_envs, dtype=bool)
        return obs, reward, terminated.copy(), truncated

    def _reset_message(self) -> str:
        if not self.reset_once:
            return "step() called but the env has not been reset; call reset() first"
        slots = np.flatnonzero(self.t >= self.horizon)
        shown = ", ".join(map(str, slots[:5])) + (", ..." if len(slots) > 5 else "")
        return (
            f"step() called but slot(s) {shown} reached the horizon ({self.horizon} steps); call reset() "
            "(or reset(options={'reset_mask': mask}) for those slots) first"
        )


def check_real_actions(actions: object, shape: tuple[int, ...]) -> np.ndarray:
    """``actions`` as a float64 array of ``shape``; refuses complex, boolean or non-numeric dtypes and NaN/inf."""
    raw = np.asarray(actions)
    if raw.dtype.kind not in "fiu":
        raise ValueError(
            f"actions: expected real numbers (a float array), got dtype {raw.dtype}; "
            "pass the policy's real-valued actions, e.g. np.asarray(actions, dtype=np.float64)"
        )
    a = raw.astype(np.float64, copy=False)
    if a.shape != shape:
        raise ValueError(
            f"actions: expected shape {shape} (one row per slot), got {a.shape}; "
            "for a single slot use gymnasium.make() or pass actions.reshape(1, -1)"
        )
    # one reduction detects NaN/inf cheaply; the exact check runs only when it fires
    if not math.isfinite(np.add.reduce(a, axis=None)) and not np.isfinite(a).all():
        row = int(np.argwhere(~np.isfinite(a))[0][0])
        raise ValueError(f"actions: row {row} is not finite ({a[row].tolist()}); check the policy for NaN/inf")
    return a


class BatchedTaskEnv(VectorEnv):
    """Base class of the fast batched task envs; see the module docstring for the episode rules."""

    metadata: dict[str, Any] = {"autoreset_mode": AutoresetMode.DISABLED, "render_modes": []}
    task_space: TaskSpace

    def __init__(
        self,
        num_envs: int,
        task_space: TaskSpace,
        obs_dim: int,
        action_low: np.ndarray,
        action_high: np.ndarray,
        horizon: int,
    ) -> None:
        self.num_envs = check_count(num_envs, "num_envs")
        self.horizon = check_count(horizon, "horizon")
        self.obs_dim = int(obs_dim)
        self.act_dim = int(np.asarray(action_low).shape[0])
        self.task_space = task_space
        action_low = np.asarray(action_low, dtype=np.float32)
        action_high = np.asarray(action_high, dtype=np.float32)
        self.single_observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float64)
        self.single_action_space = gymnasium.spaces.Box(action_low, action_high, dtype=np.float32)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._act_low = action_low.astype(np.float64)
        self._act_high = action_high.astype(np.float64)
        self._tasks = task_space.default(self.num_envs)
        self._tasks.flags.writeable = False
        self._slot_rngs: list[np.random.Generator] = [np.random.default_rng() for _ in range(self.num_envs)]
        self._book = EpisodeBook(self.num_envs, self.horizon, (obs_dim,))

    # ---- tasks ---------------------------------------------------------------------------------
    def sample_tasks(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Draw ``n`` tasks ``[n, k]`` from this family's training distribution."""
        return self.task_space.sample(n, rng)

    def set_tasks(self, tasks: np.ndarray) -> None:
        """Give slot ``i`` the task ``tasks[i]``; takes effect from the next step's reward."""
        checked = self.task_space.check(tasks, count=self.num_envs)
        checked.flags.writeable = False
        self._tasks = checked

    def get_tasks(self) -> np.ndarray:
        """A copy of the slots' tasks ``[num_envs, k]``."""
        return self._tasks.copy()

    @property
    def slot_tasks(self) -> np.ndarray:
        """The slots' tasks ``[num_envs, k]`` as a read-only array, for reward functions (no copy)."""
        return self._tasks

    # ---- episode loop --------------------------------------------------------------------------
    def reset(
        self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset slots; ``seed=s`` seeds slot ``i`` with ``s + i`` (a list gives one seed per slot).

        ``options={"reset_mask": mask}`` resets only the slots where ``mask`` is True, at any time
        (each slot keeps its own episode clock); the other slots keep their current observation.
        """
        book = self._book
        mask = book.reset_mask(options)
        if seed is not None:
            seeds = book.expand_seeds(seed)
            for i in np.flatnonzero(mask):
                if seeds[i] is not None:
                    self._slot_rngs[i] = np.random.default_rng(seeds[i])
        ids = np.flatnonzero(mask)
        obs = self._reset_slots(ids, [self._slot_rngs[i] for i in ids])
        return book.restart(ids, obs), {}

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        ids = self._book.live_slots()
        a = self._check_actions(actions)
        obs, reward, terminated = self._step_slots(a, ids)
        obs, reward, terminated, truncated = self._book.record(obs, reward, terminated)
        return obs, reward, terminated, truncated, {}

    @property
    def elapsed_steps(self) -> np.ndarray:
        """Steps taken in each slot's current episode ``[num_envs]``."""
        return self._book.t.copy()

    # ---- hooks for task families ---------------------------------------------------------------
    def _reset_slots(self, ids: np.ndarray, rngs: list[np.random.Generator]) -> np.ndarray:
        """Put slots ``ids`` at their initial state; return their observations ``[len(ids), obs]``."""
        raise NotImplementedError

    def _step_slots(
        self, actions: np.ndarray, ids: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Advance the slots ``ids`` (all when None) with the clipped ``actions [num_envs, act]``.

        Returns observations ``[num_envs, obs]``, rewards ``[num_envs]`` and terminations
        ``[num_envs]`` for all slots; rows of slots not in ``ids`` are overwritten by the caller.
        """
        raise NotImplementedError

    # ---- validation ----------------------------------------------------------------------------
    def _check_actions(self, actions: object) -> np.ndarray:
        a = check_real_actions(actions, (self.num_envs, self.act_dim))
        out = np.empty(a.shape)
        np.minimum(a, self._act_high, out=out)
        np.maximum(out, self._act_low, out=out)
        return out


class SingleTaskEnv(gymnasium.Env):
    """One slot of a batched task env as a plain ``gymnasium.Env``: the same code, so the same numbers.

    ``reset(seed=s)`` matches slot ``i`` of a batched env reset with seed ``s - i``.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, vec: BatchedTaskEnv) -> None:
        if vec.num_envs != 1:
            raise ValueError(f"num_envs: a SingleTaskEnv wraps exactly one slot, got {vec.num_envs}")
        self.vec = vec
        self.observation_space = vec.single_observation_space
        self.action_space = vec.single_action_space
        self.task_space = vec.task_space
        self.horizon = vec.horizon

    def sample_tasks(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.vec.sample_tasks(n, rng)

    def set_task(self, task: np.ndarray) -> None:
        """Set this env's task, a vector ``[k]`` (one row of ``sample_tasks``)."""
        arr = np.asarray(task, dtype=np.float64)
        if arr.ndim != 1:
            raise ValueError(
                f"task: expected a vector of shape ({self.task_space.dim},), got shape {arr.shape}; "
                "pass one row of sample_tasks(), e.g. tasks[0]"
            )
        self.vec.task_space.check(arr[None], field="task")
        self.vec.set_tasks(arr[None])

    def get_task(self) -> np.ndarray:
        return self.vec.get_tasks()[0]

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        if seed is not None and (not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0):
            raise ValueError(f"seed: expected a non-negative integer, got {type(seed).__name__} {seed!r}")
        super().reset(seed=None if seed is None else int(seed))
        self.vec._slot_rngs[0] = self.np_random
        obs, info = self.vec.reset(options=options)
        return obs[0], info

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        raw = np.asarray(action)
        if raw.shape != self.action_space.shape:
            raise ValueError(f"action: expected shape {self.action_space.shape}, got {raw.shape}")
        obs, reward, terminated, truncated, info = self.vec.step(raw[None])
        return obs[0], float(reward[0]), bool(terminated[0]), bool(truncated[0]), info
