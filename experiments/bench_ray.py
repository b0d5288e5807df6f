"""Sampling time of one meta-iteration, local against Ray with 1 and 2 workers, on this machine.

One meta-iteration samples twice (pre-adaptation episodes with the shared parameters, post-adaptation
episodes with T task-batched parameters); this script times those two calls at the paper's size (40 tasks
x 20 episodes x 200 steps = 800 slots) for each env and sampler, in the same run and interleaved (local,
Ray 1, Ray 2, local, ...) so that load from other processes hits all of them alike.  It reports:

* seconds per iteration's sampling and env steps per second, and the ratio to the local sampler;
* the bytes moved per iteration (parameters and tasks to the workers, episodes back);
* the overhead of Ray (its time minus the slowest worker's own env + policy time);
* a projection for W machines like this one, stated as such (see ``projection``).

    python experiments/bench_ray.py                               # AntVel and HalfCheetahVel, 3 rounds
    python experiments/bench_ray.py --envs HalfCheetahVel --rounds 1 --tasks 10

Every sampler returns the same episodes (checked on the first round).  Ray is started here with
4 logical CPUs so that both Ray samplers' actors exist at once; only one of them samples at a time, and
each actor's env and torch use ``cpus_per_worker`` threads (2 for one worker, 1 each for two workers),
as many cores as the local sampler uses.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from metarl.config import TrainConfig, from_dict
from metarl.environment import env_dims, make_env
from metarl.policy import GaussianMLPPolicy
from metarl.sampler import Sampler

ENVS = {"AntVel": "metarl/AntVel-v0", "HalfCheetahVel": "metarl/HalfCheetahVel-v0"}


def config(env_id: str, tasks: int, episodes: int, backend: str, workers: int, cpus: float) -> TrainConfig:
    return from_dict({
        "env": {"id": env_id, "num_threads": 0},
        "algo": {"num_tasks": tasks, "episodes_per_task": episodes},
        "sampler": {"backend": backend, "workers": workers, "cpus_per_worker": cpus},
    }).validate()


def iteration(sampler, shared, batched, tasks, generator) -> tuple[float, dict]:
    """The two sampling calls of one meta-iteration; seconds and the second call's batch."""
    t0 = time.perf_counter()
    pre = sampler.sample(shared, tasks, 1, generator)
    post = sampler.sample(batched, tasks, 2, generator)
    return time.perf_counter() - t0, {"pre": pre, "post": post}


def same(a: dict, b: dict) -> bool:
    return all(torch.equal(getattr(a[p], k), getattr(b[p], k)) for p in a for k in ("obs", "actions", "rewards", "mask"))


