"""Sampling time of one meta-iteration, local against Ray with 1 and 2 workers, on this machine.

One meta-iteration samples twice (pre-adaptation episodes with the shared parameters, post-adaptation
episodes with T task-batched parameters); this script times those two calls at the paper's size (40 tasks
x 20 episodes x 200 steps = 800 slots) for each env and sampler, in the same run and interleaved (local,
Ray 1, Ray 2, local, ...) so that load from other processes hits all of them alike.  It reports:

* seconds per iteration's sampling, env steps per second, and the throughput as a ratio to the faster of
  two local samplers: torch's default threads (2 here) and 1 torch thread, the env stepped by 2 threads
  in both (``env.num_threads: 0`` on 2 cores);
* the bytes moved per iteration (parameters and tasks to the workers, episodes back);
* Ray's overhead: the call's wall time minus the slowest worker's own rollout time;
* a projection for W workers, stated as such (see :func:`projection`).

    python experiments/bench_ray.py                               # AntVel and HalfCheetahVel, 3 rounds
    python experiments/bench_ray.py --envs HalfCheetahVel --rounds 1 --tasks 10

Every sampler returns the same episodes (checked on the warm-up round).  Ray is started here with
6 logical CPUs so that all Ray samplers' actors exist at once; only one sampler runs at a time, and each
actor's env steps with ``cpus_per_worker`` threads (2 for one worker, 1 each for two workers) and its
torch with 1 thread.  The
load average of the machine is printed with the results: on a shared machine it matters.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

import numpy as np
import torch

from metarl.config import TrainConfig, from_dict
from metarl.environment import env_dims, make_env
from metarl.policy import GaussianMLPPolicy
from metarl.sampler import Sampler

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run as a file (make bench): the repository root
from experiments import positive  # noqa: E402

ENVS = {"AntVel": "metarl/AntVel-v0", "HalfCheetahVel": "metarl/HalfCheetahVel-v0"}
LOCAL, LOCAL1, RAY1, RAY2 = "local", "local, torch 1 thread", "ray, 1 worker x 2 CPUs", "ray, 2 workers x 1 CPU"


def config(env_id: str, tasks: int, episodes: int, backend: str = "local", workers: int = 1, cpus: float = 1,
           threads: int = 0) -> TrainConfig:
    return from_dict({
        "env": {"id": env_id, "num_threads": threads},
        "algo": {"num_tasks": tasks, "episodes_per_task": episodes},
        "sampler": {"backend": backend, "workers": workers, "cpus_per_worker": cpus},
    }).validate()


def iteration(sampler, shared, batched, tasks, generator) -> tuple[float, float, dict]:
    """The two sampling calls of one meta-iteration: seconds, the workers' own seconds, the batches."""
    t0 = time.perf_counter()
    pre = sampler.sample(shared, tasks, 1, generator)
    post = sampler.sample(batched, tasks, 2, generator)
    secs = time.perf_counter() - t0
    workers = sum(b.timings.get("workers", 0.0) for b in (pre, post))
    return secs, workers, {"pre": pre, "post": post}


def same(a: dict, b: dict) -> bool:
    return all(torch.equal(getattr(a[p], k), getattr(b[p], k)) for p in a for k in ("obs", "actions", "rewards", "mask"))


