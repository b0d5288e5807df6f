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
import shlex
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch
from tqdm import tqdm

from metarl.algorithms import algorithm_state, initial_params, load_algorithm_state, make_algorithm
from metarl.baseline import LinearFeatureBaseline
from metarl.checkpoint import CheckpointError, check_compatible, check_resume_state, load_policy_checkpoint, save_checkpoint
from metarl.config import (ConfigError, TrainConfig, check_device, from_dict, read_config_file, resume_flags, save_config,
                           to_dict)
from metarl.environment import check_named_imports, env_dims, make_env, sample_tasks
from metarl.errors import RunError, os_error_message
from metarl.logger import RunLogger, kept_rows
from metarl.memory import keep_freed_memory
from metarl.policy import GaussianMLPPolicy, Params
from metarl.rundir import RunDirectory
from metarl.sampler import make_sampler, sampler_env_slots

DTYPES = {"float32": torch.float32, "float64": torch.float64}


class TrainingInterrupted(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by signal {signal.Signals(signum).name}")
        self.signum = signum
        self.resume_command = ""  # set by the trainer once the checkpoint is saved


def resolve_device(name: str, where: str = "config field 'device'") -> torch.device:
    """The torch device ``name`` (``cpu``, ``cuda``, ``cuda:N``), or a :class:`ConfigError` naming ``where`` it came from."""
    check_device(name, where)
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"{where}: {name!r} requested but CUDA is not available here; use --device cpu")
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
    baseline_state: torch.Tensor | None = None  # the baseline's last fit (algo.baseline_fit: previous_batch)
    algo_state: dict = field(default_factory=dict)  # the outer optimiser's (Adam moments, ProMP's KL coefficients)


# fields a resumed run may change; everything else must match the run's saved config
RESUMABLE_FIELDS = ("iterations", "device", "progress_bar")
RESUMABLE_KEYS = ("sampler.address",)  # the Ray cluster a resumed run joins is the user's choice (--ray-address)


def _refuse_restart_over_saved_work(run_dir: str) -> None:
    """A run without ``latest.pt`` resumes from iteration 0 only when it saved no checkpoint yet (killed before
    its first one): with other checkpoints, starting over would overwrite them, so that is refused with the way back."""
    ckpt_dir = os.path.join(run_dir, "checkpoints")
    # latest.pt is written before the others, so these outlived it; a hidden .tmp-* file is a write cut short
    kept = sorted(f for f in os.listdir(ckpt_dir) if f.endswith(".pt") and not f.startswith(".")) if os.path.isdir(ckpt_dir) else []
    if not kept:
        return
    newest = [f for f in kept if f.startswith("iter_")]
    fix = (f"copy its newest checkpoint to it (cp {os.path.join(ckpt_dir, newest[-1])} {os.path.join(ckpt_dir, 'latest.pt')}) "
           "and resume again" if newest else "start a new --output")
    raise CheckpointError(
        f"--resume: {run_dir!r} has no checkpoints/latest.pt but holds other checkpoints ({', '.join(kept)}); "
        f"resuming would start the run over and overwrite them: {fix}"
    )


def saved_config(run_dir: str, saved: dict | None = None) -> TrainConfig:
    """The config a resume of ``run_dir`` continues with: its ``config.yaml``, else the config in ``latest.pt``
    (``saved``, when the caller has loaded it already).  Reads only."""
    config_path = os.path.join(run_dir, "config.yaml")
    latest = os.path.join(run_dir, "checkpoints", "latest.pt")
    if os.path.isfile(config_path):
        data = read_config_file(config_path, "--resume")
        if data is None:
            raise ConfigError(f"--resume: {config_path!r} is empty; restore the run's config.yaml (a copy of the run's "
                              "own, or delete it to resume from the config saved in checkpoints/latest.pt)")
        return from_dict(data).validate()
    if saved is None and os.path.isfile(latest):
        saved = load_policy_checkpoint(latest)
    if saved is not None:
        return from_dict(saved["config"]).validate()
    raise CheckpointError(
        f"--resume: {run_dir!r} holds neither config.yaml nor checkpoints/latest.pt; there is nothing to resume"
    )


