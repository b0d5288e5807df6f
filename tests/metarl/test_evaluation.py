"""The paper's evaluation protocol, result files, plots and the published table."""

import csv
import json
import os
import subprocess
import sys
from importlib import resources

import numpy as np
import pytest
import torch

from metarl import evaluation as ev
from metarl import plotting
from metarl.config import ConfigError, EnvConfig, load_config
from metarl.errors import UsageError
from metarl.policy import GaussianMLPPolicy

from .helpers import run_main

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
SMOKE_NAV = os.path.join(ROOT, "experiments", "configs", "smoke_navigation2d.yaml")


def published_goals(task):
    with resources.files("metarl.data").joinpath("maml2017_test_returns.csv").open() as fh:
        rows = [r for r in csv.DictReader(fh) if r["task"] == task and r["method"] == "maml" and r["adaptation_steps"] == "0"]
    rows.sort(key=lambda r: int(r["goal_index"]))
    return np.array([[float(x) for x in r["goal"].split(";")] for r in rows])


@pytest.mark.parametrize("env_id", list(ev.PAPER_TASKS))
def test_default_test_goals_are_the_papers_seeded_goals(env_id):
    ours = ev.paper_test_tasks(env_id)
    theirs = published_goals(ev.paper_name(env_id))
    assert ours.shape == theirs.shape == (40, 2 if "Navigation" in env_id else 1)
    np.testing.assert_allclose(ours, theirs, atol=5e-7)  # the table prints 6 decimals


def test_step_size_schedule_and_paper_defaults():
    assert ev.step_size_schedule(0.1, 3) == [0.1, 0.05, 0.05]
    assert ev.step_size_schedule(0.5, 4, later=0.3) == [0.5, 0.3, 0.3, 0.3]
    assert ev.step_size_schedule(0.1, 0) == []
    assert ev.default_step_size("random", "metarl/HalfCheetahVel-v0", None) == 0.1
    assert ev.default_step_size("random", "metarl/AntDir-v0", None) == 1.0
    assert ev.default_step_size("random", "metarl/Navigation2D-v0", None) == 0.5
    assert ev.default_step_size("pretrained", "metarl/HalfCheetahVel-v0", None) == 0.02
    assert ev.default_step_size("pretrained", "metarl/AntVel-v0", None) == 0.2
    assert ev.default_step_size("maml", "metarl/AntVel-v0", 0.1) == 0.1
    cfg = load_config(os.path.join(ROOT, "experiments", "configs", "ant_dir.yaml"))
    s = ev.protocol_settings(cfg, "maml", False, 0.1)
    assert (s.steps, s.episodes_per_task, s.num_tasks) == (3, 40, 40)
    nav = ev.protocol_settings(load_config(SMOKE_NAV), "maml", False, 0.5)
    assert (nav.steps, nav.episodes_per_task) == (4, 40)
    oracle = ev.protocol_settings(cfg, "oracle", True, None)
    assert oracle.steps == 0


