"""Typed, validated training configs: nested dataclasses, loaded from YAML, overridable from the command line.

Every field carries its documentation (``metarl train --help-config`` prints it).  Unknown keys and bad
values raise :class:`ConfigError` with the field, the value and the fix.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
from dataclasses import dataclass, field
from typing import Any, get_type_hints

import yaml


class ConfigError(ValueError):
    """A config field is unknown or has a bad value."""


def doc(default: Any, help: str) -> Any:
    """A dataclass field with a default and its documentation."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class EnvConfig:
    id: str = doc("metarl/Navigation2D-v0", "gymnasium id of the task env (the metarl/ ids are registered by `import metarl.envs`)")
    kwargs: dict = doc({}, "keyword arguments for gymnasium.make_vec, e.g. {dynamics: gymnasium}")
    imports: list = doc([], "modules to import before making the env, so that they register their own ids")
    num_threads: int = doc(0, "threads stepping the physics; 0 uses every CPU")


@dataclass
class PolicyConfig:
    hidden_sizes: list = doc([100, 100], "widths of the hidden ReLU layers")
    init_std: float = doc(1.0, "initial standard deviation of the Gaussian policy")


@dataclass
class AlgoConfig:
    num_tasks: int = doc(40, "tasks per meta-batch (T)")
    episodes_per_task: int = doc(20, "episodes per task per sampling step (E)")
    inner_step_size: float = doc(0.1, "step size alpha of the inner policy-gradient step")
    inner_steps: int = doc(1, "inner policy-gradient steps per task (fresh episodes for each)")
    first_order: bool = doc(False, "drop the second-order term of the meta-gradient (first-order MAML)")
    discount: float = doc(0.99, "discount factor gamma")
    gae_lambda: float = doc(1.0, "GAE lambda (1.0: discounted return minus baseline, as in the paper)")
    normalize_advantages: bool = doc(True, "standardise advantages per task")
    baseline_reg: float = doc(1e-5, "ridge coefficient of the linear feature baseline")
    max_kl: float = doc(0.01, "TRPO trust region delta on the mean post-adaptation KL")
    cg_iters: int = doc(10, "conjugate-gradient iterations")
    cg_damping: float = doc(1e-5, "damping added to the KL Hessian")
    backtrack_ratio: float = doc(0.8, "line-search shrink factor per backtracking step")
    max_backtracks: int = doc(15, "line-search steps before the update is rejected")
    hvp_subsample: float = doc(
        1.0,
        "fraction of the tasks whose mean KL the TRPO Hessian-vector products use, drawn afresh each "
        "iteration (1.0: every task, exact products; 0.2: a fifth); the meta-gradient and the line search "
        "always use every task",
    )


@dataclass
class TrainConfig:
    env: EnvConfig = field(default_factory=EnvConfig, metadata={"help": "the task environment"})
    policy: PolicyConfig = field(default_factory=PolicyConfig, metadata={"help": "the policy network"})
    algo: AlgoConfig = field(default_factory=AlgoConfig, metadata={"help": "MAML-TRPO hyperparameters"})
    iterations: int = doc(500, "meta-iterations to run in total")
    seed: int = doc(0, "seed of every random stream (tasks, env resets, action noise, initial policy)")
    device: str = doc("cpu", "where the learner runs: cpu or cuda")
    dtype: str = doc("float32", "learner precision: float32 or float64")
    checkpoint_every: int = doc(10, "write checkpoints/iter_NNNNNN.pt every this many iterations")
    eval_every: int = doc(0, "every this many iterations, log a cheap adaptation curve on fixed test tasks (0: never)")
    eval_tasks: int = doc(10, "test tasks of the periodic evaluation (the first of the paper's seeded goals)")
    eval_steps: int = doc(1, "adaptation steps of the periodic evaluation")
    progress_bar: bool = doc(True, "show a progress bar")

    def validate(self) -> "TrainConfig":
        _check_types(self, "")
        positive = {
            "algo.num_tasks": self.algo.num_tasks,
            "algo.episodes_per_task": self.algo.episodes_per_task,
            "algo.inner_steps": self.algo.inner_steps,
            "algo.cg_iters": self.algo.cg_iters,
            "algo.max_backtracks": self.algo.max_backtracks,
            "iterations": self.iterations,
            "checkpoint_every": self.checkpoint_every,
            "algo.max_kl": self.algo.max_kl,
            "algo.baseline_reg": self.algo.baseline_reg,
            "policy.init_std": self.policy.init_std,
        }
        for name, value in positive.items():
            if not value > 0:
                raise ConfigError(f"config field '{name}': expected a positive number, got {value!r}")
        for name, value in {"eval_every": self.eval_every, "eval_steps": self.eval_steps}.items():
            if not isinstance(value, int) or value < 0:
                raise ConfigError(f"config field '{name}': expected an integer >= 0, got {value!r}")
        if self.eval_tasks < 1:
            raise ConfigError(f"config field 'eval_tasks': expected a positive number, got {self.eval_tasks!r}")
        for name, value in {"algo.discount": self.algo.discount, "algo.gae_lambda": self.algo.gae_lambda}.items():
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"config field '{name}': expected a value in [0, 1], got {value!r}")
        if not 0.0 < self.algo.backtrack_ratio < 1.0:
            raise ConfigError(f"config field 'algo.backtrack_ratio': expected a value in (0, 1), got {self.algo.backtrack_ratio!r}")
        if not (math.isfinite(self.algo.hvp_subsample) and 0.0 < self.algo.hvp_subsample <= 1.0):
            raise ConfigError(
                f"config field 'algo.hvp_subsample': expected a fraction in (0, 1] of the tasks, got "
                f"{self.algo.hvp_subsample!r}; use 1.0 for exact products over every task or e.g. 0.2 for a fifth"
            )
        if self.algo.cg_damping < 0:
            raise ConfigError(f"config field 'algo.cg_damping': expected >= 0, got {self.algo.cg_damping!r}")
        if self.algo.inner_step_size < 0:
            raise ConfigError(f"config field 'algo.inner_step_size': expected >= 0, got {self.algo.inner_step_size!r}")
        if self.seed < 0:
            raise ConfigError(f"config field 'seed': expected a non-negative integer, got {self.seed!r}")
        if self.env.num_threads < 0:
            raise ConfigError(f"config field 'env.num_threads': expected >= 0 (0 = all CPUs), got {self.env.num_threads!r}")
        if self.dtype not in ("float32", "float64"):
            raise ConfigError(f"config field 'dtype': expected 'float32' or 'float64', got {self.dtype!r}")
        if self.device != "cpu" and not self.device.startswith("cuda"):
            raise ConfigError(f"config field 'device': expected 'cpu' or 'cuda[:N]', got {self.device!r}")
        if not self.policy.hidden_sizes or not all(isinstance(h, int) and h > 0 for h in self.policy.hidden_sizes):
            raise ConfigError(
                f"config field 'policy.hidden_sizes': expected a non-empty list of positive integers, got {self.policy.hidden_sizes!r}"
            )
        return self


