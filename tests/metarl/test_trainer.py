"""Training runs on real envs, real checkpoints on disk and real TensorBoard files."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from metarl import checkpoint as ckpt
from metarl.checkpoint import CheckpointError, load_checkpoint
from metarl.config import load_config
from metarl.rundir import RunDirError
from metarl.trainer import Trainer

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
SMOKE_NAV = os.path.join(ROOT, "experiments", "configs", "smoke_navigation2d.yaml")
SMOKE_CHEETAH = os.path.join(ROOT, "experiments", "configs", "smoke_halfcheetah_vel.yaml")


def run(tmp_path, name, cfg_path=SMOKE_NAV, overrides=(), **kw):
    cfg = load_config(cfg_path, list(overrides))
    trainer = Trainer(cfg, str(tmp_path / name), **kw)
    return trainer, trainer.train()


def params_of(path):
    return load_checkpoint(path)["params"]


def test_smoke_navigation_writes_logs_checkpoints_and_tensorboard(tmp_path):
    trainer, state = run(tmp_path, "nav")
    d = tmp_path / "nav"
    assert state.iteration == 3
    assert sorted(os.listdir(d / "checkpoints")) == ["best.pt", "iter_000002.pt", "latest.pt"]
    assert (d / "config.yaml").exists()
    rows = (d / "progress.csv").read_text().splitlines()
    assert len(rows) == 4 and rows[0].startswith("iteration,return/pre_adaptation,return/post_adaptation")
    acc = EventAccumulator(str(d / "tensorboard"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    for tag in ["return/pre_adaptation", "return/post_adaptation", "trpo/kl_before", "trpo/kl_after",
                "trpo/surrogate_improvement", "trpo/line_search_steps", "trpo/accepted", "policy/std",
                "baseline/explained_variance_pre", "env_steps", "time/sampling", "time/optimizing"]:
        assert tag in tags
    assert [e.step for e in acc.Scalars("return/post_adaptation")] == [0, 1, 2]
    latest = load_checkpoint(d / "checkpoints" / "latest.pt")
    assert latest["iteration"] == 3 and latest["obs_dim"] == 2
    assert all(torch.isfinite(v).all() for v in latest["params"].values())


def test_smoke_mujoco_task(tmp_path):
    trainer, state = run(tmp_path, "cheetah", SMOKE_CHEETAH)
    assert state.iteration == 2 and state.env_steps == 2 * 2 * (2 * 3 * 20)
    assert np.isfinite(state.best_return)


def test_same_seed_same_parameters(tmp_path):
    _, a = run(tmp_path, "a", overrides=["iterations=2"])
    _, b = run(tmp_path, "b", overrides=["iterations=2"])
    _, c = run(tmp_path, "c", overrides=["iterations=2", "seed=1"])
    for k in a.params:
        assert torch.equal(a.params[k], b.params[k])
    assert not all(torch.equal(a.params[k], c.params[k]) for k in a.params)


def test_resume_matches_an_uninterrupted_run(tmp_path):
    _, full = run(tmp_path, "full", overrides=["iterations=4"])
    run(tmp_path, "split", overrides=["iterations=2"])
    _, resumed = run(tmp_path, "split", overrides=["iterations=4"], resume=True)
    assert resumed.iteration == 4
    for k in full.params:
        assert torch.equal(full.params[k], resumed.params[k])
    rows = (tmp_path / "split" / "progress.csv").read_text().splitlines()
    full_rows = (tmp_path / "full" / "progress.csv").read_text().splitlines()
    strip = lambda rs: [r.split(",")[:4] for r in rs]  # noqa: E731  (timings differ)
    assert strip(rows) == strip(full_rows)


def test_refuses_to_overwrite_a_run_unless_asked(tmp_path):
    run(tmp_path, "r", overrides=["iterations=1"])
    before = (tmp_path / "r" / "checkpoints" / "latest.pt").read_bytes()
    with pytest.raises(RunDirError, match="--resume.*--overwrite"):
        run(tmp_path, "r", overrides=["iterations=1"])
    assert (tmp_path / "r" / "checkpoints" / "latest.pt").read_bytes() == before
    run(tmp_path, "r", overrides=["iterations=1"], overwrite=True)


def test_interrupted_checkpoint_write_keeps_the_good_file(tmp_path, monkeypatch):
    path = tmp_path / "latest.pt"
    ckpt.save_checkpoint(path, {"iteration": 1, "params": {"w": torch.ones(3)}})
    good = path.read_bytes()

    def crash(fd):
        raise OSError("disk vanished mid-write")

    monkeypatch.setattr(ckpt.os, "fsync", crash)
    with pytest.raises(OSError, match="mid-write"):
        ckpt.save_checkpoint(path, {"iteration": 2, "params": {"w": torch.zeros(3)}})
    monkeypatch.undo()
    assert path.read_bytes() == good
    assert load_checkpoint(path)["iteration"] == 1
    assert os.listdir(tmp_path) == ["latest.pt"]  # no temporary file left behind


def test_corrupted_and_mismatched_checkpoints_give_clear_errors(tmp_path):
    run(tmp_path, "r", overrides=["iterations=1"])
    latest = tmp_path / "r" / "checkpoints" / "latest.pt"
    data = latest.read_bytes()
    latest.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="unreadable or corrupted"):
        load_checkpoint(latest)
    (tmp_path / "x.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupted"):
        load_checkpoint(tmp_path / "x.pt")
    torch.save({"hello": 1}, tmp_path / "y.pt")
    with pytest.raises(CheckpointError, match="not a metarl checkpoint"):
        load_checkpoint(tmp_path / "y.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")

    class Payload:  # a pickle that would run code: refused, and torch's "weights_only=False" advice not passed on
        def __reduce__(self):
            return (print, ("ran",))

    torch.save({"x": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="not a metarl checkpoint.*nothing in it was run") as exc:
        load_checkpoint(tmp_path / "evil.pt")
    assert "weights_only" not in str(exc.value)
    state = {"env_id": "metarl/Navigation2D-v0", "obs_dim": 2, "act_dim": 2, "hidden_sizes": [16, 16]}
    with pytest.raises(CheckpointError, match="obs_dim: checkpoint 2 vs run 20"):
        ckpt.check_compatible(state, 20, 2, [16, 16], "metarl/Navigation2D-v0")


def test_resume_without_a_run_is_an_error(tmp_path):
    with pytest.raises(RunDirError, match="does not exist"):
        run(tmp_path, "nothing", resume=True)


def test_sigterm_saves_and_resume_finishes(tmp_path):
    out = tmp_path / "sig"
    cmd = [sys.executable, "-m", "metarl.cli", "train", "--config", SMOKE_NAV, "--output", str(out),
           "--iterations", "200", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    csv = out / "progress.csv"
    deadline = time.time() + 120
    while time.time() < deadline and (not csv.exists() or len(csv.read_text().splitlines()) < 3):
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "--resume" in err
    saved = load_checkpoint(out / "checkpoints" / "latest.pt")
    rows = csv.read_text().splitlines()[1:]
    assert saved["iteration"] >= 2 and len(rows) >= saved["iteration"]
    done = subprocess.run([sys.executable, "-m", "metarl.cli", "train", "--output", str(out), "--resume",
                           "--iterations", str(saved["iteration"] + 1), "--no-progress"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = csv.read_text().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == list(range(saved["iteration"] + 1))


def test_cli_reports_bad_input_without_a_traceback(tmp_path):
    res = subprocess.run([sys.executable, "-m", "metarl.cli", "train", "--config", SMOKE_NAV, "--output",
                          str(tmp_path / "o"), "--set", "algo.max_kl=-1"], capture_output=True, text=True)
    assert res.returncode == 2
    assert "algo.max_kl" in res.stderr and "-1" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_navigation_meta_training_learns_to_adapt(tmp_path):
    """The README's main job: post-adaptation return rises well above pre-adaptation return."""
    cfg = os.path.join(ROOT, "experiments", "configs", "navigation2d_smoke.yaml")
    trainer, state = run(tmp_path, "learn", cfg, overrides=["progress_bar=false"])
    import csv as csvmod

    rows = list(csvmod.DictReader(open(tmp_path / "learn" / "progress.csv")))
    first_post = float(rows[0]["return/post_adaptation"])
    last = rows[-5:]
    post = np.mean([float(r["return/post_adaptation"]) for r in last])
    pre = np.mean([float(r["return/pre_adaptation"]) for r in last])
    assert post > first_post + 40, (first_post, post)
    assert post > pre + 10, (pre, post)


