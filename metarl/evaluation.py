"""Adaptation curves with the paper's protocol: fixed test tasks, fresh batches, a step-size schedule.

For each test task, starting from the given parameters: sample a batch, record its average return, take
one policy-gradient step, sample a fresh batch, record, and so on for K steps.  The first step uses the
step size ``alpha``, later ones ``alpha / 2`` (docs/paper.md, "Evaluation").  All test tasks run at once:
one env of ``num_tasks x episodes`` slots, task-batched parameters after the first step.

On the paper's tasks a batch is what the authors' evaluation scripts sampled: whole episodes per task until
``episodes x horizon`` env steps (rllab's ``batch_size``), so where episodes end early (Navigation2D at the
goal, Ant when it falls) a batch holds more of them; where every episode runs the full horizon that is
exactly ``episodes`` episodes.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import math
import os
import shutil
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import torch

from metarl.adaptation import AdaptationData, adapt, split_step_sizes
from metarl.baseline import LinearFeatureBaseline
from metarl.checkpoint import CheckpointError, atomic_write_bytes, load_policy_checkpoint
from metarl.config import AdvantageConfig, ConfigError, EnvConfig, check_device, check_seed
from metarl.environment import env_dims, make_env, sample_tasks
from metarl.errors import RunError, UsageError
from metarl.rundir import check_output_dir, is_run_dir
from metarl.episodes import EpisodeBatch, advantages
from metarl.policy import GaussianMLPPolicy, Params
from metarl.sampler import Sampler

@dataclass(frozen=True)
class PaperTask:
    """How the paper drew a task's 40 test goals: ``np.random.RandomState(seed).uniform(low, high, size)``."""

    name: str
    seed: int
    low: float
    high: float
    kind: str  # "velocity", "direction" (sign around the middle) or "position" (2D)


PAPER_TASKS = {
    "metarl/HalfCheetahVel-v0": PaperTask("HalfCheetahVel", 1, 0.0, 2.0, "velocity"),
    "metarl/HalfCheetahDir-v0": PaperTask("HalfCheetahDir", 1, 0.0, 2.0, "direction"),
    "metarl/AntVel-v0": PaperTask("AntVel", 1, 0.0, 3.0, "velocity"),
    "metarl/AntDir-v0": PaperTask("AntDir", 2, 0.0, 3.0, "direction"),
    "metarl/Navigation2D-v0": PaperTask("Navigation2D", 1, -0.5, 0.5, "position"),
}
# episodes per adaptation batch and adaptation steps of the published curves
PAPER_EPISODES = {"AntDir": 40, "Navigation2D": 40}
PAPER_STEPS = {"Navigation2D": 4}
# episode length of the paper's tasks (their envs' horizons); a batch is episodes x horizon env steps
PAPER_HORIZON = {"Navigation2D": 100}
# the paper's tasks whose episodes can end before the horizon (at the goal; an Ant falling): elsewhere a batch
# of exactly E episodes is the same batch as the paper's E x H env steps
ENDS_EARLY = {"AntVel", "AntDir", "Navigation2D"}
# baseline step sizes of the published comparisons
RANDOM_STEP_SIZE = {"HalfCheetahVel": 0.1, "Navigation2D": 0.5}
PRETRAINED_STEP_SIZE = {"HalfCheetahVel": 0.02}


def paper_batch_steps(name: str) -> int:
    """Env steps per batch of the paper's evaluation of task ``name`` (its episodes times their length)."""
    return PAPER_EPISODES.get(name, 20) * PAPER_HORIZON.get(name, 200)


def paper_name(env_id: str) -> str | None:
    spec = PAPER_TASKS.get(env_id)
    return None if spec is None else spec.name


def paper_test_tasks(env_id: str, n: int = 40) -> np.ndarray:
    """The paper's seeded test goals ``[n, k]`` (the first n of the stream; 40 in the paper)."""
    spec = PAPER_TASKS[env_id]
    rs = np.random.RandomState(spec.seed)
    if spec.kind == "position":
        return rs.uniform(spec.low, spec.high, size=(n, 2))
    draw = rs.uniform(spec.low, spec.high, size=n).reshape(n, 1)
    if spec.kind == "direction":
        return np.where(draw < 0.5 * (spec.low + spec.high), -1.0, 1.0)
    return draw


def step_size_schedule(alpha: float, steps: int, later: float | None = None) -> list[float]:
    """``[alpha, alpha/2, alpha/2, ...]`` of length ``steps`` (``later`` replaces ``alpha/2``)."""
    later = alpha / 2 if later is None else later
    return [alpha if k == 0 else later for k in range(steps)]


