"""Wall-clock of one meta-iteration of each algorithm, side by side on the same meta-batch.

Samples one Navigation2D meta-batch (pre- and post-adaptation episodes) with each config's batch sizes, then
times ``meta_update`` of MAML-TRPO, ProMP, MAML-PPO and Meta-SGD in interleaved rounds, so that a busy machine
slows all of them alike, and the sampling once (it is the same for all four: same tasks, episodes, horizon).

    python -m experiments.bench_algorithms --rounds 3
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch

if __package__ in (None, ""):  # run as a file (python experiments/NAME.py): the repository root, as for -m
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from experiments import positive
from metarl.algorithms import initial_params, make_algorithm
from metarl.baseline import LinearFeatureBaseline
from metarl.config import load_config
from metarl.environment import make_env
from metarl.policy import GaussianMLPPolicy
from metarl.sampler import Sampler

CONFIGS = {"MAML-TRPO": "navigation2d.yaml", "ProMP": "promp_navigation2d.yaml",
           "MAML-PPO": "maml_ppo_navigation2d.yaml", "Meta-SGD (TRPO)": "metasgd_navigation2d.yaml"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    positive(p, rounds=args.rounds)
    here = os.path.join(os.path.dirname(__file__), "configs")
    cfgs = {name: load_config(os.path.join(here, f)) for name, f in CONFIGS.items()}
    cfg = cfgs["MAML-TRPO"]
    a = cfg.algo
    env = make_env(cfg.env, a.num_tasks * a.episodes_per_task)
    policy = GaussianMLPPolicy(env.single_observation_space.shape[0], env.single_action_space.shape[0],
                               cfg.policy.hidden_sizes, cfg.policy.init_std)
    gen = torch.Generator().manual_seed(0)
    params = policy.init_params(gen)
    sampler = Sampler(env, policy, a.num_tasks, a.episodes_per_task, torch.device("cpu"), torch.float32)
    tasks = env.sample_tasks(a.num_tasks, np.random.default_rng(0))
    algos = {name: make_algorithm(c.algo, policy, LinearFeatureBaseline(c.algo.baseline_reg)) for name, c in cfgs.items()}
    trpo = algos["MAML-TRPO"]
    t0 = time.perf_counter()
    pre = sampler.sample(params, tasks, 1, gen)
    inner = [trpo.advantages(pre)[0]]
    post_batch = sampler.sample(trpo.adapt(params, inner, create_graph=False), tasks, 2, gen)
    post = trpo.advantages(post_batch)[0]
    sampling = time.perf_counter() - t0
    times: dict[str, list[float]] = {name: [] for name in algos}
    for _ in range(args.rounds):
        for name, algo in algos.items():
            theta = initial_params(cfgs[name].algo, params)
            t = time.perf_counter()
            algo.meta_update(theta, inner, post)
            times[name].append(time.perf_counter() - t)
    print(f"sampling + advantages (shared by all): {sampling:.2f} s")
    print("| algorithm | meta-update, median s | rounds |")
    print("|---|---|---|")
    for name, ts in times.items():
        print(f"| {name} | {np.median(ts):.2f} | " + ", ".join(f"{x:.2f}" for x in ts) + " |")


if __name__ == "__main__":
    main()