@pytest.mark.parametrize("env_id", ["mylab/HalfCheetahGoalPos-v0", "mylab/PointGoal-v0"])
def test_training_on_plugin_envs_of_both_paths(tmp_path, env_id):
    overrides = [f"env.id={env_id}", "env.imports=[experiments.plugins.cheetah_goal_position]",
                 "env.kwargs={}", "iterations=1", "algo.num_tasks=2", "algo.episodes_per_task=2"]
    if "Cheetah" in env_id:
        overrides.append("env.kwargs={horizon: 10}")
    trainer, state = run(tmp_path, "plug", overrides=overrides)
    assert state.iteration == 1 and np.isfinite(state.best_return)


def test_a_saved_plugin_run_loads_and_resumes_only_with_its_modules_named(tmp_path):
    from metarl import api
    from metarl.config import ConfigError

    module = "experiments.plugins.cheetah_goal_position"
    run(tmp_path, "plug", overrides=["env.id=mylab/PointGoal-v0", f"env.imports=[{module}]", "env.kwargs={}",
                                      "iterations=1", "algo.num_tasks=2", "algo.episodes_per_task=2"])
    d = str(tmp_path / "plug")
    progress = (tmp_path / "plug" / "progress.csv").read_bytes()
    before = _files(d)
    for load in (lambda: api.load_run(d), lambda: api.evaluate(d, tasks=2, steps=1),
                 lambda: api.train(None, d, resume=True, iterations=2),
                 lambda: Trainer(None, d, resume=True, iterations=2, imports=[module, "json"])):
        with pytest.raises(ConfigError, match="env.imports|--import") as err:
            load()
        assert module in str(err.value)
    assert (tmp_path / "plug" / "progress.csv").read_bytes() == progress
    assert _files(d) == before  # not even the lock or the marker was written
    assert api.load_run(d, imports=[module]).config.env.imports == [module]
    curve = api.evaluate(d, tasks=2, steps=1, episodes=2, imports=[module])
    assert curve.returns.shape == (2, 2) and np.isfinite(curve.returns).all()
    with pytest.raises(ConfigError, match="expected a list of module names"):
        api.load_run(d, imports=module)  # a plain string is not split into letters
    trainer = Trainer(None, d, resume=True, iterations=2, imports=[module])
    try:  # the hints after an interrupt or a disk error name the modules the resume will need
        assert trainer.resume_command() == f"metarl train --output {d} --resume --import {module}"
    finally:
        trainer.close()
    from metarl.cli import _resume_command

    assert _resume_command(d) == f"metarl train --output {d} --resume --import {module}"
    resumed = api.train(None, d, resume=True, iterations=2, imports=[module])
    assert resumed.config.env.imports == [module]
    assert load_checkpoint(tmp_path / "plug" / "checkpoints" / "latest.pt")["iteration"] == 2


