"""Env construction: the one place where an :class:`~metarl.config.EnvConfig` becomes a task vector env.

Training, resuming, evaluation, the random and SB3 comparisons and the samplers all call
:func:`make_env`, so a run's ``env.imports``, ``env.kwargs`` and ``env.num_threads`` mean the same
thing everywhere.

Plug-in modules named in ``env.imports`` are imported the way a user of a command-line tool expects:
from the directory the command runs in (it is put at the front of ``sys.path`` for the import, as
``python -m`` does), then from the installed packages.

Importing a module runs its code, so the modules a *saved* run names (a checkpoint or a run directory's
``config.yaml``, which may come from anyone) are imported only when the user names them too
(``--import MODULE``, ``imports=[...]`` in the Python API): :func:`check_named_imports` is the gate that the
loaders call before anything builds an env.  A config the user passes for a new run is the user's own
instruction, and its ``env.imports`` are imported as it asks.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from typing import Any, Protocol, Sequence

import gymnasium
import numpy as np

from metarl.config import ConfigError, EnvConfig, import_flags


class TaskVectorEnv(Protocol):
    """What metarl needs of an env: :class:`metarl.envs.BatchedTaskEnv` and ``TaskSyncVectorEnv`` both fit."""

    num_envs: int
    horizon: int
    single_observation_space: Any
    single_action_space: Any

    def sample_tasks(self, n: int, rng: np.random.Generator) -> np.ndarray: ...

    def set_tasks(self, tasks: np.ndarray) -> None: ...

    def get_tasks(self) -> np.ndarray: ...

    def reset(self, *, seed: Any = None, options: Any = None) -> tuple[np.ndarray, dict]: ...

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]: ...


def import_plugins(modules: list[str]) -> None:
    """Import the modules of ``env.imports`` (they register their env ids), from the working directory first."""
    cwd = os.getcwd()
    added = cwd not in sys.path and "" not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        for module in modules:
            if not isinstance(module, str) or not module:
                raise ConfigError(f"config field 'env.imports': expected module names, got {module!r}")
            try:
                importlib.import_module(module)
            except ImportError as exc:
                raise ConfigError(
                    f"config field 'env.imports': cannot import {module!r} ({exc}); plug-in modules are imported "
                    f"from the directory the command runs in ({cwd}) or from installed packages: run the command "
                    "from the folder that holds the module, or pip install the package that contains it"
                ) from exc
    finally:
        if added and cwd in sys.path:
            sys.path.remove(cwd)


def check_named_imports(env: EnvConfig, imports: Sequence[str] | None, source: str) -> None:
    """Refuse a saved run whose ``env.imports`` the user has not named in ``imports``.

    ``source`` says what was loaded (for the message).  Modules named in ``imports`` that the run does not need are refused too, so that a
    typo does not pass silently.
    """
    if isinstance(imports, (str, bytes)):
        raise ConfigError(f"imports: expected a list of module names, e.g. [{imports!r}], got the string {imports!r}")
    allowed = [] if imports is None else list(imports)
    for module in allowed:
        if not isinstance(module, str) or not module:
            raise ConfigError(f"--import (imports=): expected a module name, got {module!r}")
    wanted = [m for m in env.imports if isinstance(m, str)]
    missing = [m for m in wanted if m not in allowed]
    if missing:
        named = " ".join(import_flags(missing))
        raise ConfigError(
            f"config field 'env.imports': {source} names the plug-in module(s) {missing}, and importing a module runs "
            f"its code; metarl imports the modules of a saved run only when you name them as well. If you trust "
            f"them (your own plug-ins, installed or in the directory you run from), add {named} "
            f"(in Python: imports={missing!r})"
        )
    unused = [m for m in allowed if m not in wanted]
    if unused:
        raise ConfigError(f"--import: {source} does not use the module(s) {unused} (its env.imports are {wanted}); "
                          f"drop {' '.join(import_flags(unused))}")


def env_spec(env: EnvConfig) -> Any:
    """The gymnasium spec of ``env.id`` after importing the plug-ins, or a clear error."""
    from metarl import envs  # registers the metarl/ ids

    import_plugins(list(env.imports))
    try:
        return gymnasium.spec(env.id)
    except gymnasium.error.Error as exc:
        where = ("plug-in ids need their module in env.imports" if not env.imports else
                 f"env.imports {list(env.imports)} were imported and none registered {env.id!r}: check the id's "
                 "spelling against the module's gymnasium.register call")
        raise ConfigError(f"config field 'env.id': {exc}; the paper's tasks are {sorted(envs.TASK_ENVS)}, {where}") from exc


def _is_batched_task_env(entry_point: Any) -> bool:
    from metarl.envs import BatchedTaskEnv

    return inspect.isclass(entry_point) and issubclass(entry_point, BatchedTaskEnv)


def make_env(env: EnvConfig, num_envs: int, *, oracle: bool = False) -> Any:
    """The task vector env of ``env`` with ``num_envs`` slots.

    Ids registered with a batched task env (``metarl.envs.register_task_env``) get the fast batched env,
    stepped by ``env.num_threads`` threads; any other id is run one gymnasium env per slot through
    ``metarl.envs.TaskSyncVectorEnv``, which needs ``sample_tasks`` and ``set_task`` on the env.
    ``oracle=True`` appends each slot's task to its observation (the paper's oracle comparison).
    """
    from metarl.envs import TaskSyncVectorEnv
    from metarl.envs.wrappers import TaskInObservation

    if isinstance(num_envs, int) and num_envs > PROBE_SLOTS:  # sizes far past any config's: first what they need
        check_memory(env, num_envs)
    spec = env_spec(env)
    kwargs = dict(env.kwargs)
    taken = sorted(set(kwargs) & {"vectorization_mode", "vector_kwargs", "wrappers", "num_envs"})
    if taken:  # gymnasium.make_vec's own parameters: metarl chooses how the slots are vectorised
        raise ConfigError(f"config field 'env.kwargs': {taken} are gymnasium.make_vec's own parameters, not the env's; "
                          "metarl builds the vector env itself (batched, or one env per slot): remove them")
    vec: Any
    try:
        if _is_batched_task_env(spec.vector_entry_point):
            vec = gymnasium.make_vec(env.id, num_envs=num_envs, num_threads=env.num_threads, **kwargs)
        else:
            vec = TaskSyncVectorEnv([lambda: gymnasium.make(env.id, **kwargs) for _ in range(num_envs)])
    except TypeError as exc:
        if "keyword argument" in str(exc):
            raise ConfigError(
                f"config field 'env.kwargs': {env.id} does not take {kwargs!r} ({exc}); "
                "remove the keys it does not know (see the env's documentation for the ones it takes)"
            ) from exc
        if "lacks" in str(exc):  # TaskSyncVectorEnv: not a task env
            raise ConfigError(
                f"config field 'env.id': {env.id!r} is not a task env ({exc}); use one of the metarl/ ids or "
                "a plug-in env with sample_tasks and set_task"
            ) from exc
        raise
    except ValueError as exc:
        raise ConfigError(f"config field 'env.kwargs': {env.id} rejected {kwargs!r}: {exc}") from exc
    if not (isinstance(num_envs, int) and num_envs > PROBE_SLOTS):  # few slots: a long horizon may still not fit
        try:
            _check_sizes(env, num_envs, *env_dims(vec), int(vec.horizon), available_memory())
        except ConfigError:
            vec.close()
            raise
    return TaskInObservation(vec) if oracle else vec


# above this many slots make_env first checks that the rollouts can fit in memory (the paper's configs use 800)
PROBE_SLOTS = 4096


def available_memory() -> int | None:
    """Bytes of memory the system can give without swapping (``MemAvailable``), or None where it does not say."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, OSError, ValueError):
        return None


