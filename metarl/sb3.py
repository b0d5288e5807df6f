"""stable-baselines3 on metarl's task envs, and the paper's pretrained / oracle comparisons.

``SB3TaskVecEnv`` presents a batched task env as an SB3 ``VecEnv``: every slot draws a fresh task from
the task distribution at each episode start (or keeps fixed tasks), slots that finish reset on their own
as SB3 expects, and ``oracle=True`` appends the task to the observation.  Any SB3 algorithm trains on it.

The pretrained and oracle baselines are SB3 policies with metarl's network shape (ReLU MLP,
state-independent log std), trained with TRPO from sb3-contrib (the paper trained them with TRPO) or with
PPO; :func:`sb3_policy_params` converts the actor to metarl parameters, so the inner loop adapts it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import threading
import time
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv

from metarl.environment import sample_tasks
from metarl.policy import Params


class SB3TaskVecEnv(VecEnv):
    """An SB3 ``VecEnv`` over a task vector env (``metarl.envs.BatchedTaskEnv`` or ``metarl.envs.TaskSyncVectorEnv``).

    Args:
        env: the task vector env; each of its slots is one SB3 env.
        oracle: append each slot's task to its observation.
        tasks: fixed tasks ``[num_envs, k]``; by default every episode draws a new task.
        seed: seed of the task draws and env resets.
    """

    def __init__(self, env: Any, oracle: bool = False, tasks: np.ndarray | None = None, seed: int = 0) -> None:
        self.env, self.oracle = env, oracle
        self.rng = np.random.default_rng(seed)
        self.fixed_tasks = None if tasks is None else np.asarray(tasks, dtype=np.float64)
        self._seed: int | None = seed
        inner = env.single_observation_space
        self.task_dim = env.get_tasks().shape[1]
        extra = self.task_dim if oracle else 0
        obs_space = spaces.Box(
            np.concatenate([inner.low, np.full(extra, -np.inf)]).astype(np.float32),
            np.concatenate([inner.high, np.full(extra, np.inf)]).astype(np.float32),
            dtype=np.float32,
        )
        super().__init__(env.num_envs, obs_space, env.single_action_space)
        self._actions: np.ndarray | None = None
        self._episode_returns = np.zeros(self.num_envs)
        self._episode_lengths = np.zeros(self.num_envs, dtype=np.int64)

    def _draw_tasks(self, n: int) -> np.ndarray:
        return sample_tasks(self.env, n, self.rng)

    def _obs(self, obs: np.ndarray) -> np.ndarray:
        if self.oracle:
            obs = np.concatenate([obs, self.env.get_tasks()], axis=1)
        return obs.astype(np.float32)

    def reset(self) -> np.ndarray:
        tasks = self.fixed_tasks if self.fixed_tasks is not None else self._draw_tasks(self.num_envs)
        self.env.set_tasks(tasks)
        seed, self._seed = self._seed, None
        obs, _ = self.env.reset(seed=seed)
        self._episode_returns[:] = 0
        self._episode_lengths[:] = 0
        return self._obs(obs)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions, dtype=np.float64).reshape(self.num_envs, -1)

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict]]:
        obs, reward, terminated, truncated, _ = self.env.step(self._actions)
        obs = self._obs(obs)
        dones = terminated | truncated
        self._episode_returns += reward
        self._episode_lengths += 1
        infos: list[dict] = [{} for _ in range(self.num_envs)]
        if dones.any():
            ids = np.flatnonzero(dones)
            for i in ids:
                infos[i] = {
                    "terminal_observation": obs[i].copy(),
                    "TimeLimit.truncated": bool(truncated[i] and not terminated[i]),
                    "episode": {"r": float(self._episode_returns[i]), "l": int(self._episode_lengths[i])},
                }
            if self.fixed_tasks is None:
                tasks = self.env.get_tasks()
                tasks[ids] = self._draw_tasks(len(ids))
                self.env.set_tasks(tasks)
            new_obs, _ = self.env.reset(options={"reset_mask": dones})
            obs[ids] = self._obs(new_obs)[ids]
            self._episode_returns[ids] = 0
            self._episode_lengths[ids] = 0
        return obs, reward.astype(np.float32), dones, infos

    def seed(self, seed: int | None = None) -> Sequence[None | int]:
        if seed is not None:
            self._seed = int(seed)
            self.rng = np.random.default_rng(seed)
        return [seed] * self.num_envs

    def close(self) -> None:
        self.env.close()

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        return [getattr(self.env, attr_name)] * len(self._indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        setattr(self.env, attr_name, value)

    def env_method(self, method_name: str, *args: Any, indices: Any = None, **kwargs: Any) -> list[Any]:
        return [getattr(self.env, method_name)(*args, **kwargs)] * len(self._indices(indices))

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False] * len(self._indices(indices))

    def _indices(self, indices: Any) -> Sequence[int]:
        if indices is None:
            return range(self.num_envs)
        if isinstance(indices, int):
            return [indices]
        return list(indices)


def policy_kwargs(hidden_sizes: Sequence[int], init_std: float) -> dict[str, Any]:
    """SB3 ``MlpPolicy`` arguments giving metarl's actor: ReLU layers, state-independent log std."""
    return {
        "net_arch": {"pi": list(hidden_sizes), "vf": list(hidden_sizes)},
        "activation_fn": torch.nn.ReLU,
        "log_std_init": math.log(init_std),
        "ortho_init": False,
    }


