"""metarl from Python: train a meta-policy, evaluate it, load it, adapt it to a task and act with it.

The command line is built on these functions, so a script and ``metarl train`` / ``metarl evaluate``
do the same thing::

    import metarl

    run = metarl.train("experiments/configs/navigation2d.yaml", "runs/nav", seed=1)
    curve = metarl.evaluate(run.path)                      # the paper's protocol; nothing written
    print(curve.mean, curve.sem)                           # per adaptation step

    run = metarl.load_run("runs/nav")                      # best.pt by default
    goals = np.array([[0.3, -0.2]])
    adapted = run.adapt(goals, steps=1)                    # one parameter set per goal
    env = run.make_env(1)
    env.set_tasks(goals)
    obs, _ = env.reset(seed=0)
    action = run.act(obs, adapted)                         # the adapted policy's mean action
"""

from __future__ import annotations

import copy
import math
import numbers
import os
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from metarl import evaluation as ev
from metarl.adaptation import STEP_SIZE_PREFIX, AdaptationData, adapt, split_step_sizes
from metarl.baseline import LinearFeatureBaseline
from metarl.config import ConfigError, TrainConfig, apply_overrides, check_seed, from_dict, load_config, to_dict
from metarl.environment import check_named_imports, make_env, sample_tasks
from metarl.episodes import advantages
from metarl.errors import EnvError
from metarl.policy import GaussianMLPPolicy, Params
from metarl.sampler import Sampler
from metarl.trainer import Trainer

__all__ = ["AdaptationCurve", "Run", "evaluate", "load_run", "train"]


def _config_of(config: str | os.PathLike | TrainConfig | Mapping[str, Any],
               overrides: Sequence[str] | Mapping[str, Any] | None) -> TrainConfig:
    if isinstance(config, TrainConfig):
        data = apply_overrides(to_dict(config), overrides or [])
        return from_dict(data).validate()
    if isinstance(config, Mapping):
        return from_dict(apply_overrides(dict(config), overrides or [])).validate()
    if isinstance(config, (str, os.PathLike)):
        return load_config(config, overrides)
    raise ConfigError(f"config: expected a YAML path, a TrainConfig or a mapping, got {type(config).__name__}")


def train(config: str | os.PathLike | TrainConfig | Mapping[str, Any] | None, output: str | os.PathLike, *,
          seed: int | None = None, device: str | None = None, iterations: int | None = None, resume: bool = False,
          overwrite: bool = False, overrides: Sequence[str] | Mapping[str, Any] | None = None,
          progress: bool | None = None, imports: Sequence[str] | None = None,
          ray_address: str | None = None) -> "Run":
    """Meta-train into the run directory ``output`` and return the trained :class:`Run` (its best parameters).

    Args:
        config: a YAML config path, a :class:`~metarl.config.TrainConfig` or a mapping of fields; ``None``
            with ``resume=True`` (a resumed run keeps its saved config).
        output: the run directory (``config.yaml``, ``progress.csv``, ``tensorboard/``, ``checkpoints/``).
        seed, device, iterations: override the config's fields.  On resume only ``iterations`` (to extend
            the run) and ``device`` may be given.
        resume: continue the run in ``output`` exactly where it stopped.
        overwrite: replace an earlier metarl run in ``output`` (never a directory metarl did not create).
        overrides: dotted fields, ``{"algo.max_kl": 0.02}`` or ``["algo.max_kl=0.02"]`` (as ``--set``).
        progress: show a progress bar (default: the config's ``progress_bar``).
        imports: on resume, the plug-in modules of the run's ``env.imports`` that you allow to be imported
            (a saved run's modules are imported only when named here; see :func:`load_run`).
        ray_address: on resume of a Ray-sampled run, the cluster to join ("" for ``$RAY_ADDRESS`` or a local
            Ray); a saved ``sampler.address`` is never joined unless named here again.

    SIGINT/SIGTERM save a checkpoint and raise :class:`metarl.trainer.TrainingInterrupted`; continue with
    ``train(None, output, resume=True)``.
    """
    if not isinstance(output, (str, os.PathLike)) or not os.fspath(output).strip():
        raise ConfigError(f"output: expected a run directory path, got {output!r}")
    if isinstance(overrides, (str, bytes)):
        raise ConfigError(f"overrides: expected a list of FIELD=VALUE strings or a mapping, got the string {overrides!r}; "
                          f"write [{overrides!r}]")
    output = os.fspath(output)
    if resume:
        if config is not None or overrides or seed is not None or overwrite:
            raise ConfigError(
                "--resume continues the run with its saved config; only --iterations, --device, --import and --no-progress "
                "may be given with it (drop --config/--set/--seed/--overwrite, or start a new --output)"
            )
        trainer = Trainer(None, output, resume=True, iterations=iterations, device=device, progress_bar=progress,
                          imports=imports, ray_address=ray_address)
    else:
        if imports:
            raise ConfigError("imports: only for resuming a saved run; a new run imports its config's env.imports")
        if ray_address is not None:
            raise ConfigError("ray_address: only for resuming a saved run; a new run takes sampler.address from its config")
        if config is None:
            raise ConfigError("--config: required for a new run (e.g. experiments/configs/navigation2d_smoke.yaml)")
        extra: dict[str, Any] = {}
        if seed is not None:
            extra["seed"] = seed
        if device is not None:
            extra["device"] = device
        if iterations is not None:
            extra["iterations"] = iterations
        if progress is not None:
            extra["progress_bar"] = progress
        cfg = _config_of(config, overrides)
        if extra:
            cfg = _config_of(cfg, extra)
        trainer = Trainer(cfg, output, overwrite=overwrite)
    trainer.train()
    return load_run(output, imports=trainer.cfg.env.imports)