def check_ray_address(sampler: Any, ray_address: str | None, run_dir: str) -> None:
    """Refuse to join the Ray cluster a saved run names unless the user names one (``--ray-address``)."""
    if ray_address is not None and not isinstance(ray_address, str):
        raise ConfigError(f"--ray-address (ray_address=): expected an address such as '10.0.0.1:6379', got {ray_address!r}")
    if sampler.backend != "ray" and ray_address is not None:
        raise ConfigError(f"--ray-address: the run in {run_dir!r} samples locally (sampler.backend: "
                          f"{sampler.backend}); drop --ray-address")
    if ray_address is None and sampler.address:  # a saved file never chooses the machines whose replies we unpickle
        raise ConfigError(
            f"config field 'sampler.address': the run in {run_dir!r} joined the Ray cluster at "
            f"{sampler.address!r}; a resumed run joins a cluster only when you name it (Ray runs code on its "
            f"workers and this process reads their replies): add --ray-address {shlex.quote(sampler.address)} to join it "
            "again, give another cluster's address, or --ray-address '' for $RAY_ADDRESS or a local Ray"
        )


def _warn_of_missing_rows(path: str, kept: tuple[list[str], list[dict[str, str]]] | None, done: int) -> None:
    """A line on stderr where ``progress.csv`` lacks rows of iterations the checkpoint has done (the file was cut
    or edited: metarl writes each row, flushed to disk, before the checkpoint of its iteration)."""
    have = {int(float(r["iteration"])) for r in kept[1]} if kept is not None else set()
    missing = [i for i in range(done) if i not in have]
    if missing:
        shown = f"{missing[0]}" if len(missing) == 1 else f"{missing[0]}-{missing[-1]}" if \
            missing[-1] - missing[0] == len(missing) - 1 else f"{len(missing)} iterations from {missing[0]}"
        print(f"metarl: warning: {path!r} has no row for iteration(s) {shown} of the {done} done (the file was cut "
              "short or edited); the run continues and its log keeps that gap (restore the file from a copy to keep "
              "those rows)", file=sys.stderr)


def saved_run(run_dir: str, run_id: str = "") -> tuple[TrainConfig, dict | None]:
    """The saved config of a run directory and its ``latest.pt`` state (None if the run has none yet).

    Refuses a checkpoint that belongs to another run (another run id, env, network or config).
    """
    latest = os.path.join(run_dir, "checkpoints", "latest.pt")
    saved = load_policy_checkpoint(latest) if os.path.isfile(latest) else None
    if saved is not None:
        check_resume_state(saved, latest)
    cfg = saved_config(run_dir, saved)
    if saved is None:
        _refuse_restart_over_saved_work(run_dir)
        return cfg, None
    if run_id and saved.get("run_id") and saved["run_id"] != run_id:
        raise CheckpointError(
            f"--resume: checkpoints/latest.pt in {run_dir!r} was written by another run (run id {saved['run_id']}, "
            f"this directory's is {run_id}; its env is {saved.get('env_id')!r}); put back this run's checkpoint "
            "(an iter_*.pt of this run copied to latest.pt) or start a new --output"
        )
    try:  # through the dataclasses, so that fields added to metarl since the run started take their defaults
        theirs = to_dict(from_dict(saved.get("config", {})))
    except ConfigError as exc:
        raise CheckpointError(f"--resume: checkpoints/latest.pt in {run_dir!r} carries a config this metarl cannot read ({exc})") from None
    differ = config_differences(to_dict(cfg), theirs)
    if differ:
        shown = ", ".join(f"{k}: config.yaml {mine!r} vs checkpoint {saved_value!r}" for k, mine, saved_value in differ[:4])
        raise CheckpointError(
            f"--resume: checkpoints/latest.pt in {run_dir!r} does not belong to this run's config ({shown}); "
            "restore the run's own config.yaml and checkpoint, or start a new --output"
        )
    return cfg, saved  # the checkpoint's fit to the env is checked where the env is built (Trainer._build)