def default_step_size(method: str, env_id: str, trained_alpha: float | None) -> float:
    name = paper_name(env_id) or ""
    if method == "random":
        return RANDOM_STEP_SIZE.get(name, 1.0)
    if method == "pretrained":
        return PRETRAINED_STEP_SIZE.get(name, 0.2)
    if trained_alpha is None:
        raise ConfigError("--step-size: no training step size is known for this policy; pass one")
    return trained_alpha


@dataclass
class EvalSettings:
    """Everything that defines an adaptation curve; saved next to the results.

    ``env`` is the run's env config (plug-in imports included), ``advantage`` the run's advantage
    settings, so an evaluation rebuilds exactly the env and the inner step the run trained with.
    """

    env: EnvConfig
    advantage: AdvantageConfig = field(default_factory=AdvantageConfig)
    method: str = "maml"
    num_tasks: int = 40
    episodes_per_task: int = 20
    steps: int = 3
    step_size: float = 0.1
    later_step_size: float | None = None
    seed: int = 0
    oracle: bool = False
    device: str = "cpu"
    source: str = ""
    batch_steps: int | None = None  # whole episodes per task until this many env steps (rllab's batches); None: E episodes

    @property
    def env_id(self) -> str:
        return self.env.id

    def validate(self) -> "EvalSettings":
        if not isinstance(self.steps, int) or isinstance(self.steps, bool) or self.steps < 0:
            raise ConfigError(f"--steps: expected an integer >= 0 adaptation steps, got {self.steps!r}")
        for name in ("num_tasks", "episodes_per_task"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                flag = "--tasks" if name == "num_tasks" else "--episodes"
                raise ConfigError(f"{flag}: expected a positive integer, got {value!r}")
        for name in ("step_size", "later_step_size"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0):
                raise ConfigError(f"--{name.replace('_', '-')}: expected a finite step size >= 0, got {value!r}")
        check_seed(self.seed, "--seed")
        if self.batch_steps is not None and (not isinstance(self.batch_steps, int) or isinstance(self.batch_steps, bool)
                                             or self.batch_steps < 1):
            raise ConfigError(f"--batch-steps: expected a positive number of env steps per goal and batch, got "
                              f"{self.batch_steps!r}; or 0 for batches of exactly --episodes episodes")
        check_device(self.device, "--device")
        return self


def protocol_settings(cfg: Any, method: str, oracle: bool, trained_alpha: float | None, *, steps: int | None = None,
                      episodes: int | None = None, step_size: float | None = None,
                      later_step_size: float | None = None, num_tasks: int = 40, seed: int = 0,
                      device: str = "cpu", source: str = "", batch_steps: int | None = None) -> EvalSettings:
    """The paper's protocol for this task and method, with any setting overridden where given.

    ``batch_steps``: None gives the paper's batches on its tasks (whole episodes until ``episodes x horizon``
    env steps per goal) and batches of exactly ``episodes`` episodes on other tasks; 0 asks for exactly
    ``episodes`` episodes on any task; a positive number is the env steps per batch."""
    name = paper_name(cfg.env.id) or ""
    if steps is None:
        steps = 0 if oracle else PAPER_STEPS.get(name, 3)
    if episodes is None:
        episodes = PAPER_EPISODES.get(name, 20)
    if isinstance(batch_steps, int) and not isinstance(batch_steps, bool) and batch_steps == 0:
        batch_steps = None
    elif batch_steps is None and name and isinstance(episodes, int) and not isinstance(episodes, bool) and episodes > 0:
        batch_steps = episodes * _horizon(cfg.env)
    if step_size is None:
        step_size = 0.0 if oracle and steps == 0 else default_step_size(method, cfg.env.id, trained_alpha)
    a = cfg.algo
    advantage = AdvantageConfig(**{f.name: getattr(a, f.name) for f in fields(AdvantageConfig)})
    return EvalSettings(
        env=copy.deepcopy(cfg.env), advantage=advantage, method=method, num_tasks=num_tasks,
        episodes_per_task=episodes, steps=steps, step_size=step_size, later_step_size=later_step_size,
        seed=seed, oracle=oracle, device=device, source=source, batch_steps=batch_steps,
    ).validate()


def _horizon(env_cfg: EnvConfig) -> int:
    """Steps per episode of the env ``env_cfg`` makes (its kwargs can change it); the paper's without kwargs."""
    name = paper_name(env_cfg.id)
    if name and not env_cfg.kwargs:
        return PAPER_HORIZON.get(name, 200)
    env = make_env(env_cfg, 1)
    try:
        return int(env.horizon)
    finally:
        env.close()


def protocol_differences(settings: dict[str, Any]) -> list[str]:
    """How a saved evaluation's settings (``results.json["settings"]``) depart from the paper's protocol; [] if not."""
    env = settings.get("env", {})
    name = paper_name(env.get("id", ""))
    if name is None:
        return []
    out = []
    kwargs = dict(env.get("kwargs", {}))
    if "physics" in kwargs and not kwargs["physics"]:  # physics: {} or null changes nothing
        del kwargs["physics"]
    if kwargs.get("dynamics", "paper") != "paper" or set(kwargs) - {"dynamics"}:
        out.append(f"env kwargs {kwargs}")
    if settings.get("num_tasks") != 40:
        out.append(f"{settings.get('num_tasks')} test goals (the paper: 40)")
    if settings.get("episodes_per_task") != PAPER_EPISODES.get(name, 20):
        out.append(f"{settings.get('episodes_per_task')} episodes per goal (the paper: {PAPER_EPISODES.get(name, 20)})")
    want_steps = 0 if settings.get("oracle") else PAPER_STEPS.get(name, 3)
    if settings.get("steps", 0) < want_steps:
        out.append(f"{settings.get('steps')} adaptation steps (the paper: {want_steps})")
    paper_batch = paper_batch_steps(name)
    same_batch = name not in ENDS_EARLY and not kwargs and settings.get("episodes_per_task") == PAPER_EPISODES.get(name, 20)
    if settings.get("batch_steps") is None:
        if not same_batch:
            out.append(f"batches of exactly {settings.get('episodes_per_task')} episodes per goal (the paper's: whole "
                       f"episodes until {paper_batch} env steps)")
    elif settings["batch_steps"] != paper_batch:
        out.append(f"batches of {settings['batch_steps']} env steps per goal (the paper's: {paper_batch})")
    later = settings.get("later_step_size")
    if later is not None and later != settings.get("step_size", 0) / 2:
        out.append(f"later step size {later} (the paper: half the first)")
    return out


def check_policy_fits(policy: GaussianMLPPolicy, env: Any, env_id: str) -> None:
    obs, act = env_dims(env)
    if (obs, act) != (policy.obs_dim, policy.act_dim):
        raise CheckpointError(
            f"the policy takes observations of size {policy.obs_dim} and gives actions of size {policy.act_dim}, "
            f"but {env_id} has {obs} and {act}; use a checkpoint trained on this task"
        )


def evaluation_tasks(env: Any, settings: EvalSettings) -> np.ndarray:
    """The paper's seeded goals for its tasks; otherwise draws from the env's distribution with the seed."""
    if settings.env_id in PAPER_TASKS:
        return paper_test_tasks(settings.env_id, settings.num_tasks)
    return sample_tasks(env, settings.num_tasks, np.random.default_rng(settings.seed))


def task_names(env: Any, k: int) -> list[str]:
    inner = getattr(env, "env", env)
    space = getattr(inner, "task_space", None)
    return list(space.names) if space is not None else [f"task_{i}" for i in range(k)]


def make_eval_env(settings: EvalSettings) -> Any:
    """The env of an evaluation: ``num_tasks x episodes_per_task`` slots of the run's env config."""
    return make_env(settings.env, settings.num_tasks * settings.episodes_per_task, oracle=settings.oracle)


def sample_env_steps(sampler: Sampler, params: Params, tasks: np.ndarray, seed: int, generator: torch.Generator,
                     budget: int, max_rounds: int = 1000) -> EpisodeBatch:
    """Whole episodes of each task until it has ``budget`` env steps, as rllab's samplers filled a batch.

    The sampler's E episodes per task are one round; rounds repeat (env slots seeded from ``seed`` and the
    round) until every task has its steps.  A task keeps each episode that starts before its count reaches
    ``budget`` (so the last one may go past it, as in rllab) and masks the rest; the rounds are joined along
    the episode dimension, ``[T, E * rounds, H]``, fully masked episodes included.
    """
    per_round = sampler.episodes_per_task * int(sampler.env.horizon)
    if budget > max_rounds * per_round:  # refused before any work: it could not be reached even by full episodes
        raise ConfigError(f"--batch-steps: {budget} env steps per goal would take more than {max_rounds} rounds of "
                          f"{sampler.episodes_per_task} episodes of at most {per_round // sampler.episodes_per_task} "
                          f"steps; use at most {max_rounds * per_round} or more --episodes per round")
    parts, counts = [], None
    for round_ in range(max_rounds):
        slot_seed = seed if round_ == 0 else int(np.random.SeedSequence([seed, round_]).generate_state(1)[0] % (2**31 - 1))
        b = sampler.sample(params, tasks, slot_seed, generator)
        lengths = b.mask.sum(-1)  # [T, E]
        counts = torch.zeros_like(lengths[:, 0]) if counts is None else counts
        before = counts.unsqueeze(1) + lengths.cumsum(1) - lengths  # steps the task had when each episode began
        keep = (before < budget).to(b.mask.dtype)
        counts = counts + (lengths * keep).sum(1)
        parts.append(EpisodeBatch(b.obs * keep[..., None, None], b.actions * keep[..., None, None], b.rewards * keep[..., None],
                                  b.mask * keep[..., None], b.tasks, b.timings))
        if bool((counts >= budget).all()):
            break
    else:
        raise RunError(f"--batch-steps: {budget} env steps per goal not reached in {max_rounds} rounds of "
                       f"{sampler.episodes_per_task} episodes; use a smaller --batch-steps")
    if len(parts) == 1:
        return parts[0]

    def joined(name: str) -> torch.Tensor:
        return torch.cat([getattr(p, name) for p in parts], 1)

    return EpisodeBatch(obs=joined("obs"), actions=joined("actions"), rewards=joined("rewards"), mask=joined("mask"),
                        tasks=parts[0].tasks, timings={k: sum(p.timings.get(k, 0.0) for p in parts) for k in parts[0].timings})


def adaptation_curve(policy: GaussianMLPPolicy, params: Params, tasks: np.ndarray, settings: EvalSettings,
                     env: Any = None) -> np.ndarray:
    """Average return per task after 0..K adaptation steps, ``[num_tasks, K + 1]``; a fresh batch per step."""
    s = settings.validate()
    if tasks.shape[0] != s.num_tasks:
        raise ConfigError(f"tasks: expected {s.num_tasks} rows, got {tasks.shape[0]}")
    env = env if env is not None else make_eval_env(s)
    device = torch.device(s.device)
    sampler = Sampler(env, policy, s.num_tasks, s.episodes_per_task, device, params["w0"].dtype)
    baseline = LinearFeatureBaseline(s.advantage.baseline_reg)
    generator = torch.Generator().manual_seed(s.seed)
    seeds = np.random.default_rng(s.seed).integers(0, 2**31 - 1, size=s.steps + 1)
    sizes = step_size_schedule(s.step_size, s.steps, s.later_step_size)
    # a Meta-SGD policy brings its learned per-parameter step sizes: they replace the first step's alpha, and
    # later steps scale them as the schedule scales alpha (halved by default)
    theta, learned = split_step_sizes({k: v.detach().to(device) for k, v in params.items()})
    steps = sizes if learned is None else [
        {n: a * (size / sizes[0] if sizes[0] else 0.0) for n, a in learned.items()} for size in sizes]
    returns = np.zeros((s.num_tasks, s.steps + 1))
    for k in range(s.steps + 1):
        if s.batch_steps is None:
            batch = sampler.sample(theta, tasks, int(seeds[k]), generator)
        else:
            batch = sample_env_steps(sampler, theta, tasks, int(seeds[k]), generator, s.batch_steps)
        returns[:, k] = batch.average_return().double().cpu().numpy()
        if k < s.steps:
            adv, _ = advantages(batch, s.advantage, baseline)
            step = AdaptationData(batch, adv)
            theta = {n: v.detach() for n, v in adapt(policy, theta, [step], [steps[k]], create_graph=False).items()}
    return returns


# ---- loading policies --------------------------------------------------------------------------------
def resolve_source(source: str) -> str:
    """A checkpoint path from a run directory (its best.pt, else latest.pt) or a checkpoint file."""
    if os.path.isdir(source):
        for name in ("best.pt", "latest.pt"):
            path = os.path.join(source, "checkpoints", name)
            if os.path.isfile(path):
                return path
        raise CheckpointError(f"{source!r} holds no checkpoints/best.pt or latest.pt; is it a metarl run directory?")
    if not os.path.exists(source):
        raise CheckpointError(f"{source!r} does not exist; pass a run directory or a checkpoint file")
    return source


def load_policy(path: str) -> tuple[GaussianMLPPolicy, Params, dict[str, Any]]:
    state = load_policy_checkpoint(path)
    try:
        init_std = float(state["config"]["policy"]["init_std"])
        if not (math.isfinite(init_std) and init_std > 0):
            raise ValueError(init_std)
    except (KeyError, TypeError, ValueError):
        raise CheckpointError(f"checkpoint {path!r} carries no readable config (its policy.init_std); it is incomplete, "
                              "use another checkpoint of the run") from None
    policy = GaussianMLPPolicy(state["obs_dim"], state["act_dim"], state["hidden_sizes"], init_std)
    return policy, dict(state["params"]), state


# ---- results on disk -------------------------------------------------------------------------------------
def summarize(returns: np.ndarray) -> list[dict[str, float]]:
    n = returns.shape[0]
    rows = []
    for k in range(returns.shape[1]):
        col = returns[:, k]
        sem = float(col.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
        rows.append({"adaptation_steps": k, "mean_return": float(col.mean()), "sem": sem, "num_test_goals": n})
    return rows


# what an evaluation writes in its output directory
WRITTEN = ("per_goal.csv", "summary.csv", "results.json", "curve.png", "tensorboard")
# results.json while an evaluation writes its files: a folder holding it is metarl's, its results are not complete
UNFINISHED = {"format": "metarl-evaluation", "complete": False,
              "note": "an evaluation that is being written or was stopped before it finished; run it again with --overwrite"}


def _is_unfinished(data: Any) -> bool:
    """Whether a results.json's data is the marker of an evaluation being written or stopped before it finished."""
    return isinstance(data, dict) and data.get("format") == UNFINISHED["format"] and data.get("complete") is False


def _results_owner(out_dir: str) -> str:
    """Whose results.json ``out_dir`` holds: "" none, "unfinished" metarl's mid-write marker, "metarl" an
    evaluation, "other" a file metarl did not write."""
    file = os.path.join(out_dir, "results.json")
    if not os.path.lexists(file):
        return ""
    try:
        with open(file, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, UnicodeDecodeError, ValueError):
        return "other"
    if _is_unfinished(data):
        return "unfinished"
    return "metarl" if isinstance(data, dict) and {"settings", "returns", "summary"} <= set(data) else "other"


def check_output(out_dir: str, overwrite: bool) -> None:
    """Refuse an output that is a file, cannot be written, or already holds files an evaluation writes (with
    ``overwrite``: unless they are an earlier evaluation's, finished or not)."""
    out_dir = check_output_dir(out_dir)
    if is_run_dir(out_dir) or os.path.isfile(os.path.join(out_dir, "checkpoints", "latest.pt")):
        raise UsageError(f"--output: {out_dir!r} is a training run's directory, whose tensorboard/ an evaluation would "
                         f"replace; write it into {os.path.join(out_dir, 'evaluation')!r} (the default) or another folder")
    present = [name for name in WRITTEN if os.path.lexists(os.path.join(out_dir, name))]
    if not present:
        return
    owner = _results_owner(out_dir)
    if owner == "metarl" and not overwrite:
        raise UsageError(f"--output: {out_dir!r} already holds evaluation results; pass --overwrite to replace them "
                         "or choose another --output")
    if owner == "unfinished" and not overwrite:
        raise UsageError(f"--output: {out_dir!r} holds an evaluation that was stopped before it finished; pass "
                         "--overwrite to replace it or choose another --output")
    if owner not in ("metarl", "unfinished"):
        what = "results.json is not a metarl evaluation" if owner else "there is no results.json of a metarl evaluation"
        raise UsageError(f"--output: {out_dir!r} already holds {', '.join(present)} and {what}: they may be files of "
                         "yours (or what an older metarl's evaluation left when it was stopped), which an evaluation "
                         "would replace; move them away or choose another --output")


def write_results(out_dir: str, settings: EvalSettings, tasks: np.ndarray, task_names: list[str],
                  returns: np.ndarray, overwrite: bool = False) -> dict[str, Any]:
    """per_goal.csv, summary.csv, results.json, curve.png and TensorBoard events under ``out_dir``.

    results.json is first replaced by a marker of an unfinished evaluation and written last, and an earlier
    evaluation's TensorBoard events are removed, so a folder never mixes two evaluations' results."""
    check_output(out_dir, overwrite)
    out_dir = os.path.abspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    atomic_write_bytes(os.path.join(out_dir, "results.json"), json.dumps(UNFINISHED, indent=1).encode())
    events = os.path.join(out_dir, "tensorboard")  # the replaced evaluation's events (a link: the link alone)
    if os.path.islink(events):
        os.unlink(events)
    else:
        shutil.rmtree(events, ignore_errors=True)
    summary = summarize(returns)
    per_goal = io.StringIO()
    w = csv.writer(per_goal)
    w.writerow(["method", "env_id", "goal_index", *task_names, "adaptation_steps", "average_return"])
    for i in range(returns.shape[0]):
        for k in range(returns.shape[1]):
            w.writerow([settings.method, settings.env_id, i, *[f"{x:.6f}" for x in tasks[i]], k, f"{returns[i, k]:.4f}"])
    atomic_write_bytes(os.path.join(out_dir, "per_goal.csv"), per_goal.getvalue().encode())
    summ = io.StringIO()
    dict_writer = csv.DictWriter(summ, fieldnames=list(summary[0]))
    dict_writer.writeheader()
    dict_writer.writerows(summary)
    atomic_write_bytes(os.path.join(out_dir, "summary.csv"), summ.getvalue().encode())
    result = {
        "settings": asdict(settings),
        "step_sizes": step_size_schedule(settings.step_size, settings.steps, settings.later_step_size),
        "task_names": task_names,
        "tasks": tasks.tolist(),
        "returns": returns.tolist(),
        "summary": summary,
    }
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(os.path.join(out_dir, "tensorboard"))
    for row in summary:
        writer.add_scalar(f"adaptation/{settings.method}/mean_return", row["mean_return"], row["adaptation_steps"])
        writer.add_scalar(f"adaptation/{settings.method}/sem", row["sem"], row["adaptation_steps"])
    writer.close()
    from metarl.plotting import plot_curves

    plot_curves({settings.method: result}, os.path.join(out_dir, "curve.png"),
                title=f"{settings.env_id}: adaptation curve ({settings.method})")
    # results.json last: its presence marks a complete evaluation
    atomic_write_bytes(os.path.join(out_dir, "results.json"), json.dumps(result, indent=1).encode())
    return result


def load_results(path: str) -> dict[str, Any]:
    """An evaluation's results.json (a directory or the file), checked enough to plot; a clear error otherwise."""
    file = os.path.join(path, "results.json") if os.path.isdir(path) else path
    if not os.path.isfile(file):
        raise UsageError(f"{path!r}: no results.json; run `metarl evaluate ... --output {path}` first")
    try:
        with open(file, encoding="utf-8") as fh:
            data = json.load(fh)
        if _is_unfinished(data):
            raise UsageError(f"{file!r} is an evaluation that was stopped before it finished; run it again with "
                             "`metarl evaluate ... --output DIR --overwrite`")
        settings = data["settings"]
        env_id = settings["env"]["id"]
        returns = np.asarray(data["returns"], dtype=np.float64)
        tasks = np.asarray(data["tasks"], dtype=np.float64)
        if returns.ndim != 2 or returns.shape[1] < 1 or not isinstance(env_id, str) or not data["summary"]:
            raise ValueError("unexpected shapes: returns should be [goals, steps + 1]")
        if tasks.ndim != 2 or len(tasks) != len(returns) or tasks.shape[1] < 1:
            raise ValueError(f"tasks of shape {list(tasks.shape)} against returns of {list(returns.shape)}: one row per goal")
        if not isinstance(settings["env"].get("kwargs", {}), dict) or not isinstance(settings.get("steps", 0), int):
            raise ValueError("settings: env.kwargs should be a mapping and steps an integer")
        if settings.get("num_tasks", len(returns)) != len(returns):
            raise ValueError(f"settings.num_tasks is {settings.get('num_tasks')!r} against {len(returns)} rows of returns")
        summary = data["summary"]
        if not isinstance(summary, list) or not all(
                isinstance(row, dict) and all(isinstance(row.get(k), (int, float)) and not isinstance(row.get(k), bool)
                                              for k in ("adaptation_steps", "mean_return", "sem")) for row in summary):
            raise ValueError("summary: expected a list of rows with numbers adaptation_steps, mean_return and sem")
    except UsageError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(
            f"{file!r} is not a readable metarl evaluation ({type(exc).__name__}: {exc}); "
            "write it again with `metarl evaluate ... --output DIR --overwrite`"
        ) from None
    return data