# ---- a trained (or fresh) meta-policy ----------------------------------------------------------------------
def _plain(value: Any) -> Any:
    """numpy integers and floats as Python's (for the checks, which take Python numbers, and for JSON); else as is."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    return float(value) if isinstance(value, numbers.Real) and not isinstance(value, bool) else value


def _count(value: Any, name: str, what: str) -> int:
    """A positive integer argument (numpy integers too), or a ConfigError naming it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ConfigError(f"{name}: expected {what}, got {value!r}")
    return int(value)


def _step_size(value: Any) -> float:
    """A finite step size >= 0 (numpy numbers too), or a ConfigError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"step_size: expected a finite number >= 0 per step, got {value!r}")
    return float(value)


class Run:
    """A meta-policy with its config: loaded from a run directory or checkpoint, or freshly initialised.

    Attributes:
        path: the run directory (or None for :meth:`random`).
        checkpoint: the checkpoint file the parameters come from.
        config: the run's :class:`~metarl.config.TrainConfig`.
        policy: the network (functional: parameters are passed to it).
        params: the meta-parameters ``{name: tensor}`` (shared by all tasks).
        iteration: the meta-iteration the parameters are from.
        method: ``maml``, ``pretrained``, ``oracle`` or ``random``.
    """

    def __init__(self, config: TrainConfig, policy: GaussianMLPPolicy, params: Params, *, path: str | None = None,
                 checkpoint: str | None = None, iteration: int = 0, method: str = "maml", oracle: bool = False) -> None:
        self.config, self.policy, self.params = config, policy, params
        self.path, self.checkpoint, self.iteration = path, checkpoint, iteration
        self.method, self.oracle = method, oracle
        self._envs: dict[int, Any] = {}

    @classmethod
    def random(cls, config: str | os.PathLike | TrainConfig, seed: int = 0) -> "Run":
        """A freshly initialised policy for ``config``'s env and network (the paper's "random" comparison)."""
        cfg = _config_of(config, None)
        env = make_env(cfg.env, 1)
        policy = GaussianMLPPolicy(env.single_observation_space.shape[0], env.single_action_space.shape[0],
                                   cfg.policy.hidden_sizes, cfg.policy.init_std)
        params = policy.init_params(torch.Generator().manual_seed(check_seed(seed, "--seed")))
        run = cls(cfg, policy, params, method="random", checkpoint="random initialisation")
        run._envs[1] = env
        return run

    def __repr__(self) -> str:
        return (f"Run({self.config.env.id}, method={self.method}, iteration={self.iteration}, "
                f"path={self.path!r})")

    # ---- envs ---------------------------------------------------------------------------------------
    def make_env(self, num_envs: int) -> Any:
        """A task vector env of this run's env config with ``num_envs`` slots (the task appended for an oracle)."""
        return make_env(self.config.env, num_envs, oracle=self.oracle)

    def _env(self, num_envs: int) -> Any:
        if num_envs not in self._envs:
            self._envs[num_envs] = self.make_env(num_envs)
        return self._envs[num_envs]

    # ---- adapting and acting --------------------------------------------------------------------------
    def adapt(self, tasks: np.ndarray, steps: int = 1, episodes: int | None = None,
              step_size: float | Sequence[float | Params] | None = None, seed: int = 0,
              params: Params | None = None) -> Params:
        """Adapted parameters, one set per task (``{name: [T, ...]}``), after ``steps`` inner steps.

        Each step samples ``episodes`` episodes of every task (default: the config's
        ``algo.episodes_per_task``) with the current parameters and takes the inner policy-gradient step
        the trainer takes: the same advantages and the same step, with ``step_size`` (default: the
        trained ``algo.inner_step_size`` for every step, or a Meta-SGD run's learned per-parameter step
        sizes; a list gives one per step).  ``seed`` seeds the
        episodes, so the same call gives the same parameters.
        """
        try:
            tasks = np.asarray(tasks, dtype=np.float64)
        except (TypeError, ValueError):
            raise ConfigError(f"tasks: expected an array [T, k] of task vectors (numbers), got {tasks!r}") from None
        if tasks.ndim == 1:
            tasks = tasks[None]
        if tasks.ndim != 2 or tasks.shape[0] < 1:
            raise ConfigError(f"tasks: expected an array [T, k] of task vectors, T >= 1, got shape {tasks.shape}")
        width = sample_tasks(self._env(1), 1, np.random.default_rng(0)).shape[1]
        if tasks.shape[1] != width:
            raise ConfigError(f"tasks: {self.config.env.id} takes {width} number(s) per task, got {tasks.shape[1]} "
                              f"(an array of shape {tasks.shape})")
        if not np.isfinite(tasks).all():
            raise ConfigError("tasks: expected finite numbers, got NaN or inf in row(s) "
                              f"{np.flatnonzero(~np.isfinite(tasks).all(1)).tolist()[:5]}")
        steps = _count(steps, "steps", "a positive number of adaptation steps")
        a = self.config.algo
        episodes = _count(a.episodes_per_task if episodes is None else episodes, "episodes", "a positive integer")
        seed = check_seed(_plain(seed), "seed")
        if params is not None:
            self._check_params(params, tasks.shape[0])
        theta, learned = split_step_sizes({k: v.detach() for k, v in (self.params if params is None else params).items()})
        if learned is None:  # adapted sets hold the policy's parameters only: a Meta-SGD run's learned sizes go on
            learned = split_step_sizes(self.params)[1]
        if isinstance(step_size, np.ndarray) and step_size.ndim <= 1:
            step_size = step_size.tolist() if step_size.ndim else step_size.item()
        sizes: list[Any]
        if step_size is None:  # as trained: alpha, or a Meta-SGD run's learned per-parameter step sizes
            sizes = [a.inner_step_size if learned is None else learned] * steps
        elif isinstance(step_size, (str, bytes)) or not isinstance(step_size, (numbers.Real, Sequence)):
            raise ConfigError(f"step_size: expected a number >= 0 or a list of one per step, got {step_size!r}")
        else:
            sizes = [_step_size(step_size)] * steps if isinstance(step_size, numbers.Real) else [
                x if isinstance(x, dict) else _step_size(x) for x in step_size]
        if len(sizes) != steps:
            raise ConfigError(f"step_size: got {len(sizes)} step sizes for {steps} steps")
        num_tasks = tasks.shape[0]
        env = self._env(num_tasks * episodes)
        sampler = Sampler(env, self.policy, num_tasks, episodes, "cpu", theta["w0"].dtype)
        generator = torch.Generator().manual_seed(seed)
        seeds = np.random.default_rng(seed).integers(0, 2**31 - 1, size=steps)
        baseline = LinearFeatureBaseline(a.baseline_reg)
        for k in range(steps):
            try:
                batch = sampler.sample(theta, tasks, int(seeds[k]), generator)
            except ValueError as exc:  # the policy's actions: only a step before can have made them non-finite
                if k == 0 and isinstance(exc, EnvError) and exc.non_finite:  # the physics, for the tasks given
                    if self.config.env.id.startswith("metarl/"):  # metarl's own envs are finite on their tasks
                        raise ConfigError(f"tasks: {self.config.env.id} {exc.problem} for the tasks given "
                                          f"{tasks[:3].tolist()}{' ...' if len(tasks) > 3 else ''}: "
                                          "they lie too far outside the range it draws tasks from (sample_tasks); "
                                          "give tasks nearer it") from None
                    raise ConfigError(f"tasks: for the tasks given, {exc}; or, if the tasks lie far outside the range "
                                      "the env draws them from (its sample_tasks), give tasks nearer it") from None
                if k == 0 or "not finite" not in str(exc):
                    raise
                raise ConfigError(f"step_size: the parameters after adaptation step {k} act with non-finite actions "
                                  f"({exc}); use a smaller step size, or tasks within the task distribution's range") from None
            adv, _ = advantages(batch, a, baseline)
            theta = {n: v.detach() for n, v in
                     adapt(self.policy, theta, [AdaptationData(batch, adv)], [sizes[k]], create_graph=False).items()}
            broken = [n for n, v in theta.items() if not torch.isfinite(v).all()]
            if broken:
                raise ConfigError(f"step_size: adaptation step {k + 1} gave parameters that are not finite ({broken[0]}); "
                                  "use a smaller step size, or tasks within the task distribution's range")
        return theta

    def _check_params(self, params: Any, num_tasks: int) -> None:
        """``params`` for :meth:`adapt`: the run's parameters (a Meta-SGD run's step sizes may be left out), shared
        or with a leading task dimension of ``num_tasks`` (an earlier :meth:`adapt`'s result)."""
        want = {k: tuple(v.shape) for k, v in self.params.items()}
        needed = {k for k in want if not k.startswith(STEP_SIZE_PREFIX)}
        given = {k: tuple(v.shape) if isinstance(v, torch.Tensor) else None for k, v in params.items()} \
            if isinstance(params, Mapping) else None
        if given is None or not needed <= set(given) or any(
                k not in want or shape not in (want[k], (num_tasks, *want[k])) for k, shape in given.items()):
            raise ConfigError(f"params: expected the run's parameters {want} (names and shapes, as Run.params; or with "
                              f"a leading dimension of the {num_tasks} tasks, as Run.adapt returns them), got "
                              f"{given if given is not None else type(params).__name__}")

    def act(self, obs: np.ndarray, params: Params | None = None, deterministic: bool = True,
            generator: torch.Generator | None = None) -> np.ndarray:
        """Actions for observations: the policy's mean (``deterministic``) or a Gaussian sample.

        With the meta-parameters (``params=None``) ``obs`` is ``[obs_dim]`` or ``[N, obs_dim]``.  With
        adapted parameters from :meth:`adapt` (one set per task) ``obs`` is ``[T, obs_dim]`` (one
        observation per task) or ``[T, N, obs_dim]``.  Actions are the raw policy outputs; the envs clip
        them to their action space.
        """
        theta, _ = split_step_sizes(self.params if params is None else params)
        batched = theta["w0"].dim() == 3
        try:
            x = torch.as_tensor(np.asarray(obs, dtype=np.float64), dtype=theta["w0"].dtype)
        except (TypeError, ValueError):
            raise ConfigError(f"obs: expected numbers, [obs_dim] or [N, obs_dim], got {obs!r}") from None
        if x.dim() == 0:
            raise ConfigError(f"obs: expected an observation of {self.policy.obs_dim} values, got the single number {obs!r}")
        squeeze: tuple[int, ...] = ()
        if batched:
            if x.dim() == 2:
                x, squeeze = x.unsqueeze(1), (1,)
            if x.dim() != 3 or x.shape[0] != theta["w0"].shape[0]:
                raise ConfigError(
                    f"obs: adapted parameters hold {theta['w0'].shape[0]} policies; expected observations "
                    f"[{theta['w0'].shape[0]}, obs_dim] or [{theta['w0'].shape[0]}, N, obs_dim], got {tuple(x.shape)}"
                )
        elif x.dim() == 1:
            x, squeeze = x.unsqueeze(0), (0,)
        if x.shape[-1] != self.policy.obs_dim:
            raise ConfigError(f"obs: expected {self.policy.obs_dim} values per observation, got {x.shape[-1]}")
        with torch.no_grad():
            if deterministic:
                out = self.policy.mean(theta, x)
            else:
                noise = torch.randn(*x.shape[:-1], self.policy.act_dim, generator=generator, dtype=x.dtype)
                out = self.policy.sample(theta, x, noise)
        for dim in squeeze:
            out = out.squeeze(dim)
        return out.numpy()

    @staticmethod
    def select(params: Params, task: int) -> Params:
        """Task ``task``'s parameters out of a task-batched set (from :meth:`adapt`), as a shared set."""
        w0 = params.get("w0") if isinstance(params, Mapping) else None
        if not isinstance(w0, torch.Tensor) or w0.dim() != 3:
            raise ConfigError("params: expected task-batched parameters from Run.adapt (w0 of shape [T, in, out]), got "
                              f"{'w0 of shape ' + str(list(w0.shape)) if isinstance(w0, torch.Tensor) else type(params).__name__}")
        count = w0.shape[0]
        if isinstance(task, bool) or not isinstance(task, numbers.Integral) or not -count <= task < count:
            raise ConfigError(f"task: expected an index of the {count} adapted policies (0 to {count - 1}), got {task!r}")
        return {k: v[int(task)] for k, v in params.items()}