def config_differences(mine: dict, theirs: dict) -> list[tuple[str, Any, Any]]:
    """``(field, mine, theirs)`` for each dotted field (env kwargs as one) where two configs (``to_dict``) differ,
    leaving out those a resume may change (``RESUMABLE_FIELDS``, ``RESUMABLE_KEYS``): whether a checkpoint
    belongs to a run's config.yaml."""
    return [(k, _get(mine, k), _get(theirs, k)) for k in _flat_keys(mine)
            if k.split(".")[0] not in RESUMABLE_FIELDS and k not in RESUMABLE_KEYS and _get(mine, k) != _get(theirs, k)]


def _flat_keys(d: dict, prefix: str = "") -> list[str]:
    keys = []
    for k, v in d.items():
        keys.extend(_flat_keys(v, f"{prefix}{k}.") if isinstance(v, dict) and k != "kwargs" else [f"{prefix}{k}"])
    return keys


def _get(d: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(d, dict) or part not in d:
            return None
        d = d[part]
    return d


class Trainer:
    """Runs MAML-TRPO for ``cfg.iterations`` meta-iterations into ``run_dir``; see the module docstring.

    A new run (``resume=False``) needs an empty or missing ``run_dir`` (or ``overwrite`` for an earlier
    metarl run).  ``resume=True`` continues the run in ``run_dir`` with its saved config; only
    ``iterations``, ``device`` and ``progress_bar`` may change (from the keyword arguments, or from
    ``cfg`` when given).  The run directory is locked from construction until :meth:`train` returns
    or :meth:`close` is called.  A resumed run's plug-in modules (``env.imports``) are imported only if
    ``imports`` names them (see :func:`metarl.environment.check_named_imports`).
    """

    def __init__(self, cfg: TrainConfig | None, run_dir: str, resume: bool = False, overwrite: bool = False, *,
                 iterations: int | None = None, device: str | None = None, progress_bar: bool | None = None,
                 imports: Sequence[str] | None = None, ray_address: str | None = None) -> None:
        self.run_dir = os.path.abspath(run_dir)
        self.ckpt_dir = os.path.join(self.run_dir, "checkpoints")
        self.rundir: RunDirectory | None = None
        saved: dict | None = None
        if resume:
            if overwrite:
                raise ConfigError("--overwrite: cannot be combined with --resume (resume continues the run, overwrite deletes it)")
            RunDirectory.check_existing(self.run_dir)
            named = saved_config(self.run_dir)  # what a saved file would choose is refused before the run is touched
            check_named_imports(named.env, imports, f"the run in {self.run_dir!r}")
            check_ray_address(named.sampler, ray_address, self.run_dir)
            self.rundir = RunDirectory.open_existing(self.run_dir)
            try:
                cfg, saved = self._resumed_config(cfg, iterations, device, progress_bar, ray_address)
                check_named_imports(cfg.env, imports, f"the run in {self.run_dir!r}")  # as read under the lock
                progress = os.path.join(self.run_dir, "progress.csv")
                if os.path.exists(progress):  # damaged rows are refused before config.yaml is rewritten
                    done = saved["iteration"] if saved is not None else 0
                    _warn_of_missing_rows(progress, kept_rows(progress, done), done)
            except BaseException:
                self.close()
                raise
        else:
            if cfg is None:
                raise ConfigError("--config: required for a new run (e.g. experiments/configs/navigation2d_smoke.yaml)")
            for name, value in (("iterations", iterations), ("device", device), ("progress_bar", progress_bar)):
                if value is not None:
                    setattr(cfg, name, value)
            RunDirectory.check_new(self.run_dir, overwrite)
        try:
            self._build(cfg.validate(), saved)
            for sentence in self.cfg.algo.unused_settings():
                print(f"metarl: warning: {sentence}", file=sys.stderr)
            if self.rundir is None:
                self.rundir = RunDirectory.create(self.run_dir, overwrite=overwrite)
            self._write(lambda: save_config(self.cfg, os.path.join(self.run_dir, "config.yaml")), "config.yaml")
            self._write(lambda: os.makedirs(self.ckpt_dir, exist_ok=True), "checkpoints/")
        except BaseException:
            self.close()
            raise

    def _resumed_config(self, cfg: TrainConfig | None, iterations: int | None, device: str | None,
                        progress_bar: bool | None, ray_address: str | None = None) -> tuple[TrainConfig, dict | None]:
        assert self.rundir is not None
        saved_cfg, saved = saved_run(self.run_dir, self.rundir.run_id)
        check_ray_address(saved_cfg.sampler, ray_address, self.run_dir)
        if ray_address is not None:
            saved_cfg.sampler.address = ray_address
        done = saved["iteration"] if saved is not None else 0
        requested = iterations if iterations is not None else (cfg.iterations if cfg is not None else None)
        if requested is not None and (isinstance(requested, bool) or not isinstance(requested, int) or requested < 1):
            raise ConfigError(f"--iterations: expected a positive total number of meta-iterations, got {requested!r}; "
                              f"the run in {self.run_dir!r} has done {done} (pass a number above {done} to extend it)")
        if requested is not None and requested != saved_cfg.iterations and requested <= done:
            raise ConfigError(
                f"--iterations: the run in {self.run_dir!r} has already done {done} iterations, so "
                f"--iterations {requested} would not extend it; pass a number above {done}, or leave --iterations out "
                f"to finish its {saved_cfg.iterations}. Nothing was changed."
            )
        if requested is not None:
            saved_cfg.iterations = requested
        if device is not None or cfg is not None:
            saved_cfg.device = device if device is not None else cfg.device  # type: ignore[union-attr]
        if progress_bar is not None or cfg is not None:
            saved_cfg.progress_bar = progress_bar if progress_bar is not None else cfg.progress_bar  # type: ignore[union-attr]
        return saved_cfg, saved

    def _build(self, cfg: TrainConfig, saved: dict | None) -> None:
        keep_freed_memory()  # the learner's large temporaries reuse pages (metarl/memory.py); off with METARL_KEEP_FREED_MEMORY=0
        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        self.dtype = DTYPES[cfg.dtype]
        a = cfg.algo
        self.env = make_env(cfg.env, sampler_env_slots(cfg))  # T*E slots; with Ray 1 (dims, sample_tasks)
        obs_dim, act_dim = env_dims(self.env)
        self.policy = GaussianMLPPolicy(obs_dim, act_dim, cfg.policy.hidden_sizes, cfg.policy.init_std)
        # the learner named by algo.name (MAMLTRPO for maml_trpo); see metarl/algorithms.py
        self.maml = make_algorithm(a, self.policy, LinearFeatureBaseline(a.baseline_reg))
        self.sampler = make_sampler(cfg, self.env, self.policy, self.device, self.dtype)  # local or Ray workers
        self.generator = torch.Generator()
        if saved is not None:
            check_compatible(saved, obs_dim, act_dim, cfg.policy.hidden_sizes, cfg.env.id)
            self.state = RunState(
                saved["iteration"], {k: v.to(self.device, self.dtype) for k, v in saved["params"].items()},
                saved["np_rng"], saved["torch_rng"], saved["env_steps"], saved["best_return"], saved["best_iteration"],
                saved.get("baseline_state"),
                saved.get("algo_state", {}),
            )
        else:
            self.generator.manual_seed(cfg.seed)
            params = {k: v.to(self.device) for k, v in self.policy.init_params(self.generator, self.dtype).items()}
            params = initial_params(a, params)  # adds Meta-SGD step sizes when they are learned
            rng = np.random.default_rng(cfg.seed)
            self.state = RunState(0, params, dict(rng.bit_generator.state), self.generator.get_state(), 0, -float("inf"), -1)
        self._critical = False
        self._stopping = False
        self._pending_signal: int | None = None
        self._eval: tuple[Any, Any, np.ndarray] | None = None

    def _write(self, action: Callable[[], Any], what: str) -> Any:
        """Run a write into the run directory; a disk or permission failure becomes one clear RunError."""
        try:
            return action()
        except OSError as exc:
            raise RunError(os_error_message(exc, f"{what} in {self.run_dir}", f"`{self.resume_command()}`")) from None

    def resume_command(self) -> str:
        """The command that continues this run (with the plug-in modules and Ray cluster it needs named)."""
        cfg = getattr(self, "cfg", None)
        return f"metarl train --output {shlex.quote(self.run_dir)} --resume" + (resume_flags(cfg) if cfg else "")

    def close(self) -> None:
        """Stop the sampler's workers (Ray) and release the run directory's lock; done when :meth:`train` returns."""
        sampler = getattr(self, "sampler", None)
        try:
            if sampler is not None:
                sampler.close()  # stops Ray workers, and a Ray this run started; nothing for the local sampler
        finally:
            if self.rundir is not None:
                self.rundir.release()

    # ---- one meta-iteration --------------------------------------------------------------------
    def iterate(self, state: RunState) -> tuple[RunState, dict[str, float]]:
        """Run one meta-iteration from ``state``; returns the next state and the logged scalars."""
        a = self.cfg.algo
        rng = np.random.default_rng()
        rng.bit_generator.state = state.np_rng
        self.generator.set_state(state.torch_rng)
        theta = state.params
        self.maml.baseline.previous = None if state.baseline_state is None else state.baseline_state.clone()
        t_start = time.perf_counter()
        tasks = sample_tasks(self.env, a.num_tasks, rng)
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
        load_algorithm_state(self.maml, state.algo_state)  # the outer optimiser's state at this boundary
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
            **self._update_columns(stats),
            "policy/std": float(torch.exp(new_theta["log_std"]).mean()),
            "baseline/explained_variance_pre": explained[0],
            "baseline/explained_variance_post": ev_post,
            "env_steps": float(env_steps),
            "time/sampling": sampling,
            "time/env": pre_batch.timings["env"] + batch.timings["env"],
            "time/optimizing": (t_end - t_start) - sampling,
            "time/iteration": t_end - t_start,
        }
        scalars.update({k: v for k, v in stats.items() if k.startswith("algo/")})  # e.g. algo/clip_fraction
        nxt = RunState(
            state.iteration + 1, new_theta, dict(rng.bit_generator.state), self.generator.get_state(), env_steps,
            post_return if best else state.best_return, state.iteration if best else state.best_iteration,
            self.maml.baseline.previous,
            algorithm_state(self.maml),
        )
        return nxt, scalars

    def _update_columns(self, stats: dict[str, float]) -> dict[str, float]:
        """The outer update's scalars: ``trpo/*`` for MAML-TRPO (and Meta-SGD on it), ``outer/*`` for the
        Adam-based outer loops (ProMP, MAML-PPO), which have no line search."""
        keys = ["kl_before", "kl_after", "surrogate_improvement", "line_search_steps", "accepted", "grad_norm"]
        if self.cfg.algo.name == "maml_trpo":
            return {f"trpo/{k}": stats[k] for k in keys}
        return {f"outer/{k}": stats[k] for k in keys if k != "line_search_steps"}

    def periodic_evaluation(self, params: Params) -> dict[str, float]:
        """A cheap adaptation curve (``eval_tasks`` fixed tasks, ``eval_steps`` steps) with its own RNG streams."""
        from metarl import evaluation as ev

        if self._eval is None:
            settings = ev.protocol_settings(self.cfg, "maml", False, self.cfg.algo.inner_step_size,
                                            steps=self.cfg.eval_steps, episodes=self.cfg.algo.episodes_per_task,
                                            num_tasks=self.cfg.eval_tasks, seed=self.cfg.seed, device=str(self.device),
                                            batch_steps=0)  # exactly E episodes: a fixed cost per evaluation
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
        """Run until ``cfg.iterations``; on SIGINT/SIGTERM save and raise :class:`TrainingInterrupted`.

        The run directory's lock is released when this returns or raises.
        """
        try:
            return self._train()
        finally:
            self.close()

    def _train(self) -> RunState:
        self._stopping = False
        logger = self._write(lambda: RunLogger(self.run_dir, start_iteration=self.state.iteration), "progress.csv")
        main_thread = threading.current_thread() is threading.main_thread()
        handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)} if main_thread else {}
        for s in handlers:
            signal.signal(s, self._on_signal)
        bar = tqdm(total=self.cfg.iterations, initial=self.state.iteration, disable=not self.cfg.progress_bar,
                   desc="meta-training", unit="it")
        try:
            while self.state.iteration < self.cfg.iterations:
                nxt, scalars = self.iterate(self.state)
                scalars.update(self._eval_columns(nxt))
                with self._critical_section():
                    self._commit(logger, nxt, scalars)
                bar.update(1)
                bar.set_postfix(pre=f"{scalars['return/pre_adaptation']:.1f}",
                                post=f"{scalars['return/post_adaptation']:.1f}")
        except TrainingInterrupted as exc:
            self._stopping = True  # further signals while it saves and closes are ignored: it is stopping already
            with self._critical_section():
                self._write(lambda: self._save(self.state), "checkpoints")
            exc.resume_command = self.resume_command()
            raise
        finally:
            self._stopping = True  # ours stays installed while closing, ignoring signals, then the old ones return
            try:
                bar.close()
                logger.close()
            finally:
                for s, h in handlers.items():
                    signal.signal(s, h)
        return self.state

    def _commit(self, logger: RunLogger, nxt: RunState, scalars: dict[str, float]) -> None:
        """Log the finished iteration and checkpoint its result; only then is it part of the run."""
        self._write(lambda: logger.log(self.state.iteration, scalars), "progress.csv")
        best = self.state.params if nxt.best_iteration == self.state.iteration else None
        self._write(lambda: self._save(nxt, best_params=best), "checkpoints")
        self.state = nxt

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
            "baseline_state": state.baseline_state,
            "algo_state": state.algo_state,  # plain dict of tensors / numbers / lists
            "config": to_dict(self.cfg),
            "env_id": self.cfg.env.id,
            "env_kwargs": dict(self.cfg.env.kwargs),
            "obs_dim": self.policy.obs_dim,
            "act_dim": self.policy.act_dim,
            "hidden_sizes": list(self.policy.hidden_sizes),
            "run_id": self.rundir.run_id if self.rundir is not None else "",
            "method": "maml",
        }
        save_checkpoint(os.path.join(self.ckpt_dir, "latest.pt"), payload)
        if state.iteration % self.cfg.checkpoint_every == 0:
            save_checkpoint(os.path.join(self.ckpt_dir, f"iter_{state.iteration:06d}.pt"), payload)
        if best_params is not None:
            best = dict(payload, params={k: v.detach().cpu() for k, v in best_params.items()},
                        iteration=state.best_iteration)
            save_checkpoint(os.path.join(self.ckpt_dir, "best.pt"), best)

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self._stopping:
            return
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
            if self.t._pending_signal is not None and exc[0] is None and not self.t._stopping:
                signum, self.t._pending_signal = self.t._pending_signal, None
                raise TrainingInterrupted(signum)

    def _critical_section(self) -> "Trainer._Critical":
        return Trainer._Critical(self)