def sb3_policy_params(model: Any, dtype: torch.dtype = torch.float32) -> Params:
    """metarl parameters of an SB3 on-policy actor (``MlpPolicy`` with ReLU layers and a Gaussian head)."""
    policy = model.policy
    linear = [m for m in policy.mlp_extractor.policy_net if isinstance(m, torch.nn.Linear)]
    acts = [m for m in policy.mlp_extractor.policy_net if not isinstance(m, torch.nn.Linear)]
    if any(not isinstance(a, torch.nn.ReLU) for a in acts):
        raise ValueError("model: the actor must use ReLU activations (policy_kwargs=metarl.sb3.policy_kwargs(...))")
    if not hasattr(policy, "log_std") or getattr(policy, "squash_output", False):
        raise ValueError("model: expected a Gaussian actor with a state-independent log std and no squashing")
    layers = [*linear, policy.action_net]
    params: Params = {}
    for i, layer in enumerate(layers):
        params[f"w{i}"] = layer.weight.detach().cpu().T.contiguous().to(dtype)
        params[f"b{i}"] = layer.bias.detach().cpu().clone().to(dtype)
    params["log_std"] = policy.log_std.detach().cpu().clone().to(dtype)
    return params


BASELINE_ALGOS = ("trpo", "ppo")


class _EpisodeCurve:
    """An SB3 callback that records the mean return of the episodes finished in each rollout.

    ``rows`` starts from ``rows`` of an earlier part of the run; ``on_rollout_start(num_timesteps)``, when
    set, is called at each rollout's start (between two updates)."""

    def __init__(self, rows: Sequence[tuple[int, float, int]] = ()) -> None:
        from stable_baselines3.common.callbacks import BaseCallback

        curve = self

        class Callback(BaseCallback):
            def _on_rollout_start(self) -> None:
                if curve.on_rollout_start is not None:
                    curve.on_rollout_start(int(self.num_timesteps))

            def _on_step(self) -> bool:
                for info in self.locals.get("infos", []):
                    if "episode" in info:
                        curve._returns.append(info["episode"]["r"])
                return True

            def _on_rollout_end(self) -> None:
                if curve._returns:
                    curve.rows.append((int(self.num_timesteps), float(np.mean(curve._returns)), len(curve._returns)))
                    curve._returns = []

        self.rows: list[tuple[int, float, int]] = list(rows)
        self._returns: list[float] = []
        self.on_rollout_start: Callable[[int], None] | None = None
        self.callback = Callback()

    def csv(self) -> bytes:
        lines = ["env_steps,mean_episode_return,episodes"] + [f"{t},{r:.4f},{n}" for t, r, n in self.rows]
        return ("\n".join(lines) + "\n").encode()


BASELINE_SAVE_EVERY = 1_000_000  # env steps between the periodic saves of a baseline run
# written first into a baseline's folder: what says the folder is metarl's, so --overwrite may replace it
BASELINE_MARKER = "metarl-baseline.json"
BASELINE_FILES = {"sb3_model.zip", "training_curve.csv", "config.yaml", "checkpoints", ".lock", BASELINE_MARKER}
_DEFAULTS: dict[str, Any] = {"num_slots": 16, "seed": 0, "algo": "trpo"}
# env slots (trajectories per TRPO update) where the default falls short: the authors trained their Ant
# baselines with 100 trajectories of 200 steps per update, and both Ant oracles reach the paper's return only
# with that batch (docs/evaluation.md, "Measured: TRPO baselines")
PAPER_BASELINE_SLOTS = {"metarl/AntVel-v0": 100, "metarl/AntDir-v0": 100}


