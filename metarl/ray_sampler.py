"""Sampling on Ray actors, on one machine or many, with the same episodes as the local sampler.

``sampler: {backend: ray, workers: W}`` splits the T tasks of a call into W contiguous blocks (sizes
differ by at most one).  Worker ``w`` is a Ray actor that owns a batched task env of its block's slots,
built by :func:`metarl.environment.make_env` from the run's ``env`` config (plug-in modules of
``env.imports`` are imported on the worker).  Each call ships the worker its block's parameters (or the
shared parameters once, through the object store), tasks, first-slot env seed and per-task noise seeds,
and the worker runs :func:`metarl.sampler.rollout` on them: the same function the local sampler runs,
with the same per-slot seeds and per-task noise streams, so the episodes are the same bit for bit.

Ray is joined or started as Ray users expect: ``sampler.address`` or ``$RAY_ADDRESS`` joins that cluster
(left running at the end); otherwise a local Ray is started with ``sampler.num_cpus`` CPUs and shut
down with the run (also on SIGINT/SIGTERM, through :meth:`RaySampler.close`).  A process that has
already called ``ray.init`` keeps its connection; the sampler only adds and removes its actors.

Faults: a worker that dies (killed, out of memory, its machine lost) is replaced and its block sampled
again, which gives the result the call would have had; after ``sampler.max_failures`` deaths in a run
:class:`SamplerError` stops it.  An exception raised on a worker reaches the caller as that exception,
with the worker and its traceback in a note.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
import warnings
from typing import Any

import numpy as np
import torch

import metarl
from metarl.config import ConfigError, EnvConfig, TrainConfig
from metarl.environment import env_dims, make_env
from metarl.errors import RunError
from metarl.episodes import EpisodeBatch
from metarl.policy import GaussianMLPPolicy, Params
from metarl.sampler import rollout, task_noise_seeds

try:
    import ray
    from ray.exceptions import RayActorError, RayTaskError
except ImportError as _exc:  # the [ray] extra is not installed
    raise ConfigError(
        f"config field 'sampler.backend': 'ray' needs Ray, which is not installed here ({_exc}); install it with "
        'pip install -e ".[ray]" (or pip install "metarl[ray]"), or set sampler.backend=local'
    ) from _exc

DTYPE_NAMES = {torch.float32: "float32", torch.float64: "float64"}


class SamplerError(RunError):
    """The Ray sampler cannot go on (too many workers died); the run's last checkpoint is intact."""


class SamplerWorker:
    """A Ray actor: the batched task env of one block of tasks, and the rollout loop.

    The constructor never raises: an error (a plug-in that does not import on this machine, bad env
    kwargs) is kept and raised by :meth:`info`, so that it reaches the learner as a task error with its
    own type and text instead of an actor-death message.
    """

    def __init__(self, env_cfg: dict, num_tasks: int, episodes_per_task: int, hidden_sizes: list[int],
                 dtype: str, threads: int) -> None:
        self._error: BaseException | None = None
        self.episodes_per_task = episodes_per_task
        self.dtype = getattr(torch, dtype)
        try:
            # the env steps with `threads` threads; torch's policy call per step is small, and intra-op
            # threads of its own only contend with the env's (on a loaded machine, badly)
            torch.set_num_threads(1)
            cfg = EnvConfig(**env_cfg)
            if cfg.num_threads == 0:  # "every CPU" of a worker is the CPUs it reserved
                cfg.num_threads = threads
            self.env = make_env(cfg, num_tasks * episodes_per_task)
            obs_dim, act_dim = env_dims(self.env)
            self.policy = GaussianMLPPolicy(obs_dim, act_dim, hidden_sizes)
        except BaseException as exc:  # noqa: B036 - handed to the learner by info()
            self._error = exc

    def info(self) -> dict[str, Any]:
        """Sizes of this worker's env and where it runs; raises the constructor's error, if any."""
        if self._error is not None:
            raise self._error
        obs_dim, act_dim = env_dims(self.env)
        return {"obs_dim": obs_dim, "act_dim": act_dim, "horizon": int(self.env.horizon), "pid": os.getpid(),
                "node": ray.util.get_node_ip_address(), "metarl": metarl.__version__}

    def sample(self, params: dict[str, np.ndarray], tasks: np.ndarray, env_seed: int,
               noise_seeds: np.ndarray) -> dict[str, Any]:
        """Episodes of this worker's tasks: numpy arrays ``[t, E, H, ...]`` and the timings."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # object-store arrays are read-only; nothing writes them
            theta = {k: torch.from_numpy(v) for k, v in params.items()}
        out, timings = rollout(self.env, self.policy, theta, tasks, self.episodes_per_task, env_seed, noise_seeds,
                               self.dtype)
        result: dict[str, Any] = {k: v.numpy() for k, v in out.items()}
        result["timings"] = timings
        return result


def _death_reason(exc: BaseException) -> str:
    """The line of a Ray actor-death error that says why it died."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    because = [line for line in lines if "because" in line]
    return (because[-1] if because else lines[0] if lines else type(exc).__name__)[:300]


