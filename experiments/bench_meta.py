"""One MAML-TRPO meta-iteration of a released config, with its breakdown and the learner's arithmetic rate.

Everything that is compared is measured in the same run, on the same data:

* the iteration: sampling (physics and policy calls), baseline, inner loop, the TRPO meta-update;
* the meta-update's matrix-product FLOPs (counted by ``torch.utils.flop_counter.FlopCounterMode``, given
  formulas for the in-place ``baddbmm_`` and ``addmm_`` that it would otherwise count as zero), its
  achieved rate, and the rate of ``torch.bmm`` on the policy's own shapes (``[T, N, h] x [T, h, h]`` in the
  forward, weight-gradient and input-gradient layouts, each in its faster storage order), measured just
  before and just after it: the ratio of the two says how close the update runs to the machine's
  matrix-multiply rate at that moment; and a second reference, ``torch.bmm`` on every layer's shapes (the
  thin first and last layers included, each layer's products in the layouts the update uses), whose ratio
  says how much of the gap the thin layers' shapes explain;
* the same update with autograd's Hessian-vector products (the update before ``metarl.curvature``), and
  with ``--subsample F`` the update with ``algo.hvp_subsample: F``; with ``--repeat N`` each N times in
  alternating order (medians), so that a change of the machine's load hits every variant alike; with
  ``--threads N`` also the exact update on N torch threads; ``--layouts`` times the layers' batched products
  in both storage orders (the choice ``metarl.curvature`` makes);
* optionally (``--against FILE``, once or twice) the exact update of another version of the code, alternating
  with this one on the same batch: a change measured against the code before it in one run, with the largest
  difference of the two updates' parameters.  FILE is a version of ``metarl/curvature.py`` (``git show
  REV:metarl/curvature.py > FILE``) or of ``metarl/maml.py``; given one, the other module is this version's;
  given both, the learner of the one runs with the products of the other.  With a version of ``metarl/maml.py``
  and ``--subsample F`` its update with that fraction is timed too;
* optionally (``--loops``) the update direction as the older ports computed it (Python loops over tasks);
* optionally (``--compile``) one KL Hessian-vector product of the exact update (to which the conjugate
  gradient adds its damping), run as written and through ``torch.compile`` (TorchInductor), alternating on the same vector:
  the compile time, the largest difference of the two results, and each one's median time.

    python -m experiments.bench_meta --config halfcheetah_vel              # released config: 40 x 10 x 200
    python -m experiments.bench_meta --config halfcheetah_vel --subsample 0.2 --repeat 3
    python -m experiments.bench_meta --config ant_vel --subsample 0.2
    python -m experiments.bench_meta --config halfcheetah_vel --device cuda  # learner on the GPU
    python -m experiments.bench_meta --config halfcheetah_vel --no-autograd --compile --repeat 3
    python -m experiments.bench_meta --config ant_vel --no-autograd --repeat 3 --against /tmp/old_curvature.py
    python -m experiments.bench_meta --config halfcheetah_vel --subsample 0.2 --no-autograd \
        --against /tmp/old_maml.py --against /tmp/old_curvature.py          # both modules of another commit
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import statistics
import time
from typing import Callable

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

if __package__ in (None, ""):  # run as a file (python experiments/NAME.py): the repository root, as for -m
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from experiments import positive
import metarl.maml
from metarl import curvature, trpo
from metarl.baseline import LinearFeatureBaseline
from metarl.config import ConfigError, check_hvp_subsample, load_config
from metarl.environment import make_env
from metarl.maml import MAMLTRPO
from metarl.memory import keep_freed_memory
from metarl.policy import GaussianMLPPolicy
from metarl.sampler import Sampler, torch_threads
from metarl.trainer import resolve_device

HERE = os.path.dirname(os.path.abspath(__file__))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


class Clock:
    def __init__(self, device: torch.device) -> None:
        self.device, self.times = device, {}

    def __call__(self, name):
        clock = self

        class _Span:
            def __enter__(self):
                sync(clock.device)
                self.t = time.perf_counter()

            def __exit__(self, *exc):
                sync(clock.device)
                clock.times[name] = clock.times.get(name, 0.0) + time.perf_counter() - self.t

        return _Span()


def looped_meta_update_direction(maml: MAMLTRPO, params, inner, post, cg_iters: int):
    """The older ports' meta-update: per-task adaptation and per-task HVPs in Python loops."""
    policy, alpha = maml.policy, maml.s.inner_step_size
    theta = {k: v.detach().requires_grad_() for k, v in params.items()}
    leaves = list(theta.values())
    d_in, d_post = inner[0], post
    T = d_in.batch.num_tasks
    surrogate_total, kl_grads = 0.0, []
    for i in range(T):  # adaptation, surrogate and KL one task at a time
        obs = d_in.batch.obs[i].reshape(-1, policy.obs_dim)
        act = d_in.batch.actions[i].reshape(-1, policy.act_dim)
        m = d_in.batch.mask[i].reshape(-1)
        adv = d_in.advantages[i].reshape(-1)
        loss = -(policy.log_prob(theta, obs, act) * adv * m).sum() / m.sum().clamp(min=1)
        grads = torch.autograd.grad(loss, leaves, create_graph=True)
        adapted = {k: theta[k] - alpha * g for k, g in zip(theta, grads)}
        obs_p = d_post.batch.obs[i].reshape(-1, policy.obs_dim)
        act_p = d_post.batch.actions[i].reshape(-1, policy.act_dim)
        m_p = d_post.batch.mask[i].reshape(-1)
        adv_p = d_post.advantages[i].reshape(-1)
        n = m_p.sum().clamp(min=1)
        with torch.no_grad():
            old_detached = {k: v.detach() for k, v in adapted.items()}
            old_logp = policy.log_prob(old_detached, obs_p, act_p)
            old_moments = policy.moments(old_detached, obs_p)
        ratio = torch.exp(policy.log_prob(adapted, obs_p, act_p) - old_logp)
        surrogate_total = surrogate_total - (ratio * adv_p * m_p).sum() / n / T
        kl = (policy.kl(old_moments, adapted, obs_p) * m_p).sum() / n / T
        kl_grads.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(kl, leaves, create_graph=True)]))
    g = torch.cat([x.reshape(-1) for x in torch.autograd.grad(surrogate_total, leaves, retain_graph=True)])

    def fisher_vector(v):
        total = maml.s.cg_damping * v
        for kg in kl_grads:  # one backward per task, every product
            total = total + torch.cat([h.reshape(-1) for h in torch.autograd.grad(kg @ v, leaves, retain_graph=True)])
        return total

    direction = trpo.conjugate_gradient(fisher_vector, -g.detach(), cg_iters)
    return trpo.max_step(direction, fisher_vector, maml.s.max_kl)


