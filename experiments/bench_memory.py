"""What keeping freed memory (``metarl/memory.py``) changes: the exact TRPO meta-update with the trainer's
setting against the C library's defaults, each in its own process, in alternating order within one run.

Each child process builds the same meta-batch (a released config's shapes: T tasks x E episodes x H
steps, its observation and action sizes, seeded random episodes and advantages), runs one warm-up update
and then times ``--updates`` updates; it reports the median wall-clock time, the system CPU time (where
page faults are paid), the minor page faults and the peak resident size.  A separate process per setting is
needed because glibc's heap, once grown, keeps serving large blocks whatever the setting is afterwards.

    python -m experiments.bench_memory --config ant_vel --rounds 2
    python -m experiments.bench_memory --config halfcheetah_vel --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

if __package__ in (None, ""):  # run as a file (python experiments/NAME.py): the repository root, as for -m
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from experiments import config_path, positive

HERE = os.path.dirname(os.path.abspath(__file__))
SETTINGS = {"kept (trainer's default)": "1", "glibc defaults": "0"}  # "0": malloc left as glibc sets it


def child(config: str, updates: int) -> dict:
    import numpy as np
    import torch

    from metarl.adaptation import AdaptationData
    from metarl.baseline import LinearFeatureBaseline
    from metarl.config import load_config
    from metarl.environment import make_env
    from metarl.episodes import EpisodeBatch
    from metarl.maml import MAMLTRPO
    from metarl.memory import keep_freed_memory
    from metarl.policy import GaussianMLPPolicy

    kept = keep_freed_memory()  # reads METARL_KEEP_FREED_MEMORY, as the trainer does
    cfg = load_config(os.path.join(HERE, "configs", f"{config}.yaml"))
    a = cfg.algo
    env = make_env(cfg.env, 1)
    obs_dim, act_dim = env.single_observation_space.shape[0], env.single_action_space.shape[0]
    T, E, H = a.num_tasks, a.episodes_per_task, env.horizon
    env.close()
    gen = torch.Generator().manual_seed(0)
    policy = GaussianMLPPolicy(obs_dim, act_dim, cfg.policy.hidden_sizes, cfg.policy.init_std)
    params = policy.init_params(gen)

    def data() -> AdaptationData:
        batch = EpisodeBatch(torch.randn(T, E, H, obs_dim, generator=gen), torch.randn(T, E, H, act_dim, generator=gen),
                             torch.randn(T, E, H, generator=gen), torch.ones(T, E, H), np.zeros((T, 1)))
        return AdaptationData(batch, torch.randn(T, E, H, generator=gen))

    pre, post = data(), data()
    maml = MAMLTRPO(policy, LinearFeatureBaseline(a.baseline_reg), a)
    maml.meta_update(params, [pre], post)  # warm-up
    times = []
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    for _ in range(updates):
        t = time.perf_counter()
        maml.meta_update(params, [pre], post)
        times.append(time.perf_counter() - t)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"kept": kept, "seconds": statistics.median(times), "sys": (usage.ru_stime - usage0.ru_stime) / updates,
            "faults": (usage.ru_minflt - usage0.ru_minflt) / updates, "maxrss_mb": usage.ru_maxrss / 1024,
            "shapes": f"{T} x {E} x {H}, obs {obs_dim}, act {act_dim}", "threads": torch.get_num_threads()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="ant_vel", help="config name in experiments/configs (default ant_vel)")
    p.add_argument("--rounds", type=int, default=2, help="processes per setting, in alternating order (default 2)")
    p.add_argument("--updates", type=int, default=2, help="timed updates per process (default 2)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    config_path(p, args.config)
    positive(p, rounds=args.rounds, updates=args.updates)
    if args.child:
        print(json.dumps(child(args.config, args.updates)))
        return
    results: dict[str, list[dict]] = {name: [] for name in SETTINGS}
    names = list(SETTINGS)
    for r in range(args.rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            env = {**os.environ, "METARL_KEEP_FREED_MEMORY": SETTINGS[name]}
            out = subprocess.run([sys.executable, "-m", "experiments.bench_memory", "--child", "--config", args.config,
                                  "--updates", str(args.updates)], env=env, capture_output=True, text=True,
                                 cwd=os.path.dirname(HERE))
            if out.returncode != 0:
                sys.exit(f"bench_memory: the child process failed:\n{out.stderr}")
            results[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
    first = results[names[0]][0]
    print(f"{args.config}: exact TRPO meta-update on {first['shapes']}, torch threads {first['threads']}, "
          f"cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}; {args.rounds} process(es) per setting, "
          f"alternating, {args.updates} timed update(s) each")
    for name, runs in results.items():
        sec = statistics.median(x["seconds"] for x in runs)
        each = ", ".join(f"{x['seconds']:.2f}" for x in runs)
        print(f"  {name:26s} update {sec:6.2f} s  (per process: {each})  "
              f"system time {statistics.median(x['sys'] for x in runs):5.2f} s/update  "
              f"minor faults {statistics.median(x['faults'] for x in runs):9.0f}/update  "
              f"peak RSS {max(x['maxrss_mb'] for x in runs):6.0f} MB")
    kept, default = (statistics.median(x["seconds"] for x in results[n]) for n in names)
    print(f"  the update with freed memory kept takes {kept / default:.2f} of the time with glibc's defaults")


if __name__ == "__main__":
    main()