def load_run(path: str | os.PathLike, checkpoint: str | int = "best", *, imports: Sequence[str] | None = None) -> Run:
    """The meta-policy of a run directory (``checkpoint``: ``best``, ``latest`` or an iteration number) or of a checkpoint file.

    A run on a plug-in env names the modules that register it (``env.imports``); importing a module runs its
    code, so they are imported (when the run's env is built) only if ``imports`` names each of them, and a
    run that needs modules not named is refused with a :class:`~metarl.config.ConfigError` that lists them.
    Runs on metarl's own tasks need none.
    """
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise ConfigError(f"path: expected a run directory or a checkpoint file, got {path!r}")
    path = os.fspath(path)
    checkpoint = _plain(checkpoint)
    if isinstance(checkpoint, int) and not isinstance(checkpoint, bool):
        if checkpoint < 0:
            raise ConfigError(f"checkpoint: expected 'best', 'latest' or an iteration number >= 0, got {checkpoint}")
    if os.path.isdir(path):
        if isinstance(checkpoint, int) and not isinstance(checkpoint, bool):
            name = f"iter_{checkpoint:06d}.pt"
        elif checkpoint in ("best", "latest"):
            name = f"{checkpoint}.pt"
        else:
            raise ConfigError(f"checkpoint: expected 'best', 'latest' or an iteration number, got {checkpoint!r}")
        file = os.path.join(path, "checkpoints", name)
        if checkpoint == "best" and not os.path.isfile(file):
            file = ev.resolve_source(path)
        run_dir: str | None = os.path.abspath(path)
    else:
        if checkpoint != "best" and os.path.isfile(path):  # the file is the checkpoint: naming another is a mistake
            raise ConfigError(f"checkpoint: {path!r} is a checkpoint file already, so checkpoint={checkpoint!r} would not "
                              "apply; give the run directory to choose one of its checkpoints, or leave checkpoint out")
        file = ev.resolve_source(path)
        run_dir = None
    policy, params, state = ev.load_policy(file)
    try:
        cfg = from_dict(copy.deepcopy(state["config"])).validate()
    except (KeyError, ConfigError) as exc:
        raise ev.CheckpointError(f"checkpoint {file!r} carries no valid config ({exc}); use a checkpoint written by metarl") from None
    check_named_imports(cfg.env, imports, f"checkpoint {file!r}")
    return Run(cfg, policy, params, path=run_dir, checkpoint=file, iteration=int(state.get("iteration", 0)),
               method=str(state.get("method", "maml")), oracle=bool(state.get("oracle", False)))


