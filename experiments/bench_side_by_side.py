"""Two training runs side by side on one machine, against a lone run of the same config.

Runs ``metarl train`` on the config alone, then two copies at once (different seeds), and reports each
run's mean seconds per meta-iteration and its speed as a fraction of the lone run's (goal: each >= 45%
with two runs on the machine's cores), and the policy calls' time while sampling against the physics
time (goal: <= 10% with a competing process).

By default it does this for two OpenMP settings in the same invocation, in alternating order over
``--rounds``: OpenMP's defaults (idle threads spin 300,000 rounds before they sleep; ``METARL_SET_OPENMP=0``)
and metarl's (``GOMP_SPINCOUNT=10000``, set when ``metarl`` is imported: metarl/threads.py), so that they
are compared on the same machine in the same minutes; ``--wait-policy`` picks the list (``passive``:
``OMP_WAIT_POLICY=PASSIVE``, idle threads sleep at once).  ``--sampling-threads N`` runs the sampler's policy calls on N
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

if __package__ in (None, ""):  # run as a file (python experiments/NAME.py): the repository root, as for -m
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from experiments import config_path, positive
from metarl import threads

MARKER = ".bench_side_by_side"  # marks an --output this script wrote, the only kind it replaces

POLICIES = {"openmp": "OpenMP's defaults (spin 300000, sleep)", "metarl": "metarl's (GOMP_SPINCOUNT=10000)",
            "passive": "OMP_WAIT_POLICY=PASSIVE (sleep at once)"}
# what each policy puts in a run's environment, after removing any OMP_WAIT_POLICY, GOMP_SPINCOUNT and metarl's switch
POLICY_ENV = {"openmp": {threads.ENV_VAR: "0"}, "metarl": {}, "passive": {threads.WAIT_VAR: "PASSIVE"}}


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
    env = {k: v for k, v in os.environ.items() if k not in (threads.WAIT_VAR, threads.ENV_VAR, threads.SPIN_VAR)}
    env.update(POLICY_ENV[policy])
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
    p.add_argument("--rounds", type=int, default=2,
                   help="rounds of every policy, in alternating order (A B, B A, ...) so that drift falls on both")
    p.add_argument("--output", required=True,
                   help="directory for the runs (new or empty; one this script wrote before is replaced)")
    p.add_argument("--sampling-threads", type=int, help="torch threads of the sampler's policy calls (default: metarl's)")
    p.add_argument("--torch-threads", type=int, help="torch threads of each process, i.e. of the learner (default: torch's)")
    p.add_argument("--wait-policy", default="openmp,metarl",
                   help=f"comma-separated OpenMP wait policies to compare, of {', '.join(POLICIES)} (default: openmp,metarl)")
    args = p.parse_args()
    positive(p, iterations=args.iterations, rounds=args.rounds, sampling_threads=args.sampling_threads,
             torch_threads=args.torch_threads)
    policies = [w.strip() for w in args.wait_policy.split(",") if w.strip()]
    if not policies or any(w not in POLICIES for w in policies):
        p.error(f"--wait-policy: {args.wait_policy!r} is not a comma-separated list of {', '.join(POLICIES)}")
    config = config_path(p, args.config)
    if os.path.islink(os.path.normpath(args.output)):  # removing its runs would follow the link or fail on it
        p.error(f"--output: {args.output!r} is a symbolic link to {os.path.realpath(args.output)!r}; give that folder itself")
    if os.path.exists(args.output):
        if not os.path.isdir(args.output):
            p.error(f"--output: {args.output!r} is a file; give a directory for the runs")
        if os.listdir(args.output) and not os.path.isfile(os.path.join(args.output, MARKER)):
            p.error(f"--output: {args.output!r} holds files this script did not write; give a new or empty directory")
        shutil.rmtree(args.output)
    os.makedirs(args.output)
    with open(os.path.join(args.output, MARKER), "w") as fh:
        fh.write("runs of experiments/bench_side_by_side.py; replaced by its next run with this --output\n")
    load = os.getloadavg()[0]
    dirs: dict[str, list[dict[str, str]]] = {policy: [] for policy in policies}
    for r in range(args.rounds):
        for policy in (policies if r % 2 == 0 else policies[::-1]):
            lone, a, b = (os.path.join(args.output, f"round{r}", policy, name) for name in ("lone", "pair-a", "pair-b"))
            run_all([(lone, 0)], config, args.iterations, args.sampling_threads, args.torch_threads, policy)
            run_all([(a, 1), (b, 2)], config, args.iterations, args.sampling_threads, args.torch_threads, policy)
            dirs[policy].append({"lone": lone, "pair-a": a, "pair-b": b})
    sampler = "metarl's setting" if args.sampling_threads is None else f"{args.sampling_threads} torch threads"
    learner = "torch's default" if args.torch_threads is None else str(args.torch_threads)
    omp = " ".join(f"{k}={v}" for k, v in sorted(os.environ.items())
                   if k.startswith(("OMP_", "GOMP_", "KMP_")) and k not in (threads.WAIT_VAR, threads.SPIN_VAR)) or "none"
    print(f"{args.config}: {args.iterations} iterations per run, {args.rounds} round(s), sampler policy calls on "
          f"{sampler}, learner threads {learner}, {os.cpu_count()} cpus, other OpenMP variables: {omp}, "
          f"load average {load:.1f} before, {os.getloadavg()[0]:.1f} after")
    print(f"  {'wait policy':38s} {'round':>5s} {'run':7s} {'s/iteration':>11s} {'vs own lone':>11s} "
          f"{'physics s':>9s} {'policy s':>8s} {'policy/physics':>14s}")
    measured = {policy: [{name: timings(path) for name, path in runs.items()} for runs in rounds]
                for policy, rounds in dirs.items()}
    for policy, rounds in measured.items():
        for r, runs in enumerate(rounds):
            base = runs["lone"]["iteration"]
            for name, t in runs.items():
                print(f"  {POLICIES[policy]:38s} {r:5d} {name:7s} {t['iteration']:11.2f} {100 * base / t['iteration']:10.0f}% "
                      f"{t['env']:9.2f} {t['policy']:8.2f} {100 * t['policy'] / t['env']:13.1f}%")
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    lone = {p: mean([r["lone"]["iteration"] for r in rounds]) for p, rounds in measured.items()}
    pair = {p: mean([r[n]["iteration"] for r in rounds for n in ("pair-a", "pair-b")]) for p, rounds in measured.items()}
    fastest = min(lone.values())
    print("  mean over rounds: s/iteration alone, side by side, and a run's speed side by side against the fastest lone mean")
    for policy in dirs:
        print(f"  {POLICIES[policy]:38s} lone {lone[policy]:6.2f} s   side by side {pair[policy]:6.2f} s   "
              f"{100 * fastest / pair[policy]:4.0f}%")


if __name__ == "__main__":
    main()