def timed(fn: Callable[[], object], device: torch.device) -> float:
    sync(device)
    t = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t


def compiled_product(maml: MAMLTRPO, params, inner, post, repeat: int, device: torch.device) -> None:
    """One KL Hessian-vector product of the exact update (the conjugate gradient adds its damping to it), as
    written and through ``torch.compile``, timed in alternating order on the same vector (the meta-gradient)."""
    theta = {k: v.detach().requires_grad_() for k, v in params.items()}
    old = maml.old_policy(theta, inner, post)
    _, _, g, hvp = maml.meta_gradients(theta, inner, post, old)
    v = g.detach().clone()
    compiled = torch.compile(hvp)
    sync(device)
    t = time.perf_counter()
    out = compiled(v)  # compiles on the first call
    sync(device)
    compile_s = time.perf_counter() - t
    ref = hvp(v)
    rel = float((out - ref).abs().max() / ref.abs().max())
    eager_t: list[float] = []
    compiled_t: list[float] = []
    pair = [(eager_t, lambda: hvp(v)), (compiled_t, lambda: compiled(v))]
    for rep in range(repeat):
        for times, fn in (pair if rep % 2 == 0 else pair[::-1]):
            times.append(timed(fn, device))
    eager_s, compiled_s = statistics.median(eager_t), statistics.median(compiled_t)
    print(f"\none KL Hessian-vector product of the exact update, as written and through torch.compile "
          f"(TorchInductor), alternating, median of {repeat}:")
    print(f"  first compiled call (compiling)  {compile_s:8.2f} s")
    print(f"  as written                       {eager_s:8.3f} s  (times {', '.join(f'{x:.3f}' for x in eager_t)})")
    print(f"  torch.compile                    {compiled_s:8.3f} s  (times "
          f"{', '.join(f'{x:.3f}' for x in compiled_t)})")
    print(f"  compiled / as written            {compiled_s / eager_s:8.2f}x the time; largest "
          f"difference {rel:.1e} of the product's largest entry")