# ---- adaptation curves ----------------------------------------------------------------------------------------
@dataclass
class AdaptationCurve:
    """Average returns per test goal after 0..K adaptation steps, with the settings that produced them."""

    returns: np.ndarray  # [goals, K + 1]
    tasks: np.ndarray  # [goals, k]
    task_names: list[str]
    settings: ev.EvalSettings
    files: str | None = field(default=None)

    @property
    def mean(self) -> np.ndarray:
        """Mean return over goals per adaptation step ``[K + 1]``."""
        return self.returns.mean(axis=0)

    @property
    def sem(self) -> np.ndarray:
        """Standard error of the mean over goals per adaptation step ``[K + 1]``."""
        n = self.returns.shape[0]
        if n < 2:
            return np.full(self.returns.shape[1], np.nan)
        return self.returns.std(axis=0, ddof=1) / np.sqrt(n)

    def summary(self) -> list[dict[str, float]]:
        return ev.summarize(self.returns)

    def write(self, output: str, overwrite: bool = False) -> dict[str, Any]:
        """per_goal.csv, summary.csv, results.json, curve.png and TensorBoard events in ``output``."""
        result = ev.write_results(output, self.settings, self.tasks, self.task_names, self.returns, overwrite=overwrite)
        self.files = os.path.abspath(output)
        return result