def test_paper_batches_are_episodes_times_horizon_env_steps_as_the_authors_scripts_sampled():
    def cfg(name):
        return load_config(os.path.join(ROOT, "experiments", "configs", f"{name}.yaml"))

    # batch_size of the released evaluation scripts: 4000 (40 x 100 navigation, 20 x 200 locomotion), 8000 AntDir
    assert ev.protocol_settings(cfg("navigation2d"), "maml", False, 0.5).batch_steps == 4000
    assert ev.protocol_settings(cfg("ant_vel"), "maml", False, 0.1).batch_steps == 4000
    assert ev.protocol_settings(cfg("ant_dir"), "maml", False, 0.1).batch_steps == 8000
    assert ev.protocol_settings(cfg("halfcheetah_vel"), "random", False, None).batch_steps == 4000
    assert ev.protocol_settings(cfg("navigation2d"), "maml", False, 0.5, episodes=80).batch_steps == 8000
    assert ev.protocol_settings(load_config(SMOKE_NAV), "maml", False, 0.5).batch_steps == 40 * 20  # its own horizon
    assert ev.protocol_settings(cfg("navigation2d"), "maml", False, 0.5, batch_steps=0).batch_steps is None
    assert ev.protocol_settings(cfg("navigation2d"), "maml", False, 0.5, batch_steps=123).batch_steps == 123
    other = cfg("navigation2d")
    other.env.id = "metarl/Plugged-v0"  # not a paper task: no paper batch, exactly E episodes (no env is made)
    assert ev.protocol_settings(other, "maml", False, 0.5).batch_steps is None
    # the saved settings say when a batch is not the paper's
    nav = asdict_settings(ev.protocol_settings(cfg("navigation2d"), "maml", False, 0.5))
    assert ev.protocol_differences(nav) == []
    fixed = asdict_settings(ev.protocol_settings(cfg("navigation2d"), "maml", False, 0.5, batch_steps=0))
    assert ev.protocol_differences(fixed) == ["batches of exactly 40 episodes per goal (the paper's: whole episodes "
                                              "until 4000 env steps)"]
    # HalfCheetah's episodes never end early: exactly 20 episodes is the paper's batch there (older results too)
    cheetah = asdict_settings(ev.protocol_settings(cfg("halfcheetah_dir"), "maml", False, 0.1, batch_steps=0))
    assert cheetah["batch_steps"] is None and ev.protocol_differences(cheetah) == []
    assert ev.protocol_differences({**cheetah, "episodes_per_task": 10}) != []
    ant = asdict_settings(ev.protocol_settings(cfg("ant_vel"), "maml", False, 0.1, batch_steps=0))
    assert ev.protocol_differences(ant) != []
    # the paper's horizons are the envs' own
    for name in ("navigation2d", "ant_vel", "ant_dir", "halfcheetah_vel", "halfcheetah_dir"):
        env_cfg = cfg(name).env
        env = ev.make_env(EnvConfig(env_cfg.id), 1)
        assert ev._horizon(EnvConfig(env_cfg.id)) == env.horizon  # the table, with no env built
        env.close()


def asdict_settings(settings):
    import dataclasses

    return json.loads(json.dumps(dataclasses.asdict(settings)))


def test_step_budget_batches_equal_plain_ones_where_episodes_never_end_early():
    # HalfCheetah's episodes always run the full horizon: E x H env steps are exactly E episodes, the same
    # episodes, so the paper's batches leave every HalfCheetah result as it was
    from metarl import api

    run = api.Run.random(load_config(os.path.join(ROOT, "experiments", "configs", "smoke_halfcheetah_vel.yaml")), seed=0)
    by_steps = api.evaluate(run, tasks=3, episodes=2, steps=2)
    assert by_steps.settings.batch_steps == 2 * 20
    plain = api.evaluate(run, tasks=3, episodes=2, steps=2, batch_steps=0)
    assert plain.settings.batch_steps is None
    assert np.array_equal(by_steps.returns, plain.returns)


def tiny_settings(**kw):
    base = dict(env=EnvConfig("metarl/Navigation2D-v0", {"horizon": 10}), num_tasks=3, episodes_per_task=2,
                steps=2, step_size=0.5)
    base.update(kw)
    return ev.EvalSettings(**base)


def test_each_step_samples_a_fresh_batch_and_adapts_with_the_schedule(monkeypatch):
    policy = GaussianMLPPolicy(2, 2, (8,))
    params = policy.init_params(torch.Generator().manual_seed(0))
    seen_seeds, seen_sizes = [], []
    from metarl import sampler as sampler_mod

    real_sample = sampler_mod.Sampler.sample

    def spy_sample(self, p, tasks, seed, generator):
        seen_seeds.append(seed)
        return real_sample(self, p, tasks, seed, generator)

    real_adapt = ev.adapt

    def spy_adapt(policy_, theta, steps, sizes, **kw):
        seen_sizes.append(list(sizes))
        return real_adapt(policy_, theta, steps, sizes, **kw)

    monkeypatch.setattr(sampler_mod.Sampler, "sample", spy_sample)
    monkeypatch.setattr(ev, "adapt", spy_adapt)
    s = tiny_settings(steps=3)
    tasks = ev.paper_test_tasks("metarl/Navigation2D-v0", 3)
    curve = ev.adaptation_curve(policy, params, tasks, s)
    assert curve.shape == (3, 4) and np.isfinite(curve).all()
    assert len(seen_seeds) == 4 and len(set(seen_seeds)) == 4  # a fresh batch per step
    assert seen_sizes == [[0.5], [0.25], [0.25]]
    # the same settings give the same curve; the meta-parameters are untouched
    before = {k: v.clone() for k, v in params.items()}
    again = ev.adaptation_curve(policy, params, tasks, s)
    np.testing.assert_array_equal(curve, again)
    assert all(torch.equal(before[k], params[k]) for k in params)