def to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def from_dict(data: Any, cls: type = TrainConfig, prefix: str = "") -> Any:
    """Build a config dataclass from nested dicts, rejecting unknown keys."""
    if not isinstance(data, dict):
        where = f"config section '{prefix.rstrip('.')}'" if prefix else "config"
        raise ConfigError(f"{where}: expected a mapping of fields, got {type(data).__name__} {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f"; did you mean '{prefix}{close[0]}'?" if close else f"; valid fields: {sorted(fields)}"
            raise ConfigError(f"config field '{prefix}{key}' is unknown{hint}")
        if dataclasses.is_dataclass(hints[key]):
            kwargs[key] = from_dict(value, hints[key], f"{prefix}{key}.")
        else:
            kwargs[key] = value
    return cls(**kwargs)


def _check_types(cfg: Any, prefix: str) -> None:
    hints = get_type_hints(type(cfg))
    for f in dataclasses.fields(cfg):
        value, want = getattr(cfg, f.name), hints[f.name]
        name = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(want):
            _check_types(value, name + ".")
            continue
        ok = {
            int: isinstance(value, int) and not isinstance(value, bool),
            float: isinstance(value, (int, float)) and not isinstance(value, bool),
            bool: isinstance(value, bool),
            str: isinstance(value, str),
            list: isinstance(value, list),
            dict: isinstance(value, dict),
        }[want]
        if not ok:
            raise ConfigError(f"config field '{name}': expected {want.__name__}, got {type(value).__name__} {value!r}")
        if want is float:
            setattr(cfg, f.name, float(value))


def load_config(path: str | os.PathLike, overrides: list[str] | None = None) -> TrainConfig:
    """Read a YAML config, apply ``section.field=value`` overrides, validate."""
    if not os.path.exists(path):
        raise ConfigError(f"--config: no such file {str(path)!r}; configs live in experiments/configs/")
    with open(path) as fh:
        data = yaml.safe_load(fh) or {}
    return from_dict(apply_overrides(data, overrides or [])).validate()


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply ``a.b=value`` strings (values parsed as YAML) to nested dicts."""
    data = dict(data)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected FIELD=VALUE, e.g. --set algo.max_kl=0.02")
        key, raw = item.split("=", 1)
        value = yaml.safe_load(raw)
        parts = key.strip().split(".")
        node = data
        for part in parts[:-1]:
            child = node.get(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {item!r}: '{part}' is not a section")
            node[part] = dict(child)
            node = node[part]
        node[parts[-1]] = value
    return data


def save_config(cfg: TrainConfig, path: str | os.PathLike) -> None:
    from metarl.checkpoint import atomic_write_bytes

    atomic_write_bytes(path, yaml.safe_dump(to_dict(cfg), sort_keys=False).encode())


def describe(cls: type = TrainConfig, prefix: str = "") -> str:
    """Every field with its default and documentation, for ``--help-config``."""
    lines = []
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            lines.append(f"{prefix}{f.name}:  # {f.metadata.get('help', '')}")
            lines.append(describe(hints[f.name], prefix + f.name + "."))
        else:
            factory = f.default_factory
            default = f.default if f.default is not dataclasses.MISSING else factory()  # type: ignore[misc,operator]
            lines.append(f"  {prefix}{f.name} = {default!r}  # {f.metadata.get('help', '')}")
    return "\n".join(lines)
