"""The local sampler's episodes do not depend on how the tasks are split, the property the Ray sampler rests on.

Runs without Ray: blocks of tasks are rolled out on their own envs with :func:`metarl.sampler.rollout`
(what each Ray worker does) and compared bit for bit with one :class:`Sampler` call on all tasks.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from metarl.config import ConfigError, load_config
from metarl.environment import make_env
from metarl.policy import GaussianMLPPolicy
from metarl.sampler import Sampler, rollout, task_noise, task_noise_seeds

from .helpers import sampling_problem

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SMOKE_NAV = os.path.join(ROOT, "experiments", "configs", "smoke_navigation2d.yaml")
SMOKE_CHEETAH = os.path.join(ROOT, "experiments", "configs", "smoke_halfcheetah_vel.yaml")
ANT = ["env.id=metarl/AntVel-v0", "env.kwargs={horizon: 60}", "algo.num_tasks=4"]


def split_rollout(cfg, policy, params, tasks, seed, generator, blocks, dtype):
    """What the Ray sampler does, in this process: one env and one rollout per block of tasks."""
    T, E = cfg.algo.num_tasks, cfg.algo.episodes_per_task
    noise_seeds = task_noise_seeds(generator, T)
    parts = []
    for a, b in blocks:
        env = make_env(cfg.env, (b - a) * E)
        p = params if params["w0"].dim() == 2 else {k: v[a:b] for k, v in params.items()}
        out, _ = rollout(env, policy, p, tasks[a:b], E, seed + a * E, noise_seeds[a:b], dtype)
        parts.append(out)
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


@pytest.mark.parametrize("cfg_path,overrides,blocks", [
    (SMOKE_NAV, [], [(0, 1), (1, 4)]),
    (SMOKE_NAV, [], [(0, 2), (2, 3), (3, 4)]),
    (SMOKE_CHEETAH, [], [(0, 1), (1, 2)]),
    # the ant falls in some episodes: slots end at different steps, blocks stop stepping at different times
    (SMOKE_CHEETAH, ANT, [(0, 1), (1, 3), (3, 4)]),
])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rollouts_of_task_blocks_equal_one_rollout_of_all_tasks(cfg_path, overrides, blocks, dtype):
    cfg, env, policy, shared, batched, tasks = sampling_problem(cfg_path, overrides, dtype)
    sampler = Sampler(env, policy, cfg.algo.num_tasks, cfg.algo.episodes_per_task, "cpu", dtype)
    for params in (shared, batched):
        g_whole, g_split = torch.Generator().manual_seed(11), torch.Generator().manual_seed(11)
        whole = sampler.sample(params, tasks, 17, g_whole)
        split = split_rollout(cfg, policy, params, tasks, 17, g_split, blocks, dtype)
        for k in ("obs", "actions", "rewards", "mask"):
            assert torch.equal(getattr(whole, k), split[k]), k
            assert getattr(whole, k).is_contiguous()  # as a batch that came through Ray's serialisation
        assert torch.equal(g_whole.get_state(), g_split.get_state())
    if overrides == ANT:
        ended = whole.mask.sum(-1)
        assert (ended < 60).any() and (ended == 60).any()  # some episodes ended early, others did not


def plain_rollout(env, policy, params, tasks, E, seed, noise_seeds, dtype):
    """The rollout written as plainly as possible: torch copies at every step, the loop stops when every slot
    has ended, steps after a slot's end are zero."""
    T, H = len(tasks), env.horizon
    noise = task_noise(noise_seeds, E, H, env.single_action_space.shape[0], dtype)
    env.set_tasks(np.repeat(tasks, E, axis=0))
    obs, _ = env.reset(seed=seed)
    alive = np.ones(T * E, dtype=bool)
    steps = {"obs": [], "actions": [], "rewards": [], "mask": []}
    with torch.no_grad():
        for t in range(H):
            o = torch.tensor(obs, dtype=dtype)
            a = policy.sample(params, o.view(T, E, -1), noise[t]).reshape(T * E, -1)
            obs, reward, terminated, _, _ = env.step(a.numpy().astype(np.float64))
            live = torch.tensor(alive)
            steps["obs"].append(torch.where(live.unsqueeze(-1), o, 0.0))
            steps["actions"].append(torch.where(live.unsqueeze(-1), a, 0.0))
            steps["rewards"].append(torch.where(live, torch.tensor(reward, dtype=torch.float64), 0.0).to(dtype))
            steps["mask"].append(live.to(dtype))
            alive &= ~terminated
            if not alive.any():
                break
    out = {}
    for k, v in steps.items():
        x = torch.stack(v + [torch.zeros_like(v[0])] * (H - len(v)))  # [H, T*E, ...]
        out[k] = x.transpose(0, 1).reshape(T, E, H, *x.shape[2:])
    return out


