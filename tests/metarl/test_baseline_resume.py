"""`metarl baseline` saves as it trains, survives an interrupt or a crash while saving, and continues with
--resume (real SB3 runs on the smoke Navigation2D config)."""

import copy
import io
import os
import shlex
import signal
import zipfile

import numpy as np
import pytest
import torch
from sb3_contrib import TRPO
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm

from metarl import checkpoint, cli, sb3
from metarl.checkpoint import load_checkpoint, save_checkpoint
from metarl.config import load_config

CONFIG = os.path.join(os.path.dirname(__file__), "..", "..", "experiments", "configs", "smoke_navigation2d.yaml")
ROLLOUT = 4 * 20  # 4 slots x the smoke config's horizon of 20


def quiet(message):
    pass


def saved(run):
    return load_checkpoint(run / "checkpoints" / "best.pt")


def curve_steps(run):
    return [int(row.split(",")[0]) for row in (run / "training_curve.csv").read_text().splitlines()[1:]]


def same_tensors(a, b):
    """Two (nested) state dicts hold equal tensors and equal plain values."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same_tensors(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same_tensors(x, y) for x, y in zip(a, b))
    return a == b


def train(run, total, **kwargs):
    kwargs = {"seed": 0, "num_slots": 4, "progress": quiet, **kwargs}
    return sb3.train_baseline(kwargs.pop("kind", "oracle"), load_config(CONFIG), str(run), timesteps=total, **kwargs)


def test_resume_continues_from_the_saved_networks_and_extends_the_budget(tmp_path, monkeypatch):
    run = tmp_path / "orc"
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    train(run, 3 * ROLLOUT)
    assert {sig: signal.getsignal(sig) for sig in before} == before  # the handlers are put back
    first = saved(run)
    assert (first["sb3_timesteps"], first["sb3_slots"], first["sb3_seed"], first["sb3_algo"]) == (3 * ROLLOUT, 4, 0, "trpo")
    first_steps = curve_steps(run)

    seen = {}
    original = OnPolicyAlgorithm.learn

    def learn(self, *args, **kwargs):  # what the continued training starts from
        seen.update(policy=copy.deepcopy(self.policy.state_dict()), optimizer=copy.deepcopy(self.policy.optimizer.state_dict()),
                    steps=self.num_timesteps)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(OnPolicyAlgorithm, "learn", learn)
    messages = []
    train(run, 5 * ROLLOUT, resume=True, seed=None, num_slots=None, progress=messages.append)  # the run's own
    assert seen["steps"] == 3 * ROLLOUT
    assert same_tensors(seen["policy"], first["sb3_policy"]) and same_tensors(seen["optimizer"], first["sb3_optimizer"])
    assert "continuing TRPO at 240 of 400 env steps" in messages[0]
    second = saved(run)
    assert second["sb3_timesteps"] == 5 * ROLLOUT and curve_steps(run) == first_steps + [4 * ROLLOUT, 5 * ROLLOUT]
    assert not torch.equal(second["params"]["w0"], first["params"]["w0"])  # it trained on
    with zipfile.ZipFile(run / "sb3_model.zip") as archive:  # the exported zip holds the same actor
        policy = torch.load(io.BytesIO(archive.read("policy.pth")), weights_only=True)
    assert torch.equal(policy["mlp_extractor.policy_net.0.weight"].T, second["params"]["w0"])

    # reproducible: the same continuation from the same saved state gives the same networks
    again = tmp_path / "again"
    train(again, 3 * ROLLOUT)
    train(again, 5 * ROLLOUT, resume=True)
    assert same_tensors(saved(again)["sb3_policy"], second["sb3_policy"])


def test_an_interrupt_during_an_update_keeps_the_state_before_its_rollout(tmp_path, monkeypatch, capsys):
    plain = tmp_path / "plain"
    train(plain, 2 * ROLLOUT, kind="pretrained", seed=1)

    updates = {"n": 0}
    original = TRPO.train

    def interrupted_train(self):  # Ctrl-C in the middle of the third update
        updates["n"] += 1
        original(self)
        if updates["n"] == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(TRPO, "train", interrupted_train)
    run = tmp_path / "run dir"  # a space: the printed command quotes it
    messages = []
    with pytest.raises(KeyboardInterrupt):
        train(run, 6 * ROLLOUT, kind="pretrained", seed=1, progress=messages.append)
    state, reference = saved(run), saved(plain)
    assert state["sb3_timesteps"] == 2 * ROLLOUT and curve_steps(run) == [ROLLOUT, 2 * ROLLOUT]  # no row of rollout 3
    assert same_tensors(state["sb3_policy"], reference["sb3_policy"])  # not the third update's networks
    assert same_tensors(state["sb3_optimizer"], reference["sb3_optimizer"])
    monkeypatch.setattr(TRPO, "train", original)
    # the printed command continues it as is, with the run's own config, seed and slots
    command = messages[-1].split("Continue with: ")[1]
    assert cli.main(shlex.split(command)[1:]) == 0
    assert saved(run)["sb3_timesteps"] == 6 * ROLLOUT and saved(run)["sb3_seed"] == 1
    assert curve_steps(run) == [ROLLOUT * k for k in range(1, 7)]


def test_a_crash_while_saving_leaves_the_last_committed_baseline(tmp_path, monkeypatch):
    run = tmp_path / "orc"
    train(run, 3 * ROLLOUT)

    def crash(path, state):  # dies after the zip and the curve were replaced, before best.pt
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint, "save_checkpoint", crash)
    with pytest.raises(OSError):
        train(run, 5 * ROLLOUT, resume=True)
    monkeypatch.setattr(checkpoint, "save_checkpoint", save_checkpoint)
    assert saved(run)["sb3_timesteps"] == 3 * ROLLOUT and curve_steps(run)[-1] == 5 * ROLLOUT  # the mixed folder
    train(run, 5 * ROLLOUT, resume=True)  # continues from best.pt; the curve's rows past it are dropped
    clean = tmp_path / "clean"
    train(clean, 3 * ROLLOUT)
    train(clean, 5 * ROLLOUT, resume=True)
    assert curve_steps(run) == curve_steps(clean)
    assert same_tensors(saved(run)["sb3_policy"], saved(clean)["sb3_policy"])


def test_periodic_saves_commit_a_complete_baseline(tmp_path, monkeypatch):
    run = tmp_path / "orc"
    commits = []

    def recording(path, state):
        save_checkpoint(path, state)
        commits.append((state["sb3_timesteps"], curve_steps(run)[-1], saved(run)["params"]["w0"].clone()))

    monkeypatch.setattr(checkpoint, "save_checkpoint", recording)
    train(run, 5 * ROLLOUT, save_every=2 * ROLLOUT)
    assert [c[0] for c in commits] == [2 * ROLLOUT, 4 * ROLLOUT, 5 * ROLLOUT]
    assert all(steps == last_row for steps, last_row, _ in commits)  # the curve written with each commit
    assert not torch.equal(commits[0][2], commits[-1][2])


def test_a_baseline_saved_before_best_pt_held_the_networks_still_resumes(tmp_path, capsys):
    run = tmp_path / "old"
    train(run, 2 * ROLLOUT, seed=3)
    state = saved(run)
    for key in ("sb3_policy", "sb3_optimizer", "sb3_slots", "sb3_seed"):  # as the previous version wrote it
        del state[key]
    save_checkpoint(run / "checkpoints" / "best.pt", state)
    # its slots and seed come from the zip's JSON entry
    assert cli.main(["baseline", "oracle", "--output", str(run), "--resume", "--timesteps", "400", "--slots", "8"]) == 2
    assert "--slots: the baseline in" in capsys.readouterr().err
    assert cli.main(["baseline", "oracle", "--output", str(run), "--resume", "--timesteps", "400"]) == 0
    assert (saved(run)["sb3_timesteps"], saved(run)["sb3_slots"], saved(run)["sb3_seed"]) == (400, 4, 3)


def run_cli(*argv):
    return cli.main(["baseline", *argv])


def test_resume_refuses_what_it_cannot_continue(tmp_path, capsys):
    run = tmp_path / "orc"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run_cli("oracle", "--output", str(empty), "--resume", "--timesteps", "400") == 2
    assert "holds no baseline to continue" in capsys.readouterr().err
    assert run_cli("oracle", "--output", str(empty)) == 2
    assert "--config: required" in capsys.readouterr().err
    train(run, ROLLOUT)
    cases = [
        (["pretrained", "--resume", "--timesteps", "400"], "kind: the baseline in"),
        (["oracle", "--resume", "--timesteps", "400", "--algo", "ppo"], "--algo: the baseline in"),
        (["oracle", "--resume", "--timesteps", "400", "--slots", "8"], "--slots: the baseline in"),
        (["oracle", "--resume", "--timesteps", "400", "--seed", "3"], "--seed: the baseline in"),
        (["oracle", "--resume", "--timesteps", "80"], "--timesteps: the baseline in"),
        (["oracle", "--resume", "--overwrite", "--timesteps", "400"], "--resume and --overwrite"),
        (["oracle", "--timesteps", "400", "--config", CONFIG], "--resume to continue it"),
    ]
    for argv, message in cases:
        assert run_cli(*argv[:1], "--output", str(run), *argv[1:]) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (argv, err)
    other = tmp_path / "other.yaml"
    other.write_text(open(CONFIG).read().replace("hidden_sizes: [16, 16]", "hidden_sizes: [16, 8]"))
    assert run_cli("oracle", "--output", str(run), "--resume", "--timesteps", "400", "--config", str(other)) == 2
    assert "--config: differs from the baseline's own config in policy.hidden_sizes" in capsys.readouterr().err
    assert saved(run)["sb3_timesteps"] == ROLLOUT  # nothing was touched
    assert (run / "metarl-baseline.json").exists()
    # files of yours under a baseline's names are not a baseline: refused even with --overwrite, left as they were
    for name, text in (("config.yaml", "# my commented config\n"), (os.path.join("checkpoints", "best.pt"), "my weights")):
        mine = tmp_path / f"mine-{len(os.listdir(tmp_path))}"
        (mine / name).parent.mkdir(parents=True, exist_ok=True)
        (mine / name).write_text(text)
        for flags in ([], ["--overwrite"]):
            assert run_cli("oracle", "--output", str(mine), "--config", CONFIG, "--timesteps", "80", *flags) == 2
            err = capsys.readouterr().err
            assert "is not a metarl baseline's folder" in err and "Traceback" not in err, err
        assert (mine / name).read_text() == text and sorted(os.listdir(mine)) == [name.split(os.sep)[0]]
    # a folder a crash left without best.pt: --overwrite takes it, a plain run names the way out
    os.remove(run / "checkpoints" / "best.pt")
    assert run_cli("oracle", "--output", str(run), "--config", CONFIG, "--timesteps", "80", "--slots", "4") == 2
    assert "pass --overwrite to replace it" in capsys.readouterr().err
    assert run_cli("oracle", "--output", str(run), "--config", CONFIG, "--timesteps", "80", "--slots", "4", "--overwrite") == 0
    best = run / "checkpoints" / "best.pt"
    best.write_bytes(best.read_bytes()[:300])  # a checkpoint cut short: one line, the way out
    assert run_cli("oracle", "--output", str(run), "--resume", "--timesteps", "400") == 2
    err = capsys.readouterr().err
    assert "unreadable or corrupted" in err and "--overwrite" in err and "latest.pt" not in err and "Traceback" not in err


class Payload:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_resume_never_unpickles_code(tmp_path, capsys, monkeypatch):
    run = tmp_path / "orc"
    train(run, ROLLOUT)
    state = saved(run)
    for key in ("sb3_policy", "sb3_optimizer"):  # an old-format folder, whose networks come from the zip
        del state[key]
    save_checkpoint(run / "checkpoints" / "best.pt", state)
    with zipfile.ZipFile(run / "sb3_model.zip") as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    buf = io.BytesIO()
    torch.save({"weights": Payload()}, buf)
    members["policy.pth"] = buf.getvalue()
    with zipfile.ZipFile(run / "sb3_model.zip", "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    monkeypatch.chdir(tmp_path)
    assert run_cli("oracle", "--output", str(run), "--resume", "--timesteps", "400") == 2
    err = capsys.readouterr().err
    assert "holds objects other than tensors and plain data" in err and "nothing in it was run" in err
    assert not (tmp_path / "pwned").exists()
    assert np.isfinite(saved(run)["params"]["w0"].numpy()).all()


def test_resume_imports_the_baselines_plugin_modules_only_when_named(tmp_path, capsys, monkeypatch):
    run = tmp_path / "orc"
    train(run, ROLLOUT)
    (tmp_path / "planted.py").write_text("open('pwned', 'w').close()\n")
    config = (run / "config.yaml").read_text()
    assert "imports: []" in config
    (run / "config.yaml").write_text(config.replace("imports: []", "imports: [planted]"))
    monkeypatch.chdir(tmp_path)
    assert run_cli("oracle", "--output", str(run), "--resume", "--timesteps", "400") == 2
    err = capsys.readouterr().err
    assert "env.imports" in err and "--import planted" in err and "Traceback" not in err
    assert not (tmp_path / "pwned").exists()
    # --import with a --config of the user's own is refused (that config's imports are its own instruction)
    assert run_cli("oracle", "--output", str(run), "--resume", "--timesteps", "400", "--config", CONFIG,
                   "--import", "planted") == 2
    assert "--import: only with --resume and the run's own config" in capsys.readouterr().err
    assert not (tmp_path / "pwned").exists() and saved(run)["sb3_timesteps"] == ROLLOUT


def test_a_baseline_stopped_by_sigterm_exits_128_plus_its_number(tmp_path, monkeypatch, capsys):
    """As `metarl train`: SIGTERM saves, then exit status 143 (it was 130, Ctrl-C's, for either signal)."""
    import os

    updates = {"n": 0}
    original = TRPO.train

    def terminated_train(self):  # SIGTERM to this process in the middle of the second update
        updates["n"] += 1
        original(self)
        if updates["n"] == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(TRPO, "train", terminated_train)
    run = tmp_path / "orc"
    assert run_cli("oracle", "--output", str(run), "--config", CONFIG, "--timesteps", str(6 * ROLLOUT), "--slots", "4") == 143
    assert "metarl: interrupted" in capsys.readouterr().err and saved(run)["sb3_timesteps"] == ROLLOUT
