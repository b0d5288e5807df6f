"""Typed, validated training configs: nested dataclasses, loaded from YAML, overridable from the command line.

Every field carries its documentation (``metarl train --help-config`` prints it).  Unknown keys and bad
values raise :class:`ConfigError` with the field, the value and the fix.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, get_type_hints

import yaml

from metarl.errors import UsageError


class ConfigError(UsageError):
    """A config field, flag or setting is unknown or has a bad value."""


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
class AdvantageConfig:
    """How episodes become advantages: shared by training, evaluation and every algorithm."""

    discount: float = doc(0.99, "discount factor gamma")
    gae_lambda: float = doc(1.0, "GAE lambda (1.0: discounted return minus baseline, as in the paper)")
    normalize_advantages: bool = doc(True, "standardise advantages per task")
    baseline_reg: float = doc(1e-5, "ridge coefficient of the linear feature baseline")
    baseline_fit: str = doc(
        "per_task",
        "per_task: each task's baseline is fit on that task's batch before predicting it (the paper's text and the "
        "authors' final code); previous_batch: each task's values come from the fit on the task processed just "
        "before it (rllab's original sampler order, predict then refit, which the authors' repository replaced "
        "with fit-then-predict in February 2017)",
    )


BASELINE_FITS = ("per_task", "previous_batch")
HVP_METHODS = ("exact", "finite_difference")
ALGORITHMS = ("maml_trpo", "promp", "maml_ppo")  # built by metarl.algorithms.make_algorithm
# the algo fields that only some outer algorithms read; every other algo field is read by all of them
ALGORITHM_FIELDS = {
    "maml_trpo": ("max_kl", "cg_iters", "cg_damping", "backtrack_ratio", "max_backtracks", "hvp_subsample", "hvp",
                  "hvp_fd_eps"),
    "promp": ("outer_learning_rate", "outer_steps", "clip_eps", "inner_kl_penalty", "adaptive_inner_kl_penalty",
              "target_inner_kl"),
    "maml_ppo": ("outer_learning_rate", "outer_steps", "clip_eps"),
}


@dataclass
class AlgoConfig(AdvantageConfig):
    num_tasks: int = doc(40, "tasks per meta-batch (T)")
    episodes_per_task: int = doc(20, "episodes per task per sampling step (E)")
    inner_step_size: float = doc(0.1, "step size alpha of the inner policy-gradient step")
    inner_steps: int = doc(1, "inner policy-gradient steps per task (fresh episodes for each)")
    first_order: bool = doc(False, "drop the second-order term of the meta-gradient (first-order MAML)")
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
    hvp: str = doc(
        "exact",
        "how the TRPO step gets its KL Hessian-vector products: exact (second derivatives through the inner "
        "step) or finite_difference (the authors' released code: symmetric differences of the KL gradient "
        "at theta +- eps v with eps = hvp_fd_eps / |theta|, in the run's dtype, rllab's unguarded conjugate "
        "gradient and step size; in float32, as released, most entries of theta +- eps v round back to theta; "
        "in float64 the product is close to the exact one)",
    )
    hvp_fd_eps: float = doc(1e-8, "hvp: finite_difference: base step, divided by the norm of theta (rllab's 1e-8)")
    # ---- the outer algorithm (docs/algorithms.md); the fields above are shared by all of them ----
    name: str = doc("maml_trpo", "outer algorithm: maml_trpo (the paper's), promp (Rothfuss et al. 2019) or maml_ppo")
    learn_inner_step_size: bool = doc(False, "Meta-SGD (Li et al. 2017): learn one inner step size per parameter "
                                             "entry, initialised at inner_step_size, with the outer optimiser")
    outer_learning_rate: float = doc(1e-3, "promp / maml_ppo: Adam step size of the outer loop")
    outer_steps: int = doc(5, "promp / maml_ppo: Adam steps on each meta-batch (no re-sampling between them)")
    clip_eps: float = doc(0.3, "promp / maml_ppo: clip range of the post-adaptation likelihood ratio")
    inner_kl_penalty: float = doc(5e-4, "promp: (initial) coefficient of the KL penalty between the old and new "
                                        "pre-update policies, one per inner step")
    adaptive_inner_kl_penalty: bool = doc(False, "promp: halve the penalty coefficient when the KL is below "
                                                 "target_inner_kl / 1.5, double it when above target_inner_kl * 1.5")
    target_inner_kl: float = doc(0.01, "promp: KL target of the adaptive penalty coefficient")

    def unused_settings(self) -> list[str]:
        """The fields set away from their defaults that this run's algorithm does not read, each as a sentence."""
        out = []
        defaults = AlgoConfig()
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value == getattr(defaults, f.name):
                continue
            users = [name for name, used in ALGORITHM_FIELDS.items() if f.name in used]
            if users and self.name not in users:
                out.append(f"config field 'algo.{f.name}' is {value!r}, but algo.name {self.name!r} does not use it "
                           f"(it applies to {' and '.join(users)}); the run ignores it")
            elif f.name == "hvp_fd_eps" and self.hvp != "finite_difference" and self.name == "maml_trpo":
                out.append(f"config field 'algo.hvp_fd_eps' is {value!r}, but algo.hvp is {self.hvp!r}; it applies to "
                           "algo.hvp: finite_difference only, so the run ignores it")
            elif f.name == "target_inner_kl" and not self.adaptive_inner_kl_penalty and self.name == "promp":
                out.append(f"config field 'algo.target_inner_kl' is {value!r}, but algo.adaptive_inner_kl_penalty is "
                           "false; it applies to the adaptive penalty only, so the run ignores it")
        return out

    def check_algorithm(self) -> None:
        """Validate the outer-algorithm fields (called by TrainConfig.validate)."""
        if self.name not in ALGORITHMS:
            close = difflib.get_close_matches(self.name, ALGORITHMS, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(f"config field 'algo.name': unknown algorithm {self.name!r}; {hint}valid: {list(ALGORITHMS)}")
        for name in ("outer_learning_rate", "outer_steps", "target_inner_kl"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"config field 'algo.{name}': expected a positive number, got {getattr(self, name)!r}")
        if not 0.0 < self.clip_eps < 1.0:
            raise ConfigError(f"config field 'algo.clip_eps': expected a value in (0, 1), got {self.clip_eps!r}")
        if self.inner_kl_penalty < 0:
            raise ConfigError(f"config field 'algo.inner_kl_penalty': expected >= 0, got {self.inner_kl_penalty!r}")


@dataclass
class SamplerConfig:
    backend: str = doc("local", "where episodes are sampled: local (this process) or ray (Ray actors, on one or many machines)")
    workers: int = doc(1, "Ray actors sampling in parallel, each owning whole tasks (at most algo.num_tasks); 1 for local")
    address: str = doc("", "Ray cluster to join, e.g. 10.0.0.1:6379; empty: $RAY_ADDRESS if set, else start a local Ray")
    cpus_per_worker: float = doc(1.0, "CPUs each Ray actor reserves; its env uses that many threads when env.num_threads is 0")
    num_cpus: int = doc(0, "CPUs of a local Ray the run starts itself (0: workers x cpus_per_worker); unused when joining")
    max_failures: int = doc(3, "Ray workers that may die during a run (each is replaced and its share sampled again) before the run stops")


@dataclass
class TrainConfig:
    env: EnvConfig = field(default_factory=EnvConfig, metadata={"help": "the task environment"})
    policy: PolicyConfig = field(default_factory=PolicyConfig, metadata={"help": "the policy network"})
    algo: AlgoConfig = field(default_factory=AlgoConfig, metadata={"help": "the meta-learning algorithm and its hyperparameters (MAML-TRPO by default)"})
    sampler: SamplerConfig = field(default_factory=SamplerConfig, metadata={"help": "where episodes are sampled (local or Ray)"})
    iterations: int = doc(500, "meta-iterations to run in total")
    seed: int = doc(0, "seed of every random stream (tasks, env resets, action noise, initial policy)")
    device: str = doc("cpu", "where the learner runs: cpu, cuda or cuda:N")
    dtype: str = doc("float32", "learner precision: float32 or float64")
    checkpoint_every: int = doc(10, "write checkpoints/iter_NNNNNN.pt every this many iterations")
    eval_every: int = doc(0, "every this many iterations, log a cheap adaptation curve on fixed test tasks (0: never)")
    eval_tasks: int = doc(10, "test tasks of the periodic evaluation (the first of the paper's seeded goals)")
    eval_steps: int = doc(1, "adaptation steps of the periodic evaluation")
    progress_bar: bool = doc(True, "show a progress bar")

    def validate(self) -> "TrainConfig":
        """Check every field's type and range; raise :class:`ConfigError` naming the field, the value and the fix."""
        _check_types(self, "")
        a, p = self.algo, self.policy
        positive = {
            "algo.num_tasks": a.num_tasks,
            "algo.episodes_per_task": a.episodes_per_task,
            "algo.inner_steps": a.inner_steps,
            "algo.cg_iters": a.cg_iters,
            "algo.max_backtracks": a.max_backtracks,
            "iterations": self.iterations,
            "checkpoint_every": self.checkpoint_every,
            "algo.max_kl": a.max_kl,
            "algo.hvp_fd_eps": a.hvp_fd_eps,
            "algo.baseline_reg": a.baseline_reg,
            "policy.init_std": p.init_std,
            "eval_tasks": self.eval_tasks,
        }
        for name, value in positive.items():
            if not value > 0:
                raise ConfigError(f"config field '{name}': expected a positive number, got {value!r}")
        for name, value in {"eval_every": self.eval_every, "eval_steps": self.eval_steps,
                            "env.num_threads": self.env.num_threads, "algo.cg_damping": a.cg_damping,
                            "algo.inner_step_size": a.inner_step_size}.items():
            if value < 0:
                raise ConfigError(f"config field '{name}': expected a number >= 0, got {value!r}")
        check_seed(self.seed, "config field 'seed'")
        for name, value in {"algo.discount": a.discount, "algo.gae_lambda": a.gae_lambda}.items():
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"config field '{name}': expected a value in [0, 1], got {value!r}")
        if not 0.0 < a.backtrack_ratio < 1.0:
            raise ConfigError(f"config field 'algo.backtrack_ratio': expected a value in (0, 1), got {a.backtrack_ratio!r}")
        if a.hvp not in HVP_METHODS:
            raise ConfigError(f"config field 'algo.hvp': expected one of {list(HVP_METHODS)}, got {a.hvp!r}; "
                              "exact is the default and recommended")
        if a.hvp != "exact" and a.hvp_subsample != 1.0:
            raise ConfigError(f"config field 'algo.hvp': {a.hvp!r} reproduces the released code, which used every "
                              f"task, and algo.hvp_subsample is {a.hvp_subsample!r}; set algo.hvp_subsample: 1.0 "
                              "or algo.hvp: exact")
        if a.hvp != "exact" and a.name != "maml_trpo":
            raise ConfigError(f"config field 'algo.hvp': {a.hvp!r} applies to the TRPO outer step only, and algo.name "
                              f"is {a.name!r}; remove algo.hvp or use algo.name: maml_trpo")
        if a.baseline_fit not in BASELINE_FITS:
            raise ConfigError(f"config field 'algo.baseline_fit': expected one of {list(BASELINE_FITS)}, got {a.baseline_fit!r}")
        check_hvp_subsample(a.hvp_subsample, "config field 'algo.hvp_subsample'")
        if self.dtype not in ("float32", "float64"):
            raise ConfigError(f"config field 'dtype': expected 'float32' or 'float64', got {self.dtype!r}")
        check_device(self.device, "config field 'device'")
        self._validate_sampler()
        if not p.hidden_sizes or not all(isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in p.hidden_sizes):
            raise ConfigError(
                f"config field 'policy.hidden_sizes': expected a non-empty list of positive integers, got {p.hidden_sizes!r}"
            )
        if not self.env.id or not isinstance(self.env.id, str):
            raise ConfigError(f"config field 'env.id': expected a gymnasium id such as 'metarl/AntVel-v0', got {self.env.id!r}")
        if not all(isinstance(m, str) and all(part.isidentifier() for part in m.split(".")) for m in self.env.imports):
            raise ConfigError(f"config field 'env.imports': expected a list of module names (dotted Python identifiers "
                              f"such as mylab.tasks), got {self.env.imports!r}")
        if not all(isinstance(k, str) for k in self.env.kwargs):
            raise ConfigError(f"config field 'env.kwargs': expected a mapping with text keys, got {self.env.kwargs!r}")
        self.algo.check_algorithm()
        return self

    def _validate_sampler(self) -> None:
        s = self.sampler
        if s.backend not in ("local", "ray"):
            raise ConfigError(f"config field 'sampler.backend': expected 'local' or 'ray', got {s.backend!r}")
        if s.workers < 1:
            raise ConfigError(f"config field 'sampler.workers': expected a positive number of workers, got {s.workers!r}")
        if s.backend == "local" and s.workers != 1:
            raise ConfigError(
                f"config field 'sampler.workers': {s.workers} workers need sampler.backend: ray (the local sampler "
                "is one process); set sampler.backend=ray or sampler.workers=1"
            )
        if s.workers > self.algo.num_tasks:
            raise ConfigError(
                f"config field 'sampler.workers': {s.workers} workers for algo.num_tasks = {self.algo.num_tasks}; "
                f"each worker samples whole tasks, so use at most {self.algo.num_tasks} workers"
            )
        if not s.cpus_per_worker > 0:
            raise ConfigError(f"config field 'sampler.cpus_per_worker': expected a positive number, got {s.cpus_per_worker!r}")
        if s.num_cpus < 0:
            raise ConfigError(f"config field 'sampler.num_cpus': expected >= 0 (0 = workers x cpus_per_worker), got {s.num_cpus!r}")
        if s.max_failures < 0:
            raise ConfigError(f"config field 'sampler.max_failures': expected an integer >= 0, got {s.max_failures!r}")
        if s.address and s.backend != "ray":
            raise ConfigError(
                f"config field 'sampler.address': {s.address!r} is a Ray cluster, but sampler.backend is "
                f"{s.backend!r}; set sampler.backend=ray or leave sampler.address empty"
            )