@pytest.mark.parametrize("cfg_path,overrides", [(SMOKE_NAV, []), (SMOKE_CHEETAH, []), (SMOKE_CHEETAH, ANT)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rollout_equals_a_plain_loop_of_sample_and_step(cfg_path, overrides, dtype):
    """The sampler's per-step bookkeeping (numpy views of its buffers, the mask kept as booleans) changes no
    number: observations cast to the run's dtype, rewards, masks and ended episodes as the plain loop has them."""
    cfg, env, policy, _, batched, tasks = sampling_problem(cfg_path, overrides, dtype)
    E = cfg.algo.episodes_per_task
    noise_seeds = task_noise_seeds(torch.Generator().manual_seed(3), len(tasks))
    out, timings = rollout(env, policy, batched, tasks, E, 9, noise_seeds, dtype)
    expected = plain_rollout(env, policy, batched, tasks, E, 9, noise_seeds, dtype)
    for k in ("obs", "actions", "rewards", "mask"):
        assert out[k].dtype == dtype and torch.equal(out[k], expected[k]), k
    assert timings["env"] > 0 and timings["policy"] > 0
    if overrides == ANT:
        assert (out["mask"].sum(-1) < env.horizon).any()  # some episodes ended early
    with pytest.raises(ValueError, match=r"dtype torch.bfloat16 is not supported; use torch.float32 or torch.float64"):
        rollout(env, policy, batched, tasks, E, 9, noise_seeds, torch.bfloat16)


def test_policy_on_a_subset_of_tasks_computes_the_same_actions():
    policy = GaussianMLPPolicy(27, 8, (100, 100))
    g = torch.Generator().manual_seed(0)
    base = policy.init_params(g)
    params = {k: v.unsqueeze(0) + 0.1 * torch.randn((40, *v.shape), generator=g) for k, v in base.items()}
    obs = torch.randn(40, 20, 27, generator=g)
    noise = torch.randn(40, 20, 8, generator=g)
    whole = policy.sample(params, obs, noise)
    for a, b in [(0, 20), (20, 40), (0, 14), (14, 27), (27, 40), (39, 40)]:
        part = policy.sample({k: v[a:b] for k, v in params.items()}, obs[a:b], noise[a:b])
        assert torch.equal(part, whole[a:b])


def test_same_generator_state_same_episodes_and_noise_differs_by_task():
    cfg, env, policy, shared, _, tasks = sampling_problem(SMOKE_NAV)
    sampler = Sampler(env, policy, 4, 4)
    a = sampler.sample(shared, tasks, 0, torch.Generator().manual_seed(1))
    b = sampler.sample(shared, tasks, 0, torch.Generator().manual_seed(1))
    assert torch.equal(a.actions, b.actions) and torch.equal(a.obs, b.obs)
    seeds = task_noise_seeds(torch.Generator().manual_seed(1), 1000)
    assert len(set(seeds.tolist())) == 1000 and seeds.min() >= 0
    # the first step of task 0 and task 1 start from the same observation but draw different noise
    assert not torch.equal(a.actions[0, :, 0], a.actions[1, :, 0])


def test_sampler_config_is_validated():
    def bad(*overrides):
        with pytest.raises(ConfigError) as info:
            load_config(SMOKE_NAV, list(overrides))
        return str(info.value)

    assert "sampler.backend" in bad("sampler.backend=dask") and "'local' or 'ray'" in bad("sampler.backend=dask")
    msg = bad("sampler.workers=2")
    assert "sampler.workers" in msg and "sampler.backend=ray" in msg
    msg = bad("sampler.backend=ray", "sampler.workers=5")
    assert "5 workers for algo.num_tasks = 4" in msg and "at most 4" in msg
    assert "sampler.workers" in bad("sampler.backend=ray", "sampler.workers=0")
    assert "sampler.max_failures" in bad("sampler.backend=ray", "sampler.max_failures=-1")
    assert "sampler.cpus_per_worker" in bad("sampler.backend=ray", "sampler.cpus_per_worker=0")
    assert "sampler.address" in bad("sampler.address=10.0.0.1:6379")
    cfg = load_config(SMOKE_NAV, ["sampler.backend=ray", "sampler.workers=4", "sampler.cpus_per_worker=0.5"])
    assert cfg.sampler.workers == 4 and cfg.sampler.cpus_per_worker == 0.5


def test_ray_backend_without_ray_says_how_to_install_it(tmp_path):
    # a child process in which `import ray` fails, as on a machine without the [ray] extra
    code = (
        "import sys; sys.modules['ray'] = None\n"
        "from metarl.config import load_config\n"
        "from metarl.trainer import Trainer\n"
        f"cfg = load_config({SMOKE_NAV!r}, ['sampler.backend=ray'])\n"
        "try:\n"
        f"    Trainer(cfg, {str(tmp_path / 'run')!r})\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                         env=dict(os.environ, PYTHONPATH=ROOT))
    assert out.returncode == 0, out.stderr
    line = out.stdout.strip()
    assert line.startswith("ConfigError config field 'sampler.backend': 'ray' needs Ray, which is not installed")
    assert 'pip install -e ".[ray]"' in line


def test_cuda_graphs_only_on_the_current_cuda_device():
    from metarl.sampler import graphs_apply

    current = lambda: 1  # noqa: E731  (a process whose current GPU is cuda:1)
    assert graphs_apply(torch.device("cuda"), current)
    assert graphs_apply(torch.device("cuda:1"), current)
    assert not graphs_apply(torch.device("cuda:0"), current)  # another GPU: eager calls

    def no_cuda() -> int:
        raise AssertionError("asked for the current CUDA device on a CPU run")

    assert not graphs_apply(torch.device("cpu"), no_cuda)
    assert not graphs_apply(torch.device("cpu"))  # the default asks CUDA nothing either (none on CI)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("hidden", [(), (100, 100), (32, 64, 16)])
def test_sampling_step_gives_the_actions_of_sample_bit_for_bit(dtype, hidden):
    from metarl.policy import expand_params

    policy = GaussianMLPPolicy(20, 6, hidden)
    gen = torch.Generator().manual_seed(3)
    shared = {k: v + 0.1 * torch.randn(v.shape, generator=gen, dtype=v.dtype)
              for k, v in policy.init_params(gen, dtype).items()}
    batched = {k: v.unsqueeze(0) + 0.1 * torch.randn(5, *v.shape, generator=gen, dtype=dtype) for k, v in shared.items()}
    one_std = {**batched, "log_std": shared["log_std"]}  # task-batched layers, one log std for all tasks
    obs = torch.randn(4, 5, 6, 20, generator=gen, dtype=dtype)  # 4 steps, 5 tasks, 6 episodes: as many as action dims
    noise = torch.randn(4, 5, 6, 6, generator=gen, dtype=dtype)
    for params in (batched, expand_params(shared, 5), one_std, {**batched, "extra": torch.ones(3)}):
        step = policy.sampling_step(params, noise)
        out = torch.full((4, 5, 6, 6), float("nan"), dtype=dtype)
        for t in (0, 1, 3, 2, 3):  # the buffers are reused across calls and steps, as the sampler does
            assert step(t, obs[t], out[t]).data_ptr() == out[t].data_ptr()  # written where the sampler keeps it
            assert torch.equal(out[t], policy.sample(params, obs[t], noise[t]))
        strided = torch.empty(5, 6, 12, dtype=dtype)[..., ::2]  # a view that is not contiguous
        assert step(1, obs[1], strided) is strided
        assert torch.equal(strided, policy.sample(params, obs[1], noise[1]))
    with pytest.raises(ValueError, match=r"task-batched parameters, w0 of shape \[T, in, out\], got \[20"):
        policy.sampling_step(shared, noise)


def test_sampling_step_of_a_subclass_uses_its_own_sample():
    class Tanh(GaussianMLPPolicy):
        def mean(self, params, obs):
            return torch.tanh(super().mean(params, obs))

    policy = Tanh(3, 2, (8,))
    gen = torch.Generator().manual_seed(0)
    params = {k: v.unsqueeze(0).repeat(4, *([1] * v.dim())) for k, v in policy.init_params(gen).items()}
    obs, noise = torch.randn(4, 5, 3, generator=gen), torch.randn(2, 4, 5, 2, generator=gen)
    out = torch.empty(4, 5, 2)
    assert policy.sampling_step(params, noise)(1, obs, out) is out
    assert torch.equal(out, policy.sample(params, obs, noise[1]))


class _Broken:
    """A real Navigation2D task env whose step or reset output is changed, as a faulty plug-in's would be."""

    def __init__(self, env, change, at="step"):
        self._env, self._change, self._at = env, change, at

    def __getattr__(self, name):
        return getattr(self._env, name)

    def reset(self, **kwargs):
        out = self._env.reset(**kwargs)
        return self._change(out) if self._at == "reset" else out

    def step(self, actions):
        out = self._env.step(actions)
        return self._change(out) if self._at == "step" else out


def test_a_task_env_that_breaks_its_contract_is_named_in_one_line():
    """NaN or inf values, wrong shapes, a wrong number of items (a sweep: tracebacks from numpy, or a NaN that
    surfaced later as the policy's): a UsageError naming the env, the call, what it returned and the step."""
    from metarl.errors import UsageError

    cfg = load_config(SMOKE_NAV)
    policy = GaussianMLPPolicy(2, 2, (8, 8), 1.0)
    params = policy.init_params(torch.Generator().manual_seed(0))
    tasks = np.array([[0.3, -0.2], [0.1, 0.4]])

    def nan_obs(out):
        obs = out[0].copy()
        obs[1, 0] = np.nan
        return (obs, *out[1:])

    cases = [(lambda out: nan_obs(out), "step", "step() returned observations at step 0 that are not finite"),
             (lambda out: (out[0], out[1] * np.inf, *out[2:]), "step", "rewards at step 0 that are not finite"),
             (lambda out: (out[0][:, :1], *out[1:]), "step", "observations at step 0 of shape (6, 1), expected (6, 2)"),
             (lambda out: out[:4], "step", "step() returned 4 items, expected 5"),
             (lambda out: (out[0][:3], out[1]), "reset", "reset() returned observations of shape (3, 2)"),
             (lambda out: (np.array([["a", "b"]] * 6), out[1]), "reset", "that are not numbers"),
             (lambda out: (out[0] + 1j, *out[1:]), "step", "observations at step 0 that are complex numbers")]
    for change, at, needle in cases:
        env = _Broken(make_env(cfg.env, 6), change, at)
        with pytest.raises(UsageError) as exc:
            rollout(env, policy, params, tasks, 3, 0, task_noise_seeds(torch.Generator().manual_seed(0), 2),
                    torch.float32)
        assert needle in str(exc.value) and str(exc.value).startswith("env "), (needle, str(exc.value))


def test_an_env_error_says_whether_the_env_returned_non_finite_values_and_survives_pickling():
    """Run.adapt tells far-out tasks from a broken env by ``non_finite``; a Ray worker's error is pickled."""
    import pickle

    from metarl.errors import EnvError, UsageError

    cfg = load_config(SMOKE_NAV)
    policy = GaussianMLPPolicy(2, 2, (8, 8), 1.0)
    params = policy.init_params(torch.Generator().manual_seed(0))
    tasks = np.array([[0.3, -0.2], [0.1, 0.4]])
    for change, non_finite in ((lambda out: (out[0], out[1] * np.inf, *out[2:]), True), (lambda out: out[:4], False)):
        env = _Broken(make_env(cfg.env, 6), change)
        with pytest.raises(EnvError) as exc:
            rollout(env, policy, params, tasks, 3, 0, task_noise_seeds(torch.Generator().manual_seed(0), 2), torch.float32)
        assert isinstance(exc.value, UsageError) and exc.value.non_finite is non_finite
        again = pickle.loads(pickle.dumps(exc.value))
        assert (str(again), again.problem, again.non_finite) == (str(exc.value), exc.value.problem, non_finite)