def default_slots(env_id: str) -> int:
    """``--slots`` of a new baseline of ``env_id`` when none is given: 100 for the paper's Ant tasks, else 16."""
    return int(PAPER_BASELINE_SLOTS.get(env_id, _DEFAULTS["num_slots"]))


def _read_zip_member(path: str, member: str) -> bytes:
    import zipfile

    from metarl.checkpoint import CheckpointError

    try:
        with zipfile.ZipFile(path) as archive:
            return archive.read(member)
    except Exception as exc:  # missing file or member, a damaged archive or member (zlib), ...
        raise CheckpointError(f"{path!r}: cannot read {member} ({type(exc).__name__}); the baseline cannot be "
                              "continued from it, train it again with --overwrite") from None


def _read_zip_state(path: str, member: str) -> dict[str, Any]:
    """One ``torch.save``d state dict inside an SB3 model zip, read as tensors and plain data only.

    Used for baselines saved before ``checkpoints/best.pt`` held the networks.  The zip's ``data`` entry
    (SB3's objects, some pickled) is never unpickled, so loading runs nothing from the file."""
    import io
    import pickle

    from metarl.checkpoint import CheckpointError

    raw = _read_zip_member(path, member)
    try:
        state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(f"{path!r}: {member} holds objects other than tensors and plain data, so it was not loaded "
                              "(nothing in it was run); train the baseline again with --overwrite") from None
    except Exception as exc:
        raise CheckpointError(f"{path!r}: {member} is unreadable ({type(exc).__name__}); train the baseline again "
                              "with --overwrite") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path!r}: {member} is not a state dict; train the baseline again with --overwrite")
    return state


def _zip_settings(path: str) -> dict[str, Any]:
    """``n_envs`` and ``seed`` from an SB3 model zip's ``data`` entry, read as JSON (nothing is unpickled)."""
    import json

    try:
        data = json.loads(_read_zip_member(path, "data"))
    except ValueError:
        return {}
    return {k: data[k] for k in ("n_envs", "seed") if isinstance(data.get(k), int)}


def _read_curve(path: str, up_to: int, progress: Callable[[str], None]) -> list[tuple[int, float, int]]:
    """The training curve's rows up to ``up_to`` env steps; an unreadable file starts the curve afresh (warned)."""
    rows = []
    try:
        with open(path) as fh:
            for line in fh.read().splitlines()[1:]:
                t, r, n = line.split(",")
                rows.append((int(t), float(r), int(n)))
    except (OSError, ValueError) as exc:
        progress(f"warning: {path} is unreadable ({type(exc).__name__}); the training curve restarts at {up_to} env steps")
        return []
    return [row for row in rows if row[0] <= up_to]


def _config_difference(saved: dict[str, Any], given: dict[str, Any], prefix: str = "") -> str | None:
    """The first field (dotted) where two config dicts differ, or None; a field the saved config does not have
    (added to metarl's configs after the run was saved) does not count."""
    for key in sorted(saved):
        if key not in given:
            continue
        a, b = saved[key], given[key]
        if isinstance(a, dict) and isinstance(b, dict):
            found = _config_difference(a, b, f"{prefix}{key}.")
            if found:
                return found
        elif a != b:
            return f"{prefix}{key} (the run's: {a!r}, given: {b!r})"
    return None