def _files(d):
    return {os.path.relpath(os.path.join(root, f), d): os.stat(os.path.join(root, f)).st_mtime_ns
            for root, _, files in os.walk(d) for f in files}


def test_a_resumed_run_joins_the_ray_cluster_it_names_only_when_the_user_names_it(tmp_path):
    """A received run's config.yaml must not choose the machines whose replies the learner unpickles."""
    from metarl import api
    from metarl.checkpoint import save_checkpoint
    from metarl.config import ConfigError

    run(tmp_path, "r", overrides=["iterations=1"])
    d = tmp_path / "r"
    text = (d / "config.yaml").read_text()
    assert "backend: local" in text and "address: ''" in text
    (d / "config.yaml").write_text(text.replace("backend: local", "backend: ray").replace("address: ''",
                                                                                         "address: 10.9.8.7:6379"))
    state = load_checkpoint(d / "checkpoints" / "latest.pt")
    state["config"]["sampler"].update(backend="ray", address="10.9.8.7:6379")
    save_checkpoint(d / "checkpoints" / "latest.pt", {k: v for k, v in state.items() if k not in ("format", "version")})
    before = _files(d)
    with pytest.raises(ConfigError, match=r"sampler.address.*10.9.8.7:6379.*--ray-address 10.9.8.7:6379"):
        api.train(None, d, resume=True, iterations=2)
    assert _files(d) == before  # refused before the run directory was touched (no lock, no marker, no config)
    with pytest.raises(ConfigError, match="--ray-address: only with --resume|ray_address: only for resuming"):
        api.train(SMOKE_NAV, tmp_path / "new", ray_address="10.9.8.7:6379")
    # the hint quotes what the file says, so copying it never runs a command the file chose
    hostile = "10.9.8.7:6379; touch pwned"
    (d / "config.yaml").write_text((d / "config.yaml").read_text().replace("10.9.8.7:6379", hostile))
    with pytest.raises(ConfigError) as err:
        api.train(None, d, resume=True, iterations=2)
    assert "--ray-address '10.9.8.7:6379; touch pwned'" in str(err.value)
    # a folder that is not a run is named as such first, whatever its config.yaml says
    other = tmp_path / "notarun"
    other.mkdir()
    (other / "config.yaml").write_text("env: {id: mylab/PointGoal-v0, imports: [mylab_tasks]}\n")
    from metarl.errors import UsageError

    with pytest.raises(UsageError, match="is not a metarl run directory"):
        api.train(None, other, resume=True)
    assert sorted(os.listdir(other)) == ["config.yaml"]
    # a local run given an address: the flag is refused, nothing joined
    run(tmp_path, "local", overrides=["iterations=1"])
    with pytest.raises(ConfigError, match="expected an address"):
        api.train(None, d, resume=True, iterations=2, ray_address=6379)
    with pytest.raises(ConfigError, match="samples locally"):
        api.train(None, tmp_path / "local", resume=True, iterations=2, ray_address="10.9.8.7:6379")