def bmm_rate(T: int, N: int, width: int, device: torch.device, dtype: torch.dtype, reps: int = 3) -> float:
    """GFLOP/s of ``torch.bmm`` on the policy's hidden-layer shapes, forward, weight-grad and input-grad layouts,
    each with its operands in the faster of the two storage orders (the right factor column-major)."""
    gen = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(T, N, width, device=device, dtype=dtype, generator=gen)
    b = torch.randn(T, N, width, device=device, dtype=dtype, generator=gen)
    w = torch.randn(T, width, width, device=device, dtype=dtype, generator=gen)
    w_cols = curvature.columns(w)
    layouts = [lambda: torch.bmm(a, w_cols), lambda: torch.bmm(a.transpose(1, 2), b), lambda: torch.bmm(b, w.transpose(1, 2))]
    for f in layouts:  # warm-up
        f()
    seconds = sum(timed(f, device) for f in layouts for _ in range(reps)) / reps  # mean, as the update is one long run
    return 3 * 2 * T * N * width * width / seconds / 1e9


def layer_products(T: int, N: int, sizes: list[int], device: torch.device,
                   dtype: torch.dtype) -> tuple[list[Callable[[], object]], int]:
    """``torch.bmm`` on each of the policy's layers ``n -> m`` (``sizes``: obs, hidden..., act) in the layouts and
    storage orders the written-out products use, and their FLOPs: forward ``a @ w`` (``w`` column-major), the
    weight gradient ``a^T b`` (as ``(b^T a)^T`` when ``b`` is narrower) and, past the first layer, the input
    gradient ``b @ w^T``."""
    gen = torch.Generator(device=device).manual_seed(0)
    products: list[Callable[[], object]] = []
    flops = 0
    for i, (n, m) in enumerate(zip(sizes[:-1], sizes[1:])):
        a = torch.randn(T, N, n, device=device, dtype=dtype, generator=gen)
        b = torch.randn(T, N, m, device=device, dtype=dtype, generator=gen)
        w = torch.randn(T, n, m, device=device, dtype=dtype, generator=gen)
        w_cols = curvature.columns(w)
        products += [lambda a=a, w=w_cols: torch.bmm(a, w), lambda a=a, b=b: curvature._outer(a, b, reduce=False)]
        if i > 0:
            products.append(lambda b=b, w=w: torch.bmm(b, w.transpose(1, 2)))
        flops += (3 if i > 0 else 2) * 2 * T * N * n * m
    return products, flops


def layer_bmm_rate(T: int, N: int, sizes: list[int], device: torch.device, dtype: torch.dtype, reps: int = 3) -> float:
    """GFLOP/s of :func:`layer_products`, all their FLOPs over all their time.  Unlike :func:`bmm_rate` it includes
    the thin layers (from the observations, to the actions), whose products run below the hidden layers' rate."""
    products, flops = layer_products(T, N, sizes, device, dtype)
    for f in products:  # warm-up
        f()
    seconds = sum(timed(f, device) for f in products for _ in range(reps)) / reps
    return flops / seconds / 1e9


def _ms(fn: Callable[[], object], device: torch.device) -> float:
    fn()
    return 1e3 * statistics.median(timed(fn, device) for _ in range(5))


