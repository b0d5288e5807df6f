"""The Python API: train, evaluate, load_run, Run.adapt / Run.act; and the example scripts of docs/api.md."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import metarl
from metarl.config import ConfigError, load_config
from metarl.trainer import Trainer

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SMOKE = os.path.join(ROOT, "experiments", "configs", "smoke_navigation2d.yaml")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("api") / "nav"
    metarl.train(SMOKE, out, iterations=3)
    return out


def test_train_writes_a_run_and_returns_its_best_policy(run_dir):
    run = metarl.load_run(run_dir)
    assert isinstance(run, metarl.Run) and run.method == "maml" and run.path == str(run_dir)
    assert sorted(os.listdir(run_dir / "checkpoints")) == ["best.pt", "iter_000002.pt", "latest.pt"]
    assert {"config.yaml", "progress.csv", "tensorboard", "metarl-run.json"} <= set(os.listdir(run_dir))
    latest = metarl.load_run(run_dir, "latest")
    assert latest.iteration == 3 and metarl.load_run(run_dir, 2).iteration == 2
    with pytest.raises(ConfigError, match="'best', 'latest' or an iteration"):
        metarl.load_run(run_dir, "newest")


def test_train_accepts_a_config_object_and_dotted_overrides(tmp_path):
    cfg = load_config(SMOKE)
    run = metarl.train(cfg, tmp_path / "obj", overrides={"algo.inner_step_size": 0.25, "iterations": 1}, seed=4)
    assert run.config.algo.inner_step_size == 0.25 and run.config.seed == 4 and run.config.iterations == 1
    assert cfg.algo.inner_step_size == 0.5  # the caller's object is not changed


def test_train_then_resume_equals_an_uninterrupted_run(tmp_path):
    metarl.train(SMOKE, tmp_path / "full", iterations=4)
    metarl.train(SMOKE, tmp_path / "split", iterations=2)
    metarl.train(None, tmp_path / "split", resume=True, iterations=4)
    full = metarl.load_run(tmp_path / "full", "latest")
    split = metarl.load_run(tmp_path / "split", "latest")
    assert split.iteration == 4
    for k in full.params:
        assert torch.equal(full.params[k], split.params[k])
    with pytest.raises(ConfigError, match="saved config"):
        metarl.train(SMOKE, tmp_path / "split", resume=True)


def test_evaluate_returns_the_curve_and_writes_only_when_asked(run_dir, tmp_path):
    before = sorted(os.listdir(run_dir))
    curve = metarl.evaluate(run_dir, tasks=4, episodes=3, steps=2)
    assert sorted(os.listdir(run_dir)) == before  # nothing written
    assert curve.returns.shape == (4, 3) and curve.tasks.shape == (4, 2)
    np.testing.assert_allclose(curve.mean, curve.returns.mean(axis=0))
    np.testing.assert_allclose(curve.sem, curve.returns.std(axis=0, ddof=1) / 2.0)
    assert curve.settings.step_size == 0.5 and curve.settings.env.id == "metarl/Navigation2D-v0"
    again = metarl.evaluate(metarl.load_run(run_dir), tasks=4, episodes=3, steps=2, output=tmp_path / "ev")
    np.testing.assert_array_equal(again.returns, curve.returns)  # seeded: the same numbers
    assert {"summary.csv", "per_goal.csv", "results.json", "curve.png"} <= set(os.listdir(tmp_path / "ev"))


def test_adapt_equals_the_inner_step_the_trainer_takes(run_dir):
    run = metarl.load_run(run_dir)
    tasks = np.array([[0.3, -0.2], [-0.1, 0.4], [0.0, 0.2]])
    adapted = run.adapt(tasks, steps=1, episodes=4, seed=7)
    # the trainer's inner step on the same episodes: its sampler, its advantages, its adapt
    cfg = load_config(SMOKE, {"algo.num_tasks": 3, "algo.episodes_per_task": 4})
    trainer = Trainer(cfg, str(run_dir.parent / "inner-step-reference"))
    trainer.close()
    generator = torch.Generator().manual_seed(7)
    seed = int(np.random.default_rng(7).integers(0, 2**31 - 1, size=1)[0])
    batch = trainer.sampler.sample(run.params, tasks, seed, generator)
    data, _ = trainer.maml.advantages(batch)
    expected = trainer.maml.adapt(run.params, [data], create_graph=False)
    for k in expected:
        assert adapted[k].shape == (3, *run.params[k].shape)
        assert torch.equal(adapted[k], expected[k].detach()), k
    # and the step moved the parameters
    assert not torch.equal(adapted["w0"][0], run.params["w0"])


def test_adapt_names_bad_arguments(run_dir):
    """Each bad argument is a UsageError naming it (found by a sweep: NaN step sizes gave NaN parameters silently,
    others gave numpy's or torch's errors); numpy numbers are taken as numbers."""
    from metarl.errors import UsageError

    run = metarl.load_run(run_dir)
    goal = np.array([[0.3, -0.2]])
    cases = [({"tasks": [[0.3, -0.2, 0.1]]}, "tasks: metarl/Navigation2D-v0 takes 2 number(s) per task, got 3"),
             ({"tasks": [[float("nan"), 0.1]]}, "tasks: expected finite numbers"),
             ({"tasks": np.zeros((0, 2))}, "T >= 1"),
             ({"tasks": [["a", "b"]]}, "tasks: expected an array [T, k] of task vectors (numbers)"),
             ({"step_size": float("nan")}, "step_size: expected a finite number >= 0"),
             ({"step_size": float("inf")}, "step_size: expected a finite number >= 0"),
             ({"step_size": -1.0}, "step_size: expected a finite number >= 0"),
             ({"step_size": "0.1"}, "step_size: expected a number >= 0 or a list"),
             ({"step_size": 1e30, "steps": 2}, "step_size: the parameters after adaptation step 1 act with non-finite"),
             ({"steps": True}, "steps: expected a positive number"),
             ({"episodes": 0}, "episodes: expected a positive integer"),
             ({"seed": -1}, "seed"), ({"seed": 1.5}, "seed"), ({"seed": 2**64}, "seed"),
             ({"params": {"w0": torch.zeros(3)}}, "params: expected the run's parameters")]
    for kwargs, needle in cases:
        args = {"tasks": goal, "episodes": 2, **kwargs}
        with pytest.raises(UsageError) as exc:
            run.adapt(args.pop("tasks"), **args)
        assert needle in str(exc.value), (kwargs, str(exc.value))
    same = run.adapt(goal, steps=np.int64(1), episodes=np.int64(2), step_size=np.float32(0.5), seed=np.int64(3))
    assert all(torch.equal(same[k], v) for k, v in run.adapt(goal, steps=1, episodes=2, step_size=0.5, seed=3).items())
    # per-step sizes as an array, and an earlier adapt's result adapted further (a leading task dimension)
    two = run.adapt(goal, steps=2, episodes=2, step_size=np.array([0.5, 0.25]))
    assert all(torch.equal(two[k], v) for k, v in run.adapt(goal, steps=2, episodes=2, step_size=[0.5, 0.25]).items())
    further = run.adapt(goal, episodes=2, params=same)
    assert further["w0"].shape == same["w0"].shape and not torch.equal(further["w0"], same["w0"])


def test_api_arguments_are_named_or_taken(run_dir, tmp_path):
    """Arguments that were ignored or gave Python's errors (a sweep): each a UsageError naming it; numpy numbers
    are numbers."""
    from metarl.errors import UsageError

    run = metarl.load_run(run_dir)
    best = str(run_dir / "checkpoints" / "best.pt")
    adapted = run.adapt(np.array([[0.3, -0.2], [0.1, 0.1]]), episodes=2)
    cases = [(lambda: metarl.load_run(best, "latest"), "is a checkpoint file already"),
             (lambda: metarl.load_run(None), "path: expected a run directory or a checkpoint file"),
             (lambda: metarl.load_run(run_dir, -1), "iteration number >= 0"),
             (lambda: metarl.evaluate(None), "path: expected"),
             (lambda: metarl.train(SMOKE, ""), "output: expected a run directory path"),
             (lambda: metarl.train(SMOKE, str(tmp_path / "x"), overrides="algo.max_kl=0.02"), "write ['algo.max_kl=0.02']"),
             (lambda: run.act(0.5), "got the single number 0.5"),
             (lambda: run.act(np.array(["a", "b"])), "obs: expected numbers"),
             (lambda: run.select(adapted, 5), "expected an index of the 2 adapted policies"),
             (lambda: run.select(run.params, 0), "expected task-batched parameters from Run.adapt"),
             (lambda: metarl.load_run(tmp_path / "no_such_run", "latest"), "does not exist"),
             (lambda: run.select(adapted, "0"), "expected an index of the 2 adapted policies")]
    for call, needle in cases:
        with pytest.raises(UsageError) as exc:
            call()
        assert needle in str(exc.value), (needle, str(exc.value))
    assert not (tmp_path / "x").exists()
    first = sorted(f for f in os.listdir(run_dir / "checkpoints") if f.startswith("iter_"))[0]
    assert metarl.load_run(run_dir, np.int64(int(first[5:11]))).checkpoint.endswith(first)
    curve = metarl.evaluate(run, tasks=np.int64(2), episodes=np.int64(2), steps=np.int64(1), step_size=np.float32(0.5))
    assert curve.returns.shape == (2, 2) and run.select(adapted, np.int64(1))["w0"].shape == run.params["w0"].shape


def test_act_with_meta_and_adapted_parameters(run_dir):
    run = metarl.load_run(run_dir)
    obs = np.array([[0.1, -0.1], [0.2, 0.0]])
    mean = run.act(obs)
    np.testing.assert_allclose(mean, run.policy.mean(run.params, torch.as_tensor(obs, dtype=torch.float32)).numpy())
    assert run.act(obs[0]).shape == (2,)
    g = torch.Generator().manual_seed(0)
    noisy = run.act(obs, deterministic=False, generator=g)
    assert noisy.shape == (2, 2) and not np.allclose(noisy, mean)
    adapted = run.adapt(np.array([[0.3, -0.2], [-0.1, 0.4]]), episodes=2)
    per_task = run.act(obs, adapted)  # one observation per task
    assert per_task.shape == (2, 2)
    np.testing.assert_allclose(per_task[1], run.act(obs[1], metarl.Run.select(adapted, 1)), rtol=1e-6)
    with pytest.raises(ConfigError, match="adapted parameters hold 2 policies"):
        run.act(np.zeros((3, 2)), adapted)
    with pytest.raises(ConfigError, match="expected 2 values per observation"):
        run.act(np.zeros((1, 5)))


def test_random_run_is_the_random_comparison(tmp_path):
    run = metarl.Run.random(SMOKE, seed=3)
    assert run.method == "random" and run.path is None
    curve = metarl.evaluate(run, tasks=3, episodes=2, steps=1)
    assert curve.settings.method == "random" and curve.returns.shape == (3, 2)


# ---- the scripts of docs/api.md --------------------------------------------------------------------------------
def script(name, *args, cwd=ROOT):
    res = subprocess.run([sys.executable, os.path.join(ROOT, "experiments", "examples", name), *map(str, args)],
                         capture_output=True, text=True, timeout=600, cwd=cwd,
                         env={**os.environ, "MPLBACKEND": "Agg"})
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout


def test_example_seed_sweep(tmp_path):
    out = script("seed_sweep.py", "--config", SMOKE, "--seeds", 0, 1, "--output", tmp_path / "sweep",
                 "--set", "iterations=2", "--tasks", 3, "--episodes", 2)
    assert "seed 0:" in out and "seed 1:" in out and "over seeds" in out
    assert sorted(os.listdir(tmp_path / "sweep")) == ["seed-0", "seed-1"]
    # run again with another setting: the runs of the first config are not reported as this one's (a sweep)
    res = subprocess.run([sys.executable, os.path.join(ROOT, "experiments", "examples", "seed_sweep.py"), "--config",
                          SMOKE, "--seeds", "0", "--output", str(tmp_path / "sweep"), "--set", "iterations=2", "--set",
                          "algo.max_kl=0.05"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and "was trained with another config (algo.max_kl differ" in res.stderr, res.stderr


def test_examples_name_bad_input_and_keep_files(tmp_path):
    zoo = os.path.join(ROOT, "experiments", "zoo", "navigation2d")
    mine = tmp_path / "mine.png"
    mine.write_bytes(b"my figure")
    (tmp_path / "seed-0").mkdir()  # not a run: a sweep into tmp_path must leave it alone
    (tmp_path / "seed-0" / "notes.txt").write_text("mine")
    cases = [("plot_run.py", [zoo, "--output", mine], "--output: ", "exists; pass --overwrite"),
             ("plot_run.py", [zoo, "--output", tmp_path / "x.txt"], "--output: ", "ends in .txt"),
             ("adapt_to_goal.py", [zoo, "--goal", 0.3], "--goal: ", "takes 2 number(s) per task, got 1"),
             ("adapt_to_goal.py", [zoo, "--goal", 0.3, "nan"], "--goal: ", "expected finite numbers"),
             ("adapt_to_goal.py", [zoo, "--goal", 0.3, 0, "--steps", 0], "--steps: ", "positive number of adaptation steps"),
             ("adapt_to_goal.py", [zoo, "--goal", 0.3, 0, "--episodes", 0], "--episodes: ", "got 0; or leave it out"),
             ("own_loop.py", ["--tasks", -2], "--tasks: ", "expected a positive integer, got -2"),
             ("own_loop.py", ["--horizon", 0], "--horizon: ", "expected a positive episode length, got 0"),
             ("own_loop.py", ["--alpha", "nan"], "--alpha: ", "expected a positive inner step size"),
             ("seed_sweep.py", ["--config", SMOKE, "--output", tmp_path / "sweep", "--seeds", 0, 0], "--seeds: ", "twice"),
             ("seed_sweep.py", ["--config", SMOKE, "--output", tmp_path, "--seeds", 1, 0], "--output: ", "is not a run directory"),
             ("seed_sweep.py", ["--config", SMOKE, "--output", tmp_path / "sweep", "--seeds", 0, -1], "--seeds: ",
              "expected an integer >= 0")]
    # each case as `python SCRIPT ARGS` runs it (as __main__, with its argv), all in one child process: one
    # start-up of python and torch instead of one per case; every case stops at its argument check
    driver = """