def check_device(device: str, where: str) -> None:
    """``cpu``, ``cuda`` or ``cuda:N``, else a :class:`ConfigError` that says so."""
    if not isinstance(device, str) or not (
        device == "cpu" or device == "cuda" or (device.startswith("cuda:") and device[5:].isascii() and device[5:].isdigit())
    ):
        raise ConfigError(f"{where}: expected 'cpu' or 'cuda[:N]' (e.g. cuda:0), got {device!r}")


def check_hvp_subsample(fraction: float, where: str) -> float:
    """A curvature subsample, a fraction in ``(0, 1]`` of the tasks, else a :class:`ConfigError` naming ``where``."""
    if not (math.isfinite(fraction) and 0.0 < fraction <= 1.0):
        raise ConfigError(f"{where}: expected a fraction in (0, 1] of the tasks, got {fraction!r}; use 1.0 for exact "
                          "products over every task or e.g. 0.2 for a fifth")
    return fraction


def check_seed(seed: Any, where: str) -> int:
    """A seed torch accepts: an integer in ``[0, 2**63)``, else a :class:`ConfigError` that says so."""
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63:
        raise ConfigError(f"{where}: expected an integer >= 0 and below 2**63 (torch's seeds are 64-bit signed), "
                          f"got {seed!r}")
    return seed


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
            if not math.isfinite(value):
                raise ConfigError(f"config field '{name}': expected a finite number, got {value!r}")
            setattr(cfg, f.name, float(value))


