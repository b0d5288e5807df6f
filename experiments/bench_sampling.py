"""Policy calls while sampling, against the physics, with the sampler's per-step call and with a reference.

One sampling pass of a config's meta-batch (T tasks x E episodes, task-batched parameters, as after the
inner step) is timed with the sampler's per-step call (``GaussianMLPPolicy.sampling_step``: the set-up taken
once per pass, the noise scaled in one multiply, every layer written into buffers kept for the pass), with
the former per-step call (the set-up once per pass, but the noise scaled and the layers' outputs allocated
at every step) and with the reference that calls ``policy.sample`` at every step, in alternating order,
``--repeat`` times each, on the sampler's torch threads.  It prints each one's median policy and physics
seconds and their ratio (the goal for the released configs: policy time <= 10% of the physics with a
competing process), and checks that all three give the same episodes.  It also replays the sampler's calls
of each pass on that pass's observations with no physics between the steps (``replay``): against the
pass's policy time, which also holds the pass's set-up (its noise, the parameters' copies) and the per-step
writes of observations, rewards and the alive mask, it bounds what the physics between two calls costs them.
``--competitor`` runs a ``metarl train`` of the same config in ``OUTPUT/competitor`` beside it for the whole
measurement (the same niceness as the bench, torch's default threads), the busy machine of a user who
trains one seed while sampling another; it is stopped when the measurement ends, however it ends (Ctrl-C,
SIGTERM and SIGHUP included).  ``--output`` must be new, empty or this script's own from an earlier run
(the run in it is replaced).

    python -m experiments.bench_sampling --config halfcheetah_vel --repeat 4
    python -m experiments.bench_sampling --config halfcheetah_vel --repeat 4 --competitor --output runs/bench-sampling
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

if __package__ in (None, ""):  # run as a file (python experiments/NAME.py): the repository root, as for -m
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from experiments import config_path, positive
from metarl.config import load_config
from metarl.environment import make_env
from metarl.policy import GaussianMLPPolicy, Params
from metarl.sampler import SAMPLING_TORCH_THREADS, rollout, task_noise, task_noise_seeds, torch_threads



class PerCallPolicy(GaussianMLPPolicy):
    """The reference: ``policy.sample`` at every step, its set-up repeated in each call."""

    def sampling_step(self, params: Params, noise: torch.Tensor) -> Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor]:
        return lambda t, obs, out: out.copy_(self.sample(params, obs, noise[t]))


class FormerStepPolicy(GaussianMLPPolicy):
    """The sampler's per-step call before 2026-12-01: ``exp(log_std)`` and the biases' shapes taken once per
    pass, but the noise scaled and every layer's output allocated at each step, the actions then copied into
    the sampler's buffer."""

    def sampling_step(self, params: Params, noise: torch.Tensor) -> Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor]:
        weights = [params[f"w{i}"] for i in range(self.num_layers)]
        biases = [params[f"b{i}"].unsqueeze(1) for i in range(self.num_layers)]
        log_std = params["log_std"]
        std = torch.exp(log_std.unsqueeze(1) if log_std.dim() == 2 else log_std)
        last = self.num_layers - 1

        def step(t: int, obs: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
            h = obs
            for i, (w, b) in enumerate(zip(weights, biases)):
                h = torch.baddbmm(b, h, w)
                if i < last:
                    h.relu_()
            return out.copy_(h.add_(std * noise[t]))

        return step


def replay(policy: GaussianMLPPolicy, params: Params, episodes: dict[str, torch.Tensor],
           noise: torch.Tensor) -> tuple[float, bool]:
    """The sampler's per-step calls of one pass run again on the pass's own observations, one step after the
    other with no physics between them: their seconds, and whether they give the pass's actions (on every
    step an episode was running).  Only the steps the pass called the policy for are replayed: up to the
    last one on which an episode was still running, where the sampler's loop stops."""
    obs = episodes["obs"].permute(2, 0, 1, 3).contiguous()  # [H, T, E, obs]
    ran = episodes["mask"].permute(2, 0, 1).bool()  # [H, T, E]
    called = int(ran.flatten(1).any(1).nonzero().max()) + 1 if bool(ran.any()) else 0
    actions = torch.zeros(*obs.shape[:3], noise.shape[-1], dtype=obs.dtype)
    with torch.no_grad():
        step = policy.sampling_step({k: v.detach() for k, v in params.items()}, noise)
        start = time.perf_counter()
        for t in range(called):
            step(t, obs[t], actions[t])
        seconds = time.perf_counter() - start
    return seconds, torch.equal(actions[ran], episodes["actions"].permute(2, 0, 1, 3)[ran])


MARKER = ".bench_sampling"  # marks an --output this script made, the only kind whose competing run it replaces


def claim_output(parser: argparse.ArgumentParser, output: str) -> None:
    """``output`` is new, empty or this script's own; then marked as its own.  Anything else is a usage error."""
    if os.path.exists(output) and not os.path.isdir(output):
        parser.error(f"--output: {output!r} is a file; give a directory for the competing run")
    if os.path.isdir(output) and os.listdir(output) and not os.path.isfile(os.path.join(output, MARKER)):
        parser.error(f"--output: {output!r} holds files this script did not write (its competing run would replace "
                     "a run there); give a new or empty directory")
    try:
        os.makedirs(output, exist_ok=True)
        with open(os.path.join(output, MARKER), "w") as fh:
            fh.write("made by experiments/bench_sampling.py --competitor; its competitor/ run is replaced by the next\n")
    except OSError as exc:
        parser.error(f"--output: cannot write to {output!r} ({exc.strerror or exc}); choose a writable directory")


def _stop(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default="halfcheetah_vel", help="config name in experiments/configs (default halfcheetah_vel)")
    p.add_argument("--repeat", type=int, default=4, help="passes of each call, alternating (default 4)")
    p.add_argument("--competitor", action="store_true", help="train the same config in another process meanwhile")
    p.add_argument("--output", help="folder for the competitor's run (required with --competitor): new, empty or "
                   "this script's own, whose competing run is then replaced")
    args = p.parse_args(argv)
    positive(p, repeat=args.repeat)
    if args.competitor and not args.output:
        p.error("--output: required with --competitor (the competing training run writes there)")
    if args.competitor:
        claim_output(p, args.output)
    path = config_path(p, args.config)
    cfg = load_config(path)
    T, E = cfg.algo.num_tasks, cfg.algo.episodes_per_task
    env = make_env(cfg.env, T * E)
    obs_dim, act_dim = env.single_observation_space.shape[0], env.single_action_space.shape[0]
    gen = torch.Generator().manual_seed(0)
    new = GaussianMLPPolicy(obs_dim, act_dim, cfg.policy.hidden_sizes, cfg.policy.init_std)
    former = FormerStepPolicy(obs_dim, act_dim, cfg.policy.hidden_sizes, cfg.policy.init_std)
    ref = PerCallPolicy(obs_dim, act_dim, cfg.policy.hidden_sizes, cfg.policy.init_std)
    shared = new.init_params(gen)
    # task-batched parameters, each task's a little different (as after the inner step)
    params = {k: v.unsqueeze(0) + 0.01 * torch.randn(T, *v.shape, generator=gen) for k, v in shared.items()}
    tasks = env.sample_tasks(T, np.random.default_rng(0))
    noise_seeds = task_noise_seeds(gen, T)
    competitor = None
    handlers: dict[int, Any] = {}
    times: dict[str, list[tuple[float, float]]] = {"sampling_step (the sampler's)": [], "former sampling_step": [],
                                                   "policy.sample per call (reference)": []}
    outs = {}
    replays: list[tuple[float, bool]] = []
    noise = task_noise(noise_seeds, E, env.horizon, act_dim, torch.float32)
    try:
        if args.competitor:
            # metarl train's own --overwrite checks decide whether --output may be replaced (never a locked run)
            started = time.time()
            run_dir = os.path.join(args.output, "competitor")
            for sig in (signal.SIGTERM, signal.SIGHUP):  # as Ctrl-C: through the finally below, which stops it
                if signal.getsignal(sig) is not signal.SIG_IGN:  # SIGHUP under nohup stays ignored
                    handlers[sig] = signal.signal(sig, _stop)
            competitor = subprocess.Popen([sys.executable, "-m", "metarl.cli", "train", "--config", path, "--output",
                                           run_dir, "--iterations", "1000000", "--no-progress", "--overwrite"],
                                          stdout=subprocess.DEVNULL, start_new_session=True)  # stopped from here only
            # measure once it is past its start-up: its first iteration written (or it stopped)
            deadline = time.monotonic() + 300
            progress = os.path.join(run_dir, "progress.csv")

            def iterated() -> bool:  # this run's progress.csv, not one an earlier run left there
                return os.path.isfile(progress) and os.path.getmtime(progress) >= started

            while not iterated() and competitor.poll() is None and time.monotonic() < deadline:
                time.sleep(0.5)
            if competitor.poll() is not None:
                print(f"--competitor: the training run stopped (exit code {competitor.returncode}) before the "
                      f"measurement; its message is above", file=sys.stderr)
                return 2
            if not iterated():
                print("warning: the competing run has not finished an iteration in 300 s; measuring anyway", file=sys.stderr)
        print(f"{args.config}: {T} tasks x {E} episodes x {env.horizon} steps, sampler torch threads "
              f"{SAMPLING_TORCH_THREADS}, competitor: {'a training run of the same config' if competitor else 'none'}, "
              f"load average {os.getloadavg()[0]:.1f}")
        with torch_threads(SAMPLING_TORCH_THREADS):
            for r in range(args.repeat):
                order = list(zip(times, (new, former, ref)))
                for name, policy in order if r % 2 == 0 else order[::-1]:
                    out, timing = rollout(env, policy, params, tasks, E, 0, noise_seeds, torch.float32)
                    times[name].append((timing["policy"], timing["env"]))
                    outs[name] = out
                    if policy is new:
                        replays.append(replay(new, params, out, noise))
    finally:
        for sig in (*handlers, signal.SIGINT):  # a second signal must not cut the competitor's stop short
            handlers.setdefault(sig, signal.getsignal(sig))
            signal.signal(sig, signal.SIG_IGN)
        if competitor is not None and competitor.poll() is None:
            competitor.terminate()  # SIGTERM: metarl train saves its checkpoint and stops
            try:
                competitor.wait(timeout=120)
            except subprocess.TimeoutExpired:
                competitor.kill()
                competitor.wait()
        for sig, handler in handlers.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)  # None: a handler not set from Python
    for name, pairs in times.items():
        pol, phys = (float(np.median([pair[i] for pair in pairs])) for i in (0, 1))
        shares = ", ".join(f"{a / b:.1%}" for a, b in pairs)
        print(f"  {name:38s} policy {pol:6.3f} s  physics {phys:6.3f} s  share {pol / phys:6.1%}  (passes: {shares})")
    seconds = float(np.median([r[0] for r in replays]))
    phys = float(np.median([pair[1] for pair in times["sampling_step (the sampler's)"]]))
    print(f"  {'the same calls, no physics between':38s} policy {seconds:6.3f} s  (the sampler's calls replayed on "
          f"the passes' observations; {seconds / phys:.1%} of the physics above)")
    first, *others = outs.values()
    same = all(torch.equal(first[k], other[k]) for other in others for k in first)
    replayed = all(r[1] for r in replays)
    print(f"  same episodes: {same}; replayed calls give the passes' actions: {replayed}")
    return 0 if same and replayed else 1


if __name__ == "__main__":
    sys.exit(main())