def _layer_layouts(a: torch.Tensor, b: torch.Tensor, w: torch.Tensor, device: torch.device) -> None:
    n, m = w.shape[-2:]
    w_cols = curvature.columns(w)
    print(f"  a @ w    [{n}x{m}]: w row-major {_ms(lambda: torch.bmm(a, w), device):7.1f}   w column-major "
          f"{_ms(lambda: torch.bmm(a, w_cols), device):7.1f}")
    print(f"  a^T b    [{n}x{m}]: as written  {_ms(lambda: torch.bmm(a.transpose(1, 2), b), device):7.1f}   as (b^T a)^T   "
          f"{_ms(lambda: torch.bmm(b.transpose(1, 2), a).transpose(1, 2), device):7.1f}   summed over tasks: one long "
          f"product {_ms(lambda: a.reshape(-1, n).T @ b.reshape(-1, m), device):7.1f}   per task, then sum "
          f"{_ms(lambda: curvature._outer(a, b, reduce=True), device):7.1f}")


def layouts(T: int, N: int, sizes: list[int], device: torch.device, dtype: torch.dtype) -> None:
    """Milliseconds of the batched products of the policy's layers in both storage orders, same run."""
    gen = torch.Generator(device=device).manual_seed(0)
    print(f"\nbatched products on the policy's layer shapes [{T}, {N}, n] (ms, median of 5):")
    for n, m in zip(sizes[:-1], sizes[1:]):
        _layer_layouts(torch.randn(T, N, n, device=device, dtype=dtype, generator=gen),
                       torch.randn(T, N, m, device=device, dtype=dtype, generator=gen),
                       torch.randn(T, n, m, device=device, dtype=dtype, generator=gen), device)


def graph_vs_eager(graphed: Sampler, eager: Sampler, params: dict[str, torch.Tensor], tasks: np.ndarray,
                   gen: torch.Generator, repeat: int) -> None:
    """The sampling step's policy calls replayed from a CUDA graph against the same calls launched one by one,
    alternating, on the same episodes (each pair is sampled with the same seed and noise)."""
    times: dict[str, list[tuple[float, float]]] = {"CUDA graph": [], "eager kernels": []}
    for rep in range(max(repeat, 1)):
        state = gen.get_state()
        pair = [("CUDA graph", graphed), ("eager kernels", eager)]
        for name, s in (pair if rep % 2 == 0 else pair[::-1]):
            gen.set_state(state)
            batch = s.sample(params, tasks, 10 + rep, gen)
            times[name].append((batch.timings["policy"], batch.timings["env"]))
    g, e = (statistics.median(t[0] for t in times[k]) for k in ("CUDA graph", "eager kernels"))
    phys = statistics.median(t[1] for v in times.values() for t in v)
    print(f"  one sampling pass's policy calls, median of {max(repeat, 1)}: CUDA graph {g:.3f} s, eager kernels "
          f"{e:.3f} s ({e / g:.1f}x), physics {phys:.3f} s")


def _baddbmm_flops(self_shape, a_shape, b_shape, *args, out_shape=None, **kwargs) -> int:
    return 2 * a_shape[0] * a_shape[1] * a_shape[2] * b_shape[2]  # as torch counts baddbmm: the products only


def _addmm_flops(self_shape, a_shape, b_shape, *args, out_shape=None, **kwargs) -> int:
    return 2 * a_shape[0] * a_shape[1] * b_shape[1]


# FlopCounterMode (torch 2.13) has formulas for baddbmm and addmm but not for their in-place forms, which it
# counts as zero; the written-out products accumulate with them (``metarl.curvature._matmul_acc_``).
IN_PLACE_FORMULAS = {torch.ops.aten.baddbmm_: _baddbmm_flops, torch.ops.aten.addmm_: _addmm_flops}


class _Autograd:
    """Stands in for ``metarl.curvature`` where the bench times autograd's products: the policy is not supported."""

    @staticmethod
    def supports(policy: GaussianMLPPolicy) -> bool:
        return False


AUTOGRAD = _Autograd()