class _Loader(yaml.SafeLoader):
    """Safe YAML that reads ``1e-2`` as a float (YAML 1.2, as users write it) and rejects duplicate keys."""


_Loader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _mapping_without_duplicates(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, Any] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if not isinstance(key, (str, int, float, bool)) and key is not None:
            raise ConfigError(f"line {key_node.start_mark.line + 1}: a key must be a name or a number, not a "
                              f"{type(key).__name__}; write field: value")
        if key in seen:
            raise ConfigError(
                f"key {key!r} appears twice in the same section (lines {seen[key] + 1} and "
                f"{key_node.start_mark.line + 1}); keep one of them"
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


# the most values a config may hold once its aliases are expanded: a few hundred bytes of anchors nested in
# each other expand to billions, which copying and printing the config would then try to build
MAX_VALUES = 100_000


def _count_values(data: Any, budget: int) -> int:
    """``budget`` less the values in ``data`` as expanded (shared parts counted each time), stopping below 0."""
    stack = [data]
    while stack and budget >= 0:
        item = stack.pop()
        budget -= 1
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return budget


def parse_yaml(text: str, where: str) -> Any:
    """YAML text as Python data, or a :class:`ConfigError` naming ``where`` and the line."""
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)
        if _count_values(data, MAX_VALUES) < 0:
            raise ConfigError(f"holds or expands to more than {MAX_VALUES} values (anchors and aliases repeated "
                              "inside each other expand to that many); a config holds far fewer: check the file")
        return data
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}: not valid YAML{line} ({problem}); fix the syntax") from None


