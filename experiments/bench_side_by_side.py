"""Two training runs side by side on one machine, against a lone run of the same config.

Runs ``metarl train`` on the config alone, then two copies at once (different seeds), and reports each
run's mean seconds per meta-iteration and its speed as a fraction of the lone run's (goal: each >= 45%
with two runs on the machine's cores), and the policy calls' time while sampling against the physics
time (goal: <= 10% with a competing process).

By default it does this twice, in the same invocation: with OpenMP's own wait policy (idle threads spin
before they sleep; ``METARL_OPENMP_PASSIVE=0``) and with metarl's (``OMP_WAIT_POLICY=PASSIVE``, set when
``metarl`` is imported: metarl/threads.py), so that the two are compared on the same machine in the same
minutes; ``--wait-policy`` runs one of them.  ``--sampling-threads N`` runs the sampler's policy calls on N
torch threads instead of metarl's setting (``metarl.sampler.SAMPLING_TORCH_THREADS``); ``--torch-threads N``
sets each process's torch threads (the learner's).

    python -m experiments.bench_side_by_side --config halfcheetah_vel --iterations 3 --output runs/side
    python -m experiments.bench_side_by_side --config halfcheetah_vel --iterations 3 --output runs/side1 --torch-threads 1
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import time

from metarl import threads

HERE = os.path.dirname(os.path.abspath(__file__))


POLICIES = {"openmp": "OpenMP's default (spin, then sleep)", "metarl": "metarl's (OMP_WAIT_POLICY=PASSIVE)"}


def launch(config: str, output: str, seed: int, iterations: int, sampling_threads: int | None,
           torch_threads: int | None, policy: str) -> subprocess.Popen:
    """A ``metarl train`` process (with the sampler's or the process's torch threads replaced when asked).

    ``metarl`` is imported before anything else, as the ``metarl`` command does, so that its OpenMP setting
    is in place before torch loads; ``policy == "openmp"`` switches that setting off.
    """
    patch = "import metarl; "
    if sampling_threads is not None:
        patch += f"import metarl.sampler as s; s.SAMPLING_TORCH_THREADS = {sampling_threads}; "
    if torch_threads is not None:
        patch += f"import torch; torch.set_num_threads({torch_threads}); "
    code = f"{patch}import sys; from metarl.cli import main; sys.exit(main(sys.argv[1:]))"
    args = ["train", "--config", config, "--output", output, "--seed", str(seed), "--iterations", str(iterations),
            "--no-progress", "--overwrite"]
    env = {k: v for k, v in os.environ.items() if k not in (threads.OMP_VAR, threads.ENV_VAR)}
    if policy == "openmp":
        env[threads.ENV_VAR] = "0"
    return subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.DEVNULL, env=env)


def run_all(runs: list[tuple[str, int]], config: str, iterations: int, sampling_threads: int | None,
            torch_threads: int | None, policy: str) -> float:
    start = time.perf_counter()
    procs = [launch(config, out, seed, iterations, sampling_threads, torch_threads, policy) for out, seed in runs]
    for p in procs:
        if p.wait() != 0:
            sys.exit(f"a training run failed with exit status {p.returncode}")
    return time.perf_counter() - start


def timings(run_dir: str) -> dict[str, float]:
    """Mean per-iteration seconds of the run: iteration, physics, and policy calls while sampling."""
    with open(os.path.join(run_dir, "progress.csv")) as fh:
        rows = list(csv.DictReader(fh))
    mean = lambda key: sum(float(r[key]) for r in rows) / len(rows)  # noqa: E731
    return {"iteration": mean("time/iteration"), "env": mean("time/env"),
            "policy": mean("time/sampling") - mean("time/env")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="halfcheetah_vel", help="config name in experiments/configs")
    p.add_argument("--iterations", type=int, default=3)
    p.add_argument("--output", required=True, help="directory for the runs (replaced)")
    p.add_argument("--sampling-threads", type=int, help="torch threads of the sampler's policy calls (default: metarl's)")
    p.add_argument("--torch-threads", type=int, help="torch threads of each process, i.e. of the learner (default: torch's)")
    p.add_argument("--wait-policy", choices=["both", *POLICIES], default="both",
                   help="OpenMP wait policy of the runs: openmp (its default), metarl (passive), or both in turn")
    args = p.parse_args()
    config = os.path.join(HERE, "configs", f"{args.config}.yaml")
    if os.path.exists(args.output):
        shutil.rmtree(args.output)
    policies = list(POLICIES) if args.wait_policy == "both" else [args.wait_policy]
    load = os.getloadavg()[0]
    dirs = {}
    for policy in policies:
        lone, a, b = (os.path.join(args.output, policy, name) for name in ("lone", "pair-a", "pair-b"))
        run_all([(lone, 0)], config, args.iterations, args.sampling_threads, args.torch_threads, policy)
        run_all([(a, 1), (b, 2)], config, args.iterations, args.sampling_threads, args.torch_threads, policy)
        dirs[policy] = {"lone": lone, "pair-a": a, "pair-b": b}
    sampler = "metarl's setting" if args.sampling_threads is None else f"{args.sampling_threads} torch threads"
    learner = "torch's default" if args.torch_threads is None else str(args.torch_threads)
    print(f"{args.config}: {args.iterations} iterations per run, sampler policy calls on {sampler}, learner threads "
          f"{learner}, {os.cpu_count()} cpus, load average {load:.1f} before, {os.getloadavg()[0]:.1f} after")
    fastest = min(timings(d["lone"])["iteration"] for d in dirs.values())
    print(f"  {'wait policy':38s} {'run':7s} {'s/iteration':>11s} {'vs own lone':>11s} {'vs fastest lone':>15s} "
          f"{'physics s':>9s} {'policy s':>8s} {'policy/physics':>14s}")
    for policy, runs in dirs.items():
        base = timings(runs["lone"])["iteration"]
        for name, path in runs.items():
            t = timings(path)
            print(f"  {POLICIES[policy]:38s} {name:7s} {t['iteration']:11.2f} {100 * base / t['iteration']:10.0f}% "
                  f"{100 * fastest / t['iteration']:14.0f}% {t['env']:9.2f} {t['policy']:8.2f} "
                  f"{100 * t['policy'] / t['env']:13.1f}%")


if __name__ == "__main__":
    main()