@contextlib.contextmanager
def _blocked_signals() -> Iterator[None]:
    """A context in which SIGINT and SIGTERM wait (delivered when it ends), so a save is never cut in half."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


class BaselineInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM during a baseline's training (after its save): ``signum`` says which, for exit 128 + N."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _check_new_output(output: str, ckpt: str, overwrite: bool) -> None:
    """A new baseline may go into ``output``: empty, or (with ``overwrite``) a baseline's folder; never files of yours."""
    from metarl.errors import UsageError
    from metarl.rundir import LOCK

    present = sorted(n for n in os.listdir(output) if not n.startswith(".tmp-") and n != LOCK)
    others = [n for n in present if n not in BASELINE_FILES]
    if others:
        raise UsageError(f"--output: {output!r} already holds other files ({', '.join(others[:3])}); "
                         "choose a new or empty directory")
    if present and not _is_baseline_folder(output):  # names a baseline writes, but not a baseline's
        raise UsageError(f"--output: {output!r} holds {', '.join(present)} but is not a metarl baseline's "
                         f"folder (no {BASELINE_MARKER}, and no checkpoints/best.pt of a baseline): they may "
                         "be files of yours (or what an older metarl's baseline left when stopped before its first "
                         "save), which a baseline would replace; move them away or choose a new or empty directory")
    if present and not overwrite:
        if os.path.exists(ckpt):
            raise UsageError(f"--output: {output!r} already holds a trained baseline; pass --overwrite, --resume "
                             "to continue it, or choose another --output")
        raise UsageError(f"--output: {output!r} already holds an unfinished baseline (no "
                         "checkpoints/best.pt); choose a new or empty directory, or pass --overwrite to replace it")


def _is_baseline_folder(output: str) -> bool:
    """Whether ``output`` is a baseline's folder: it holds the marker, or (a baseline saved before the marker)
    a ``checkpoints/best.pt`` that loads as a pretrained or oracle baseline's."""
    from metarl.checkpoint import CheckpointError, load_checkpoint

    try:
        with open(os.path.join(output, BASELINE_MARKER), encoding="utf-8") as fh:
            data = json.load(fh)
        if isinstance(data, dict) and data.get("format") == "metarl-baseline":
            return True
    except (OSError, UnicodeDecodeError, ValueError):
        pass
    try:
        return load_checkpoint(os.path.join(output, "checkpoints", "best.pt")).get("method") in ("pretrained", "oracle")
    except CheckpointError:
        return False


def _load_saved_baseline(ckpt: str) -> dict[str, Any]:
    """``checkpoints/best.pt`` of a baseline folder, or a one-line error that says what to do instead."""
    from metarl.checkpoint import CheckpointError, load_checkpoint

    try:
        return load_checkpoint(ckpt)
    except CheckpointError as exc:
        reason = str(exc).split("; ")[0]
        raise CheckpointError(f"{reason}; a baseline folder keeps only this checkpoint, so it cannot be continued: "
                              "train the baseline again with --overwrite") from None


def _own_settings(saved: dict[str, Any], zip_path: str) -> dict[str, Any]:
    """``--slots``, ``--seed`` and ``--algo`` of a saved baseline (an older one's from its zip's JSON entry)."""
    found = _zip_settings(zip_path) if "sb3_slots" not in saved else {}
    out = {"num_slots": saved.get("sb3_slots", found.get("n_envs")), "seed": saved.get("sb3_seed", found.get("seed")),
           "algo": saved.get("sb3_algo")}
    return {k: v for k, v in out.items() if v is not None}


def _import_dynamo_without_a_cache_folder() -> None:
    """Import ``torch._dynamo`` (which every torch optimizer imports) without leaving a folder behind.

    Importing it makes TorchInductor's cache folder, ``torchinductor_<user>`` in the system's temp directory,
    and sets ``TORCHINDUCTOR_CACHE_DIR`` in the process's environment; a baseline compiles nothing, so the
    folder stays empty.  The variable is taken back and the folder removed, unless the folder was there
    before (another torch program's cache, left alone).  A ``TORCHINDUCTOR_CACHE_DIR`` of the user's own, or
    an import done earlier in the process, leaves everything as it is.
    """
    import sys
    import tempfile

    if "torch._dynamo" in sys.modules or "TORCHINDUCTOR_CACHE_DIR" in os.environ:
        return
    temp = os.path.abspath(tempfile.gettempdir())
    try:
        before: set[str] | None = set(os.listdir(temp))
    except OSError:
        before = None
    import torch._dynamo  # noqa: F401

    folder = os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)
    if folder and before is not None and os.path.dirname(folder) == temp and os.path.basename(folder) not in before:
        with contextlib.suppress(OSError):  # not empty: something else wrote there meanwhile
            os.rmdir(folder)