def test_unknown_env_id_is_a_config_error(tmp_path):
    from metarl.config import ConfigError

    with pytest.raises(ConfigError, match="env.id"):
        run(tmp_path, "bad", overrides=["env.id=metarl/Nope-v0"])


def test_periodic_evaluation_is_logged_and_does_not_change_training(tmp_path):
    _, plain = run(tmp_path, "plain", overrides=["iterations=2"])
    _, with_eval = run(tmp_path, "eval", overrides=["iterations=2", "eval_every=2", "eval_tasks=3", "eval_steps=1"])
    for k in plain.params:
        assert torch.equal(plain.params[k], with_eval.params[k])
    import csv as csvmod

    rows = list(csvmod.DictReader(open(tmp_path / "eval" / "progress.csv")))
    assert rows[0]["eval/return_after_0_steps"] == "nan"
    assert np.isfinite(float(rows[1]["eval/return_after_1_steps"]))
    acc = EventAccumulator(str(tmp_path / "eval" / "tensorboard"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("eval/return_after_1_steps")] == [1]


def test_resume_refuses_a_different_config(tmp_path):
    out = tmp_path / "r"
    run(tmp_path, "r", overrides=["iterations=1"])
    res = subprocess.run([sys.executable, "-m", "metarl.cli", "train", "--output", str(out), "--resume",
                          "--config", SMOKE_NAV, "--set", "algo.max_kl=0.5"], capture_output=True, text=True)
    assert res.returncode == 2 and "saved config" in res.stderr
    assert load_checkpoint(out / "checkpoints" / "latest.pt")["iteration"] == 1


def test_resume_refuses_a_checkpoint_of_another_config_but_not_a_changed_iteration_count(tmp_path):
    """trainer.config_differences: config.yaml against latest.pt's config, the fields a resume changes left out."""
    out = tmp_path / "r"
    run(tmp_path, "r", overrides=["iterations=1"])
    saved = (out / "config.yaml").read_text()
    assert "\nseed: 0\n" in saved and "\niterations: 1\n" in saved
    (out / "config.yaml").write_text(saved.replace("\nseed: 0\n", "\nseed: 5\n"))
    res = subprocess.run([sys.executable, "-m", "metarl.cli", "train", "--output", str(out), "--resume", "--iterations", "2",
                          "--no-progress"], capture_output=True, text=True)
    assert res.returncode == 2 and "does not belong to this run's config (seed: config.yaml 5 vs checkpoint 0)" in res.stderr
    (out / "config.yaml").write_text(saved.replace("\niterations: 1\n", "\niterations: 3\n"))
    res = subprocess.run([sys.executable, "-m", "metarl.cli", "train", "--output", str(out), "--resume", "--iterations", "2",
                          "--no-progress"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert load_checkpoint(out / "checkpoints" / "latest.pt")["iteration"] == 2


def test_resume_is_exact_with_the_previous_batch_baseline(tmp_path):
    opts = ["algo.baseline_fit=previous_batch"]
    _, full = run(tmp_path, "full", overrides=[*opts, "iterations=3"])
    run(tmp_path, "split", overrides=[*opts, "iterations=1"])
    assert load_checkpoint(tmp_path / "split" / "checkpoints" / "latest.pt")["baseline_state"] is not None
    _, resumed = run(tmp_path, "split", overrides=[*opts, "iterations=3"], resume=True)
    for k in full.params:
        assert torch.equal(full.params[k], resumed.params[k])
    _, per_task = run(tmp_path, "per_task", overrides=["iterations=3"])
    assert not all(torch.equal(full.params[k], per_task.params[k]) for k in full.params)


def test_a_run_names_settings_its_algorithm_ignores(tmp_path, capsys):
    cfg = load_config(SMOKE_NAV, ["algo.clip_eps=0.2"])
    trainer = Trainer(cfg, str(tmp_path / "r"))
    trainer.close()
    assert ("metarl: warning: config field 'algo.clip_eps' is 0.2, but algo.name 'maml_trpo' does not use it"
            in capsys.readouterr().err)