def evaluate(source: str | os.PathLike | Run, *, output: str | os.PathLike | None = None, overwrite: bool = False,
             steps: int | None = None, tasks: int = 40, episodes: int | None = None, step_size: float | None = None,
             later_step_size: float | None = None, seed: int = 0, device: str = "cpu",
             batch_steps: int | None = None, imports: Sequence[str] | None = None) -> AdaptationCurve:
    """The adaptation curve of a run directory, a checkpoint file or a :class:`Run` (the paper's protocol by default).

    For each test goal (the paper's 40 seeded goals for its tasks): sample a batch, record its average
    return, take a policy-gradient step (``step_size``, then ``later_step_size``, by default half of
    it), sample a fresh batch, and so on for ``steps`` steps.  Defaults per task and method are the
    paper's (3 steps, 4 for Navigation2D; 20 episodes, 40 for AntDir and Navigation2D; the trained step
    size for MAML).  A batch on the paper's tasks is, as the authors' scripts sampled it, whole episodes until
    ``episodes x horizon`` env steps per goal (more than ``episodes`` episodes only where episodes end early);
    ``batch_steps`` sets that count (``episodes`` per sampling round), 0 asks for exactly ``episodes``
    episodes.  Files are written only when ``output`` is given (checked before any work).  ``imports``
    allows the plug-in modules of a run loaded from ``source`` (see :func:`load_run`); a :class:`Run` was
    checked when it was loaded.
    """
    if isinstance(source, Run):
        if imports:
            raise ConfigError("imports: for a run loaded from a path; a Run object was checked by load_run already")
        run = source
    else:
        run = load_run(source, imports=imports)
    if output is not None:
        ev.check_output(os.fspath(output), overwrite)
    alpha = run.config.algo.inner_step_size if run.method == "maml" else None
    if step_size is not None and step_size != 0 and split_step_sizes(run.params)[1] is not None:
        raise ConfigError(f"--step-size {step_size}: this policy learned per-parameter step sizes (Meta-SGD), which its "
                          "first step uses in place of a step size; leave --step-size out (or 0 for no adaptation) and "
                          "set the later steps with --later-step-size S, which scales the learned sizes by S / "
                          f"algo.inner_step_size ({alpha})")
    steps, episodes, tasks, seed, batch_steps, step_size, later_step_size = map(
        _plain, (steps, episodes, tasks, seed, batch_steps, step_size, later_step_size))
    settings = ev.protocol_settings(run.config, run.method, run.oracle, alpha, steps=steps, episodes=episodes,
                                    step_size=step_size, later_step_size=later_step_size, num_tasks=tasks, seed=seed,
                                    device=device, source=run.checkpoint or "", batch_steps=batch_steps)
    if settings.device != "cpu" and not torch.cuda.is_available():
        raise ConfigError(f"--device: {settings.device!r} requested but CUDA is not available here; use --device cpu")
    env = ev.make_eval_env(settings)
    ev.check_policy_fits(run.policy, env, settings.env_id)
    goals = ev.evaluation_tasks(env, settings)
    returns = ev.adaptation_curve(run.policy, run.params, goals, settings, env=env)
    curve = AdaptationCurve(returns, goals, ev.task_names(env, goals.shape[1]), settings)
    if output is not None:
        curve.write(os.fspath(output), overwrite=overwrite)
    return curve