def test_adaptation_improves_a_random_policy_on_navigation():
    policy = GaussianMLPPolicy(2, 2, (32, 32))
    params = policy.init_params(torch.Generator().manual_seed(1))
    s = ev.EvalSettings(env=EnvConfig("metarl/Navigation2D-v0"), num_tasks=8, episodes_per_task=20, steps=3, step_size=0.5)
    curve = ev.adaptation_curve(policy, params, ev.paper_test_tasks(s.env_id, 8), s)
    assert curve[:, -1].mean() > curve[:, 0].mean()


def test_bad_settings_are_rejected():
    with pytest.raises(ConfigError, match="--steps: expected an integer >= 0"):
        tiny_settings(steps=-1).validate()
    with pytest.raises(ConfigError, match="--tasks"):
        tiny_settings(num_tasks=0).validate()
    with pytest.raises(ConfigError, match="--step-size"):
        tiny_settings(step_size=float("nan")).validate()


def test_results_files_and_refusal_to_overwrite(tmp_path):
    s = tiny_settings()
    tasks = ev.paper_test_tasks(s.env_id, 3)
    returns = np.array([[-10.0, -8.0, -7.0], [-12.0, -9.0, -6.0], [-11.0, -10.0, -9.0]])
    ev.write_results(str(tmp_path / "e"), s, tasks, ["goal_x", "goal_y"], returns)
    for name in ("per_goal.csv", "summary.csv", "results.json", "curve.png"):
        assert (tmp_path / "e" / name).stat().st_size > 0
    assert os.listdir(tmp_path / "e" / "tensorboard")
    data = json.loads((tmp_path / "e" / "results.json").read_text())
    assert data["step_sizes"] == [0.5, 0.25]
    assert data["summary"][0]["mean_return"] == pytest.approx(-11.0)
    assert data["summary"][0]["sem"] == pytest.approx(np.std([-10, -12, -11], ddof=1) / np.sqrt(3))
    rows = list(csv.DictReader(open(tmp_path / "e" / "per_goal.csv")))
    assert len(rows) == 9 and rows[0]["goal_x"] == f"{tasks[0, 0]:.6f}"
    before = (tmp_path / "e" / "results.json").read_bytes()
    with pytest.raises(UsageError, match="--overwrite"):
        ev.write_results(str(tmp_path / "e"), s, tasks, ["goal_x", "goal_y"], returns * 2)
    assert (tmp_path / "e" / "results.json").read_bytes() == before