def load_version(path: str) -> tuple[str, object]:
    """Another version of ``metarl/curvature.py`` or ``metarl/maml.py``, loaded as a module of its own:
    ``("products", module)`` or ``("learner", module)``, or a usage error naming the file."""
    if not os.path.isfile(path):
        raise ConfigError(f"--against: {path!r} is not a file; give a copy of metarl/curvature.py or metarl/maml.py, "
                          "e.g. git show HEAD~1:metarl/curvature.py > /tmp/old_curvature.py")
    name = f"metarl_against_{len([m for m in sys.modules if m.startswith('metarl_against_')])}"  # one per file
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"--against: {path!r} cannot be loaded as a Python module; give a .py file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    if callable(getattr(module, "MAMLTRPO", None)):
        return "learner", module
    if not all(callable(getattr(module, name, None)) for name in ("supports", "Linearization")):
        raise ConfigError(f"--against: {path!r} has neither MAMLTRPO nor supports() and Linearization, so it is not "
                          "a version of metarl/maml.py or metarl/curvature.py")
    return "products", module


def count_flops(fn: Callable[[], object]) -> int:
    """Matrix-product FLOPs of one call of ``fn``, the in-place accumulating products included."""
    with FlopCounterMode(display=False, custom_mapping=IN_PLACE_FORMULAS) as counter:
        fn()
    return counter.get_total_flops()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="halfcheetah_vel", help="config name in experiments/configs (default halfcheetah_vel)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="override a config field")
    p.add_argument("--device", default="cpu", help="where the learner runs (the physics always runs on the CPU)")
    p.add_argument("--subsample", type=float, help="also time the update with algo.hvp_subsample at this fraction")
    p.add_argument("--no-autograd", action="store_true", help="skip the update with autograd's products")
    p.add_argument("--threads", type=int, help="also time the exact update on this many torch threads")
    p.add_argument("--layouts", action="store_true",
                   help="also time the layers' batched products in both storage orders (what metarl.curvature chooses)")
    p.add_argument("--against", metavar="FILE", action="append", default=[],
                   help="also time the exact update of another version of metarl/curvature.py or metarl/maml.py (git "
                   "show REV:metarl/maml.py > FILE), alternating; give it twice for both modules of another version")
    p.add_argument("--loops", action="store_true", help="also time the older ports' per-task loops (slow)")
    p.add_argument("--compile", action="store_true",
                   help="also time one Hessian-vector product as written and through torch.compile (compiles first)")
    p.add_argument("--repeat", type=int, default=1, help="time each update this many times, in alternating order; "
                   "medians are reported")
    args = p.parse_args()
    # every flag checked before the minutes of sampling and timing that come first
    positive(p, repeat=args.repeat, threads=args.threads)
    try:
        if args.subsample is not None:
            check_hvp_subsample(args.subsample, "--subsample")
        device = resolve_device(args.device, "--device")
        versions: dict[str, tuple[object, str]] = {}
        for path in args.against:
            kind, module = load_version(path)
            if kind in versions:
                raise ConfigError(f"--against: {path!r} and {versions[kind][1]!r} are both versions of "
                                  f"{'metarl/maml.py' if kind == 'learner' else 'metarl/curvature.py'}; give at most "
                                  "one of each")
            versions[kind] = (module, path)
        cfg = load_config(os.path.join(HERE, "configs", f"{args.config}.yaml"), args.set)
    except ConfigError as exc:
        p.error(str(exc))
    kept = keep_freed_memory()  # as the trainer does (experiments/bench_memory.py measures what it changes)
    a = cfg.algo
    T, E = a.num_tasks, a.episodes_per_task
    env = make_env(cfg.env, T * E)
    policy = GaussianMLPPolicy(env.single_observation_space.shape[0], env.single_action_space.shape[0],
                               cfg.policy.hidden_sizes, cfg.policy.init_std)
    gen = torch.Generator().manual_seed(0)
    params = {k: v.to(device) for k, v in policy.init_params(gen).items()}
    maml = MAMLTRPO(policy, LinearFeatureBaseline(a.baseline_reg), a)
    sampler = Sampler(env, policy, T, E, device)
    tasks = env.sample_tasks(T, np.random.default_rng(0))
    print(f"{args.config} ({cfg.env.id}): {T} tasks x {E} episodes x {env.horizon} steps, hvp_subsample "
          f"{a.hvp_subsample:g}, device {device}, torch threads {torch.get_num_threads()}, cpus {os.cpu_count()}, "
          f"load average {os.getloadavg()[0]:.1f}, freed memory kept: {kept}")

    # warm-up (allocator, first-call costs), then the timed iteration
    warm = sampler.sample(params, tasks, 0, gen)
    maml.advantages(warm)
    clock = Clock(device)
    with clock("iteration"):
        pre = sampler.sample(params, tasks, 1, gen)
        with clock("baseline+advantages"):
            d_pre, _ = maml.advantages(pre)
        with clock("inner loop"):
            adapted = maml.adapt(params, [d_pre], create_graph=False)
        post = sampler.sample(adapted, tasks, 2, gen)
        with clock("baseline+advantages"):
            d_post, _ = maml.advantages(post)
        with clock("meta-update"):
            _, stats = maml.meta_update(params, [d_pre], d_post, torch.Generator().manual_seed(0))
    physics = pre.timings["env"] + post.timings["env"]
    policy_sampling = pre.timings["policy"] + post.timings["policy"]
    total = clock.times["iteration"]
    rows = [("physics (env.step)", physics), ("policy calls while sampling", policy_sampling),
            ("baseline+advantages", clock.times["baseline+advantages"]), ("inner loop", clock.times["inner loop"]),
            ("meta-update (TRPO)", clock.times["meta-update"])]
    print(f"\none meta-iteration: {total:.2f} s  ({2 * pre.env_steps} env steps sampled)")
    for name, t in rows:
        print(f"  {name:30s} {t:8.2f} s  {100 * t / total:5.1f}%")
    print(f"  {'everything but physics':30s} {total - physics:8.2f} s  {100 * (total - physics) / total:5.1f}%")
    print(f"  line search: accepted={stats['accepted']:.0f} after {stats['line_search_steps']:.0f} step(s)")
    if device.type == "cuda":
        graph_vs_eager(sampler, Sampler(env, policy, T, E, device, cuda_graph=False), params, tasks, gen, args.repeat)

    def update(fraction: float, learner_class: type = MAMLTRPO) -> Callable[[], object]:
        learner = learner_class(policy, maml.baseline, type(a)(**{**vars(a), "hvp_subsample": fraction}))
        return lambda: learner.meta_update(params, [d_pre], d_post, torch.Generator().manual_seed(0))

    N = E * env.horizon
    width = max(cfg.policy.hidden_sizes)
    dtype = params["w0"].dtype
    sizes = [env.single_observation_space.shape[0], *cfg.policy.hidden_sizes, env.single_action_space.shape[0]]
    print(f"\nthe meta-update against torch.bmm on the policy's shapes [{T}, {N}, {width}] x [{T}, {width}, {width}] "
          f"and on every layer's shapes {' -> '.join(map(str, sizes))}, same run, median of {args.repeat}:")
    variants: list[tuple[str, Callable[[], object], object]] = [("written-out products (metarl.curvature)", update(1.0), curvature)]
    pairs = []  # (this version's variant, the other version's) compared after the timings
    against = " + ".join(os.path.basename(path) for path in args.against)
    learner, products = versions.get("learner", (None, ""))[0], versions.get("products", (curvature, ""))[0]
    if learner is not None:
        learner.curvature = products  # type: ignore[attr-defined]  # its products: the other file's, or this version's
    other_class = MAMLTRPO if learner is None else learner.MAMLTRPO  # type: ignore[attr-defined]
    if versions:
        variants.append((f"version of {against}", update(1.0, other_class), products))
        pairs.append((variants[0][0], variants[-1][0]))
    if args.subsample is not None:
        variants.append((f"written-out, hvp_subsample {args.subsample:g}", update(args.subsample), curvature))
        if learner is not None:  # an older curvature.py alone may lack what this learner's subsample uses
            variants.append((f"version of {against}, hvp_subsample {args.subsample:g}",
                             update(args.subsample, other_class), products))
            pairs.append((variants[-2][0], variants[-1][0]))
    if args.threads is not None:
        exact = update(1.0)

        def on_threads() -> object:
            with torch_threads(args.threads):
                return exact()

        variants.append((f"written-out, {args.threads} torch thread(s)", on_threads, curvature))
    if not args.no_autograd:
        variants.append(("autograd products (before)", update(1.0), AUTOGRAD))
    measured: dict[str, list[tuple[float, tuple[float, float], tuple[float, float]]]] = {name: [] for name, _, _ in variants}
    flops = {}
    results: dict[str, object] = {}  # each variant's update, from its FLOP-counting call
    for rep in range(args.repeat):  # alternate the order, so that a change of load hits every variant alike
        for name, fn, products in (variants if rep % 2 == 0 else variants[::-1]):
            metarl.maml.curvature = products  # the bench's switch, restored below
            try:
                if name not in flops:
                    flops[name] = count_flops(lambda fn=fn, name=name: results.setdefault(name, fn()))
                before = bmm_rate(T, N, width, device, dtype), layer_bmm_rate(T, N, sizes, device, dtype)
                seconds = timed(fn, device)
                after = bmm_rate(T, N, width, device, dtype), layer_bmm_rate(T, N, sizes, device, dtype)
            finally:
                metarl.maml.curvature = curvature
            measured[name].append((seconds, before, after))
    for name, runs in measured.items():
        seconds = statistics.median(r[0] for r in runs)
        rate = flops[name] / seconds / 1e9
        ref = statistics.median((r[1][0] + r[2][0]) / 2 for r in runs)
        layer_ref = statistics.median((r[1][1] + r[2][1]) / 2 for r in runs)
        times = ", ".join(f"{r[0]:.2f}" for r in runs)
        print(f"  {name:42s} {seconds:7.2f} s  {flops[name] / 1e9:7.1f} GFLOP  {rate:6.1f} GFLOP/s  "
              f"bmm {ref:6.1f} GFLOP/s  ratio {100 * rate / ref:5.1f}%  bmm on every layer {layer_ref:6.1f} GFLOP/s  "
              f"ratio {100 * rate / layer_ref:5.1f}%" + (f"  (times {times})" if len(runs) > 1 else ""))
    for ours_name, theirs_name in pairs:
        mine, theirs = results[ours_name][0], results[theirs_name][0]  # type: ignore[index]
        scale = max(float(v.abs().max()) for v in theirs.values())
        diff = max(float((mine[k] - theirs[k]).abs().max()) for k in theirs)
        old_time = statistics.median(r[0] for r in measured[theirs_name])
        new_time = statistics.median(r[0] for r in measured[ours_name])
        fraction = "" if ours_name == variants[0][0] else f", hvp_subsample {args.subsample:g}"
        print(f"  this version against {against}{fraction}: {new_time / old_time:.3f} of the "
              f"time; the updates' parameters differ by at most {diff:.2g} ({diff / scale:.2g} of the largest entry)")

    if args.layouts:
        layouts(T, N, sizes, device, dtype)
    if args.compile:
        compiled_product(maml, params, [d_pre], d_post, max(args.repeat, 3), device)
    if not args.loops:
        return
    theta = {k: v.detach().requires_grad_() for k, v in params.items()}
    ours = Clock(device)
    with ours("direction"):
        old = maml.old_policy(theta, [d_pre], d_post)
        _, _, g, hvp = maml.meta_gradients(theta, [d_pre], d_post, old)

        def fvp(v):
            return hvp(v) + maml.s.cg_damping * v

        step_ours = trpo.max_step(*trpo.solve(fvp, -g.detach(), maml.s.cg_iters), maml.s.max_kl)
    loop = Clock(device)
    with loop("direction"):
        step_loop = looped_meta_update_direction(maml, params, [d_pre], d_post, maml.s.cg_iters)
    cos = float(torch.nn.functional.cosine_similarity(step_ours, step_loop, dim=0))
    print(f"\nmeta-update direction (gradient, {maml.s.cg_iters} CG iterations, step scaling):")
    print(f"  metarl, task-batched, written-out products : {ours.times['direction']:8.2f} s")
    print(f"  per-task Python loops (older ports)         : {loop.times['direction']:8.2f} s")
    print(f"  speed-up                                    : {loop.times['direction'] / ours.times['direction']:8.1f}x")
    print(f"  cosine(step_metarl, step_loop)              : {cos:.6f}  (same update up to float32 round-off)")


if __name__ == "__main__":
    main()
