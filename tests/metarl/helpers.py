"""Tiny float64 problems with known structure, shared by the math tests; the ``metarl`` command run in the
test process, shared by the command-line tests."""

import subprocess

import numpy as np
import torch

from metarl import cli
from metarl.adaptation import AdaptationData
from metarl.baseline import LinearFeatureBaseline
from metarl.config import load_config
from metarl.environment import make_env
from metarl.episodes import EpisodeBatch
from metarl.maml import MAMLSettings, MAMLTRPO
from metarl.policy import GaussianMLPPolicy


def tiny_batch(T=2, E=2, H=4, obs_dim=3, act_dim=2, seed=0, mask_tail=True):
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(T, E, H, obs_dim, generator=g, dtype=torch.float64)
    actions = torch.randn(T, E, H, act_dim, generator=g, dtype=torch.float64)
    rewards = torch.randn(T, E, H, generator=g, dtype=torch.float64)
    mask = torch.ones(T, E, H, dtype=torch.float64)
    if mask_tail:
        mask[0, 1, H - 2 :] = 0  # one episode terminated early
    adv = torch.randn(T, E, H, generator=g, dtype=torch.float64) * mask
    batch = EpisodeBatch(obs, actions, rewards, mask, np.zeros((T, 1)))
    return AdaptationData(batch, adv)


def tiny_problem(first_order=False, seed=0, hidden=(4,), step=0.3):
    policy = GaussianMLPPolicy(3, 2, hidden, init_std=0.8)
    params = policy.init_params(torch.Generator().manual_seed(seed), torch.float64)
    # non-zero biases and a non-trivial log std make every term of the derivatives matter
    g = torch.Generator().manual_seed(seed + 100)
    params = {k: v + 0.1 * torch.randn(v.shape, generator=g, dtype=torch.float64) for k, v in params.items()}
    maml = MAMLTRPO(policy, LinearFeatureBaseline(), MAMLSettings(inner_step_size=step, first_order=first_order))
    inner = [tiny_batch(seed=seed + 1)]
    post = tiny_batch(seed=seed + 2)
    return policy, params, maml, inner, post


def sampling_problem(cfg_path, overrides=(), dtype=torch.float32):
    """A config's env and policy, shared and task-batched parameters and tasks, all seeded, for sampler tests."""
    cfg = load_config(cfg_path, list(overrides))
    a = cfg.algo
    env = make_env(cfg.env, a.num_tasks * a.episodes_per_task)
    policy = GaussianMLPPolicy(env.single_observation_space.shape[0], env.single_action_space.shape[0],
                               cfg.policy.hidden_sizes, cfg.policy.init_std)
    g = torch.Generator().manual_seed(3)
    params = policy.init_params(g, dtype)
    batched = {k: v.unsqueeze(0) + 0.3 * torch.randn((a.num_tasks, *v.shape), generator=g, dtype=dtype)
               for k, v in params.items()}
    tasks = env.sample_tasks(a.num_tasks, np.random.default_rng(5))
    return cfg, env, policy, params, batched, tasks


def run_main(capsys, *argv) -> subprocess.CompletedProcess:
    """``metarl ARGV`` through ``metarl.cli.main`` in this process (no interpreter start-up and torch import
    per call): its exit status (argparse's usage errors included, status 2) and what it printed since the
    last ``capsys.readouterr()``."""
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as exc:  # argparse
        code = exc.code
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(["metarl", *map(str, argv)], code, out, err)
