"""Env steps per second of the batched task envs, side by side with two references in the same run.

* ``C ref``: the same model stepped by ``mujoco.batch.Batch`` with the same slots, threads, frame skip
  and post-step stage, reading nothing: MuJoCo's own speed with no Python work per step beyond one call.
* ``gym sync``: gymnasium's ``SyncVectorEnv`` over HalfCheetah-v5 / Ant-v5 with the same number of slots
  (one Python env per slot; gymnasium's dynamics, i.e. 5 physics steps per env step).

Ratios are what to read: ``ours / C ref`` (goal >= 0.90) and, for ``dynamics=gymnasium``,
``ours / gym sync`` (goal >= 3 for the half-cheetah).  Slot-steps of terminated ant slots are not
simulated by our envs, so only simulated slot-steps are counted.

    python experiments/bench_envs.py            # the full table (a few minutes on 2 cores)
    python experiments/bench_envs.py --quick    # one small configuration per env
"""

from __future__ import annotations

import argparse
import os
import time

import gymnasium
import mujoco
import numpy as np
from mujoco import batch as mjbatch

import envs

ACTION_STD = 0.3  # small random actions: ants keep walking rather than flipping at once


def budget_steps(num_envs: int, ant: bool, target: int) -> int:
    return max(20, target // num_envs // (4 if ant else 1))


def time_ours(env_id: str, num_envs: int, threads: int, steps: int, **kw: object) -> tuple[float, float]:
    vec = gymnasium.make_vec(env_id, num_envs=num_envs, num_threads=threads, **kw)
    rng = np.random.default_rng(0)
    vec.set_tasks(vec.sample_tasks(num_envs, rng))
    acts = rng.normal(scale=ACTION_STD, size=(min(steps, vec.horizon), num_envs, vec.single_action_space.shape[0]))
    vec.reset(seed=0)
    vec.step(acts[0])  # warm-up
    done, simulated, t, start = 0, 0, 0, time.perf_counter()
    alive = num_envs
    while done < steps:
        if vec._needs_reset:
            vec.reset()
            t = 0
            alive = num_envs
        _, _, term, _, _ = vec.step(acts[t % len(acts)])
        simulated += alive
        alive = int((~term).sum())
        t += 1
        done += 1
    elapsed = time.perf_counter() - start
    return simulated / elapsed, simulated / (done * num_envs)


def time_c_reference(vec: envs.MujocoTaskEnv, threads: int, steps: int, stage: object = None) -> float:
    """MuJoCo alone: one Batch call per env step, nothing read back (``stage``: default the env's)."""
    sim = mjbatch.Batch(vec.model, nsim=vec.num_envs, nthread=threads, persistent=True)
    ctrl = sim.bind("ctrl")
    sim.reset()
    sim.bind("qpos")[:] = vec.init_qpos
    sim.forward()
    rng = np.random.default_rng(0)
    lo, hi = vec.model.actuator_ctrlrange.T
    ctrl[:] = np.clip(rng.normal(scale=ACTION_STD, size=ctrl.shape), -1, 1) * (hi - lo) / 2 + (hi + lo) / 2
    stage = vec._stage if stage is None else stage
    sim.step(nstep=vec.frame_skip, stage=stage)
    start = time.perf_counter()
    for _ in range(steps):
        sim.step(nstep=vec.frame_skip, stage=stage)
    return vec.num_envs * steps / (time.perf_counter() - start)


def time_gym_sync(gym_id: str, num_envs: int, steps: int) -> float:
    vec = gymnasium.vector.SyncVectorEnv([lambda: gymnasium.make(gym_id) for _ in range(num_envs)])
    rng = np.random.default_rng(0)
    vec.reset(seed=0)
    acts = rng.normal(scale=ACTION_STD, size=(steps, num_envs, vec.single_action_space.shape[0])).astype(np.float32)
    start = time.perf_counter()
    for a in acts:
        vec.step(a)  # autoreset (next step) keeps every slot simulating
    return num_envs * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="40 slots, 2 threads, fewer steps")
    parser.add_argument("--target", type=int, default=60_000, help="slot-steps per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per cell; the median is reported")
    args = parser.parse_args()
    slots = [40] if args.quick else [40, 800]
    threads = [2] if args.quick else [1, 2]
    target = args.target // 4 if args.quick else args.target
    cases = [(env_id, "paper") for env_id in envs.TASK_ENVS] + [
        ("metarl/HalfCheetahVel-v0", "gymnasium"),
        ("metarl/AntVel-v0", "gymnasium"),
    ]
    print(f"cpus={os.cpu_count()} mujoco={mujoco.__version__} gymnasium={gymnasium.__version__}")
    header = f"{'env':28s} {'dynamics':9s} {'slots':>5s} {'thr':>3s} {'ours/s':>10s} {'C ref/s':>10s} {'ours/C':>6s} {'gym sync/s':>10s} {'ours/gym':>8s}"
    print(header)
    print("-" * len(header))
    for env_id, dynamics in cases:
        kw = {} if env_id.endswith("Navigation2D-v0") else {"dynamics": dynamics}
        ant = "Ant" in env_id
        for n in slots:
            steps = budget_steps(n, ant, target)
            gym_rate = None
            if dynamics == "gymnasium":
                gym_id = "Ant-v5" if ant else "HalfCheetah-v5"
                gym_rate = float(np.median([time_gym_sync(gym_id, n, steps) for _ in range(args.repeats)]))
            for thr in threads:
                ours = [time_ours(env_id, n, thr, steps, **kw) for _ in range(args.repeats)]
                rate = float(np.median([o[0] for o in ours]))
                ref = None
                vec = gymnasium.make_vec(env_id, num_envs=n, **kw)
                if isinstance(vec, envs.MujocoTaskEnv):
                    ref = float(np.median([time_c_reference(vec, thr, steps) for _ in range(args.repeats)]))
                cells = [
                    f"{env_id.split('/')[1]:28s} {dynamics:9s} {n:5d} {thr:3d} {rate:10.0f}",
                    f"{ref:10.0f} {rate / ref:6.2f}" if ref else f"{'-':>10s} {'-':>6s}",
                    f"{gym_rate:10.0f} {rate / gym_rate:8.2f}" if gym_rate else f"{'-':>10s} {'-':>8s}",
                ]
                print(" ".join(cells), flush=True)
    print("\ncost of reading derived quantities at the new state (MuJoCo alone, largest slot count, most threads):")
    for env_id in [e for e in envs.TASK_ENVS if "Navigation" not in e]:
        vec = gymnasium.make_vec(env_id, num_envs=slots[-1])
        steps = budget_steps(slots[-1], "Ant" in env_id, target)
        plain = np.median([time_c_reference(vec, threads[-1], steps, mujoco.mjtStage.mjSTAGE_NONE) for _ in range(args.repeats)])
        paper = np.median([time_c_reference(vec, threads[-1], steps) for _ in range(args.repeats)])
        print(f"  {env_id.split('/')[1]:18s} stage {vec._stage.name:14s} {paper:10.0f}/s vs mjSTAGE_NONE {plain:10.0f}/s: "
              f"{100 * (plain / paper - 1):+5.1f}% time", flush=True)


if __name__ == "__main__":
    main()
