"""Reliability: nothing a user saved is lost, one writer per run, every bad input one clear line.

Each case runs the command as a user would (``metarl.cli.main`` in-process, or the CLI in a subprocess
where a second process, a kill or a resource limit is part of the case) and asserts the exit status, the
message, and that what the user had is untouched.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time

import gymnasium
import numpy as np
import pytest
import torch

from metarl import cli
from metarl.checkpoint import load_checkpoint, save_checkpoint

from .metarl.helpers import run_main

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
SMOKE = os.path.join(ROOT, "experiments", "configs", "smoke_navigation2d.yaml")
SMOKE_CHEETAH = os.path.join(ROOT, "experiments", "configs", "smoke_halfcheetah_vel.yaml")


def run_cli(capsys, *argv):
    """``metarl ARGV`` in this process: (exit status, stderr); argparse usage errors count as status 2."""
    res = run_main(capsys, *argv)
    return res.returncode, res.stderr


def one_line_error(err: str, *needles: str) -> None:
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("metarl: error:")]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


@pytest.fixture
def trained(tmp_path, capsys):
    """A finished 3-iteration run directory."""
    out = tmp_path / "run"
    assert run_cli(capsys, "train", "--config", SMOKE, "--output", out, "--no-progress")[0] == 0
    return out


def snapshot(path):
    """Every file under ``path`` (but the lock file) with its bytes."""
    out = {}
    for d, _, files in os.walk(path):
        for name in files:
            full = os.path.join(d, name)
            if name != ".lock":
                with open(full, "rb") as fh:
                    out[os.path.relpath(full, path)] = fh.read()
    return out


# ---- data loss -----------------------------------------------------------------------------------------------
def test_overwrite_refuses_a_directory_metarl_did_not_create(tmp_path, capsys):
    out = tmp_path / "thesis"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    code, err = run_cli(capsys, "train", "--config", SMOKE, "--output", out, "--overwrite")
    assert code == 2
    one_line_error(err, str(out), "not a metarl run directory", "choose another --output")
    assert (out / "thesis.tex").read_text() == "years of work" and os.listdir(out) == ["thesis.tex"]


def test_overwrite_never_deletes_the_working_directory_or_a_parent(trained, capsys, monkeypatch):
    before = snapshot(trained)
    (trained / "sub").mkdir()
    for cwd, target in ((trained, "."), (trained / "sub", "..")):
        monkeypatch.chdir(cwd)
        code, err = run_cli(capsys, "train", "--config", SMOKE, "--output", target, "--overwrite")
        assert code == 2
        one_line_error(err, "refusing to delete", "working directory")
    assert {k: v for k, v in snapshot(trained).items()} == before


def test_overwrite_never_replaces_a_run_holding_another_run(trained, tmp_path, capsys):
    """A run inside a run (a zoo entry's seeds/seedN) is allowed, but the outer run's --overwrite is refused: it
    deleted the inner run."""
    import shutil

    before = snapshot(trained)
    shutil.copytree(trained, tmp_path / "outer")
    shutil.copytree(trained, tmp_path / "outer" / "seeds" / "seed1")
    code, err = run_cli(capsys, "train", "--config", SMOKE, "--output", tmp_path / "outer", "--overwrite", "--no-progress")
    assert code == 2
    one_line_error(err, "holds another run", "seed1", "move that run out first")
    assert snapshot(tmp_path / "outer" / "seeds" / "seed1") == before


def test_overwrite_replaces_an_earlier_metarl_run(trained, capsys):
    first = load_checkpoint(trained / "checkpoints" / "latest.pt")["run_id"]
    code, _ = run_cli(capsys, "train", "--config", SMOKE, "--output", trained, "--overwrite", "--iterations", "1")
    assert code == 0
    assert load_checkpoint(trained / "checkpoints" / "latest.pt")["run_id"] != first
    assert len((trained / "progress.csv").read_text().splitlines()) == 2


def test_a_second_writer_is_refused_while_a_run_trains(tmp_path, capsys):
    out = tmp_path / "busy"
    first = subprocess.Popen([sys.executable, "-m", "metarl.cli", "train", "--config", SMOKE, "--output", str(out),
                              "--iterations", "400", "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (out / "checkpoints" / "latest.pt").exists():
            time.sleep(0.1)
        for argv in (["--config", SMOKE], ["--resume"], ["--config", SMOKE, "--overwrite"]):
            code, err = run_cli(capsys, "train", "--output", out, "--no-progress", *argv)  # here, beside `first`
            assert code == 1, (argv, err)
            one_line_error(err, "being written by another metarl process", f"pid {first.pid}")
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=120)
    rows = [int(r.split(",")[0]) for r in (out / "progress.csv").read_text().splitlines()[1:]]
    assert rows == list(range(len(rows)))  # one writer: no interleaved runs
    assert load_checkpoint(out / "checkpoints" / "latest.pt")["iteration"] == len(rows)


def test_resume_refuses_a_checkpoint_from_another_run(tmp_path, trained, capsys):
    other = tmp_path / "cheetah"
    assert run_cli(capsys, "train", "--config", SMOKE_CHEETAH, "--output", other)[0] == 0
    own = (trained / "checkpoints" / "latest.pt").read_bytes()
    (trained / "checkpoints" / "latest.pt").write_bytes((other / "checkpoints" / "latest.pt").read_bytes())
    config_before = (trained / "config.yaml").read_text()
    progress_before = (trained / "progress.csv").read_text()
    code, err = run_cli(capsys, "train", "--output", trained, "--resume", "--iterations", "5")
    assert code == 2
    one_line_error(err, "written by another run", "HalfCheetahVel")
    assert (trained / "config.yaml").read_text() == config_before
    assert (trained / "progress.csv").read_text() == progress_before
    (trained / "checkpoints" / "latest.pt").write_bytes(own)
    assert run_cli(capsys, "train", "--output", trained, "--resume", "--iterations", "4")[0] == 0


def test_resume_with_fewer_iterations_than_done_changes_nothing(trained, capsys):
    before = snapshot(trained)
    code, err = run_cli(capsys, "train", "--output", trained, "--resume", "--iterations", "2")
    assert code == 2
    one_line_error(err, "already done 3 iterations", "--iterations 2", "Nothing was changed")
    assert snapshot(trained) == before


def test_a_run_killed_before_its_first_checkpoint_can_be_resumed(tmp_path, capsys):
    out = tmp_path / "early"
    slow = ["--set", "algo.num_tasks=20", "--set", "algo.episodes_per_task=20", "--set", "env.kwargs={horizon: 100}",
            "--set", "policy.hidden_sizes=[64, 64]"]
    proc = subprocess.Popen([sys.executable, "-m", "metarl.cli", "train", "--config", SMOKE, "--output", str(out),
                             "--iterations", "2", "--no-progress", *slow])
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "config.yaml").exists():
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    assert (out / "config.yaml").exists() and not (out / "checkpoints" / "latest.pt").exists()
    code, err = run_cli(capsys, "train", "--output", out, "--resume", "--no-progress")
    assert code == 0, err
    assert load_checkpoint(out / "checkpoints" / "latest.pt")["iteration"] == 2
    assert [r.split(",")[0] for r in (out / "progress.csv").read_text().splitlines()[1:]] == ["0", "1"]


def test_baseline_checks_its_output_before_training(tmp_path, capsys):
    target = tmp_path / "a_file"
    target.write_text("keep")
    start = time.perf_counter()
    code, err = run_cli(capsys, "baseline", "pretrained", "--config", SMOKE, "--output", target, "--timesteps", "10000000")
    assert code == 2 and time.perf_counter() - start < 30
    one_line_error(err, "--output", "is a file")
    assert target.read_text() == "keep"


# ---- silently wrong before ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("field,value", [("algo.max_kl", ".inf"), ("algo.cg_damping", ".nan"), ("algo.cg_damping", ".inf"),
                                         ("algo.baseline_reg", ".inf"), ("algo.inner_step_size", ".nan"),
                                         ("algo.inner_step_size", ".inf"), ("policy.init_std", ".nan"),
                                         ("policy.init_std", ".inf")])
def test_non_finite_values_are_refused(tmp_path, capsys, field, value):
    code, err = run_cli(capsys, "train", "--config", SMOKE, "--output", tmp_path / "o", "--set", f"{field}={value}")
    assert code == 2
    one_line_error(err, field, "finite")
    assert not (tmp_path / "o").exists()


def test_yaml_floats_with_exponents_are_floats(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(open(SMOKE).read() + "\n" + "seed: 3\n")
    cfg.write_text(cfg.read_text().replace("algo: {", "algo: {max_kl: 1e-2, cg_damping: 1E-5, "))
    assert cli.main(["config", "--config", str(cfg)]) == 0
    assert "max_kl: 0.01" in capsys.readouterr().out
    from metarl.config import load_config

    loaded = load_config(cfg)
    assert loaded.algo.max_kl == 0.01 and loaded.algo.cg_damping == 1e-5


@pytest.mark.parametrize("text, words", [
    ("algo:\n  max_kl: 0.01\n  max_kl: 0.05\n", ("'max_kl' appears twice", "lines 2 and 3")),
    ("algo:\n  [max_kl]: 0.01\n", ("line 2", "a key must be a name or a number, not a list")),
])
def test_duplicate_and_unhashable_keys_are_refused(tmp_path, capsys, text, words):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    code, err = run_cli(capsys, "train", "--config", cfg, "--output", tmp_path / "o")
    assert code == 2 and not (tmp_path / "o").exists()
    one_line_error(err, *words)


def test_a_mapping_as_a_key_in_set_is_refused(tmp_path, capsys):
    ok = tmp_path / "ok.yaml"
    ok.write_text("algo:\n  max_kl: 0.01\n")
    code, err = run_cli(capsys, "config", "--config", ok, "--set", "env.kwargs={{a: 1}: 2}")
    assert code == 2 and "not a dict" in err


def test_envs_refuse_complex_and_boolean_actions_and_non_integer_seeds():
    from metarl import envs  # noqa: F401

    vec = gymnasium.make_vec("metarl/HalfCheetahVel-v0", num_envs=2)
    vec.reset(seed=0)
    with pytest.raises(ValueError, match="expected real numbers.*complex128"):
        vec.step(np.zeros((2, 6), dtype=np.complex128))
    with pytest.raises(ValueError, match="expected real numbers.*bool"):
        vec.step(np.zeros((2, 6), dtype=bool))
    with pytest.raises(ValueError, match="seed: expected a non-negative integer.*1.5"):
        vec.reset(seed=1.5)
    single = gymnasium.make("metarl/HalfCheetahVel-v0")
    with pytest.raises(ValueError, match="seed: expected a non-negative integer.*1.5"):
        single.reset(seed=1.5)
    single.reset(seed=0)
    with pytest.raises(ValueError, match="expected real numbers"):
        single.step(np.zeros(6, dtype=np.complex64))


def test_plot_labels_a_comparison_outside_the_papers_protocol(tmp_path, trained, capsys):
    out = tmp_path / "ev"
    assert run_cli(capsys, "evaluate", trained, "--output", out, "--tasks", "3", "--episodes", "2")[0] == 0
    assert cli.main(["plot", f"maml={out}", "--output", str(tmp_path / "p.png")]) == 0
    captured = capsys.readouterr()
    assert (tmp_path / "p.png").exists()
    assert "not the paper's protocol" in captured.err and "horizon" in captured.err and "3 test goals" in captured.err
    assert "paper" not in captured.out.lower()  # no published column next to a non-protocol evaluation


# ---- one clear line instead of a traceback ---------------------------------------------------------------------
@pytest.mark.parametrize("content,needle", [
    ("algo: {max_kl: [1, 2\n", "not valid YAML at line"),
    (bytes(range(256)) * 4, "not a text file"),
    ("- a\n- b\n", "expected a mapping"),
    ("42\n", "expected a mapping"),
])
def test_bad_config_files(tmp_path, capsys, content, needle):
    cfg = tmp_path / "bad.yaml"
    cfg.write_bytes(content if isinstance(content, bytes) else content.encode())
    code, err = run_cli(capsys, "train", "--config", cfg, "--output", tmp_path / "o")
    assert code == 2
    one_line_error(err, needle)


def test_config_that_is_a_directory(tmp_path, capsys):
    code, err = run_cli(capsys, "train", "--config", tmp_path, "--output", tmp_path / "o")
    assert code == 2
    one_line_error(err, "is a directory")


def test_set_value_that_is_not_yaml(tmp_path, capsys):
    code, err = run_cli(capsys, "train", "--config", SMOKE, "--output", tmp_path / "o", "--set", "algo.max_kl=[0.1")
    assert code == 2
    one_line_error(err, "--set", "algo.max_kl", "not valid YAML")


def test_env_that_is_not_a_task_env(tmp_path, capsys):
    code, err = run_cli(capsys, "train", "--config", SMOKE, "--output", tmp_path / "o", "--set", "env.id=CartPole-v1",
                        "--set", "env.kwargs={}")
    assert code == 2
    one_line_error(err, "env.id", "CartPole-v1", "not a task env")


@pytest.mark.parametrize("kwargs,needle", [("{bogus: 1}", "does not take"), ("{dynamics: nonsense}", "nonsense")])
def test_env_kwargs_the_env_rejects(tmp_path, capsys, kwargs, needle):
    code, err = run_cli(capsys, "train", "--config", SMOKE_CHEETAH, "--output", tmp_path / "o", "--set", f"env.kwargs={kwargs}")
    assert code == 2
    one_line_error(err, "env.kwargs", needle)
    assert not (tmp_path / "o").exists()


def test_output_that_is_a_file(tmp_path, capsys):
    f = tmp_path / "f"
    f.write_text("x")
    code, err = run_cli(capsys, "train", "--config", SMOKE, "--output", f)
    assert code == 2
    one_line_error(err, "is a file")
    assert f.read_text() == "x"


def test_output_that_cannot_be_written(tmp_path, capsys):
    code, err = run_cli(capsys, "train", "--config", SMOKE, "--output", "/sys/metarl-test-run")
    assert code == 1
    one_line_error(err, "/sys")


def test_a_full_disk_keeps_the_run_resumable(tmp_path, capsys):
    out = tmp_path / "full"
    assert run_cli(capsys, "train", "--config", SMOKE, "--output", out, "--iterations", "1", "--no-progress")[0] == 0
    good = (out / "checkpoints" / "latest.pt").read_bytes()
    limit = 8_000  # bytes per file: every checkpoint write now fails like a full disk (EFBIG)

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    res = subprocess.run([sys.executable, "-m", "metarl.cli", "train", "--output", str(out), "--resume", "--iterations",
                          "3", "--no-progress"], capture_output=True, text=True, timeout=300, preexec_fn=small_files)
    assert res.returncode == 1, res.stderr
    one_line_error(res.stderr, "could not write", "size limit", "--resume")
    assert (out / "checkpoints" / "latest.pt").read_bytes() == good
    code, err = run_cli(capsys, "train", "--output", out, "--resume", "--iterations", "3", "--no-progress")
    assert code == 0, err
    assert load_checkpoint(out / "checkpoints" / "latest.pt")["iteration"] == 3


@pytest.mark.parametrize("device,needle", [("nonsense", "expected 'cpu' or 'cuda"), ("cuda:²", "expected 'cpu' or 'cuda"),
                                           ("cuda", "CUDA is not available")])
def test_evaluate_bad_devices(trained, tmp_path, capsys, device, needle):
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code, err = run_cli(capsys, "evaluate", trained, "--output", tmp_path / "e", "--device", device, "--tasks", "2")
    assert code == 2
    one_line_error(err, "--device", needle)


def test_evaluate_a_checkpoint_that_is_not_a_number_of_ascii_digits(trained, tmp_path, capsys):
    """'²' is a digit to str.isdigit but not to int(): named, not a traceback."""
    code, err = run_cli(capsys, "evaluate", trained, "--output", tmp_path / "e", "--checkpoint", "²")
    assert code == 2
    one_line_error(err, "checkpoint: expected 'best', 'latest' or an iteration number, got '²'")


def test_plot_with_damaged_results_or_a_directory_output(tmp_path, trained, capsys):
    out = tmp_path / "ev"
    assert run_cli(capsys, "evaluate", trained, "--output", out, "--tasks", "2", "--episodes", "2", "--steps", "1")[0] == 0
    code, err = run_cli(capsys, "plot", f"maml={out}", "--output", tmp_path)
    assert code == 2
    one_line_error(err, "is a directory")
    code, err = run_cli(capsys, "plot", f"maml={out}", f"maml={out}", "--output", tmp_path / "twice.png")
    assert code == 2
    one_line_error(err, "'maml' is given twice")
    code, err = run_cli(capsys, "plot", f"={out}", "--output", tmp_path / "nameless.png")
    assert code == 2
    one_line_error(err, "no method name")
    assert not (tmp_path / "twice.png").exists() and not (tmp_path / "nameless.png").exists()
    code, err = run_cli(capsys, "plot", f"maml={out}", "--output", tmp_path / "f.txt")
    assert code == 2
    one_line_error(err, "ends in .txt", ".png, .pdf, .svg")
    assert not (tmp_path / "f.txt").exists()
    assert run_cli(capsys, "plot", f"maml={out}", "--output", tmp_path / "f.svg")[0] == 0
    assert b"<svg" in (tmp_path / "f.svg").read_bytes()[:500]
    good = json.loads((out / "results.json").read_text())
    for change, needle in (({"summary": [{"foo": 1}]}, "summary: expected a list of rows"),
                           ({"summary": "abc"}, "summary: expected a list of rows"),
                           ({"settings": {**good["settings"], "num_tasks": 40}}, "settings.num_tasks is 40 against 2 rows"),
                           ({"tasks": [[], []]}, "tasks of shape [2, 0] against returns of [2, 2]")):
        (out / "results.json").write_text(json.dumps({**good, **change}))
        code, err = run_cli(capsys, "plot", f"maml={out}", "--output", tmp_path / "p.png")
        assert code == 2
        one_line_error(err, "not a readable metarl evaluation", needle)
    (out / "results.json").write_text('{"settings": {"env": ')
    code, err = run_cli(capsys, "plot", f"maml={out}", "--output", tmp_path / "p.png")
    assert code == 2
    one_line_error(err, "results.json", "not a readable metarl evaluation")


@pytest.mark.parametrize("flag,value", [("--timesteps", "0"), ("--slots", "0"), ("--seed", "-1")])
def test_baseline_bad_numbers(tmp_path, capsys, flag, value):
    code, err = run_cli(capsys, "baseline", "oracle", "--config", SMOKE, "--output", tmp_path / "b", flag, value)
    assert code == 2
    one_line_error(err, flag, value)
    assert not (tmp_path / "b").exists()


def _corrupt(trained, tmp_path, edit):
    state = load_checkpoint(trained / "checkpoints" / "best.pt")
    edit(state)
    path = tmp_path / "bad.pt"
    save_checkpoint(path, {k: v for k, v in state.items() if k not in ("format", "version")})
    return path


@pytest.mark.parametrize("edit,needle", [
    (lambda s: s["params"].__setitem__("w0", torch.zeros(3, 3)), "has shape (3, 3)"),
    (lambda s: s["params"]["w1"].__setitem__((0, 0), float("nan")), "not a finite tensor"),
    (lambda s: s.pop("params"), "has no 'params'"),
])
def test_checkpoints_that_do_not_hold_a_usable_policy(trained, tmp_path, capsys, edit, needle):
    bad = _corrupt(trained, tmp_path, edit)
    code, err = run_cli(capsys, "evaluate", bad, "--output", tmp_path / "e")
    assert code == 2
    one_line_error(err, "bad.pt", needle)
    assert not (tmp_path / "e").exists()


def test_every_subcommand_has_help_with_defaults_and_a_version(capsys):
    for sub in ("train", "evaluate", "baseline", "plot", "envs", "config"):
        with pytest.raises(SystemExit) as exc:
            cli.main([sub, "--help"])
        assert exc.value.code == 0
        assert sub in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["baseline", "--help"])
    assert "(default: 1000000)" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.startswith("metarl ")


def test_help_config_needs_no_output(capsys):
    assert cli.main(["train", "--help-config"]) == 0
    listing = capsys.readouterr().out
    assert "algo.max_kl = 0.01" in listing
    assert cli.main(["config"]) == 0 and capsys.readouterr().out == listing


def test_results_json_is_valid_json_after_evaluate(trained, tmp_path, capsys):
    out = tmp_path / "ev"
    assert run_cli(capsys, "evaluate", trained, "--output", out, "--tasks", "2", "--episodes", "2", "--steps", "1")[0] == 0
    data = json.loads((out / "results.json").read_text())
    assert data["settings"]["env"]["id"] == "metarl/Navigation2D-v0"


def test_resume_without_latest_but_with_older_checkpoints_refuses_to_start_over(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli(capsys, "train", "--config", SMOKE, "--output", out, "--no-progress",
                   "--set", "checkpoint_every=2")[0] == 0
    (out / "checkpoints" / "latest.pt").unlink()
    before = snapshot(out)
    code, err = run_cli(capsys, "train", "--output", out, "--resume", "--iterations", "4", "--no-progress")
    assert code == 2
    one_line_error(err, "no checkpoints/latest.pt", "iter_000002.pt", "cp ")
    assert snapshot(out) == before  # nothing started over: progress, best.pt and the iter_ files as they were
    newest = sorted((out / "checkpoints").glob("iter_*.pt"))[-1]
    (out / "checkpoints" / "latest.pt").write_bytes(newest.read_bytes())
    assert run_cli(capsys, "train", "--output", out, "--resume", "--iterations", "4", "--no-progress")[0] == 0
    assert load_checkpoint(out / "checkpoints" / "latest.pt")["iteration"] == 4
    # no checkpoint but a write cut short by a kill (the atomic write's hidden temp file): starts from iteration 0
    for f in (out / "checkpoints").iterdir():
        f.unlink()
    (out / "checkpoints" / ".tmp-abc123latest.pt").write_bytes(b"partial")
    assert run_cli(capsys, "train", "--output", out, "--resume", "--no-progress")[0] == 0
    assert load_checkpoint(out / "checkpoints" / "latest.pt")["iteration"] == 4


def test_a_seed_too_large_for_torch_is_a_named_error(tmp_path, capsys):
    huge = str(2**70)
    code, err = run_cli(capsys, "train", "--config", SMOKE, "--output", tmp_path / "run", "--seed", huge)
    assert code == 2
    one_line_error(err, "'seed'", huge, "2**63")
    assert not (tmp_path / "run").exists()
    code, err = run_cli(capsys, "evaluate", "--random", "--config", SMOKE, "--output", tmp_path / "ev", "--seed", huge)
    assert code == 2
    one_line_error(err, "--seed", huge, "2**63")
    run_dir = tmp_path / "trained"
    assert run_cli(capsys, "train", "--config", SMOKE, "--output", run_dir, "--iterations", "1", "--no-progress")[0] == 0
    code, err = run_cli(capsys, "evaluate", run_dir, "--output", tmp_path / "ev2", "--seed", huge)
    assert code == 2
    one_line_error(err, "--seed", huge, "2**63")
    code, err = run_cli(capsys, "baseline", "oracle", "--config", SMOKE, "--output", tmp_path / "bl", "--seed", huge)
    assert code == 2
    one_line_error(err, "--seed", huge, "2**63")


def test_overwrite_never_deletes_a_folder_that_only_looks_like_a_run(tmp_path, capsys):
    # config.yaml and checkpoints/latest.pt of the user's own, no marker, not a metarl checkpoint
    mine = tmp_path / "mine"
    (mine / "checkpoints").mkdir(parents=True)
    (mine / "config.yaml").write_text("my: notes\n")
    (mine / "checkpoints" / "latest.pt").write_text("x")
    (mine / "thesis.tex").write_text("chapter 1")
    before = snapshot(mine)
    code, err = run_cli(capsys, "train", "--config", SMOKE, "--output", mine, "--overwrite", "--iterations", "1")
    assert code == 2
    one_line_error(err, "not a metarl run directory", "choose another --output")
    assert snapshot(mine) == before


def test_resume_drops_a_row_cut_short_by_a_kill_and_names_a_damaged_one(trained, capsys):
    progress = trained / "progress.csv"
    whole = progress.read_text()
    progress.write_text(whole + whole.splitlines()[1][:3])  # a kill while appending: "0,-" (iteration 0 again)
    assert run_cli(capsys, "train", "--output", trained, "--resume", "--iterations", "4", "--no-progress")[0] == 0
    assert [r.split(",")[0] for r in progress.read_text().splitlines()[1:]] == ["0", "1", "2", "3"]
    lines = progress.read_text().splitlines()
    lines[2] = "abc" + lines[2][1:]
    progress.write_text("\n".join(lines) + "\n")
    config = (trained / "config.yaml").read_bytes()
    code, err = run_cli(capsys, "train", "--output", trained, "--resume", "--iterations", "5", "--no-progress")
    assert code == 2
    one_line_error(err, "line 3", "'abc'", "restore it")
    assert (trained / "config.yaml").read_bytes() == config  # refused before anything in the run changed
    assert progress.read_text() == "\n".join(lines) + "\n"
    # what a crash can leave instead of the file (NULs), and a field beyond csv's limit: named, nothing changed
    for damaged, needle in ((b"\0" * 4096, "no 'iteration' column"),
                            (("\n".join(lines) + "\n1," + "9" * 200_000 + "\n").encode(), "not readable as CSV")):
        progress.write_bytes(damaged)
        code, err = run_cli(capsys, "train", "--output", trained, "--resume", "--iterations", "5", "--no-progress")
        assert code == 2
        one_line_error(err, "progress.csv", "is damaged", needle, "restore it")
        assert (trained / "config.yaml").read_bytes() == config and progress.read_bytes() == damaged


def test_evaluate_of_a_loose_checkpoint_needs_output(trained, tmp_path, capsys, monkeypatch):
    loose = tmp_path / "loose"
    loose.mkdir()
    (loose / "x.pt").write_bytes((trained / "checkpoints" / "best.pt").read_bytes())
    monkeypatch.chdir(tmp_path)
    before = sorted(os.listdir(tmp_path))
    code, err = run_cli(capsys, "evaluate", loose / "x.pt", "--tasks", "2", "--episodes", "2", "--steps", "1")
    assert code == 2
    one_line_error(err, "--output", "x.pt", "checkpoints/")
    assert sorted(os.listdir(tmp_path)) == before  # no evaluation/ beside the file's folder or in the cwd
    code, err = run_cli(capsys, "evaluate", trained / "checkpoints" / "best.pt", "--tasks", "2", "--episodes", "2",
                        "--steps", "1", "--overwrite")
    assert code == 0, err
    assert (trained / "evaluation" / "summary.csv").exists()


def test_an_evaluation_too_large_for_memory_is_a_named_error(trained, tmp_path, capsys, monkeypatch):
    argv = ("evaluate", trained, "--output", tmp_path / "huge", "--tasks", "100000000", "--episodes", "100000000",
            "--steps", "1")
    code, err = run_cli(capsys, *argv)  # refused from the sizes, before any allocation
    assert code == 2
    one_line_error(err, "env slots: 10000000000000000 slots", "--tasks x --episodes")
    from metarl import environment

    monkeypatch.setattr(environment, "available_memory", lambda: None)  # a system that does not say: the allocation fails
    code, err = run_cli(capsys, *argv)
    assert code == 1
    one_line_error(err, "not enough memory", "--tasks 100000000", "--episodes 100000000", "smaller sizes")


def test_messages_name_the_actual_cause(trained, tmp_path, capsys):
    """A text file or an empty file as checkpoint, a path that cannot exist, a training run given to `baseline
    --resume`, a non-positive --iterations on resume: each message says what is wrong with that input."""
    (tmp_path / "notes.pt").write_text("hello world\n")
    code, err = run_cli(capsys, "evaluate", tmp_path / "notes.pt", "--output", tmp_path / "e")
    assert code == 2
    one_line_error(err, "is not a checkpoint file", "b'hell'", "checkpoints/*.pt")
    (tmp_path / "empty.pt").write_bytes(b"")
    code, err = run_cli(capsys, "evaluate", tmp_path / "empty.pt", "--output", tmp_path / "e")
    assert code == 2
    one_line_error(err, "is empty (0 bytes)", "copy it again")
    assert not (tmp_path / "e").exists()
    (tmp_path / "a_file").write_text("keep")  # a parent that is a file: the output cannot be made
    code, err = run_cli(capsys, "train", "--config", SMOKE, "--output", tmp_path / "a_file" / "run", "--no-progress")
    assert code in (1, 2) and "free some disk space" not in err and "Traceback" not in err, err
    assert (tmp_path / "a_file").read_text() == "keep"
    code, err = run_cli(capsys, "baseline", "pretrained", "--output", trained, "--resume")
    assert code == 2
    one_line_error(err, "holds a meta-training run", f"metarl train --output {trained} --resume")
    for bad in ("-1", "0"):
        code, err = run_cli(capsys, "train", "--output", trained, "--resume", "--iterations", bad, "--no-progress")
        assert code == 2
        one_line_error(err, "--iterations: expected a positive total", f"got {bad}")
    assert load_checkpoint(trained / "checkpoints" / "latest.pt")["iteration"] == 3


def test_os_error_messages_suggest_the_fix_for_their_errno():
    import errno

    from metarl.errors import os_error_message

    for code, fix in ((errno.ENOSPC, "free some disk space"), (errno.EACCES, "fix the permissions"),
                      (errno.EROFS, "read-only"), (errno.ENOENT, "parent folder exists"),
                      (errno.EISDIR, "a folder stands where a file belongs"), (errno.EFBIG, "size limit"),
                      (errno.EIO, "fix the cause above")):
        message = os_error_message(OSError(code, os.strerror(code), "/x/y"), "the run directory", "`resume`")
        assert fix in message and "/x/y" in message and message.endswith("then `resume`"), message


def test_a_run_that_lost_its_marker_resumes_under_its_checkpoints_run_id(trained, capsys):
    marker = trained / "metarl-run.json"
    run_id = load_checkpoint(trained / "checkpoints" / "latest.pt")["run_id"]
    assert run_id and run_id in marker.read_text()
    marker.unlink()
    code, err = run_cli(capsys, "train", "--output", trained, "--resume", "--iterations", "4", "--no-progress")
    assert code == 0, err
    assert run_id in marker.read_text() and load_checkpoint(trained / "checkpoints" / "latest.pt")["iteration"] == 4


def test_slots_that_cannot_fit_in_memory_are_refused_before_anything_is_written(tmp_path, capsys, monkeypatch):
    """Sizes whose rollouts alone exceed the free memory get one line naming the sizes to lower, not an
    allocation that grows until the machine runs out; nothing is left on disk."""
    from metarl import environment

    assert environment.available_memory() > 0  # this machine's MemAvailable
    monkeypatch.setattr(environment, "available_memory", lambda: 2**20)  # 1 MiB free
    zoo = os.path.join(ROOT, "experiments", "zoo", "navigation2d")
    cases = [(["train", "--config", SMOKE, "--output", str(tmp_path / "t"), "--set", "algo.num_tasks=50",
               "--set", "algo.episodes_per_task=100"], "5000 slots of metarl/Navigation2D-v0", "algo.num_tasks"),
             (["evaluate", zoo, "--tasks", "1000", "--episodes", "100", "--output", str(tmp_path / "e")],
              "100000 slots", "--tasks x --episodes"),
             (["baseline", "oracle", "--config", SMOKE, "--output", str(tmp_path / "b"), "--slots", "1000000"],
              "1000000 slots", "baseline: --slots")]
    for argv, *needles in cases:
        code, err = run_cli(capsys, *argv)
        assert code == 2, err
        one_line_error(err, "env slots: ", "GiB for their rollouts alone", "the 0.0 GiB this machine has free", *needles)
    assert os.listdir(tmp_path) == []
    # few slots, an episode too long to fit (a sweep: own_loop --horizon 1e9 was killed by the kernel)
    monkeypatch.setattr(environment, "available_memory", lambda: 2**30)
    with pytest.raises(environment.ConfigError, match=r"2 slots of metarl/Navigation2D-v0 would need at least 44.7 GiB "
                                                      r"for their rollouts alone \(1000000000 steps x 6 numbers.*or a "
                                                      r"shorter episode"):
        environment.make_env(environment.EnvConfig(id="metarl/Navigation2D-v0", kwargs={"horizon": 10**9}), 2)


def test_checkpoints_with_malformed_fields_are_refused_in_one_line(trained, tmp_path, capsys):
    """A checkpoint that loads safely but holds what metarl never writes (found by a sweep): evaluate and --resume
    name the field; a negative iteration no longer resumes over the run's progress.csv and checkpoints."""
    import copy
    import shutil

    good = load_checkpoint(trained / "checkpoints" / "latest.pt")

    def params(change):
        return lambda s: s.update(params=change(dict(s["params"])))

    edits = {
        "no config": (lambda s: s.update(config={}), "carries no readable config"),  # --resume: not the run's config
        "init_std text": (lambda s: s["config"]["policy"].update(init_std="abc"), "carries no readable config"),
        "mixed dtypes": (params(lambda p: {**p, "w0": p["w0"].double()}), "float32 and float64"),
        "half precision": (params(lambda p: {k: v.half() for k, v in p.items()}), "its parameters are float16"),
        "extra parameter": (params(lambda p: {**p, "extra": torch.zeros(3)}), "'extra' is not a parameter"),
    }
    resume_edits = {
        "negative iteration": (lambda s: s.update(iteration=-5), "iteration is -5, not an integer >= 0"),
        "iteration text": (lambda s: s.update(iteration="5"), "iteration is '5'"),
        "best_return None": (lambda s: s.update(best_return=None), "best_return is None"),
        "np_rng empty": (lambda s: s.update(np_rng={}), "np_rng is not a numpy PCG64 state"),
        "torch_rng short": (lambda s: s.update(torch_rng=s["torch_rng"][:10]), "torch_rng is not a torch CPU generator"),
        "algo_state list": (lambda s: s.update(algo_state=[1, 2]), "algo_state is a list"),
    }
    for name, (edit, needle) in {**edits, **resume_edits}.items():
        run = tmp_path / name.replace(" ", "_")
        shutil.copytree(trained, run)
        state = copy.deepcopy(good)
        edit(state)
        save_checkpoint(run / "checkpoints" / "latest.pt", state)
        before = snapshot(run)
        if name in edits:
            code, err = run_cli(capsys, "evaluate", run / "checkpoints" / "latest.pt", "--output", tmp_path / "e",
                                "--tasks", "2", "--episodes", "2", "--steps", "1")
            assert code == 2, (name, err)
            one_line_error(err, needle)
        code, err = run_cli(capsys, "train", "--output", run, "--resume", "--iterations", "5", "--no-progress")
        assert code == 2, (name, err)
        one_line_error(err, "does not belong to this run's config" if "config" in name or "init_std" in name else needle)
        assert snapshot(run) == before, name  # nothing of the run was rewritten
    assert not (tmp_path / "e").exists()


def test_resume_over_a_progress_log_that_lost_rows_says_so(trained, capsys):
    """Rows of done iterations missing from progress.csv (cut or edited): the resume goes on and says which."""
    lines = (trained / "progress.csv").read_text().splitlines(keepends=True)
    assert len(lines) == 4
    (trained / "progress.csv").write_text(lines[0] + lines[1])
    code, err = run_cli(capsys, "train", "--output", trained, "--resume", "--iterations", "4", "--no-progress")
    assert code == 0 and "Traceback" not in err, err
    assert "metarl: warning:" in err and "has no row for iteration(s) 1-2 of the 3 done" in err
    rows = (trained / "progress.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["0", "3"]


def test_more_signals_while_a_run_stops_are_ignored_and_leave_no_handler(tmp_path, capsys, monkeypatch):
    """Ctrl-C pressed again while the interrupted run saves and closes (a sweep saw a traceback after "checkpoint
    saved" from a handler left installed): one exit, the handler put back, the checkpoint whole."""
    from metarl import logger, trainer

    before = signal.getsignal(signal.SIGINT)
    iterate, save, close = trainer.Trainer.iterate, trainer.Trainer._save, logger.RunLogger.close

    def iterate_then_ctrl_c(self, state):
        out = iterate(self, state)
        if state.iteration == 1:
            os.kill(os.getpid(), signal.SIGINT)
        return out

    def save_with_ctrl_c(self, state, best_params=None):
        if self._stopping:  # the save of the interrupt
            os.kill(os.getpid(), signal.SIGINT)
        return save(self, state, best_params)

    def close_with_ctrl_c(self):
        os.kill(os.getpid(), signal.SIGINT)
        return close(self)

    monkeypatch.setattr(trainer.Trainer, "iterate", iterate_then_ctrl_c)
    monkeypatch.setattr(trainer.Trainer, "_save", save_with_ctrl_c)
    monkeypatch.setattr(logger.RunLogger, "close", close_with_ctrl_c)
    out = tmp_path / "run"
    code, err = run_cli(capsys, "train", "--config", SMOKE, "--output", out, "--no-progress")
    assert code == 130 and "Traceback" not in err, err
    assert "checkpoint saved. Continue with: metarl train --output" in err and "--resume" in err
    assert signal.getsignal(signal.SIGINT) is before
    assert load_checkpoint(out / "checkpoints" / "latest.pt")["iteration"] == 1  # the iteration it stopped in is not kept


def test_an_evaluation_never_goes_into_a_training_runs_own_folder(trained, capsys):
    before = snapshot(trained)
    code, err = run_cli(capsys, "evaluate", trained, "--output", trained, "--overwrite", "--tasks", "2", "--episodes", "2")
    assert code == 2
    one_line_error(err, "is a training run's directory", "evaluation")
    assert snapshot(trained) == before


def test_flags_that_would_be_ignored_are_named(tmp_path, capsys):
    code, err = run_cli(capsys, "evaluate", "--random", "--config", SMOKE, "--output", tmp_path / "r", "--checkpoint", "5")
    assert code == 2
    one_line_error(err, "--checkpoint 5: for a saved run only")
    code, err = run_cli(capsys, "config", "--config", "")
    assert code == 2
    one_line_error(err, "--config: expected a YAML file, got ''")
    assert os.listdir(tmp_path) == []
