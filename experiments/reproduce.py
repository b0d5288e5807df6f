"""Reproduce one of the paper's figures end to end: MAML, pretrained, random and oracle, evaluated and plotted.

    python experiments/reproduce.py navigation2d --output runs/fig-nav
    python experiments/reproduce.py halfcheetah_vel --output runs/fig-hcvel --iterations 100 --baseline-steps 2000000

The baselines train with TRPO (sb3-contrib's; the paper also used TRPO), or PPO with --baseline-algo ppo.  Their default budget is per task,
the same for the pretrained policy and the oracle: the env steps after which the oracle's training curve was
measured flat (docs/evaluation.md, "Measured: TRPO baselines"): 1,000,000 for navigation2d, 5,000,000 for
halfcheetah_vel, 20,000,000 for halfcheetah_dir (the pretrained policy was measured at 5,000,000 only); the
Ant tasks get 20,000,000 too, a budget not measured there.

Steps (each skipped when its result already exists, so an interrupted run picks up where it stopped):
  1. metarl train     experiments/configs/<task>.yaml            -> OUTPUT/maml
  2. metarl baseline  pretrained / oracle (TRPO, sb3-contrib)     -> OUTPUT/pretrained, OUTPUT/oracle
  3. metarl evaluate  each, with the paper's protocol             -> OUTPUT/<method>/evaluation
  4. metarl plot      the figure and the table next to the paper  -> OUTPUT/figure.png, OUTPUT/table.txt
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
# env steps of each baseline by default (see the module's docstring)
BASELINE_STEPS = {"navigation2d": 1_000_000, "halfcheetah_vel": 5_000_000, "halfcheetah_dir": 20_000_000,
                  "ant_vel": 20_000_000, "ant_dir": 20_000_000}
DEFAULT_BASELINE_STEPS = 5_000_000


def metarl(*args: str, capture: bool = False) -> str:
    cmd = [sys.executable, "-m", "metarl.cli", *args]
    print("+ metarl " + " ".join(args), flush=True)
    res = subprocess.run(cmd, text=True, capture_output=capture)
    if res.returncode != 0:  # the command has said why on stderr; stop the chain with its status
        if capture:
            sys.stderr.write(res.stderr)
        sys.exit(res.returncode)
    return res.stdout if capture else ""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("task", help="config name in experiments/configs, e.g. navigation2d, halfcheetah_vel")
    p.add_argument("--output", required=True)
    p.add_argument("--iterations", type=int, help="meta-iterations (default: the config's)")
    p.add_argument("--baseline-steps", type=int,
                   help="TRPO env steps for pretrained and oracle (default: per task, see above; 5,000,000 otherwise)")
    p.add_argument("--baseline-algo", choices=["trpo", "ppo"], default="trpo",
                   help="the RL algorithm of the pretrained and oracle baselines (default trpo, the paper's)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    sys.path.insert(0, os.path.dirname(HERE))  # run as a file: the repository root
    from experiments import positive

    positive(p, baseline_steps=args.baseline_steps, iterations=args.iterations)
    if args.baseline_steps is None:
        args.baseline_steps = BASELINE_STEPS.get(args.task, DEFAULT_BASELINE_STEPS)
    config = os.path.join(HERE, "configs", f"{args.task}.yaml")
    if not os.path.isfile(config):
        names = sorted(f[:-5] for f in os.listdir(os.path.join(HERE, "configs")) if f.endswith(".yaml"))
        p.error(f"task: no config named {args.task!r}; choose one of {', '.join(names)}")
    out = args.output
    if os.path.exists(out) and not os.path.isdir(out):
        p.error(f"--output: {out!r} is a file; give a directory for the figure's runs")
    os.makedirs(out, exist_ok=True)

    maml = os.path.join(out, "maml")
    train = ["train", "--config", config, "--output", maml, "--seed", str(args.seed), "--no-progress"]
    if args.iterations is not None:
        train += ["--iterations", str(args.iterations)]
    if os.path.exists(os.path.join(maml, "checkpoints", "latest.pt")):
        train = ["train", "--output", maml, "--resume", "--no-progress"] + (["--iterations", str(args.iterations)] if args.iterations is not None else [])
    metarl(*train)
    for kind in ("pretrained", "oracle"):
        if not os.path.exists(os.path.join(out, kind, "checkpoints", "best.pt")):
            metarl("baseline", kind, "--config", config, "--output", os.path.join(out, kind),
                   "--timesteps", str(args.baseline_steps), "--algo", args.baseline_algo, "--seed", str(args.seed))
    sources = {"maml": maml, "pretrained": os.path.join(out, "pretrained"), "oracle": os.path.join(out, "oracle")}
    for src in sources.values():
        if not os.path.exists(os.path.join(src, "evaluation", "results.json")):
            metarl("evaluate", src, "--seed", str(args.seed))
    random_dir = os.path.join(out, "random", "evaluation")
    if not os.path.exists(os.path.join(random_dir, "results.json")):
        metarl("evaluate", "--random", "--config", config, "--output", random_dir, "--seed", str(args.seed))
    table = metarl("plot", *(f"{m}={os.path.join(s, 'evaluation')}" for m, s in sources.items()),
                   f"random={random_dir}", "--output", os.path.join(out, "figure.png"), "--overwrite", capture=True)
    with open(os.path.join(out, "table.txt"), "w") as fh:
        fh.write(table)
    print(table)


if __name__ == "__main__":
    main()
