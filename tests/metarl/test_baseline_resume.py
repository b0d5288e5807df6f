"""`metarl baseline` saves as it trains, survives an interrupt and continues with --resume (real SB3 runs)."""

import io
import os
import zipfile

import numpy as np
import pytest
import torch
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm

from metarl import cli, sb3
from metarl.checkpoint import load_checkpoint
from metarl.config import load_config

CONFIG = os.path.join(os.path.dirname(__file__), "..", "..", "experiments", "configs", "smoke_navigation2d.yaml")
ROLLOUT = 4 * 20  # 4 slots x the smoke config's horizon of 20
CURVE = sb3._EpisodeCurve


def quiet(message):
    pass


def policy_in_zip(run):
    with zipfile.ZipFile(run / "sb3_model.zip") as archive:
        return torch.load(io.BytesIO(archive.read("policy.pth")), weights_only=True)


def curve_rows(run):
    return (run / "training_curve.csv").read_text().splitlines()[1:]


def test_resume_continues_from_the_saved_networks_and_extends_the_budget(tmp_path, monkeypatch):
    cfg = load_config(CONFIG)
    run = tmp_path / "orc"
    sb3.train_baseline("oracle", cfg, str(run), timesteps=3 * ROLLOUT, seed=0, num_slots=4, progress=quiet)
    first = load_checkpoint(run / "checkpoints" / "best.pt")
    assert first["sb3_timesteps"] == 3 * ROLLOUT and first["sb3_slots"] == 4 and first["sb3_seed"] == 0
    saved_policy, saved_rows = policy_in_zip(run), curve_rows(run)

    seen = {}
    original = OnPolicyAlgorithm.learn

    def learn(self, *args, **kwargs):  # the networks and step count the continued training starts from
        seen["policy"] = {k: v.clone() for k, v in self.policy.state_dict().items()}
        seen["steps"] = self.num_timesteps
        return original(self, *args, **kwargs)

    monkeypatch.setattr(OnPolicyAlgorithm, "learn", learn)
    messages = []
    sb3.train_baseline("oracle", cfg, str(run), timesteps=5 * ROLLOUT, seed=0, num_slots=4,
                       progress=messages.append, resume=True)
    assert seen["steps"] == 3 * ROLLOUT
    assert seen["policy"].keys() == saved_policy.keys()
    assert all(torch.equal(seen["policy"][k], saved_policy[k]) for k in saved_policy)
    assert "continuing TRPO at 240 of 400 env steps" in messages[0]
    second = load_checkpoint(run / "checkpoints" / "best.pt")
    assert second["sb3_timesteps"] == 5 * ROLLOUT
    rows = curve_rows(run)
    assert rows[: len(saved_rows)] == saved_rows and len(rows) == len(saved_rows) + 2
    assert [int(r.split(",")[0]) for r in rows[len(saved_rows):]] == [4 * ROLLOUT, 5 * ROLLOUT]
    assert not torch.equal(second["params"]["w0"], first["params"]["w0"])  # it trained on

    # reproducible: the same continuation from the same saved state gives the same networks
    again = tmp_path / "again"
    sb3.train_baseline("oracle", cfg, str(again), timesteps=3 * ROLLOUT, seed=0, num_slots=4, progress=quiet)
    sb3.train_baseline("oracle", cfg, str(again), timesteps=5 * ROLLOUT, seed=0, num_slots=4, progress=quiet, resume=True)
    other = load_checkpoint(again / "checkpoints" / "best.pt")
    assert all(torch.equal(other["params"][k], second["params"][k]) for k in second["params"])


class InterruptingCurve(sb3._EpisodeCurve):
    """Raises KeyboardInterrupt (as Ctrl-C would) at the start of the rollout after ``stop_at`` env steps."""

    stop_at = 2 * ROLLOUT

    @property
    def on_rollout_start(self):
        return self._hook

    @on_rollout_start.setter
    def on_rollout_start(self, hook):
        def interrupting(steps):
            if hook is not None:
                hook(steps)
            if steps >= self.stop_at:
                raise KeyboardInterrupt

        self._hook = interrupting


