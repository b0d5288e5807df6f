"""Roll out T task-batched policies on a batched task env: T tasks x E episodes in one env of T*E slots.

Slot ``i * E + e`` holds episode ``e`` of task ``i``.  Each env step is one policy call for all slots
(task-batched parameters run as batched matrix products) and one env call.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any, Iterator, Protocol

import numpy as np
import torch

from metarl.episodes import EpisodeBatch
from metarl.policy import GaussianMLPPolicy, Params


# Torch threads for the policy calls while sampling.  They are tiny matrix products ([T, E, obs] x [obs, 100]),
# far below what pays for a second thread, and they alternate with the env's own physics threads; with more
# than one torch thread, every call is an OpenMP parallel region that has to wait for all its threads, which
# on cores shared with other processes is where time is lost (measurements: docs/training.md, "Threads,
# phase by phase").  The learner keeps the process's setting (torch's default: one thread per physical core).
SAMPLING_TORCH_THREADS = 1


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads, then restore the previous setting."""
    before = torch.get_num_threads()
    if n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if n != before:
            torch.set_num_threads(before)


class TaskVectorEnv(Protocol):
    """What the sampler needs of an env: ``envs.BatchedTaskEnv`` and ``envs.TaskSyncVectorEnv`` both fit."""

    num_envs: int
    horizon: int
    single_observation_space: Any
    single_action_space: Any

    def set_tasks(self, tasks: np.ndarray) -> None: ...
    def sample_tasks(self, n: int, rng: np.random.Generator) -> np.ndarray: ...
    def reset(self, *, seed: Any = None, options: Any = None) -> tuple[np.ndarray, dict]: ...
    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]: ...


class Sampler:
    """Samples :class:`EpisodeBatch` es ``[T, E, H]`` with given (shared or task-batched) parameters.

    Action noise comes from a CPU ``torch.Generator`` the caller owns, so the same seed gives the same
    episodes on CPU and CUDA learners.
    """

    def __init__(
        self,
        env: TaskVectorEnv,
        policy: GaussianMLPPolicy,
        num_tasks: int,
        episodes_per_task: int,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if env.num_envs != num_tasks * episodes_per_task:
            raise ValueError(
                f"env: has {env.num_envs} slots but num_tasks x episodes_per_task = "
                f"{num_tasks} x {episodes_per_task} = {num_tasks * episodes_per_task}; make the env with that many"
            )
        self.env, self.policy = env, policy
        self.num_tasks, self.episodes_per_task = num_tasks, episodes_per_task
        self.device, self.dtype = torch.device(device), dtype
        self.horizon = env.horizon
        self.obs_dim = env.single_observation_space.shape[0]
        self.act_dim = env.single_action_space.shape[0]

    def sample(self, params: Params, tasks: np.ndarray, seed: int, generator: torch.Generator) -> EpisodeBatch:
        """Run E episodes of each task in ``tasks [T, k]`` with ``params``; env slots are seeded from ``seed``."""
        T, E, H = self.num_tasks, self.episodes_per_task, self.horizon
        n = T * E
        if tasks.shape[0] != T:
            raise ValueError(f"tasks: expected {T} tasks (one per policy), got {tasks.shape[0]}")
        self.env.set_tasks(np.repeat(tasks, E, axis=0))
        obs_np, _ = self.env.reset(seed=int(seed))
        obs_buf = torch.zeros(H, n, self.obs_dim, dtype=self.dtype)
        act_buf = torch.zeros(H, n, self.act_dim, dtype=self.dtype)
        rew_buf = torch.zeros(H, n, dtype=torch.float64)
        mask_buf = torch.zeros(H, n, dtype=self.dtype)
        alive = np.ones(n, dtype=bool)
        env_time = policy_time = 0.0
        params = {k: v.detach() for k, v in params.items()}
        with torch.no_grad(), torch_threads(SAMPLING_TORCH_THREADS):
            for t in range(H):
                t0 = time.perf_counter()
                obs_buf[t] = torch.from_numpy(obs_np)
                noise = torch.randn(T, E, self.act_dim, generator=generator, dtype=self.dtype)
                obs_t = obs_buf[t].view(T, E, self.obs_dim).to(self.device)
                actions = self.policy.sample(params, obs_t, noise.to(self.device)).reshape(n, self.act_dim).cpu()
                act_buf[t] = actions
                t1 = time.perf_counter()
                obs_np, reward, terminated, _, _ = self.env.step(actions.numpy().astype(np.float64))
                t2 = time.perf_counter()
                rew_buf[t] = torch.from_numpy(np.asarray(reward, dtype=np.float64))
                mask_buf[t] = torch.from_numpy(alive.astype(np.float32))
                alive &= ~np.asarray(terminated, dtype=bool)
                policy_time += t1 - t0 + time.perf_counter() - t2
                env_time += t2 - t1
                if not alive.any():
                    break

        def shape(x: torch.Tensor) -> torch.Tensor:
            return x.transpose(0, 1).reshape(T, E, H, *x.shape[2:]).to(self.device)

        return EpisodeBatch(
            obs=shape(obs_buf),
            actions=shape(act_buf),
            rewards=shape(rew_buf).to(self.dtype),
            mask=shape(mask_buf),
            tasks=np.asarray(tasks, dtype=np.float64),
            timings={"env": env_time, "policy": policy_time},
        )