def test_results_never_replace_files_of_yours_or_mix_two_evaluations(tmp_path, monkeypatch):
    """Without a metarl results.json, evaluate's file names in the output are refused even with overwrite; an
    overwrite removes the earlier events and marks the folder unfinished until results.json is written."""
    s = tiny_settings()
    tasks = ev.paper_test_tasks(s.env_id, 3)
    returns = np.array([[-10.0, -8.0, -7.0], [-12.0, -9.0, -6.0], [-11.0, -10.0, -9.0]])
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "summary.csv").write_text("my table")
    (mine / "notes.txt").write_text("mine too")
    for overwrite in (False, True):
        with pytest.raises(UsageError, match="already holds summary.csv and there is no results.json of a metarl"):
            ev.write_results(str(mine), s, tasks, ["goal_x", "goal_y"], returns, overwrite=overwrite)
    (mine / "results.json").write_text('{"my": "data"}')
    with pytest.raises(UsageError, match="results.json is not a metarl evaluation"):
        ev.write_results(str(mine), s, tasks, ["goal_x", "goal_y"], returns, overwrite=True)
    assert (mine / "summary.csv").read_text() == "my table" and sorted(os.listdir(mine)) == ["notes.txt", "results.json", "summary.csv"]
    ev.write_results(str(tmp_path / "notes"), s, tasks, ["goal_x", "goal_y"], returns)  # an empty or new folder is fine
    out = tmp_path / "e"
    ev.write_results(str(out), s, tasks, ["goal_x", "goal_y"], returns)
    first_events = os.listdir(out / "tensorboard")

    def stopped(*args, **kwargs):  # killed while the figure is drawn: summary.csv already new, results.json not
        raise KeyboardInterrupt

    monkeypatch.setattr(plotting, "plot_curves", stopped)
    with pytest.raises(KeyboardInterrupt):
        ev.write_results(str(out), s, tasks, ["goal_x", "goal_y"], returns * 2, overwrite=True)
    with pytest.raises(UsageError, match="stopped before it finished; run it again with"):
        ev.load_results(str(out))
    with pytest.raises(UsageError, match="stopped before it finished; pass --overwrite"):
        ev.write_results(str(out), s, tasks, ["goal_x", "goal_y"], returns * 2)
    monkeypatch.undo()
    ev.write_results(str(out), s, tasks, ["goal_x", "goal_y"], returns * 2, overwrite=True)
    assert ev.load_results(str(out))["summary"][0]["mean_return"] == pytest.approx(-22.0)
    events = os.listdir(out / "tensorboard")
    assert len(events) == 1 and events != first_events  # the earlier evaluation's events are gone


