"""Roll out T task-batched policies on a batched task env: T tasks x E episodes in one env of T*E slots.

Slot ``i * E + e`` holds episode ``e`` of task ``i``.  Each env step is one policy call for all slots
(task-batched parameters run as batched matrix products) and one env call.

Every number a slot sees depends on its global position only, never on how slots are grouped, so that a
sampler that splits the tasks over several processes or machines (:mod:`metarl.ray_sampler`) returns the
same episodes bit for bit:

* env seeds: slot ``j`` is reset with ``seed + j`` (a block of slots starting at ``j0`` resets with
  ``seed + j0``);
* action noise: one 63-bit key per call is drawn from the caller's ``torch.Generator``; task ``i`` gets
  its own CPU generator seeded with ``mix(key, i)`` and draws its whole ``[H, E, act_dim]`` noise block in
  one call (T draws per call, none per step);
* the policy runs with task-batched parameters (shared ones are expanded to T views), one batched matrix
  product per task, so a subset of tasks computes the same actions as all of them;
* steps after a slot's episode ended (mask 0) hold zeros, whatever the loop did after the end.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Callable, Iterator, Protocol

import numpy as np
import torch

from metarl.episodes import EpisodeBatch
from metarl.environment import env_name
from metarl.policy import GaussianMLPPolicy, Params, expand_params

if TYPE_CHECKING:
    from metarl.config import TrainConfig


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
    """What the sampler needs of an env: ``metarl.envs.BatchedTaskEnv`` and ``metarl.envs.TaskSyncVectorEnv`` both fit."""

    num_envs: int
    horizon: int
    single_observation_space: Any
    single_action_space: Any

    def set_tasks(self, tasks: np.ndarray) -> None: ...
    def sample_tasks(self, n: int, rng: np.random.Generator) -> np.ndarray: ...
    def reset(self, *, seed: Any = None, options: Any = None) -> tuple[np.ndarray, dict]: ...
    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]: ...


_MASK64 = (1 << 64) - 1


def task_noise_seeds(generator: torch.Generator, num_tasks: int) -> np.ndarray:
    """One noise seed per task ``[T]`` (int64), from one draw of ``generator``.

    ``mix(key, i)`` is the splitmix64 finaliser of ``key + (i + 1) * golden``: distinct, well-spread seeds
    for the tasks of a call, computed without a Python loop.
    """
    key = int(torch.randint(0, 2**63 - 1, (1,), generator=generator, dtype=torch.int64))
    with np.errstate(over="ignore"):
        z = np.uint64(key) + (np.arange(1, num_tasks + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15))
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(1)).astype(np.int64)  # 63 bits: a valid torch seed


def task_noise(noise_seeds: np.ndarray, episodes_per_task: int, horizon: int, act_dim: int,
               dtype: torch.dtype) -> torch.Tensor:
    """Standard-normal action noise ``[H, t, E, act_dim]`` of the tasks whose seeds are ``noise_seeds [t]``."""
    blocks = []
    for s in noise_seeds.tolist():
        g = torch.Generator().manual_seed(int(s))
        blocks.append(torch.randn(horizon, episodes_per_task, act_dim, generator=g, dtype=dtype))
    return torch.stack(blocks, dim=1)


def graphs_apply(device: torch.device, current_device: Callable[[], int] = torch.cuda.current_device) -> bool:
    """Whether :class:`GraphedSample` replays the policy calls on ``device``: a CUDA device that is the
    process's current one (``cuda`` or ``cuda:N`` with N current; ``current_device`` is asked only for a
    CUDA device).  On another GPU the calls stay eager: torch captures graphs on the current device's
    streams, and that case has not been run on a machine with several GPUs."""
    if device.type != "cuda":
        return False
    return device.index is None or device.index == current_device()


class GraphedSample:
    """``policy.sample(params, obs, noise)`` captured once in a CUDA graph and replayed at every step.

    A sampling step's policy call is a handful of tiny kernels; replayed from a graph they took less than
    half the time of the same calls launched one by one from Python (docs/training.md, "GPU learner").  The
    kernels are the ones the call launches eagerly, on the same shapes, so the
    actions are the same (``tests/metarl/test_cuda.py`` checks it bit for bit).  ``params`` must stay
    unchanged while the graph is used: the graph reads them where they lie (a reference is kept).  A graph
    is captured per sampling pass, and torch's capture returns the cached GPU memory to the driver
    (``torch.cuda.graph`` empties the cache), so the learner allocates afresh after each pass; the measured
    iteration times include that.
    """

    def __init__(self, policy: GaussianMLPPolicy, params: Params, obs_shape: tuple[int, ...],
                 noise_example: torch.Tensor) -> None:
        self.params = params
        self.obs = torch.zeros(obs_shape, dtype=noise_example.dtype, device=noise_example.device)
        self.noise = torch.zeros_like(noise_example)
        side = torch.cuda.Stream(device=noise_example.device)
        side.wait_stream(torch.cuda.current_stream())
        with torch.no_grad():
            with torch.cuda.stream(side):  # the first calls set up cuBLAS's handle and workspace outside the capture
                for _ in range(2):
                    policy.sample(params, self.obs, self.noise)
            torch.cuda.current_stream().wait_stream(side)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.out = policy.sample(params, self.obs, self.noise)

    def __call__(self, obs: torch.Tensor, noise_t: torch.Tensor) -> torch.Tensor:
        self.obs.copy_(obs)
        self.noise.copy_(noise_t)
        self.graph.replay()
        return self.out


def rollout(
    env: TaskVectorEnv,
    policy: GaussianMLPPolicy,
    params: Params,
    tasks: np.ndarray,
    episodes_per_task: int,
    env_seed: int,
    noise_seeds: np.ndarray,
    dtype: torch.dtype,
    device: torch.device | str = "cpu",
    cuda_graph: bool = True,
) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """E episodes of each of the ``t`` tasks ``tasks [t, k]`` on ``env`` (``t * E`` slots).

    ``params`` are shared or task-batched ``[t, ...]``; ``env_seed`` seeds the env's first slot;
    ``noise_seeds [t]`` come from :func:`task_noise_seeds`.  Returns CPU tensors ``obs, actions, rewards,
    mask`` shaped ``[t, E, H, ...]`` (rewards and mask in ``dtype``) and the env/policy timings.
    On a CUDA device the per-step policy call is replayed from a CUDA graph (:class:`GraphedSample`) unless
    ``cuda_graph`` is false; the actions are the same either way.
    """
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"rollout: dtype {dtype} is not supported; use torch.float32 or torch.float64 (the "
                         "config's dtype: float32 | float64)")
    t_count, E, H = tasks.shape[0], episodes_per_task, env.horizon
    n = t_count * E
    obs_dim = env.single_observation_space.shape[0]
    act_dim = env.single_action_space.shape[0]
    device = torch.device(device)
    env.set_tasks(np.repeat(tasks, E, axis=0))
    reset = env.reset(seed=int(env_seed))
    if not isinstance(reset, tuple) or len(reset) != 2:
        raise _env_error(env, f"reset() returned {_count_items(reset)}, expected 2 (observations, info)")
    obs_np = _checked(env, "reset()", "observations", reset[0], (n, obs_dim), -1)
    obs_buf = torch.zeros(H, n, obs_dim, dtype=dtype)
    act_buf = torch.zeros(H, n, act_dim, dtype=dtype)
    # per-step writes go through numpy views of the buffers (or numpy buffers converted once at the end):
    # a numpy row assignment costs about a microsecond, a torch one several, and the loop makes 4 per step
    obs_np_buf = obs_buf.numpy()
    obs_steps = [obs_buf[t].view(t_count, E, obs_dim) for t in range(H)]
    rew_np = np.zeros((H, n), dtype=np.float64)
    alive_np = np.zeros((H, n), dtype=bool)
    alive = np.ones(n, dtype=bool)
    env_time = policy_time = 0.0
    t0 = time.perf_counter()
    noise = task_noise(noise_seeds, E, H, act_dim, dtype).to(device)
    params = {k: v.detach().to(device) for k, v in params.items()}
    if params["w0"].dim() == 2:  # shared: one batched product per task, as for task-batched parameters
        params = expand_params(params, t_count)
    act_steps = [act_buf[t].view(t_count, E, act_dim) for t in range(H)]
    act_np_buf = act_buf.numpy()
    if cuda_graph and graphs_apply(device):
        graphed = GraphedSample(policy, params, (t_count, E, obs_dim), noise[0])

        def act(t: int, out: torch.Tensor) -> torch.Tensor:
            return out.copy_(graphed(obs_steps[t], noise[t]))
    else:
        # policy.sample's actions, with the per-call set-up taken out; written straight into the action buffer
        step = policy.sampling_step(params, noise)
        if device.type == "cpu":
            def act(t: int, out: torch.Tensor) -> torch.Tensor:
                return step(t, obs_steps[t], out)
        else:
            on_device = torch.empty(t_count, E, act_dim, dtype=dtype, device=device)

            def act(t: int, out: torch.Tensor) -> torch.Tensor:
                return out.copy_(step(t, obs_steps[t].to(device), on_device))
    policy_time += time.perf_counter() - t0
    with torch.no_grad():
        for t in range(H):
            t0 = time.perf_counter()
            with np.errstate(over="ignore", invalid="ignore"):  # beyond float32's range: inf; NaN: NaN, as torch casts
                obs_np_buf[t] = obs_np  # cast to the run's dtype as torch's copy casts (round to nearest)
            act(t, act_steps[t])
            t1 = time.perf_counter()
            result = env.step(act_np_buf[t].astype(np.float64))
            if not isinstance(result, tuple) or len(result) != 5:
                raise _env_error(env, f"step() returned {_count_items(result)}, expected 5 (observations, rewards, "
                                      "terminated, truncated, info)")
            obs_np = _checked(env, "step()", "observations", result[0], (n, obs_dim), t)
            reward = _checked(env, "step()", "rewards", result[1], (n,), t)
            terminated = _checked(env, "step()", "terminated flags", result[2], (n,), t, finite=False)
            t2 = time.perf_counter()  # the checks of the env's output count as the env's time, not the policy's
            rew_np[t] = reward
            alive_np[t] = alive
            alive &= ~np.asarray(terminated, dtype=bool)
            policy_time += t1 - t0 + time.perf_counter() - t2
            env_time += t2 - t1
            if not alive.any():
                break

    def shape(x: torch.Tensor) -> torch.Tensor:
        # contiguous: the layout decides the order of later float reductions, so it must not depend on
        # whether the batch came from this process or through Ray's serialisation
        return x.transpose(0, 1).reshape(t_count, E, H, *x.shape[2:]).contiguous()

    rew_buf = torch.from_numpy(rew_np)
    mask = shape(torch.from_numpy(alive_np).to(dtype))
    happened = mask.bool()
    out = {
        # steps after an episode's end hold zeros, however long this block's loop ran past them
        "obs": torch.where(happened.unsqueeze(-1), shape(obs_buf), 0.0),
        "actions": torch.where(happened.unsqueeze(-1), shape(act_buf), 0.0),
        "rewards": torch.where(happened, shape(rew_buf), 0.0).to(dtype),
        "mask": mask,
    }
    return out, {"env": env_time, "policy": policy_time}


def _env_error(env: Any, what: str, non_finite: bool = False) -> Exception:
    """A task env that broke its contract: an :class:`~metarl.errors.EnvError` naming the env (a plug-in's code to fix)."""
    from metarl.errors import EnvError

    return EnvError(env_name(env), what, "fix the env (see docs/plugins.md for what a task env returns)", non_finite)


def _count_items(result: Any) -> str:
    return f"{len(result)} items" if isinstance(result, tuple) else f"a {type(result).__name__}"


def _checked(env: Any, call: str, what: str, value: Any, shape: tuple[int, ...], t: int, finite: bool = True) -> np.ndarray:
    """``value`` as an array of ``shape`` (finite numbers unless ``finite`` is false), or :func:`_env_error`."""
    at = "" if t < 0 else f" at step {t}"
    if np.iscomplexobj(value):
        raise _env_error(env, f"{call} returned {what}{at} that are complex numbers; return real ones")
    try:
        array = np.asarray(value, dtype=np.float64 if finite else None)
    except (TypeError, ValueError):
        raise _env_error(env, f"{call} returned {what}{at} that are not numbers ({type(value).__name__})") from None
    if array.shape != shape:
        raise _env_error(env, f"{call} returned {what}{at} of shape {array.shape}, expected {shape} (one row per slot)")
    if finite and not np.isfinite(array).all():
        bad = np.argwhere(~np.isfinite(array))[0].tolist()
        raise _env_error(env, f"{call} returned {what}{at} that are not finite (NaN or inf; first at index {bad})",
                         non_finite=True)
    return array


class Sampler:
    """Samples :class:`EpisodeBatch` es ``[T, E, H]`` with given (shared or task-batched) parameters.

    Action noise comes from CPU generators seeded from the caller's ``torch.Generator``, so the same
    seed gives the same episodes on CPU and CUDA learners, and in any split across Ray workers.  On a CUDA
    device the per-step policy calls replay a CUDA graph (:class:`GraphedSample`); ``cuda_graph=False``
    launches them one by one (the benchmark's reference).
    """

    def __init__(
        self,
        env: TaskVectorEnv,
        policy: GaussianMLPPolicy,
        num_tasks: int,
        episodes_per_task: int,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        cuda_graph: bool = True,
    ) -> None:
        if env.num_envs != num_tasks * episodes_per_task:
            raise ValueError(
                f"env: has {env.num_envs} slots but num_tasks x episodes_per_task = "
                f"{num_tasks} x {episodes_per_task} = {num_tasks * episodes_per_task}; make the env with that many"
            )
        self.env, self.policy = env, policy
        self.num_tasks, self.episodes_per_task = num_tasks, episodes_per_task
        self.device, self.dtype, self.cuda_graph = torch.device(device), dtype, cuda_graph
        self.horizon = env.horizon
        self.obs_dim = env.single_observation_space.shape[0]
        self.act_dim = env.single_action_space.shape[0]

    def sample(self, params: Params, tasks: np.ndarray, seed: int, generator: torch.Generator) -> EpisodeBatch:
        """Run E episodes of each task in ``tasks [T, k]`` with ``params``; env slots are seeded from ``seed``."""
        T = self.num_tasks
        if tasks.shape[0] != T:
            raise ValueError(f"tasks: expected {T} tasks (one per policy), got {tasks.shape[0]}")
        noise_seeds = task_noise_seeds(generator, T)
        with torch_threads(SAMPLING_TORCH_THREADS):  # the per-step policy calls are tiny: one thread each
            out, timings = rollout(self.env, self.policy, params, tasks, self.episodes_per_task, int(seed), noise_seeds,
                                   self.dtype, self.device, self.cuda_graph)
        return EpisodeBatch(
            obs=out["obs"].to(self.device),
            actions=out["actions"].to(self.device),
            rewards=out["rewards"].to(self.device),
            mask=out["mask"].to(self.device),
            tasks=np.asarray(tasks, dtype=np.float64),
            timings=timings,
        )

    def close(self) -> None:
        """Nothing to release (the env belongs to the caller); the Ray sampler stops its workers here."""


def sampler_env_slots(cfg: "TrainConfig") -> int:
    """Slots of the env the learner builds: all ``T * E`` for local sampling, 1 for Ray.

    With ``sampler.backend: ray`` the workers own the envs; the learner's 1-slot env only gives the
    observation and action sizes and ``sample_tasks`` (it is never stepped).
    """
    a = cfg.algo
    return a.num_tasks * a.episodes_per_task if cfg.sampler.backend == "local" else 1


def make_sampler(cfg: "TrainConfig", env: TaskVectorEnv | None, policy: GaussianMLPPolicy,
                 device: torch.device | str, dtype: torch.dtype) -> Any:
    """The sampler ``cfg.sampler`` asks for: :class:`Sampler` on ``env``, or a Ray sampler (``env`` unused)."""
    a = cfg.algo
    if cfg.sampler.backend == "local":
        if env is None:
            raise ValueError("env: the local sampler needs the run's env of num_tasks x episodes_per_task slots")
        return Sampler(env, policy, a.num_tasks, a.episodes_per_task, device, dtype)
    from metarl.ray_sampler import RaySampler  # imports ray, or says how to install it

    return RaySampler(cfg, policy, device, dtype)