def train_baseline(kind: str, cfg: Any, output: str, timesteps: int, seed: int | None = None,
                   num_slots: int | None = None, overwrite: bool = False, progress: Callable[[str], None] = print,
                   algo: str | None = None, resume: bool = False, save_every: int = BASELINE_SAVE_EVERY) -> dict[str, Any]:
    """Train the pretrained or oracle comparison with SB3 (TRPO from sb3-contrib, the paper's method, or PPO).

    Writes ``checkpoints/best.pt`` (metarl parameters, which ``metarl evaluate`` adapts, with the SB3
    networks and optimizer state), ``sb3_model.zip``, ``config.yaml`` and ``training_curve.csv`` (mean return
    of the episodes of each rollout), at the end, every ``save_every`` env steps (at a rollout's start) and on
    SIGINT/SIGTERM (the state at the start of the interrupted rollout).  ``best.pt`` is written last, in one
    atomic step, and is what a resume reads.  ``seed``, ``num_slots`` and ``algo`` default to 0,
    :func:`default_slots` (100 for the paper's Ant tasks, 16 otherwise) and ``"trpo"``, or with ``resume``
    to the run's own.

    ``resume=True`` continues the baseline in ``output`` up to ``timesteps`` env steps in all (a larger
    budget extends a finished run).  The episodes that were in progress restart and the random streams are
    reseeded from ``seed`` and the steps done, so a continued run is reproducible but not identical to one
    that was never stopped.
    """
    import copy
    import shlex

    from metarl.checkpoint import CheckpointError, atomic_write_bytes, save_checkpoint
    from metarl.config import ConfigError, check_seed, import_flags, resume_flags, save_config, to_dict
    from metarl.environment import PROBE_SLOTS, check_memory, make_env
    from metarl.errors import UsageError
    from metarl.rundir import LOCK, RunDirectory, check_output_dir

    if kind not in ("pretrained", "oracle"):
        raise ConfigError(f"baseline: expected 'pretrained' or 'oracle', got {kind!r}")
    if resume and overwrite:
        raise UsageError("--resume and --overwrite: choose one (continue the baseline in --output, or replace it)")
    # every check on the output before any training, so a bad path never wastes a run
    output = check_output_dir(output)
    ckpt = os.path.join(output, "checkpoints", "best.pt")
    zip_path = os.path.join(output, "sb3_model.zip")
    if resume and not os.path.isfile(ckpt):
        raise UsageError(f"--resume: {output!r} holds no baseline to continue (no checkpoints/best.pt); "
                         "train one there without --resume (--overwrite replaces what is there)")
    saved = _load_saved_baseline(ckpt) if resume else {}
    if resume and saved.get("method") not in ("pretrained", "oracle"):
        modules = [m for m in (saved.get("config") or {}).get("env", {}).get("imports", []) if isinstance(m, str)]
        imports = "".join(" " + flag for flag in import_flags(modules))
        raise UsageError(f"--resume: {output!r} holds a meta-training run (method {saved.get('method', 'maml')!r}), not a "
                         f"baseline; continue it with `metarl train --output {shlex.quote(output)} --resume{imports}`, or give "
                         "the baseline's own folder as --output")
    own = _own_settings(saved, zip_path) if resume else {}
    seed = own.get("seed", _DEFAULTS["seed"]) if seed is None else seed
    if num_slots is None:  # a run saved without its slot count predates the Ant default: it had 16
        num_slots = own.get("num_slots", _DEFAULTS["num_slots"] if resume else default_slots(cfg.env.id))
    algo = own.get("algo", _DEFAULTS["algo"]) if algo is None else algo
    if algo not in BASELINE_ALGOS:
        raise ConfigError(f"--algo: expected one of {list(BASELINE_ALGOS)}, got {algo!r}")
    for flag, value in (("--timesteps", timesteps), ("--slots", num_slots), ("save_every", save_every)):
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"{flag}: expected a positive integer, got {value!r}")
    check_seed(seed, "--seed")
    if num_slots > PROBE_SLOTS:  # slots that may not fit in memory: refused before anything is made on disk
        check_memory(cfg.env, num_slots)
    if not resume and os.path.isdir(output):  # before the lock file is made in a folder that may be yours
        _check_new_output(output, ckpt, overwrite)
    created = not os.path.exists(output)
    os.makedirs(output, exist_ok=True)
    lock = RunDirectory.lock(output)  # one process writes a baseline folder at a time
    try:
        done, old_rows, loaded = 0, [], None
        if resume:
            for field, name, wanted in (("method", "kind", kind), ("sb3_algo", "--algo", algo)):
                if saved.get(field) != wanted:
                    raise UsageError(f"{name}: the baseline in {output!r} is {saved.get(field)!r}, got {wanted!r}; "
                                     f"continue it as {saved.get(field)!r}")
            for field, name, number in (("num_slots", "--slots", num_slots), ("seed", "--seed", seed)):
                if field in own and own[field] != number:
                    raise UsageError(f"{name}: the baseline in {output!r} was trained with {own[field]}, got {number}; "
                                     f"leave {name} out to continue with the run's own")
            diff = _config_difference(saved.get("config", {}), to_dict(cfg))
            if diff:
                raise UsageError(f"--config: differs from the baseline's own config in {diff}; "
                                 f"leave --config out to continue with its own, {os.path.join(output, 'config.yaml')}")
            done = int(saved.get("sb3_timesteps", 0))
            if timesteps <= done:
                raise UsageError(f"--timesteps: the baseline in {output!r} has trained {done} env steps already; "
                                 f"pass a larger --timesteps (the total) to train it further")
            if "sb3_policy" in saved and "sb3_optimizer" in saved:
                loaded = (saved["sb3_policy"], saved["sb3_optimizer"])
            else:  # saved before best.pt held the networks: the zip's tensor entries
                loaded = (_read_zip_state(zip_path, "policy.pth"), _read_zip_state(zip_path, "policy.optimizer.pth"))
            old_rows = _read_curve(os.path.join(output, "training_curve.csv"), done, progress)
        else:  # again under the lock: another process may have written there since
            _check_new_output(output, ckpt, overwrite)
        env = make_env(cfg.env, num_slots)
        vec = SB3TaskVecEnv(env, oracle=kind == "oracle", seed=seed)
        horizon = env.horizon
        rollout = num_slots * horizon
        # the largest minibatch of at most 1000 steps that divides the rollout (SB3 warns on a ragged last one)
        batch_size = max(b for b in range(1, min(rollout, 1000) + 1) if rollout % b == 0)
        _import_dynamo_without_a_cache_folder()
        common = dict(n_steps=horizon, batch_size=batch_size, gamma=cfg.algo.discount, seed=seed, verbose=0, device="cpu",
                      policy_kwargs=policy_kwargs(cfg.policy.hidden_sizes, cfg.policy.init_std))
        if algo == "trpo":
            from sb3_contrib import TRPO

            # the paper's meta-optimizer settings where TRPO has them: KL bound, CG damping and backtracking
            model: Any = TRPO("MlpPolicy", vec, target_kl=cfg.algo.max_kl, cg_max_steps=cfg.algo.cg_iters,
                              line_search_shrinking_factor=cfg.algo.backtrack_ratio,
                              line_search_max_iter=cfg.algo.max_backtracks, gae_lambda=cfg.algo.gae_lambda, **common)
        else:
            from stable_baselines3 import PPO

            model = PPO("MlpPolicy", vec, **common)
        # SB3's default logger with verbose=0 makes an empty SB3-<time> folder in the system's temp directory at
        # every learn(); the run writes its own training_curve.csv, so SB3 logs nowhere
        from stable_baselines3.common.logger import Logger

        model.set_logger(Logger(folder=None, output_formats=[]))
        if loaded is not None:
            try:
                model.policy.load_state_dict(loaded[0])
                model.policy.optimizer.load_state_dict(loaded[1])
            except (RuntimeError, ValueError, KeyError, TypeError) as exc:
                raise CheckpointError(f"{output!r}: its saved networks do not fit the baseline's config "
                                      f"({str(exc).splitlines()[0]}); train the baseline again with --overwrite") from None
            model.num_timesteps = done
            model.set_random_seed(int(np.random.SeedSequence([seed, done]).generate_state(1)[0]))
            progress(f"{kind}: continuing {algo.upper()} at {done} of {timesteps} env steps in {output}")
        else:
            progress(f"{kind}: training {algo.upper()} for {timesteps} env steps on {num_slots} env slots "
                     f"({num_slots * horizon} env steps per update) in {output}")
        obs_dim = env.single_observation_space.shape[0] + (vec.task_dim if vec.oracle else 0)
        act_dim = env.single_action_space.shape[0]
        curve = _EpisodeCurve(old_rows)

        def save(steps: int) -> dict[str, Any]:
            """Export the zip, the curve and the config, then commit with best.pt (atomic, written last)."""
            with _blocked_signals():
                marker = os.path.join(output, BASELINE_MARKER)
                if not os.path.exists(marker):  # first: the folder is a baseline's before any of its files
                    atomic_write_bytes(marker, json.dumps({"format": "metarl-baseline",
                                                           "created": time.strftime("%Y-%m-%dT%H:%M:%S")}).encode())
                os.makedirs(os.path.join(output, "checkpoints"), exist_ok=True)
                model.num_timesteps = steps
                tmp = os.path.join(output, ".tmp-sb3_model.zip")
                model.save(tmp)
                with open(tmp, "rb+") as fh:
                    os.fsync(fh.fileno())
                os.replace(tmp, zip_path)
                atomic_write_bytes(os.path.join(output, "training_curve.csv"), curve.csv())
                save_config(cfg, os.path.join(output, "config.yaml"))
                state = {
                    "iteration": 0, "params": sb3_policy_params(model), "config": to_dict(cfg), "env_id": cfg.env.id,
                    "env_kwargs": dict(cfg.env.kwargs), "obs_dim": obs_dim, "act_dim": act_dim,
                    "hidden_sizes": list(cfg.policy.hidden_sizes), "method": kind, "oracle": kind == "oracle",
                    "sb3_timesteps": int(steps), "sb3_algo": algo, "sb3_slots": num_slots, "sb3_seed": seed,
                    "sb3_policy": model.policy.state_dict(), "sb3_optimizer": model.policy.optimizer.state_dict(),
                    "np_rng": None, "torch_rng": None, "env_steps": int(steps),
                    "best_return": float("nan"), "best_iteration": 0,
                }
                save_checkpoint(ckpt, state)
            return state

        snapshot: dict[str, Any] = {}

        def at_rollout_start(steps: int) -> None:
            """Remember the state between two updates; save it when a periodic save is due."""
            snapshot.update(steps=steps, rows=len(curve.rows), policy=copy.deepcopy(model.policy.state_dict()),
                            optimizer=copy.deepcopy(model.policy.optimizer.state_dict()))
            if steps > done and steps - snapshot.get("saved", done) >= save_every:
                save(steps)
                snapshot["saved"] = steps

        curve.on_rollout_start = at_rollout_start
        main_thread = threading.current_thread() is threading.main_thread()
        # both signals stop the run with a save, as for `metarl train`, also where the shell started it with
        # SIGINT ignored (a background job of a script)
        stops = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.getsignal(sig) for sig in stops} if main_thread else {}

        def on_stop(signum: int, frame: Any) -> None:
            raise BaselineInterrupted(signum)

        for sig in previous:
            signal.signal(sig, on_stop)
        try:
            model.learn(total_timesteps=timesteps - done, callback=curve.callback, reset_num_timesteps=loaded is None)
        except KeyboardInterrupt:
            if snapshot and snapshot["steps"] > done:  # the state before the interrupted rollout, not a half-made update
                model.policy.load_state_dict(snapshot["policy"])
                model.policy.optimizer.load_state_dict(snapshot["optimizer"])
                del curve.rows[snapshot["rows"]:]
                save(snapshot["steps"])
                progress(f"{kind}: interrupted; saved at {snapshot['steps']} of {timesteps} env steps. Continue with: "
                         f"metarl baseline {kind} --output {shlex.quote(output)} --resume --timesteps {timesteps}"
                         f"{resume_flags(cfg, ray=False)}")
            raise
        finally:
            for sig, handler in previous.items():  # None: a handler not set from Python
                signal.signal(sig, signal.SIG_DFL if handler is None else handler)
        state = save(model.num_timesteps)
    finally:
        try:  # stopped before its first save: no folder left behind (while the lock is held: no one else's)
            if created and os.listdir(output) == [LOCK]:
                os.remove(os.path.join(output, LOCK))
                os.rmdir(output)
        except OSError:
            pass
        lock.release()
    progress(f"{kind}: trained {algo.upper()} for {state['sb3_timesteps']} env steps; wrote {zip_path} and {ckpt}")
    return state