def test_plot_and_table_against_the_paper(tmp_path):
    published = plotting.published_summary("HalfCheetahVel")
    assert set(published) == {"maml", "pretrained", "random", "oracle"}
    assert published["maml"][1]["mean_return"] == pytest.approx(-78.57)
    fake = {"maml": {"summary": [{"adaptation_steps": k, "mean_return": m, "sem": 5.0} for k, m in enumerate([-130, -80, -66, -60])]},
            "oracle": {"summary": [{"adaptation_steps": 0, "mean_return": -54.47, "sem": 3.54}]}}
    plotting.plot_curves(fake, str(tmp_path / "fig.png"), "test", published=published)
    assert (tmp_path / "fig.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = plotting.comparison_table(fake, published)
    line = [l for l in table.splitlines() if l.startswith("maml") and l.split()[1] == "1"][0]
    expected = (-80 - -78.57) / np.sqrt(5.0**2 + 5.03**2)
    assert f"{expected:+8.2f}" in line
    assert "+0.00" in [l for l in table.splitlines() if l.startswith("oracle")][0]


def cli(*args, **kw):
    """``metarl ARGS`` in its own process, as a user runs it from a shell."""
    return subprocess.run([sys.executable, "-m", "metarl.cli", *args], capture_output=True, text=True, timeout=600, **kw)


def test_end_to_end_train_evaluate_plot(tmp_path, capsys):
    run = tmp_path / "run"
    r = cli("train", "--config", SMOKE_NAV, "--output", str(run), "--iterations", "2", "--no-progress")
    assert r.returncode == 0, r.stderr  # training in its own process, the later commands through main()
    r = run_main(capsys, "evaluate", str(run), "--tasks", "4", "--episodes", "3", "--steps", "2")
    assert r.returncode == 0, r.stderr
    assert "step 2:" in r.stdout
    res = json.loads((run / "evaluation" / "results.json").read_text())
    assert res["settings"]["step_size"] == 0.5 and res["step_sizes"] == [0.5, 0.25]
    assert np.array(res["returns"]).shape == (4, 3)
    r = run_main(capsys, "evaluate", "--random", "--config", SMOKE_NAV, "--output", str(tmp_path / "random"),
                 "--tasks", "4", "--episodes", "3", "--steps", "2")
    assert r.returncode == 0, r.stderr
    r = run_main(capsys, "plot", f"maml={run / 'evaluation'}", f"random={tmp_path / 'random'}", "--output",
                 str(tmp_path / "fig.png"))
    assert r.returncode == 0, r.stderr
    assert "maml" in r.stdout and (tmp_path / "fig.png").exists()
    # again into the same place: refused, nothing overwritten
    before = (run / "evaluation" / "results.json").read_bytes()
    r = run_main(capsys, "evaluate", str(run), "--tasks", "4", "--episodes", "3", "--steps", "2")
    assert r.returncode == 2 and "--overwrite" in r.stderr
    assert (run / "evaluation" / "results.json").read_bytes() == before
    r = run_main(capsys, "evaluate", str(run), "--steps", "-1", "--output", str(tmp_path / "neg"))
    assert r.returncode == 2 and "--steps" in r.stderr and not (tmp_path / "neg").exists()
    r = run_main(capsys, "evaluate", str(tmp_path / "missing"))
    assert r.returncode == 2 and "does not exist" in r.stderr


def test_checkpoint_of_another_observation_space_is_refused(tmp_path, capsys):
    run = tmp_path / "run"
    r = run_main(capsys, "train", "--config", SMOKE_NAV, "--output", str(run), "--iterations", "1", "--no-progress")
    assert r.returncode == 0, r.stderr
    from metarl.checkpoint import CheckpointError

    policy, params, state = ev.load_policy(ev.resolve_source(str(run)))
    env = ev.make_eval_env(ev.EvalSettings(env=EnvConfig("metarl/HalfCheetahVel-v0"), num_tasks=1, episodes_per_task=1))
    with pytest.raises(CheckpointError, match="size 2.*has 20"):
        ev.check_policy_fits(policy, env, "metarl/HalfCheetahVel-v0")


def test_docs_straight_line_navigation_reference_prints_what_the_docs_say(capsys):
    """docs/evaluation.md compares the Navigation2D oracle with a straight-to-the-goal controller: run that
    snippet as written and check the figure the page quotes."""
    import os
    import re

    page = open(os.path.join(os.path.dirname(__file__), "..", "..", "docs", "evaluation.md")).read()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", page, flags=re.DOTALL) if "np.clip((goals - pos)" in b]
    assert len(blocks) == 1
    exec(compile(blocks[0], "docs/evaluation.md", "exec"), {})
    printed = capsys.readouterr().out.strip()
    assert printed == "-0.54 ± 0.05" and printed in blocks[0]


def test_batches_filled_to_a_number_of_env_steps_keep_whole_episodes_as_rllab_did():
    # a policy that walks straight to each goal: episodes end early at the goal, so a step budget needs
    # several rounds of episodes, and each task's count differs
    from metarl.sampler import Sampler

    policy = GaussianMLPPolicy(2, 2, (4,), init_std=0.05)
    params = {k: torch.zeros_like(v) for k, v in policy.init_params(torch.Generator().manual_seed(0)).items()}
    params["log_std"] = torch.full((2,), float(np.log(0.05)))
    env = ev.make_env(EnvConfig("metarl/Navigation2D-v0", {"horizon": 20}), 3 * 4)
    sampler = Sampler(env, policy, 3, 4)
    tasks = np.array([[0.0, 0.0], [0.05, 0.05], [0.4, -0.4]])
    plain = sampler.sample(params, tasks, 7, torch.Generator().manual_seed(3))
    batch = ev.sample_env_steps(sampler, params, tasks, 7, torch.Generator().manual_seed(3), budget=50)
    assert torch.equal(batch.obs[:, :4], plain.obs[:, :4] * (batch.mask[:, :4, :1, None] > 0))  # round 1 is the plain batch
    lengths = batch.mask.sum(-1)  # [T, episodes]
    happened = batch.mask[..., 0] > 0
    for t in range(3):
        kept = lengths[t][happened[t]]
        assert kept.sum() >= 50 and kept[:-1].sum() < 50  # whole episodes until the budget; the last may go past it
        assert bool((batch.mask[t][~happened[t]] == 0).all())  # episodes after it are masked out entirely
        assert happened[t].nonzero().max() == happened[t].sum() - 1  # and only at the end
        assert torch.isclose(batch.average_return()[t], batch.episode_returns()[t][happened[t]].mean())
    assert bool((lengths[0][happened[0]] < 20).any()) and batch.mask.shape[1] > 4  # early ends: more rounds
    # with the budget the plain batch already fills, nothing changes
    same = ev.sample_env_steps(sampler, params, tasks, 7, torch.Generator().manual_seed(3), budget=1)
    assert torch.equal(same.average_return(), plain.mask[..., 0].new_tensor(
        [plain.episode_returns()[t][:1].mean() for t in range(3)]))
    with pytest.raises(ConfigError, match="--batch-steps: expected a positive"):
        tiny_settings(batch_steps=0).validate()
    # a count no number of full rounds reaches is refused before anything is sampled
    with pytest.raises(ConfigError, match="--batch-steps: 1000000000 env steps per goal would take more than 1000 rounds"):
        ev.sample_env_steps(sampler, params, tasks, 7, torch.Generator().manual_seed(3), budget=10**9)


def test_evaluation_with_a_step_budget_records_it_and_says_it_departs_from_the_protocol(tmp_path):
    from metarl import api

    cfg = load_config(SMOKE_NAV)
    run = api.Run.random(cfg, seed=0)
    curve = api.evaluate(run, output=tmp_path / "ev", tasks=3, episodes=2, steps=1, batch_steps=60)
    saved = ev.load_results(str(tmp_path / "ev"))
    assert saved["settings"]["batch_steps"] == 60 and np.isfinite(curve.returns).all()
    assert any("batches of 60 env steps" in d for d in ev.protocol_differences(saved["settings"]))


def test_evaluate_set_changes_the_runs_physics_only_and_records_it(tmp_path, capsys):
    """``metarl evaluate RUN --set env....``: the shipped HalfCheetahVel meta-policy under another MuJoCo solver."""
    zoo = os.path.join(ROOT, "experiments", "zoo", "halfcheetah_vel")
    small = ["--tasks", "2", "--episodes", "2", "--steps", "1", "--batch-steps", "0"]
    r = run_main(capsys, "evaluate", zoo, *small, "--output", str(tmp_path / "default"))
    assert r.returncode == 0, r.stderr
    r = run_main(capsys, "evaluate", zoo, *small, "--output", str(tmp_path / "pgs"), "--set",
                 "env.kwargs.physics.solver=pgs", "--set", "env.kwargs.physics.disable=[eulerdamp]")
    assert r.returncode == 0, r.stderr
    settings = json.loads((tmp_path / "pgs" / "results.json").read_text())["settings"]
    assert settings["env"]["kwargs"] == {"physics": {"solver": "pgs", "disable": ["eulerdamp"]}}
    default = (tmp_path / "default" / "per_goal.csv").read_text()
    assert default != (tmp_path / "pgs" / "per_goal.csv").read_text()  # the same episodes' seeds, other physics
    # the network and training fields stay the run's; a bad option is named; nothing is written either way
    r = run_main(capsys, "evaluate", zoo, *small, "--output", str(tmp_path / "bad1"), "--set",
                 "policy.hidden_sizes=[8]")
    assert r.returncode == 2 and "changes only the env's kwargs" in r.stderr and "Traceback" not in r.stderr
    r = run_main(capsys, "evaluate", zoo, *small, "--output", str(tmp_path / "bad2"), "--set",
                 "env.kwargs.physics.solver=lcp")
    assert r.returncode == 2 and "physics.solver" in r.stderr and "lcp" in r.stderr and "Traceback" not in r.stderr
    # the task and its imports stay the run's; a changed env never goes into the run's own evaluation/
    r = run_main(capsys, "evaluate", zoo, *small, "--output", str(tmp_path / "bad3"), "--set",
                 "env.id=metarl/HalfCheetahDir-v0")
    assert r.returncode == 2 and "env.id" in r.stderr and "Traceback" not in r.stderr
    r = run_main(capsys, "evaluate", zoo, *small, "--set", "env.kwargs.physics.solver=pgs")
    assert r.returncode == 2 and "--output" in r.stderr and "Traceback" not in r.stderr
    assert not any((tmp_path / d).exists() for d in ("bad1", "bad2", "bad3"))
    # physics: {} is the paper's simulation, not a departure from its protocol
    assert ev.protocol_differences({**settings, "env": {**settings["env"], "kwargs": {"physics": {}}}}) == \
        ev.protocol_differences({**settings, "env": {**settings["env"], "kwargs": {}}})
    assert any("physics" in d for d in ev.protocol_differences(settings))
