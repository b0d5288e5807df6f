"""stable-baselines3 on metarl's envs; pretrained policies convert and adapt."""

import sys
import warnings

import numpy as np
import pytest
import torch
import gymnasium
from stable_baselines3 import PPO
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.vec_env import VecCheckNan

from metarl import envs  # noqa: F401  (registers the ids)
from metarl import evaluation as ev
from metarl.config import EnvConfig, load_config
from metarl.errors import UsageError
from metarl.policy import GaussianMLPPolicy
from metarl.sb3 import SB3TaskVecEnv, policy_kwargs, sb3_policy_params, train_baseline


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_single_env_passes_sb3_check_env():
    sb3_check_env(gymnasium.make("metarl/HalfCheetahDir-v0").unwrapped, warn=False)


def test_vec_adapter_contract():
    env = gymnasium.make_vec("metarl/Navigation2D-v0", num_envs=3, horizon=5)
    vec = VecCheckNan(SB3TaskVecEnv(env, seed=0), raise_exception=True)
    obs = vec.reset()
    assert obs.shape == (3, 2) and obs.dtype == np.float32
    first_tasks = env.get_tasks()
    for _ in range(5):
        obs, rew, dones, infos = vec.step(np.full((3, 2), 0.1, np.float32))  # moves of 0.01
        assert rew.shape == (3,) and dones.shape == (3,) and len(infos) == 3
    assert dones.all()  # horizon
    assert all(info["TimeLimit.truncated"] for info in infos)
    np.testing.assert_allclose(infos[0]["terminal_observation"], [0.05, 0.05], atol=1e-6)
    np.testing.assert_array_equal(obs, 0.0)  # auto-reset to the start
    assert not np.array_equal(env.get_tasks(), first_tasks)  # a new task per episode


def test_vec_adapter_resets_terminated_slots_on_their_own():
    env = gymnasium.make_vec("metarl/Navigation2D-v0", num_envs=2, horizon=50)
    vec = SB3TaskVecEnv(env, tasks=np.array([[0.05, 0.05], [0.45, 0.45]]), seed=0)
    vec.reset()
    obs, _, dones, infos = vec.step(np.array([[0.5, 0.5], [0.1, 0.1]], np.float32))
    assert dones.tolist() == [True, False] and infos[0]["TimeLimit.truncated"] is False
    np.testing.assert_allclose(obs[0], 0.0)  # slot 0 restarted, slot 1 runs on
    np.testing.assert_allclose(obs[1], [0.01, 0.01], atol=1e-7)
    obs, _, dones, _ = vec.step(np.array([[0.0, 0.0], [0.1, 0.1]], np.float32))
    np.testing.assert_allclose(obs[1], [0.02, 0.02], atol=1e-7)


def test_oracle_observation_includes_the_task():
    env = gymnasium.make_vec("metarl/HalfCheetahVel-v0", num_envs=2, horizon=5)
    vec = SB3TaskVecEnv(env, oracle=True, tasks=np.array([[0.5], [1.5]]))
    obs = vec.reset()
    assert obs.shape == (2, 21)
    np.testing.assert_allclose(obs[:, -1], [0.5, 1.5])


def test_ppo_trains_a_few_hundred_steps_and_converts_exactly(tmp_path, monkeypatch):
    import tempfile

    temp = tmp_path / "system-temp"  # the test's own SB3 model logs nowhere, as train_baseline's does (torch's
    # compiler cache, which an optimizer makes, goes where tests/conftest.py puts it)
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    env = gymnasium.make_vec("metarl/Navigation2D-v0", num_envs=4, horizon=25)
    vec = SB3TaskVecEnv(env, seed=0)
    model = PPO("MlpPolicy", vec, n_steps=25, batch_size=50, n_epochs=2, seed=0, device="cpu",
                policy_kwargs=policy_kwargs([16, 16], 1.0))
    model.set_logger(Logger(folder=None, output_formats=[]))
    model.learn(total_timesteps=300)
    assert list(temp.iterdir()) == []
    assert model.num_timesteps >= 300
    params = sb3_policy_params(model, torch.float64)
    policy = GaussianMLPPolicy(2, 2, (16, 16))
    obs = torch.randn(7, 2, dtype=torch.float64)
    with torch.no_grad():
        dist = model.policy.get_distribution(obs.float())
        np.testing.assert_allclose(policy.mean(params, obs).numpy(), dist.distribution.mean.double().numpy(), atol=1e-5)
        np.testing.assert_allclose(params["log_std"].numpy(), model.policy.log_std.double().numpy())
    # and the inner loop adapts it
    s = ev.EvalSettings(env=EnvConfig("metarl/Navigation2D-v0", {"horizon": 25}), num_tasks=3, episodes_per_task=4,
                        steps=1, step_size=0.2)
    curve = ev.adaptation_curve(policy, {k: v.float() for k, v in params.items()}, ev.paper_test_tasks(s.env_id, 3), s)
    assert curve.shape == (3, 2) and np.isfinite(curve).all()