import contextlib, io, json, runpy, sys, traceback
out = []
for path, argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    sys.argv = [path, *argv]
    code = 0
    with contextlib.redirect_stderr(err):
        try:
            runpy.run_path(path, run_name="__main__")
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            traceback.print_exc()
            code = 1
    out.append([code, err.getvalue()])
print(json.dumps(out))
"""
    runs = [[os.path.join(ROOT, "experiments", "examples", name), [str(a) for a in args]] for name, args, _, _ in cases]
    res = subprocess.run([sys.executable, "-c", driver, json.dumps(runs)], capture_output=True, text=True, timeout=600,
                         cwd=tmp_path, env={**os.environ, "MPLBACKEND": "Agg"})
    assert res.returncode == 0, res.stderr[-2000:]
    results = json.loads(res.stdout.splitlines()[-1])
    for (name, _, flag, needle), (code, err) in zip(cases, results, strict=True):
        assert code == 2 and flag in err and needle in err, (name, err[-2000:])
        assert "Traceback" not in err
    assert mine.read_bytes() == b"my figure" and sorted(os.listdir(tmp_path)) == ["mine.png", "seed-0"]
    assert os.listdir(tmp_path / "seed-0") == ["notes.txt"]


def test_example_plot_run(run_dir, tmp_path):
    out = script("plot_run.py", run_dir, "--output", tmp_path / "new" / "r.png", "--tasks", 3, "--episodes", 2)
    assert "before adaptation" in out and (tmp_path / "new" / "r.png").read_bytes().startswith(b"\x89PNG")
    # a progress.csv row that is not numbers is named before the evaluation, and the figure written before is kept
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(run_dir, broken, ignore=shutil.ignore_patterns(".lock"))
    lines = (broken / "progress.csv").read_text().splitlines()
    fields = lines[2].split(",")
    fields[lines[0].split(",").index("return/pre_adaptation")] = ""
    (broken / "progress.csv").write_text("\n".join([*lines[:2], ",".join(fields), *lines[3:]]) + "\n")
    before = (tmp_path / "new" / "r.png").read_bytes()
    res = subprocess.run([sys.executable, os.path.join(ROOT, "experiments", "examples", "plot_run.py"), str(broken),
                          "--output", str(tmp_path / "new" / "r.png"), "--overwrite"], capture_output=True, text=True,
                         timeout=300, env={**os.environ, "MPLBACKEND": "Agg"})
    assert res.returncode == 2 and "has a row whose iteration or returns are missing" in res.stderr, res.stderr
    assert (tmp_path / "new" / "r.png").read_bytes() == before


def test_example_adapt_to_goal(run_dir):
    out = script("adapt_to_goal.py", run_dir, "--goal", 0.3, -0.2, "--episodes", 4)
    assert "before adaptation" in out and "after 1 step" in out


def test_example_own_loop():
    out = script("own_loop.py", "--horizon", 20, "--tasks", 3, "--episodes", 3, "--iterations", 2)
    assert out.count("iteration") == 2


def test_adapt_takes_a_meta_sgd_runs_learned_step_sizes(tmp_path):
    from metarl.adaptation import split_step_sizes

    run = metarl.train(SMOKE, tmp_path / "msgd", iterations=1, overrides={"algo.learn_inner_step_size": True})
    policy_params, learned = split_step_sizes(run.params)
    assert learned is not None and set(learned) == set(policy_params)
    tasks = np.array([[0.3, -0.2], [-0.1, 0.4]])
    default = run.adapt(tasks, episodes=3, seed=2)
    explicit = run.adapt(tasks, episodes=3, seed=2, step_size=[learned])  # the learned sizes, passed by hand
    scalar = run.adapt(tasks, episodes=3, seed=2, step_size=0.25)  # not the learned sizes (they start at 0.5)
    assert set(default) == set(policy_params)
    for k in default:
        assert torch.equal(default[k], explicit[k])
    assert not all(torch.equal(default[k], scalar[k]) for k in default)
    assert run.act(np.zeros((2, 2)), default).shape == (2, 2)
    # an adapted set (policy parameters only) adapts further with the run's learned sizes, as by hand
    on = run.adapt(tasks, episodes=3, seed=4, params=default)
    by_hand = run.adapt(tasks, episodes=3, seed=4, params=default, step_size=[learned])
    assert all(torch.equal(on[k], by_hand[k]) for k in on)
    # evaluate's first step uses the learned sizes: a step size given for it would be ignored, so it is refused
    from metarl.errors import UsageError

    with pytest.raises(UsageError, match="--step-size 0.3: this policy learned per-parameter step sizes"):
        metarl.evaluate(run, tasks=2, episodes=2, steps=1, step_size=0.3)
    assert metarl.evaluate(run, tasks=2, episodes=2, steps=1, step_size=0).returns.shape == (2, 2)


def test_tasks_far_outside_the_distribution_are_named_not_the_env():
    """A goal of 1e300 made Navigation2D's rewards infinite, and the message told the user to fix metarl's env."""
    run = metarl.load_run(os.path.join(ROOT, "experiments", "zoo", "navigation2d"))
    with pytest.raises(metarl.config.ConfigError, match=r"tasks: metarl/Navigation2D-v0 step\(\) returned rewards at "
                                                        r"step 0 that are not finite .* for the tasks given "
                                                        r"\[\[1e\+300, -0.2\]\]: they lie too far outside"):
        run.adapt(np.array([[1e300, -0.2]]), episodes=2)
