"""Env steps per second of the batched task envs, side by side with two references in the same run.

* ``C ref``: the same model stepped by ``mujoco.batch.Batch`` with the same slots, threads, frame skip
  and post-step stage, from the same initial states with the same controls (so the same contacts and
  solver work), reading nothing: MuJoCo's own speed with one control write and one call per step.
* ``gym sync``: gymnasium's ``SyncVectorEnv`` over HalfCheetah-v5 / Ant-v5 with the same number of slots
  (one Python env per slot; gymnasium's dynamics, i.e. 5 physics steps per env step).

Ratios are what to read: ``ours / C ref`` (goal >= 0.90) and, for ``dynamics=gymnasium``,
``ours / gym sync`` (goal >= 3 for the half-cheetah).  Slot-steps of terminated ant slots are not
simulated by our envs, so only simulated slot-steps are counted.

    python experiments/bench_envs.py            # the full table (about 8 minutes on the 2-core development machine)
    python experiments/bench_envs.py --quick    # one small configuration per env
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import gymnasium
import mujoco
import numpy as np
from mujoco import batch as mjbatch

from metarl import envs

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run as a file (make bench): the repository root
from experiments import positive  # noqa: E402

ACTION_STD = 0.3  # small random actions: ants keep walking rather than flipping at once


def budget_steps(num_envs: int, ant: bool, target: int) -> int:
    return max(20, target // num_envs // (4 if ant else 1))


def time_pair(env_id: str, num_envs: int, threads: int, steps: int, **kw: object) -> tuple[float, float | None]:
    """Steps per second of our env and of MuJoCo alone, on the same trajectories.

    Both start every episode from the same initial states (our env's resets) and apply the same
    controls, so they do the same physics work (same contacts, same solver iterations).  The reference
    is the same model in its own ``Batch`` (same slots, threads, frame skip and post-step stage) that
    reads nothing back: one control write and one ``Batch.step`` call per env step.  Only simulated
    slot-steps of our env count (terminated ant slots are not simulated).
    """
    vec = gymnasium.make_vec(env_id, num_envs=num_envs, num_threads=threads, **kw)
    rng = np.random.default_rng(0)
    vec.set_tasks(vec.sample_tasks(num_envs, rng))
    episode = vec.horizon - 1  # no horizon reset inside a timed episode
    acts = np.clip(rng.normal(scale=ACTION_STD, size=(min(steps, episode), num_envs, vec.act_dim)), -1, 1)
    n_episodes = -(-steps // len(acts))
    starts, simulated, elapsed = [], 0, 0.0
    for ep in range(n_episodes):
        vec.reset(seed=ep)
        if isinstance(vec, envs.MujocoTaskEnv):
            starts.append(vec.sim.state.copy())
        alive = num_envs
        t0 = time.perf_counter()
        for a in acts:
            _, _, term, _, _ = vec.step(a)
            simulated += alive
            alive = int((~term).sum())
        elapsed += time.perf_counter() - t0
    ours = simulated / elapsed
    if not isinstance(vec, envs.MujocoTaskEnv):
        return ours, None
    sim = mjbatch.Batch(vec.model, nsim=num_envs, nthread=threads, persistent=True)
    ctrl = sim.bind("ctrl")
    lo, hi = vec.model.actuator_ctrlrange.T
    controls = acts * (hi - lo) / 2 + (hi + lo) / 2
    elapsed = 0.0
    for start in starts:
        sim.state[:] = start
        sim.forward()
        t0 = time.perf_counter()
        for u in controls:
            ctrl[:] = u
            sim.step(nstep=vec.frame_skip, stage=vec._stage)
        elapsed += time.perf_counter() - t0
    return ours, num_envs * len(controls) * len(starts) / elapsed


def time_c_stage(env_id: str, num_envs: int, threads: int, steps: int, stage: object) -> float:
    """MuJoCo alone with a given post-step stage: what reading at the new state costs."""
    vec = gymnasium.make_vec(env_id, num_envs=num_envs)
    sim = mjbatch.Batch(vec.model, nsim=num_envs, nthread=threads, persistent=True)
    vec.reset(seed=0)
    sim.state[:] = vec.sim.state
    sim.forward()
    ctrl = sim.bind("ctrl")
    lo, hi = vec.model.actuator_ctrlrange.T
    controls = np.clip(np.random.default_rng(0).normal(scale=ACTION_STD, size=(steps, num_envs, vec.act_dim)), -1, 1)
    controls = controls * (hi - lo) / 2 + (hi + lo) / 2
    t0 = time.perf_counter()
    for u in controls:
        ctrl[:] = u
        sim.step(nstep=vec.frame_skip, stage=stage)
    return num_envs * steps / (time.perf_counter() - t0)


def time_gym_sync(gym_id: str, num_envs: int, steps: int) -> float:
    # gymnasium's half-cheetah XML sets the compiler attribute settotalmass, which MuJoCo deprecates with a warning
    # written to MUJOCO_LOG.TXT in the working directory; the models compile in a scratch directory instead
    before = os.getcwd()
    with tempfile.TemporaryDirectory() as scratch:
        os.chdir(scratch)
        try:
            vec = gymnasium.vector.SyncVectorEnv([lambda: gymnasium.make(gym_id) for _ in range(num_envs)])
        finally:
            os.chdir(before)
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
    positive(parser, target=args.target, repeats=args.repeats)
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
                pairs = [time_pair(env_id, n, thr, steps, **kw) for _ in range(args.repeats)]
                rate = float(np.median([p[0] for p in pairs]))
                ref = None if pairs[0][1] is None else float(np.median([p[1] for p in pairs]))
                cells = [
                    f"{env_id.split('/')[1]:28s} {dynamics:9s} {n:5d} {thr:3d} {rate:10.0f}",
                    f"{ref:10.0f} {rate / ref:6.2f}" if ref else f"{'-':>10s} {'-':>6s}",
                    f"{gym_rate:10.0f} {rate / gym_rate:8.2f}" if gym_rate else f"{'-':>10s} {'-':>8s}",
                ]
                print(" ".join(cells), flush=True)
    print("\ncost of reading derived quantities at the new state (MuJoCo alone, largest slot count, most threads):")
    for env_id in [e for e in envs.TASK_ENVS if "Navigation" not in e]:
        vec = gymnasium.make_vec(env_id, num_envs=slots[-1])
        steps = min(budget_steps(slots[-1], "Ant" in env_id, target), vec.horizon - 1)
        none = mujoco.mjtStage.mjSTAGE_NONE
        plain = np.median([time_c_stage(env_id, slots[-1], threads[-1], steps, none) for _ in range(args.repeats)])
        paper = np.median([time_c_stage(env_id, slots[-1], threads[-1], steps, vec._stage) for _ in range(args.repeats)])
        print(f"  {env_id.split('/')[1]:18s} stage {vec._stage.name:14s} {paper:10.0f}/s vs mjSTAGE_NONE {plain:10.0f}/s: "
              f"{100 * (plain / paper - 1):+5.1f}% time", flush=True)

if __name__ == "__main__":
    main()