def import_flags(modules: Sequence[str]) -> list[str]:
    """``--import MODULE`` for each module, shell-quoted, for the hints users copy into a shell (a module name
    read from a file never becomes a command of its own)."""
    return [f"--import {shlex.quote(m)}" for m in modules]


def resume_flags(cfg: "TrainConfig", ray: bool = True) -> str:
    """The flags a resume of a run with ``cfg`` needs besides ``--output`` and ``--resume`` (with a leading
    space, or empty): ``--import`` for each plug-in module and, with ``ray``, the Ray cluster it joined."""
    flags = import_flags(cfg.env.imports)
    if ray and cfg.sampler.backend == "ray" and cfg.sampler.address:
        flags.append(f"--ray-address {shlex.quote(cfg.sampler.address)}")
    return "".join(" " + f for f in flags)


def read_config_file(path: str | os.PathLike, flag: str = "--config") -> Any:
    """The parsed YAML of a config file, with a clear error for a missing, unreadable or non-text file."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ConfigError(f"{flag}: no such file {path!r}; configs live in experiments/configs/")
    if os.path.isdir(path):
        raise ConfigError(f"{flag}: {path!r} is a directory; pass a YAML file such as experiments/configs/navigation2d.yaml")
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except UnicodeDecodeError:
        raise ConfigError(f"{flag}: {path!r} is not a text file; pass a YAML config") from None
    except OSError as exc:
        raise ConfigError(f"{flag}: cannot read {path!r} ({exc.strerror}); check the path and its permissions") from None
    return parse_yaml(text, f"{flag} {path}")


def load_config(path: str | os.PathLike, overrides: Sequence[str] | Mapping[str, Any] | None = None,
                flag: str = "--config") -> TrainConfig:
    """Read a YAML config, apply overrides (``section.field=value`` strings or a mapping), validate.
    ``flag`` is how messages name where the file came from."""
    data = read_config_file(path, flag)
    if (data is None or data == {}) and not overrides:  # an empty file alone: a mistake, not a request for every default
        raise ConfigError(f"{flag}: {os.fspath(path)!r} is empty; a config names at least its task, e.g. "
                          "`env: {id: metarl/HalfCheetahVel-v0}` (`metarl config` lists every field and its default; "
                          "the paper's configs are experiments/configs/*.yaml)")
    return from_dict(apply_overrides({} if data is None else data, overrides or [])).validate()


def apply_overrides(data: Any, overrides: Sequence[str] | Mapping[str, Any]) -> dict:
    """Apply dotted-field overrides to nested dicts: ``["a.b=value"]`` (values parsed as YAML) or ``{"a.b": value}``."""
    if not isinstance(data, dict):
        raise ConfigError(f"config: expected a mapping of fields at the top level, got {type(data).__name__} {data!r}")
    data = dict(data)
    items: list[tuple[str, Any, str]] = []
    if isinstance(overrides, Mapping):
        items = [(str(k), v, f"overrides[{k!r}]") for k, v in overrides.items()]
    else:
        for item in overrides:
            if "=" not in item:
                raise ConfigError(f"--set {item!r}: expected FIELD=VALUE, e.g. --set algo.max_kl=0.02")
            key, raw = item.split("=", 1)
            items.append((key, parse_yaml(raw, f"--set {item!r}: the value"), f"--set {item!r}"))
    for key, value, where in items:
        parts = key.strip().split(".")
        if not all(parts):
            raise ConfigError(f"{where}: {key!r} is not a field name; write section.field, e.g. algo.max_kl")
        node = data
        for part in parts[:-1]:
            child = node.get(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{where}: '{part}' is not a section")
            node[part] = dict(child)
            node = node[part]
        old, section = node.get(parts[-1]), _section(parts)
        if isinstance(value, Mapping) and isinstance(old, dict) and section is not None:
            value = _merged(old, value, section)  # a section's fields given are set, the others kept
        node[parts[-1]] = value
    return data


def _section(parts: Sequence[str]) -> type | None:
    """The config dataclass a dotted field path names (``["algo"]``: AlgoConfig), or None for a plain field
    (``env.kwargs`` is a mapping that an override replaces whole)."""
    cls: Any = TrainConfig
    for part in parts:
        hints = get_type_hints(cls) if dataclasses.is_dataclass(cls) else {}
        if part not in hints or not dataclasses.is_dataclass(hints[part]):
            return None
        cls = hints[part]
    return cls


def _merged(old: dict, new: Mapping, cls: Any) -> dict:
    """``old`` with the fields of ``new`` set, merged the same way inside nested sections."""
    hints = get_type_hints(cls)
    out = dict(old)
    for key, value in new.items():
        inner = hints.get(key)
        if (isinstance(value, Mapping) and isinstance(out.get(key), dict) and inner is not None
                and dataclasses.is_dataclass(inner)):
            out[key] = _merged(out[key], value, inner)
        else:
            out[key] = value
    return out


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
