"""CUDA learner: the same numbers as on the CPU. Skipped on machines without a GPU (CI has none)."""

import os

import numpy as np

import pytest
import torch

from metarl.config import load_config
from metarl.trainer import Trainer

from .helpers import tiny_problem

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


def test_meta_gradients_and_hvp_match_cpu_in_float64():
    policy, params, maml, inner, post = tiny_problem()
    v = torch.randn(sum(p.numel() for p in params.values()), dtype=torch.float64, generator=torch.Generator().manual_seed(0))

    def on(device):
        theta = {k: t.to(device).clone().requires_grad_() for k, t in params.items()}
        moved = [type(d)(type(d.batch)(d.batch.obs.to(device), d.batch.actions.to(device), d.batch.rewards.to(device),
                                      d.batch.mask.to(device), d.batch.tasks), d.advantages.to(device)) for d in inner]
        p = post
        post_d = type(p)(type(p.batch)(p.batch.obs.to(device), p.batch.actions.to(device), p.batch.rewards.to(device),
                                       p.batch.mask.to(device), p.batch.tasks), p.advantages.to(device))
        old = maml.old_policy(theta, moved, post_d)
        _, _, g, hvp = maml.meta_gradients(theta, moved, post_d, old)
        return g.cpu(), hvp(v.to(device)).cpu()

    g_cpu, h_cpu = on("cpu")
    g_gpu, h_gpu = on("cuda")
    torch.testing.assert_close(g_gpu, g_cpu, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(h_gpu, h_cpu, rtol=1e-9, atol=1e-12)


def test_training_on_cuda_samples_the_same_episodes(tmp_path):
    cfg = os.path.join(ROOT, "experiments", "configs", "smoke_navigation2d.yaml")
    runs = {}
    for device in ("cpu", "cuda"):
        trainer = Trainer(load_config(cfg, [f"device={device}", "iterations=1", "dtype=float64"]), str(tmp_path / device))
        runs[device] = trainer.iterate(trainer.state)[1]
    assert runs["cuda"]["return/pre_adaptation"] == pytest.approx(runs["cpu"]["return/pre_adaptation"], rel=1e-9)


def test_graphed_policy_calls_give_the_same_episodes_as_eager_ones():
    from metarl.environment import make_env
    from metarl.policy import GaussianMLPPolicy, expand_params
    from metarl.sampler import Sampler

    cfg = load_config(os.path.join(ROOT, "experiments", "configs", "smoke_halfcheetah_vel.yaml"))
    T, E = cfg.algo.num_tasks, cfg.algo.episodes_per_task
    env = make_env(cfg.env, T * E)
    policy = GaussianMLPPolicy(env.single_observation_space.shape[0], env.single_action_space.shape[0],
                               cfg.policy.hidden_sizes, cfg.policy.init_std)
    shared = {k: v.cuda() for k, v in policy.init_params(torch.Generator().manual_seed(0)).items()}
    # task-batched parameters (as after the inner step), each task's a little different
    batched = {k: v + 0.01 * torch.arange(T, device="cuda", dtype=v.dtype).view(-1, *[1] * (v.dim() - 1))
               for k, v in expand_params(shared, T).items()}
    tasks = env.sample_tasks(T, np.random.default_rng(0))
    for params in (shared, batched):
        got = {}
        for graph in (True, False):
            sampler = Sampler(env, policy, T, E, "cuda", cuda_graph=graph)
            got[graph] = sampler.sample(params, tasks, 3, torch.Generator().manual_seed(1))
        for field in ("obs", "actions", "rewards", "mask"):
            assert torch.equal(getattr(got[True], field), getattr(got[False], field)), field
