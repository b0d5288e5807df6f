"""Two training runs side by side on one machine, against a lone run of the same config.

Runs ``metarl train`` on the config alone, then two copies at once (different seeds), and reports each
run's mean seconds per meta-iteration and its speed as a fraction of the lone run's (goal: each >= 45%
with two runs on the machine's cores), and the policy calls' time while sampling against the physics
time (goal: <= 10% with a competing process).  ``--sampling-threads N`` runs the sampler's policy calls
on N torch threads instead of metarl's setting (``metarl.sampler.SAMPLING_TORCH_THREADS``), to reproduce
the behaviour before it (torch's default: one thread per core); ``--torch-threads N`` sets each process's
torch threads (the learner's).

    python -m experiments.bench_side_by_side --config halfcheetah_vel --iterations 3 --output runs/side
    python -m experiments.bench_side_by_side --config halfcheetah_vel --iterations 3 --output runs/side-default --sampling-threads 2
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def launch(config: str, output: str, seed: int, iterations: int, sampling_threads: int | None,
           torch_threads: int | None) -> subprocess.Popen:
    """A ``metarl train`` process (with the sampler's or the process's torch threads replaced when asked)."""
    patch = "" if sampling_threads is None else f"import metarl.sampler as s; s.SAMPLING_TORCH_THREADS = {sampling_threads}; "
    if torch_threads is not None:
        patch += f"import torch; torch.set_num_threads({torch_threads}); "
    code = f"{patch}import sys; from metarl.cli import main; sys.exit(main(sys.argv[1:]))"
    args = ["train", "--config", config, "--output", output, "--seed", str(seed), "--iterations", str(iterations),
            "--no-progress", "--overwrite"]
    return subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.DEVNULL)


def run_all(runs: list[tuple[str, int]], config: str, iterations: int, sampling_threads: int | None,
            torch_threads: int | None) -> float:
    start = time.perf_counter()
    procs = [launch(config, out, seed, iterations, sampling_threads, torch_threads) for out, seed in runs]
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
    p.add_argument("--output", required=True, help="directory for the three runs (replaced)")
    p.add_argument("--sampling-threads", type=int, help="torch threads of the sampler's policy calls (default: metarl's)")
    p.add_argument("--torch-threads", type=int, help="torch threads of each process, i.e. of the learner (default: torch's)")
    args = p.parse_args()
    config = os.path.join(HERE, "configs", f"{args.config}.yaml")
    if os.path.exists(args.output):
        shutil.rmtree(args.output)
    lone, a, b = (os.path.join(args.output, name) for name in ("lone", "pair-a", "pair-b"))
    load = os.getloadavg()[0]
    run_all([(lone, 0)], config, args.iterations, args.sampling_threads, args.torch_threads)
    run_all([(a, 1), (b, 2)], config, args.iterations, args.sampling_threads, args.torch_threads)
    threads = "metarl's setting" if args.sampling_threads is None else f"{args.sampling_threads} torch threads"
    learner = "torch's default" if args.torch_threads is None else str(args.torch_threads)
    print(f"{args.config}: {args.iterations} iterations per run, sampler policy calls on {threads}, learner threads {learner}, "
          f"{os.cpu_count()} cpus, load average {load:.1f} before, {os.getloadavg()[0]:.1f} after")
    base = timings(lone)
    print(f"  {'run':8s} {'s/iteration':>12s} {'speed vs lone':>14s} {'physics s':>10s} {'policy s':>9s} {'policy/physics':>15s}")
    for name, path in (("lone", lone), ("pair-a", a), ("pair-b", b)):
        t = timings(path)
        print(f"  {name:8s} {t['iteration']:12.2f} {100 * base['iteration'] / t['iteration']:13.0f}% "
              f"{t['env']:10.2f} {t['policy']:9.2f} {100 * t['policy'] / t['env']:14.1f}%")


if __name__ == "__main__":
    main()