def test_an_interrupted_baseline_keeps_its_last_update_and_resumes(tmp_path, monkeypatch, capsys):
    cfg = load_config(CONFIG)
    run = tmp_path / "pre"
    monkeypatch.setattr(sb3, "_EpisodeCurve", InterruptingCurve)
    messages = []
    with pytest.raises(KeyboardInterrupt):
        sb3.train_baseline("pretrained", cfg, str(run), timesteps=6 * ROLLOUT, seed=1, num_slots=4,
                           progress=messages.append)
    state = load_checkpoint(run / "checkpoints" / "best.pt")
    assert state["sb3_timesteps"] == 2 * ROLLOUT
    assert "--resume --timesteps 480" in messages[-1]
    assert [int(r.split(",")[0]) for r in curve_rows(run)] == [ROLLOUT, 2 * ROLLOUT]
    # the zip and the metarl checkpoint hold the same actor: the state saved together, at 160 steps
    assert torch.equal(policy_in_zip(run)["mlp_extractor.policy_net.0.weight"].T, state["params"]["w0"])
    monkeypatch.setattr(sb3, "_EpisodeCurve", CURVE)
    # the command line continues it, reading the run's own config
    assert cli.main(["baseline", "pretrained", "--output", str(run), "--resume", "--timesteps", str(6 * ROLLOUT),
                     "--seed", "1", "--slots", "4"]) == 0
    assert load_checkpoint(run / "checkpoints" / "best.pt")["sb3_timesteps"] == 6 * ROLLOUT
    assert [int(r.split(",")[0]) for r in curve_rows(run)] == [ROLLOUT * k for k in range(1, 7)]


def test_periodic_saves_leave_a_complete_baseline(tmp_path, monkeypatch):
    cfg = load_config(CONFIG)
    run = tmp_path / "orc"
    saved = []
    from metarl import checkpoint

    original = checkpoint.save_checkpoint

    def recording(path, state):
        saved.append(state["sb3_timesteps"])
        return original(path, state)

    monkeypatch.setattr(checkpoint, "save_checkpoint", recording)
    sb3.train_baseline("oracle", cfg, str(run), timesteps=5 * ROLLOUT, seed=0, num_slots=4, progress=quiet,
                       save_every=2 * ROLLOUT)
    assert saved == [2 * ROLLOUT, 4 * ROLLOUT, 5 * ROLLOUT]


def run_cli(*argv):
    return cli.main(["baseline", *argv])


def test_resume_refuses_what_it_cannot_continue(tmp_path, capsys):
    cfg = load_config(CONFIG)
    run = tmp_path / "orc"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run_cli("oracle", "--output", str(empty), "--resume", "--timesteps", "400") == 2
    assert "holds no baseline to continue" in capsys.readouterr().err
    assert run_cli("oracle", "--output", str(empty)) == 2
    assert "--config: required" in capsys.readouterr().err
    sb3.train_baseline("oracle", cfg, str(run), timesteps=ROLLOUT, seed=0, num_slots=4, progress=quiet)
    cases = [
        (["pretrained", "--resume", "--timesteps", "400", "--slots", "4"], "kind: the baseline in"),
        (["oracle", "--resume", "--timesteps", "400", "--slots", "4", "--algo", "ppo"], "--algo: the baseline in"),
        (["oracle", "--resume", "--timesteps", "400", "--slots", "8"], "--slots: the baseline in"),
        (["oracle", "--resume", "--timesteps", "400", "--slots", "4", "--seed", "3"], "--seed: the baseline in"),
        (["oracle", "--resume", "--timesteps", "80", "--slots", "4"], "--timesteps: the baseline in"),
        (["oracle", "--resume", "--overwrite", "--timesteps", "400", "--slots", "4"], "--resume and --overwrite"),
        (["oracle", "--timesteps", "400", "--slots", "4", "--config", CONFIG], "--resume to continue it"),
    ]
    for argv, message in cases:
        assert run_cli(*argv[:1], "--output", str(run), *argv[1:]) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (argv, err)
    other = tmp_path / "other.yaml"
    other.write_text(open(CONFIG).read().replace("hidden_sizes: [16, 16]", "hidden_sizes: [16, 8]"))
    assert run_cli("oracle", "--output", str(run), "--resume", "--timesteps", "400", "--slots", "4", "--config", str(other)) == 2
    assert "--config: differs from the baseline's own config in policy.hidden_sizes" in capsys.readouterr().err
    assert load_checkpoint(run / "checkpoints" / "best.pt")["sb3_timesteps"] == ROLLOUT  # nothing was touched


class Payload:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_resume_never_unpickles_code_from_the_model_zip(tmp_path, capsys, monkeypatch):
    cfg = load_config(CONFIG)
    run = tmp_path / "orc"
    sb3.train_baseline("oracle", cfg, str(run), timesteps=ROLLOUT, seed=0, num_slots=4, progress=quiet)
    with zipfile.ZipFile(run / "sb3_model.zip") as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    buf = io.BytesIO()
    torch.save({"weights": Payload()}, buf)
    members["policy.pth"] = buf.getvalue()
    with zipfile.ZipFile(run / "sb3_model.zip", "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    monkeypatch.chdir(tmp_path)
    assert run_cli("oracle", "--output", str(run), "--resume", "--timesteps", "400", "--slots", "4") == 2
    err = capsys.readouterr().err
    assert "holds objects other than tensors and plain data" in err and "nothing in it was run" in err
    assert not (tmp_path / "pwned").exists()
    assert np.isfinite(load_checkpoint(run / "checkpoints" / "best.pt")["params"]["w0"].numpy()).all()