class RaySampler:
    """Samples :class:`EpisodeBatch` es like :class:`metarl.sampler.Sampler`, on ``sampler.workers`` Ray actors."""

    def __init__(self, cfg: TrainConfig, policy: GaussianMLPPolicy, device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32) -> None:
        s, a = cfg.sampler, cfg.algo
        self.cfg, self.policy = cfg, policy
        self.num_tasks, self.episodes_per_task = a.num_tasks, a.episodes_per_task
        self.device, self.dtype = torch.device(device), dtype
        self.max_failures = s.max_failures
        self.failures = 0
        self.bytes_sent = self.bytes_received = 0  # totals over the run, for the benchmark
        self.workers: list[Any] = []
        self.infos: list[dict[str, Any]] = []
        self.blocks = [(int(b[0]), int(b[-1]) + 1) for b in np.array_split(np.arange(a.num_tasks), s.workers)]
        self._threads = max(1, int(s.cpus_per_worker))
        self._shutdown_on_close = False
        self.started_ray = False
        self._connect(s)
        try:
            self._actor_class = ray.remote(num_cpus=s.cpus_per_worker, max_restarts=0)(SamplerWorker)
            self.workers = [self._new_actor(i) for i in range(len(self.blocks))]
            self.infos = [self._ready(i) for i in range(len(self.blocks))]
            self.horizon = self.infos[0]["horizon"]
        except BaseException:
            self.close()
            raise

    # ---- Ray ---------------------------------------------------------------------------------------
    def _connect(self, s: Any) -> None:
        if ray.is_initialized():  # the caller's own Ray session: use it, leave it as it is
            return
        address = s.address or os.environ.get("RAY_ADDRESS", "")
        if address:
            try:
                ray.init(address=address, logging_level=logging.WARNING)
            except (ConnectionError, ValueError, RuntimeError) as exc:
                where = "sampler.address" if s.address else "$RAY_ADDRESS"
                raise ConfigError(
                    f"config field 'sampler.address': cannot join the Ray cluster at {address!r} (from {where}): {exc}; "
                    "start it with `ray start --head` on the head machine (if it uses token authentication, set "
                    "RAY_AUTH_MODE=token here and give this machine its token: ~/.ray/auth_token or RAY_AUTH_TOKEN), "
                    "or leave sampler.address empty and unset RAY_ADDRESS to start a local Ray"
                ) from exc
            self._shutdown_on_close = True  # disconnects; the cluster keeps running
            print(f"metarl: joined the Ray cluster at {address} with {len(self.blocks)} sampler workers; "
                  "the run leaves it running", file=sys.stderr)
            return
        num_cpus = s.num_cpus or max(1, int(np.ceil(len(self.blocks) * s.cpus_per_worker)))
        ctx = ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, logging_level=logging.WARNING)
        self._shutdown_on_close = self.started_ray = True
        print(f"metarl: started a local Ray with {num_cpus} CPUs for {len(self.blocks)} sampler workers "
              f"(session {getattr(ctx, 'address_info', {}).get('session_dir', '?')}); it stops with the run", file=sys.stderr)

    def close(self) -> None:
        """Stop the workers; shut down a Ray this run started, disconnect from a cluster it joined."""
        for w in self.workers:
            try:
                ray.kill(w, no_restart=True)
            except Exception:  # noqa: BLE001 - already gone
                pass
        self.workers = []
        if self._shutdown_on_close and ray.is_initialized():
            ray.shutdown()
        self._shutdown_on_close = False

    # ---- workers -----------------------------------------------------------------------------------
    def _where(self, i: int) -> str:
        a, b = self.blocks[i]
        info = self.infos[i] if i < len(self.infos) else {}
        at = f", pid {info['pid']} on {info['node']}" if info else ""
        return f"Ray sampler worker {i} (tasks {a}-{b - 1}{at})"

    def _new_actor(self, i: int) -> Any:
        a, b = self.blocks[i]
        env = dict(vars(self.cfg.env))
        return self._actor_class.remote(env, b - a, self.episodes_per_task, list(self.cfg.policy.hidden_sizes),
                                        DTYPE_NAMES[self.dtype], self._threads)

    def _ready(self, i: int) -> dict[str, Any]:
        """Wait for worker ``i`` to build its env; replace it if it dies meanwhile."""
        while True:
            try:
                info = ray.get(self.workers[i].info.remote())
                break
            except RayActorError as exc:
                self._replace(i, exc)
            except RayTaskError as exc:
                raise self._original(i, exc) from None
        if info["metarl"] != metarl.__version__:
            raise ConfigError(
                f"config field 'sampler': {self._where(i)} runs metarl {info['metarl']}, the learner metarl "
                f"{metarl.__version__}; install the same metarl (and plug-in modules) on every machine"
            )
        want = (self.policy.obs_dim, self.policy.act_dim)
        if (info["obs_dim"], info["act_dim"]) != want:
            raise ConfigError(
                f"config field 'env': {self._where(i)} made an env with (obs_dim, act_dim) = "
                f"{(info['obs_dim'], info['act_dim'])}, the learner's has {want}; install the same metarl and "
                "plug-in modules on every machine"
            )
        if i < len(self.infos):
            self.infos[i] = info
        return info

    def _replace(self, i: int, exc: BaseException) -> None:
        """Count a worker death, then start a new worker for its block (or stop the run)."""
        self.failures += 1
        reason = _death_reason(exc)
        if self.failures > self.max_failures:
            raise SamplerError(
                f"{self._where(i)} died ({reason}); that is {self.failures} worker failures in this run, more than "
                f"sampler.max_failures = {self.max_failures}. The run stops here; its last checkpoint is intact "
                "(continue it with --resume). Check the worker machines (`ray status`, memory, logs under "
                "/tmp/ray/session_latest/logs) or raise sampler.max_failures"
            ) from exc
        print(f"metarl: {self._where(i)} died ({reason}); starting a new worker and sampling its tasks again "
              f"(failure {self.failures} of at most {self.max_failures})", file=sys.stderr)
        try:
            ray.kill(self.workers[i], no_restart=True)
        except Exception:  # noqa: BLE001 - already gone
            pass
        self.workers[i] = self._new_actor(i)

    def _original(self, i: int, exc: RayTaskError) -> BaseException:
        """The exception a worker raised, as itself, with where it came from in a note."""
        cause = getattr(exc, "cause", None)
        remote_tb = re.sub(r"\x1b\[[0-9;]*m", "", getattr(exc, "traceback_str", "") or str(exc))  # no colours
        if isinstance(cause, BaseException):
            cause.add_note(f"raised by {self._where(i)}; worker traceback:\n{remote_tb}")
            return cause
        return SamplerError(f"{self._where(i)} failed:\n{remote_tb}")

    # ---- sampling ----------------------------------------------------------------------------------
    def sample(self, params: Params, tasks: np.ndarray, seed: int, generator: torch.Generator) -> EpisodeBatch:
        """Run E episodes of each task in ``tasks [T, k]``, split over the workers; see the module docstring."""
        T, E = self.num_tasks, self.episodes_per_task
        if tasks.shape[0] != T:
            raise ValueError(f"tasks: expected {T} tasks (one per policy), got {tasks.shape[0]}")
        t_start = time.perf_counter()
        noise_seeds = task_noise_seeds(generator, T)
        arrays = {k: v.detach().cpu().numpy() for k, v in params.items()}
        shared = params["w0"].dim() == 2
        param_bytes = sum(v.nbytes for v in arrays.values())
        shared_ref = ray.put(arrays) if shared else None
        tasks = np.asarray(tasks, dtype=np.float64)
        jobs = []
        for a, b in self.blocks:
            block = shared_ref if shared else {k: v[a:b] for k, v in arrays.items()}
            jobs.append((block, tasks[a:b], int(seed) + a * E, noise_seeds[a:b]))
            self.bytes_sent += (param_bytes if shared else param_bytes * (b - a) // T) + tasks[a:b].nbytes + 8 * (b - a + 1)
        results = self._run(jobs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # read-only object-store arrays, copied by torch.cat
            out = {k: torch.cat([torch.from_numpy(r[k]) for r in results]).to(self.device)
                   for k in ("obs", "actions", "rewards", "mask")}
        self.bytes_received += sum(r[k].nbytes for r in results for k in ("obs", "actions", "rewards", "mask"))
        wall = time.perf_counter() - t_start
        env_time = max(r["timings"]["env"] for r in results)
        worker_time = max(r["timings"]["env"] + r["timings"]["policy"] for r in results)
        # env + policy add up to the call's wall time, as for the local sampler; "workers": the slowest
        # worker's own rollout time (the rest of the wall time is Ray's and the learner's overhead)
        return EpisodeBatch(obs=out["obs"], actions=out["actions"], rewards=out["rewards"], mask=out["mask"],
                            tasks=tasks, timings={"env": env_time, "policy": wall - env_time, "workers": worker_time})

    def _run(self, jobs: list[tuple]) -> list[dict[str, Any]]:
        """Each worker's job; a worker that dies is replaced and its job run again."""
        pending = {self.workers[i].sample.remote(*job): i for i, job in enumerate(jobs)}
        results: list[dict[str, Any]] = [{} for _ in jobs]
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            i = pending.pop(done[0])
            try:
                results[i] = ray.get(done[0])
            except RayActorError as exc:
                self._replace(i, exc)
                self._ready(i)
                pending[self.workers[i].sample.remote(*jobs[i])] = i
            except RayTaskError as exc:
                raise self._original(i, exc) from None
        return results