def check_memory(env: EnvConfig, num_envs: int) -> None:
    """Refuse ``num_envs`` slots whose rollouts alone (every step's observation, action, reward and episode mask
    of every slot, in float32, the least any sampler keeps) would not fit in the memory the system has free:
    they would be allocated until the machine runs out, where a clear error now says so.  The sizes are read
    from a one-slot env of the same config."""
    free = available_memory()
    if free is None:
        return
    probe = make_env(env, 1)
    try:
        obs_dim, act_dim = env_dims(probe)
        horizon = int(probe.horizon)
    finally:
        probe.close()
    _check_sizes(env, num_envs, obs_dim, act_dim, horizon, free)


def _check_sizes(env: EnvConfig, num_envs: int, obs_dim: int, act_dim: int, horizon: int, free: int | None) -> None:
    """The refusal of :func:`check_memory`, given the sizes: rollouts of ``num_envs x horizon`` steps above ``free``."""
    numbers = obs_dim + act_dim + 2
    needed = num_envs * horizon * numbers * 4
    if free is not None and needed > free:
        raise ConfigError(f"env slots: {num_envs} slots of {env.id} would need at least {needed / 2**30:.1f} GiB for "
                          f"their rollouts alone ({horizon} steps x {numbers} numbers x 4 bytes each), more than "
                          f"the {free / 2**30:.1f} GiB this machine has free; use fewer slots (train: algo.num_tasks x "
                          "algo.episodes_per_task; evaluate: --tasks x --episodes; baseline: --slots) or a shorter "
                          "episode (the env's horizon)")


def env_dims(env: Any) -> tuple[int, int]:
    """``(obs_dim, act_dim)`` of a task vector env's single slot."""
    return int(env.single_observation_space.shape[0]), int(env.single_action_space.shape[0])


def env_name(env: Any) -> str:
    """How messages name a task vector env: its registered id, else its class."""
    return getattr(getattr(env, "spec", None), "id", None) or type(env).__name__


def sample_tasks(env: Any, n: int, rng: np.random.Generator) -> np.ndarray:
    """``env.sample_tasks(n, rng)`` as float64 ``[n, k]`` of finite numbers; an env that returns anything else
    (or refuses with a ValueError) is named in an :class:`~metarl.errors.EnvError`, as the sampler names an env
    whose ``reset``/``step`` break the contract."""
    from metarl.errors import EnvError

    name = env_name(env)
    fix = "fix the env's sample_tasks (see docs/plugins.md for what a task env returns)"
    try:
        raw = env.sample_tasks(n, rng)
    except ValueError as exc:
        raise EnvError(name, f"sample_tasks({n}, rng): {exc}", fix) from None
    try:
        tasks = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):
        raise EnvError(name, f"sample_tasks({n}, rng) returned {type(raw).__name__}, not an array of numbers", fix) from None
    if tasks.ndim != 2 or tasks.shape[0] != n:
        raise EnvError(name, f"sample_tasks({n}, rng) returned shape {tasks.shape}, expected ({n}, k): one row per task", fix)
    if not np.isfinite(tasks).all():
        raise EnvError(name, f"sample_tasks({n}, rng) returned values that are not finite (NaN or inf)", fix, True)
    return tasks