def projection(workers: int, one_worker_s: float, overhead_s: float, bytes_per_iter: float, bandwidth: float) -> float:
    """Projected sampling seconds per iteration with ``workers`` 1-CPU workers (not measured).

    ``one_worker_s``: the time one 1-CPU worker needs for all slots (measured: the 2-worker run's slowest
    worker time x 2), divided among the workers; ``overhead_s``: the 2-worker run's wall time minus its
    slowest worker (serialisation, scheduling, gathering on the learner), kept as is; the iteration's
    bytes cross the learner's network link once at ``bandwidth`` bytes/s (on one machine they do not).
    """
    return one_worker_s / workers + overhead_s + bytes_per_iter / bandwidth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", nargs="+", default=list(ENVS), choices=list(ENVS))
    parser.add_argument("--tasks", type=int, default=40)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3, help="timed iterations per sampler (interleaved)")
    parser.add_argument("--bandwidth-gbit", type=float, default=10.0, help="network of the projection, Gbit/s")
    args = parser.parse_args()
    positive(parser, tasks=args.tasks, episodes=args.episodes, rounds=args.rounds)
    if not (math.isfinite(args.bandwidth_gbit) and args.bandwidth_gbit > 0):
        parser.error(f"--bandwidth-gbit: expected a positive network speed in Gbit/s, got {args.bandwidth_gbit}")

    try:
        import ray
    except ImportError as exc:
        sys.exit(f"bench_ray needs Ray, which is not installed here ({exc}); install it with pip install -e \".[ray]\"")

    from metarl.ray_sampler import RaySampler

    load_before = os.getloadavg()
    default_threads = torch.get_num_threads()
    ray.init(address="local", num_cpus=6, include_dashboard=False, logging_level="WARNING")
    rows, proj = [], []
    try:
        for name in args.envs:
            env_id = ENVS[name]
            T, E = args.tasks, args.episodes
            env = make_env(config(env_id, T, E).env, T * E)
            obs_dim, act_dim = env_dims(env)
            policy = GaussianMLPPolicy(obs_dim, act_dim)
            g = torch.Generator().manual_seed(0)
            shared = policy.init_params(g)
            batched = {k: v.unsqueeze(0) + 0.01 * torch.randn((T, *v.shape), generator=g) for k, v in shared.items()}
            tasks = env.sample_tasks(T, np.random.default_rng(0))
            samplers = {
                LOCAL: Sampler(env, policy, T, E),
                LOCAL1: Sampler(env, policy, T, E),
                RAY1: RaySampler(config(env_id, T, E, "ray", 1, 2), policy),
                RAY2: RaySampler(config(env_id, T, E, "ray", 2, 1), policy),
            }
            times: dict[str, list[float]] = {k: [] for k in samplers}
            worker_times: dict[str, list[float]] = {k: [] for k in samplers}
            moved: dict[str, float] = {}
            try:
                reference = None
                for k, s in samplers.items():  # warm-up (first calls allocate), and the equality check
                    _, _, batches = iteration(s, shared, batched, tasks, torch.Generator().manual_seed(1))
                    if reference is None:
                        reference = batches
                    elif not same(reference, batches):
                        raise SystemExit(f"{name}: {k} sampled other episodes than local sampling")
                    if isinstance(s, RaySampler):
                        s.bytes_sent = s.bytes_received = 0
                for _ in range(args.rounds):
                    for k, s in samplers.items():
                        torch.set_num_threads(1 if k == LOCAL1 else default_threads)
                        secs, wsecs, _ = iteration(s, shared, batched, tasks, torch.Generator().manual_seed(1))
                        torch.set_num_threads(default_threads)
                        times[k].append(secs)
                        worker_times[k].append(wsecs)
                for k, s in samplers.items():
                    if isinstance(s, RaySampler):
                        moved[k] = (s.bytes_sent + s.bytes_received) / args.rounds
            finally:
                for s in samplers.values():
                    s.close()
            steps = 2 * T * E * env.horizon
            local_s = min(float(np.median(times[LOCAL])), float(np.median(times[LOCAL1])))  # the faster local
            for k in samplers:
                t = float(np.median(times[k]))
                overhead = t - float(np.median(worker_times[k])) if k in moved else None
                rows.append((name, k, t, steps / t, local_s / t, moved.get(k), overhead))
            t2, w2 = float(np.median(times[RAY2])), float(np.median(worker_times[RAY2]))
            proj.append((name, 2 * w2, t2 - w2, moved[RAY2], steps))
            del env
    finally:
        ray.shutdown()
    load_after = os.getloadavg()

    print(f"\n{os.cpu_count()} CPU cores, torch {torch.__version__}, ray {ray.__version__}; {args.tasks} tasks x "
          f"{args.episodes} episodes, 2 sampling calls per iteration, median of {args.rounds} interleaved rounds; "
          f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after\n")
    print("| env | sampler | s / iteration | env steps / s | throughput vs faster local | MB moved / iteration | Ray overhead s |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, k, t, rate, ratio, b, over in rows:
        mb = f"{b / 1e6:.1f}" if b is not None else "-"
        ov = f"{over:.2f}" if over is not None else "-"
        print(f"| {name} | {k} | {t:.2f} | {rate:,.0f} | {ratio:.2f}x | {mb} | {ov} |")
    bw = args.bandwidth_gbit * 1e9 / 8
    ws = (1, 2, 4, 8, 16, 32)
    print(f"\nProjection, not measured: W 1-CPU workers (on W cores of any machines), the learner on a "
          f"{args.bandwidth_gbit:g} Gbit/s link. Time = (the 2-worker run's slowest worker x 2) / W + the 2-worker "
          "run's overhead + the iteration's bytes over the link.\n")
    print("| env | " + " | ".join(f"W={w}" for w in ws) + " |")
    print("|---|" + "---:|" * len(ws))
    for name, one_worker, overhead, b, steps in proj:
        cells = [projection(w, one_worker, overhead, b, bw) for w in ws]
        print(f"| {name} | " + " | ".join(f"{c:.2f} s ({steps / c / 1e3:,.0f}k/s)" for c in cells) + " |")


if __name__ == "__main__":
    main()