def test_conversion_refuses_other_activations():
    env = gymnasium.make_vec("metarl/Navigation2D-v0", num_envs=2, horizon=5)
    model = PPO("MlpPolicy", SB3TaskVecEnv(env), n_steps=5, batch_size=10, device="cpu")  # Tanh by default
    with pytest.raises(ValueError, match="ReLU"):
        sb3_policy_params(model)


def _fresh_temp(tmp_path):
    """An empty system temp directory for a child process, and that process's environment."""
    temp = tmp_path / "system-temp"
    temp.mkdir()
    env = {k: v for k, v in ev.os.environ.items() if k != "TORCHINDUCTOR_CACHE_DIR"}
    env["TMPDIR"] = str(temp)
    return temp, env


def test_metarl_baseline_leaves_nothing_in_the_system_temp_directory(tmp_path):
    """A fresh process (torch imports its compiler once per process): ``metarl baseline`` with TMPDIR set."""
    import subprocess

    temp, env = _fresh_temp(tmp_path)
    config = ev.os.path.join(ev.os.path.dirname(__file__), "..", "..", "experiments", "configs", "smoke_navigation2d.yaml")
    code = ("import os, sys; from metarl.cli import main; main(sys.argv[1:]); "
            "print('cache variable:', os.environ.get('TORCHINDUCTOR_CACHE_DIR'))")
    out = subprocess.run([sys.executable, "-c", code, "baseline", "oracle", "--config", config, "--output",
                          str(tmp_path / "run"), "--algo", "ppo", "--timesteps", "100", "--slots", "4"],
                         capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr
    assert "cache variable: None" in out.stdout
    assert (tmp_path / "run" / "checkpoints" / "best.pt").exists()
    assert list(temp.iterdir()) == []


def test_a_compiler_cache_folder_that_was_there_is_left_alone(tmp_path):
    """Another torch program's cache folder in the temp directory is kept; the variable torch sets is still taken
    back (it was not set before).  What train_baseline does first, then an optimizer, in a fresh process."""
    import getpass
    import re
    import subprocess

    temp, env = _fresh_temp(tmp_path)
    try:  # torch's name for it, with its fallback where the user has no name
        user = getpass.getuser()
    except (KeyError, ModuleNotFoundError, OSError):
        user = f"uid_{ev.os.getuid()}"
    mine = "torchinductor_" + re.sub(r'[\\/:*?"<>|]', "_", user)
    (temp / mine).mkdir()
    code = ("import os, torch; from metarl.sb3 import _import_dynamo_without_a_cache_folder as f; f(); "
            "torch.optim.Adam([torch.zeros(1, requires_grad=True)]); print(os.environ.get('TORCHINDUCTOR_CACHE_DIR'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "None"
    assert [p.name for p in temp.iterdir()] == [mine]


@pytest.mark.parametrize("kind,algo", [("pretrained", "trpo"), ("oracle", "trpo"), ("oracle", "ppo")])
def test_baseline_command_writes_an_evaluable_checkpoint(tmp_path, kind, algo, monkeypatch):
    import tempfile

    temp = tmp_path / "system-temp"  # nothing outside the output: SB3's logger would make SB3-<time> folders here
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    cfg = load_config(ev.os.path.join(ev.os.path.dirname(__file__), "..", "..", "experiments", "configs", "smoke_navigation2d.yaml"))
    train_baseline(kind, cfg, str(tmp_path / kind), timesteps=400, seed=0, num_slots=4, progress=lambda m: None,
                   algo=algo)
    assert (tmp_path / kind / "sb3_model.zip").exists() and list(temp.iterdir()) == []
    curve = (tmp_path / kind / "training_curve.csv").read_text().splitlines()
    assert curve[0] == "env_steps,mean_episode_return,episodes" and len(curve) >= 3
    assert all(np.isfinite(float(row.split(",")[1])) for row in curve[1:])
    policy, params, saved = ev.load_policy(ev.resolve_source(str(tmp_path / kind)))
    assert saved["method"] == kind and saved["obs_dim"] == (4 if kind == "oracle" else 2)
    assert saved["sb3_algo"] == algo
    settings = ev.protocol_settings(cfg, kind, kind == "oracle", None, num_tasks=3, episodes=2)
    settings.env.kwargs = {"horizon": 20}
    assert settings.steps == (0 if kind == "oracle" else 4) and settings.step_size == (0.0 if kind == "oracle" else 0.2)
    env = ev.make_eval_env(settings)
    ev.check_policy_fits(policy, env, settings.env_id)
    curve = ev.adaptation_curve(policy, params, ev.evaluation_tasks(env, settings), settings, env=env)
    assert np.isfinite(curve).all()
    with pytest.raises(UsageError, match="--overwrite"):
        train_baseline(kind, cfg, str(tmp_path / kind), timesteps=200, seed=0, num_slots=4, progress=lambda m: None)


PLOT_SCRIPT = ev.os.path.join(ev.os.path.dirname(__file__), "..", "..", "experiments", "plot_baseline_curves.py")


def plot_curves(*args):
    """experiments/plot_baseline_curves.py in its own process, as a user runs it."""
    import subprocess

    return subprocess.run([sys.executable, PLOT_SCRIPT, *map(str, args)], capture_output=True, text=True, timeout=300,
                          cwd=ev.os.path.dirname(PLOT_SCRIPT))


def plot_here(monkeypatch, capsys, *args):
    """experiments/plot_baseline_curves.py's ``main`` in this process: (exit status, stdout, stderr) as the
    script's own process would end (``sys.exit(message)`` prints the message alone and exits with 1; the
    real process is run at the end of the test below)."""
    from experiments import plot_baseline_curves

    monkeypatch.setattr(sys, "argv", ["plot_baseline_curves.py", *map(str, args)])
    try:
        plot_baseline_curves.main()
        code = 0
    except SystemExit as exc:
        code = 0 if exc.code is None else exc.code
    out, err = capsys.readouterr()
    if isinstance(code, str):
        err, code = err + code + "\n", 1
    return code, out, err


def test_plot_baseline_curves_reads_real_baseline_runs(tmp_path, monkeypatch, capsys):
    cfg = load_config(ev.os.path.join(ev.os.path.dirname(__file__), "..", "..", "experiments", "configs",
                                      "smoke_navigation2d.yaml"))
    for kind in ("oracle", "pretrained"):
        train_baseline(kind, cfg, str(tmp_path / kind), timesteps=800, seed=0, num_slots=4, progress=lambda m: None)
    code, out, err = plot_here(monkeypatch, capsys, tmp_path / "oracle", tmp_path / "pretrained", "--output",
                               tmp_path / "c.png", "--window", "2")
    assert code == 0, err
    assert (tmp_path / "c.png").stat().st_size > 0
    rows = [r for r in out.splitlines() if r.startswith("| oracle") or r.startswith("| pretrained")]
    assert len(rows) == 2 and all("| 800 |" in r for r in rows)
    # the tenths are means of the recorded curve: recompute the last one from the file
    steps, y = np.loadtxt(tmp_path / "oracle" / "training_curve.csv", delimiter=",", skiprows=1, usecols=(0, 1)).T
    last = y[steps > 0.9 * steps[-1]].mean()
    assert f"{last:.2f} |" in rows[0]
    # the script in its own process, as a user runs it: a bad directory is one line, no traceback
    bad = plot_curves(tmp_path, "--output", tmp_path / "d.png")
    assert bad.returncode == 2 and "no training_curve.csv" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "d.png").exists()


def test_plot_baseline_curves_bad_input_is_one_line(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "training_curve.csv").write_text("env_steps,mean_episode_return,episodes\n80,-3.5,4\n160,-2.5,4\n")
    png = tmp_path / "c.png"
    cases = [
        ([tmp_path / "absent"], "no such directory"),
        ([run], "run: no config.yaml; pass directories written by `metarl baseline`"),  # none beside the curve
        ([run, "--window", "0"], "--window: expected a positive integer, got 0"),
        ([run, f"{run}/"], "would both be 'run' in the legend"),
    ]
    for args, needle in cases:
        code, _, err = plot_here(monkeypatch, capsys, *args, "--output", png)
        assert code != 0 and needle in err and "Traceback" not in err, (args, err)
    (run / "config.yaml").write_text("env: {id: metarl/Navigation2D-v0}\n")
    (run / "training_curve.csv").write_text("steps,return\n1,2\n")
    code, _, err = plot_here(monkeypatch, capsys, run, "--output", png)
    assert code != 0 and "no column" in err and "Traceback" not in err, err
    header = "env_steps,mean_episode_return,episodes\n"
    for rows, needle in (("80,-3.5,4\ninf,-2.5,4\n", "row 2 of the finished episodes has env_steps inf"),
                         ("nan,-3.5,4\n", "row 1 of the finished episodes has env_steps nan"),
                         ("-80,-3.5,4\n", "env_steps -80.0"), ("80,inf,4\n", "return inf"),
                         ("160,-3.5,4\n80,-2.5,4\n", "env_steps go back in time after row 1"),
                         ("80,-3.5,4\n160\n", "a value is missing or not a number")):  # a last row cut short
        (run / "training_curve.csv").write_text(header + rows)
        code, _, err = plot_here(monkeypatch, capsys, run, "--output", png)
        assert code == 2 and needle in err and "Traceback" not in err, (rows, err)
    (run / "training_curve.csv").write_text("env_steps,mean_episode_return,episodes\n80,-3.5,4\n160,-2.5,4\n")
    # the formats `metarl plot` writes and no others (matplotlib would also write .jpg, .eps, .tiff ...)
    for output, needle in ((tmp_path / "c.txt2", "--output"), ("/proc/no/c.png", "--output"),
                           (tmp_path / "c.jpg", "a figure is written as .png, .pdf, .svg")):
        code, _, err = plot_here(monkeypatch, capsys, run, "--output", output)
        assert code != 0 and needle in err and "Traceback" not in err, err
    # a curve too short for tenths prints '-' for the empty ones instead of a NaN warning
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # numpy's "Mean of empty slice" fails the call here
        code, out, err = plot_here(monkeypatch, capsys, run, "--output", png)
    assert code == 0, err
    assert "| run | 160 | -, -, -2.50 | - |" in out and png.stat().st_size > 0
    # an existing figure is replaced only when asked
    png.write_bytes(b"the user's figure")
    code, _, err = plot_here(monkeypatch, capsys, run, "--output", png)
    assert code == 2 and "exists; pass --overwrite" in err and png.read_bytes() == b"the user's figure"
    code, _, err = plot_here(monkeypatch, capsys, run, "--output", png, "--overwrite")
    assert code == 0 and png.read_bytes().startswith(b"\x89PNG"), err


@pytest.mark.parametrize("name,slots", [("ant_dir", 100), ("halfcheetah_vel", 16)])
def test_baseline_slots_default_per_task(tmp_path, name, slots):
    """The paper's Ant tasks train their baselines on the authors' 100 trajectories per update, others on 16."""
    from metarl.sb3 import default_slots

    cfg = load_config(ev.os.path.join(ev.os.path.dirname(__file__), "..", "..", "experiments", "configs", f"{name}.yaml"))
    cfg.env.kwargs = {"horizon": 3}  # short episodes: one rollout is slots x 3 env steps
    assert default_slots(cfg.env.id) == slots
    messages = []
    state = train_baseline("oracle", cfg, str(tmp_path / name), timesteps=1, progress=messages.append)
    assert state["sb3_slots"] == slots and state["sb3_timesteps"] == slots * 3  # one rollout of every slot
    assert f"on {slots} env slots ({slots * 3} env steps per update)" in messages[0]
    state = train_baseline("oracle", cfg, str(tmp_path / "given"), timesteps=1, num_slots=2, progress=messages.append)
    assert state["sb3_slots"] == 2 and state["sb3_timesteps"] == 6  # --slots wins


def test_an_ant_baseline_saved_without_its_slot_count_resumes_on_16(tmp_path, monkeypatch):
    """Folders saved before the Ant default recorded no slot count where the zip has none either: they had 16."""
    import metarl.sb3 as sb3
    from metarl.checkpoint import load_checkpoint, save_checkpoint

    cfg = load_config(ev.os.path.join(ev.os.path.dirname(__file__), "..", "..", "experiments", "configs", "ant_vel.yaml"))
    cfg.env.kwargs = {"horizon": 3}
    run = tmp_path / "old"
    train_baseline("oracle", cfg, str(run), timesteps=1, num_slots=16, progress=lambda m: None)
    ckpt = str(run / "checkpoints" / "best.pt")
    state = load_checkpoint(ckpt)
    del state["sb3_slots"]
    save_checkpoint(ckpt, state)
    monkeypatch.setattr(sb3, "_zip_settings", lambda path: {})  # a zip whose data entry names no n_envs
    state = train_baseline("oracle", cfg, str(run), timesteps=96, resume=True, progress=lambda m: None)
    assert state["sb3_slots"] == 16 and state["sb3_timesteps"] == 96