def projection(workers: int, per_worker_s: float, overhead_s: float, bytes_per_iter: float, bandwidth: float) -> float:
    """Projected sampling seconds per iteration on ``workers`` machines like this one (not measured).

    The local sampler's measured time on this machine divides by the number of workers; Ray's measured
    extra time over it (serialisation, scheduling, gathering; 1 worker) stays per iteration; the bytes of
    an iteration cross the learner's network link once at ``bandwidth`` bytes/s.
    """
    return per_worker_s / workers + overhead_s + bytes_per_iter / bandwidth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", nargs="+", default=list(ENVS), choices=list(ENVS))
    parser.add_argument("--tasks", type=int, default=40)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3, help="timed iterations per sampler (interleaved)")
    parser.add_argument("--bandwidth-gbit", type=float, default=10.0, help="network of the projection, Gbit/s")
    args = parser.parse_args()

    import ray

    from metarl.ray_sampler import RaySampler

    cores = os.cpu_count() or 1
    ray.init(address="local", num_cpus=4, include_dashboard=False, logging_level="WARNING")
    rows, notes = [], []
    try:
        for name in args.envs:
            env_id = ENVS[name]
            local_cfg = config(env_id, args.tasks, args.episodes, "local", 1, 1)
            env = make_env(local_cfg.env, args.tasks * args.episodes)
            obs_dim, act_dim = env_dims(env)
            policy = GaussianMLPPolicy(obs_dim, act_dim)
            g = torch.Generator().manual_seed(0)
            shared = policy.init_params(g)
            batched = {k: v.unsqueeze(0) + 0.01 * torch.randn((args.tasks, *v.shape), generator=g)
                       for k, v in shared.items()}
            tasks = env.sample_tasks(args.tasks, np.random.default_rng(0))
            samplers = {
                "local": Sampler(env, policy, args.tasks, args.episodes),
                "ray, 1 worker x 2 CPUs": RaySampler(config(env_id, args.tasks, args.episodes, "ray", 1, 2), policy),
                "ray, 2 workers x 1 CPU": RaySampler(config(env_id, args.tasks, args.episodes, "ray", 2, 1), policy),
            }
            times: dict[str, list[float]] = {k: [] for k in samplers}
            moved: dict[str, float] = {}
            try:
                reference = None
                for k, s in samplers.items():  # warm-up (first calls allocate), and the equality check
                    _, batches = iteration(s, shared, batched, tasks, torch.Generator().manual_seed(1))
                    if reference is None:
                        reference = batches
                    elif not same(reference, batches):
                        raise SystemExit(f"{name}: {k} sampled other episodes than local sampling")
                    if hasattr(s, "bytes_sent"):
                        s.bytes_sent = s.bytes_received = 0
                for _ in range(args.rounds):
                    for k, s in samplers.items():
                        secs, _ = iteration(s, shared, batched, tasks, torch.Generator().manual_seed(1))
                        times[k].append(secs)
                for k, s in samplers.items():
                    if hasattr(s, "bytes_sent"):
                        moved[k] = (s.bytes_sent + s.bytes_received) / args.rounds
                        s.bytes_sent = s.bytes_received = 0
            finally:
                for s in samplers.values():
                    s.close()
            steps = 2 * args.tasks * args.episodes * env.horizon
            local_s = float(np.median(times["local"]))
            for k in samplers:
                t = float(np.median(times[k]))
                rows.append((name, k, t, steps / t, local_s / t, moved.get(k, 0.0)))
            one = "ray, 1 worker x 2 CPUs"
            notes.append((name, one, float(np.median(times[one])), moved[one], steps))
            del env
    finally:
        ray.shutdown()

    print(f"\n{cores} CPU cores, torch {torch.__version__}, ray {ray.__version__}; {args.tasks} tasks x "
          f"{args.episodes} episodes, 2 sampling calls per iteration, median of {args.rounds} rounds\n")
    print("| env | sampler | s / iteration | env steps / s | throughput vs local | MB moved / iteration |")
    print("|---|---|---:|---:|---:|---:|")
    for name, k, t, rate, ratio, b in rows:
        print(f"| {name} | {k} | {t:.2f} | {rate:,.0f} | {ratio:.2f}x | {b / 1e6:.1f} |" if b else
              f"| {name} | {k} | {t:.2f} | {rate:,.0f} | {ratio:.2f}x | - |")
    bw = args.bandwidth_gbit * 1e9 / 8
    print(f"\nProjection (not measured): W machines like this one, each running one 2-CPU worker, the learner on "
          f"a {args.bandwidth_gbit:g} Gbit/s link: the local sampler's time / W + Ray's measured extra time "
          "over local (1 worker) + the iteration's bytes over the link.\n")
    print("| env | " + " | ".join(f"W={w}" for w in (1, 2, 4, 8, 16)) + " |")
    print("|---|" + "---:|" * 5)
    for name, one, t1, b, steps in notes:
        local_t = next(t for n, k, t, *_ in rows if n == name and k == "local")
        cells = [projection(w, local_t, max(0.0, t1 - local_t), b, bw) for w in (1, 2, 4, 8, 16)]
        print(f"| {name} | " + " | ".join(f"{c:.2f} s ({steps / c:,.0f}/s)" for c in cells) + " |")


if __name__ == "__main__":
    main()
