"""Meta-training runs: the loop, logging, checkpoints, resume and interruption.

One meta-iteration::

    tasks   = env.sample_tasks(T, rng)
    D_0     = sample(theta, tasks)                         # pre-adaptation episodes
    for k in 1 .. K-1:                                     # more inner steps, fresh episodes for each
        D_k = sample(adapt(theta; D_0 .. D_k-1), tasks)
    theta'  = adapt(theta; D_0 .. D_K-1)
    D'      = sample(theta', tasks)                        # post-adaptation episodes
    theta   = TRPO meta-update(theta; D_0 .. D_K-1, D')    # metarl.maml.MAMLTRPO.meta_update
    log scalars (TensorBoard + progress.csv)
    write checkpoints/latest.pt; iter_NNNNNN.pt every `checkpoint_every`; best.pt on a new best
          post-adaptation return (the paper kept the best)

Run directory: ``config.yaml`` (resolved config), ``progress.csv``, ``tensorboard/``, ``checkpoints/``.
``latest.pt`` always holds the state at the start of the next iteration (parameters, RNG streams,
counters), so ``--resume`` continues exactly where an interrupted run would have gone on.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from metarl.baseline import LinearFeatureBaseline
from metarl.checkpoint import CheckpointError, check_compatible, load_checkpoint, save_checkpoint
from metarl.config import ConfigError, TrainConfig, from_dict, save_config, to_dict
from metarl.environment import make_env
from metarl.logger import RunLogger
from metarl.maml import MAMLTRPO
from metarl.policy import GaussianMLPPolicy, Params
from metarl.sampler import Sampler

DTYPES = {"float32": torch.float32, "float64": torch.float64}


class TrainingInterrupted(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by signal {signal.Signals(signum).name}")
        self.signum = signum


def resolve_device(name: str) -> torch.device:
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"config field 'device': {name!r} requested but CUDA is not available here; use --device cpu")
    return torch.device(name)


@dataclass
class RunState:
    """Everything a resumed run needs, at an iteration boundary."""

    iteration: int
    params: Params
    np_rng: dict
    torch_rng: torch.Tensor
    env_steps: int
    best_return: float
    best_iteration: int


def saved_run(run_dir: str) -> tuple[TrainConfig, dict]:
    """The saved config and ``latest.pt`` state of a run directory, or a clear error."""
    if not os.path.isdir(run_dir):
        raise CheckpointError(f"--resume: run directory {os.path.abspath(run_dir)!r} does not exist; start a new run without --resume")
    saved = load_checkpoint(os.path.join(run_dir, "checkpoints", "latest.pt"))
    return from_dict(saved["config"]).validate(), saved


class Trainer:
    """Runs MAML-TRPO for ``cfg.iterations`` meta-iterations into ``run_dir``; see the module docstring."""

    def __init__(self, cfg: TrainConfig, run_dir: str, resume: bool = False, overwrite: bool = False) -> None:
        self.run_dir = os.path.abspath(run_dir)
        self.ckpt_dir = os.path.join(self.run_dir, "checkpoints")
        saved: dict | None = None
        if resume:
            saved_cfg, saved = saved_run(self.run_dir)
            # only the length of the run and the device may change on resume
            saved_cfg.iterations, saved_cfg.device = cfg.iterations, cfg.device
            saved_cfg.progress_bar = cfg.progress_bar
            cfg = saved_cfg
        elif os.path.exists(self.run_dir) and os.listdir(self.run_dir):
            if not overwrite:
                raise FileExistsError(
                    f"--output: run directory {self.run_dir!r} already holds a run; pass --resume to continue it, "
                    "--overwrite to delete and replace it, or choose another --output"
                )
            shutil.rmtree(self.run_dir)
        self.cfg = cfg.validate()
        self.device = resolve_device(cfg.device)
        self.dtype = DTYPES[cfg.dtype]
        a = cfg.algo
        self.env = make_env(cfg.env, a.num_tasks * a.episodes_per_task)
        obs_dim = self.env.single_observation_space.shape[0]
        act_dim = self.env.single_action_space.shape[0]
        self.policy = GaussianMLPPolicy(obs_dim, act_dim, cfg.policy.hidden_sizes, cfg.policy.init_std)
        self.maml = MAMLTRPO(self.policy, LinearFeatureBaseline(a.baseline_reg), a)
        self.sampler = Sampler(self.env, self.policy, a.num_tasks, a.episodes_per_task, self.device, self.dtype)
        self.generator = torch.Generator()
        if saved is not None:
            check_compatible(saved, obs_dim, act_dim, cfg.policy.hidden_sizes, cfg.env.id)
            self.state = RunState(
                saved["iteration"], {k: v.to(self.device, self.dtype) for k, v in saved["params"].items()},
                saved["np_rng"], saved["torch_rng"], saved["env_steps"], saved["best_return"], saved["best_iteration"],
            )
        else:
            self.generator.manual_seed(cfg.seed)
            params = {k: v.to(self.device) for k, v in self.policy.init_params(self.generator, self.dtype).items()}
            rng = np.random.default_rng(cfg.seed)
            self.state = RunState(0, params, dict(rng.bit_generator.state), self.generator.get_state(), 0, -float("inf"), -1)
        os.makedirs(self.ckpt_dir, exist_ok=True)
        save_config(self.cfg, os.path.join(self.run_dir, "config.yaml"))
        self._critical = False
        self._pending_signal: int | None = None
        self._eval: tuple[Any, Any, np.ndarray] | None = None

    # ---- one meta-iteration --------------------------------------------------------------------
    def iterate(self, state: RunState) -> tuple[RunState, dict[str, float]]:
        """Run one meta-iteration from ``state``; returns the next state and the logged scalars."""
        a = self.cfg.algo
        rng = np.random.default_rng()
        rng.bit_generator.state = state.np_rng
        self.generator.set_state(state.torch_rng)
        theta = state.params
        t_start = time.perf_counter()
        tasks = self.env.sample_tasks(a.num_tasks, rng)
        seeds = rng.integers(0, 2**31 - 1, size=a.inner_steps + 1)

        inner, explained = [], []
        batch = self.sampler.sample(theta, tasks, int(seeds[0]), self.generator)
        pre_batch = batch
        sampling = batch.timings["env"] + batch.timings["policy"]
        for k in range(a.inner_steps):
            data, ev = self.maml.advantages(batch)
            inner.append(data)
            explained.append(ev)
            adapted = self.maml.adapt(theta, inner, create_graph=False)
            batch = self.sampler.sample(adapted, tasks, int(seeds[k + 1]), self.generator)
            sampling += batch.timings["env"] + batch.timings["policy"]
        post, ev_post = self.maml.advantages(batch)
        new_theta, stats = self.maml.meta_update(theta, inner, post, self.generator)
        t_end = time.perf_counter()

        pre_return = float(pre_batch.average_return().mean())
        post_return = float(batch.average_return().mean())
        env_steps = state.env_steps + sum(d.batch.env_steps for d in inner) + batch.env_steps
        best = post_return > state.best_return
        scalars = {
            "return/pre_adaptation": pre_return,
            "return/post_adaptation": post_return,
            "return/adaptation_gain": post_return - pre_return,
            "trpo/kl_before": stats["kl_before"],
            "trpo/kl_after": stats["kl_after"],
            "trpo/surrogate_improvement": stats["surrogate_improvement"],
            "trpo/line_search_steps": stats["line_search_steps"],
            "trpo/accepted": stats["accepted"],
            "trpo/grad_norm": stats["grad_norm"],
            "policy/std": float(torch.exp(new_theta["log_std"]).mean()),
            "baseline/explained_variance_pre": explained[0],
            "baseline/explained_variance_post": ev_post,
            "env_steps": float(env_steps),
            "time/sampling": sampling,
            "time/env": pre_batch.timings["env"] + batch.timings["env"],
            "time/optimizing": (t_end - t_start) - sampling,
            "time/iteration": t_end - t_start,
        }
        nxt = RunState(
            state.iteration + 1, new_theta, dict(rng.bit_generator.state), self.generator.get_state(), env_steps,
            post_return if best else state.best_return, state.iteration if best else state.best_iteration,
        )
        return nxt, scalars

    def periodic_evaluation(self, params: Params) -> dict[str, float]:
        """A cheap adaptation curve (``eval_tasks`` fixed tasks, ``eval_steps`` steps) with its own RNG streams."""
        from metarl import evaluation as ev

        if self._eval is None:
            settings = ev.protocol_settings(self.cfg, "maml", False, self.cfg.algo.inner_step_size,
                                            steps=self.cfg.eval_steps, episodes=self.cfg.algo.episodes_per_task,
                                            num_tasks=self.cfg.eval_tasks, seed=self.cfg.seed, device=str(self.device))
            env = ev.make_eval_env(settings)
            self._eval = (settings, env, ev.evaluation_tasks(env, settings))
        settings, env, tasks = self._eval
        curve = ev.adaptation_curve(self.policy, params, tasks, settings, env=env).mean(axis=0)
        return {f"eval/return_after_{k}_steps": float(v) for k, v in enumerate(curve)}

    def _eval_columns(self, state: RunState) -> dict[str, float]:
        if not self.cfg.eval_every:
            return {}
        if state.iteration % self.cfg.eval_every == 0:  # state: after its update; iteration = completed count
            return self.periodic_evaluation(state.params)
        return {f"eval/return_after_{k}_steps": float("nan") for k in range(self.cfg.eval_steps + 1)}

    # ---- the run ---------------------------------------------------------------------------------
    def train(self) -> RunState:
        """Run until ``cfg.iterations``; on SIGINT/SIGTERM save and raise :class:`TrainingInterrupted`."""
        logger = RunLogger(self.run_dir, start_iteration=self.state.iteration)
        handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        for s in handlers:
            signal.signal(s, self._on_signal)
        bar = tqdm(total=self.cfg.iterations, initial=self.state.iteration, disable=not self.cfg.progress_bar,
                   desc="meta-training", unit="it")
        try:
            while self.state.iteration < self.cfg.iterations:
                nxt, scalars = self.iterate(self.state)
                scalars.update(self._eval_columns(nxt))
                with self._critical_section():
                    logger.log(self.state.iteration, scalars)
                    best = self.state.params if nxt.best_iteration == self.state.iteration else None
                    self._save(nxt, best_params=best)
                    self.state = nxt
                bar.update(1)
                bar.set_postfix(pre=f"{scalars['return/pre_adaptation']:.1f}",
                                post=f"{scalars['return/post_adaptation']:.1f}")
        except TrainingInterrupted:
            with self._critical_section():
                self._save(self.state)
            raise
        finally:
            bar.close()
            logger.close()
            for s, h in handlers.items():
                signal.signal(s, h)
        return self.state

    def _save(self, state: RunState, best_params: Params | None = None) -> None:
        """Write latest.pt (and iter_N.pt on schedule); ``best_params`` also go to best.pt.

        The best post-adaptation return of an iteration was sampled with the parameters at its start,
        so those, not the updated ones, are what best.pt keeps.
        """
        payload = {
            "iteration": state.iteration,
            "params": {k: v.detach().cpu() for k, v in state.params.items()},
            "np_rng": state.np_rng,
            "torch_rng": state.torch_rng,
            "env_steps": state.env_steps,
            "best_return": state.best_return,
            "best_iteration": state.best_iteration,
            "config": to_dict(self.cfg),
            "env_id": self.cfg.env.id,
            "env_kwargs": dict(self.cfg.env.kwargs),
            "obs_dim": self.policy.obs_dim,
            "act_dim": self.policy.act_dim,
            "hidden_sizes": list(self.policy.hidden_sizes),
        }
        save_checkpoint(os.path.join(self.ckpt_dir, "latest.pt"), payload)
        if state.iteration % self.cfg.checkpoint_every == 0:
            save_checkpoint(os.path.join(self.ckpt_dir, f"iter_{state.iteration:06d}.pt"), payload)
        if best_params is not None:
            best = dict(payload, params={k: v.detach().cpu() for k, v in best_params.items()},
                        iteration=state.best_iteration)
            save_checkpoint(os.path.join(self.ckpt_dir, "best.pt"), best)

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self._critical:
            self._pending_signal = signum
            return
        raise TrainingInterrupted(signum)

    class _Critical:
        def __init__(self, trainer: "Trainer") -> None:
            self.t = trainer

        def __enter__(self) -> None:
            self.t._critical = True

        def __exit__(self, *exc: Any) -> None:
            self.t._critical = False
            if self.t._pending_signal is not None and exc[0] is None:
                signum, self.t._pending_signal = self.t._pending_signal, None
                raise TrainingInterrupted(signum)

    def _critical_section(self) -> "Trainer._Critical":
        return Trainer._Critical(self)
