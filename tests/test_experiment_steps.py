"""The scripts that chain metarl commands (experiments/reproduce.py, compare_subsample.py) redo a step whose
result is unfinished or out of date, refuse folders that are not theirs, and stop a running command with a signal
the way the command stops (real runs, baselines and evaluations on disk)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from experiments import steps
from metarl import sb3
from metarl.config import load_config

ROOT = os.path.join(os.path.dirname(__file__), "..")
SMOKE = os.path.join(ROOT, "experiments", "configs", "smoke_navigation2d.yaml")
ZOO_NAV = os.path.join(ROOT, "experiments", "zoo", "navigation2d")


def _baseline(folder, timesteps):
    sb3.train_baseline("oracle", load_config(SMOKE), str(folder), timesteps=timesteps, seed=0, num_slots=4,
                       progress=lambda message: None)


def test_an_evaluation_is_redone_when_unfinished_older_than_its_checkpoint_or_of_other_settings(tmp_path):
    from metarl.evaluation import UNFINISHED

    run = tmp_path / "run"
    shutil.copytree(ZOO_NAV, run)
    best, evaluation = run / "checkpoints" / "best.pt", run / "evaluation"
    os.utime(best, (1, 1))  # older than its evaluation
    assert steps.stale_evaluation(str(evaluation), str(best), seed=0) is None
    assert steps.stale_evaluation(str(evaluation), str(best), seed=1) == "its evaluation has seed 0, this comparison 1"
    assert steps.stale_evaluation(str(evaluation), str(best), batch_steps=None).startswith("its evaluation has batch_steps 4000")
    os.utime(best)  # training wrote a new best checkpoint
    assert steps.stale_evaluation(str(evaluation), str(best), seed=0) == "best.pt is newer than its evaluation"
    (evaluation / "results.json").write_text(json.dumps(UNFINISHED))  # killed while it wrote
    assert steps.stale_evaluation(str(evaluation), None) == "its evaluation is unfinished or unreadable"
    assert steps.stale_evaluation(str(tmp_path / "none"), None) == "not evaluated yet"


def test_a_baseline_stopped_before_its_budget_is_continued_and_stale_evaluations_redone(monkeypatch, tmp_path, capsys):
    from experiments import reproduce

    out = tmp_path / "fig"
    out.mkdir()
    _baseline(out / "pretrained", 80)  # as a Ctrl-C'd baseline leaves it: a best.pt short of the budget
    assert 80 <= steps.baseline_steps_done(str(out / "pretrained")) < 400
    assert steps.baseline_steps_done(str(out / "oracle")) is None
    shutil.copytree(ZOO_NAV, out / "maml")  # a run of the same env, evaluated before its best.pt was replaced
    os.utime(out / "maml" / "checkpoints" / "best.pt")
    calls = []
    monkeypatch.setattr(steps, "run_metarl", lambda *args, capture=False: calls.append(args) or "")
    monkeypatch.setattr(sys, "argv", ["reproduce", "smoke_navigation2d", "--output", str(out), "--baseline-steps", "400"])
    reproduce.main()
    assert ("baseline", "pretrained", "--output", str(out / "pretrained"), "--resume", "--timesteps", "400") in calls
    assert [c[:2] for c in calls if c[0] == "baseline"] == [("baseline", "pretrained"), ("baseline", "oracle")]
    assert ("evaluate", str(out / "maml"), "--seed", "0", "--overwrite") in calls
    assert json.loads((out / "reproduce.json").read_text())["task"] == "smoke_navigation2d"
    # a run without latest.pt is continued with --resume, never replaced with --overwrite: train --resume starts
    # over a run killed before its first checkpoint and refuses one that saved others (best.pt here)
    os.remove(out / "maml" / "checkpoints" / "latest.pt") if (out / "maml" / "checkpoints" / "latest.pt").exists() else None
    calls.clear()
    reproduce.main()
    assert calls[0] == ("train", "--output", str(out / "maml"), "--resume", "--no-progress")
    # another seed or baseline algorithm on the same folder would mix runs: refused
    for flags, needle in ((["--seed", "1"], "--seed: the runs in"), (["--baseline-algo", "ppo"], "--baseline-algo: the runs in")):
        monkeypatch.setattr(sys, "argv", ["reproduce", "smoke_navigation2d", "--output", str(out), *flags])
        with pytest.raises(SystemExit) as exc:
            reproduce.main()
        assert exc.value.code == 2 and needle in capsys.readouterr().err


@pytest.mark.parametrize("case", ["user files", "other task", "other env in maml"])
def test_reproduce_refuses_an_output_that_is_not_its_own(case, monkeypatch, tmp_path, capsys):
    from experiments import reproduce

    out = tmp_path / "fig"
    out.mkdir()
    if case == "user files":
        (out / "table.txt").write_text("my own table\n")
        needle = "no reproduce.json, so it is not a folder this script made"
    elif case == "other task":
        (out / "reproduce.json").write_text(json.dumps({"task": "halfcheetah_vel"}))
        needle = "holds the runs of 'halfcheetah_vel', not 'smoke_navigation2d'"
    else:
        shutil.copytree(os.path.join(ROOT, "experiments", "zoo", "halfcheetah_vel"), out / "maml",
                        ignore=shutil.ignore_patterns("seeds"))
        needle = "holds a run of metarl/HalfCheetahVel-v0, not of metarl/Navigation2D-v0"
    calls = []
    monkeypatch.setattr(steps, "run_metarl", lambda *args, capture=False: calls.append(args) or "")
    monkeypatch.setattr(sys, "argv", ["reproduce", "smoke_navigation2d", "--output", str(out)])
    with pytest.raises(SystemExit) as exc:
        reproduce.main()
    message = capsys.readouterr().err + str(exc.value.code)
    assert needle in message and not calls, message
    if case == "user files":
        assert (out / "table.txt").read_text() == "my own table\n" and not (out / "reproduce.json").exists()


def _chain_training(out, iterations, rows, setup=""):
    """A script that runs ``metarl train`` through run_metarl, once the run's progress.csv has ``rows`` lines."""
    code = (f"{setup}from experiments.steps import run_metarl; run_metarl('train', '--config', {SMOKE!r}, '--output', "
            f"{str(out)!r}, '--iterations', '{iterations}', '--no-progress')")
    script = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    csv = out / "progress.csv"
    deadline = time.time() + 120
    while time.time() < deadline and (not csv.exists() or len(csv.read_text().splitlines()) < rows):
        time.sleep(0.1)
    return script, csv


def test_a_hang_up_under_nohup_does_not_stop_the_chain(tmp_path):
    """A script started with SIGHUP ignored (nohup) keeps it ignored while a command runs: a closed terminal must
    not stop a chain the user detached from it."""
    out = tmp_path / "run"
    script, csv = _chain_training(out, 3, rows=1, setup="import signal; signal.signal(signal.SIGHUP, signal.SIG_IGN); ")
    script.send_signal(signal.SIGHUP)
    _, err = script.communicate(timeout=300)
    assert script.returncode == 0, err
    assert len(csv.read_text().splitlines()) == 4  # the header and the three iterations: it ran to its end


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_to_the_script_stops_the_running_command_with_its_save(tmp_path, signum):
    """subprocess.run killed the command a quarter of a second after a Ctrl-C, and a SIGTERM to the script left
    it running with no parent; now the command gets the signal (a hang-up as SIGTERM, which it handles), saves,
    and the script stops."""
    out = tmp_path / "run"
    script, csv = _chain_training(out, 500, rows=3)
    script.send_signal(signum)
    _, err = script.communicate(timeout=120)
    assert script.returncode == 128 + signal.SIGTERM, err  # the command's status: it stopped on SIGTERM
    assert "--resume" in err  # the command's own message: it saved
    assert (out / "checkpoints" / "latest.pt").exists()
    still = subprocess.run(["pgrep", "-f", str(out)], capture_output=True, text=True).stdout.split()
    assert still == [], f"the command is still running: {still}"


def test_compare_subsample_redoes_stale_evaluations_and_refuses_repeats(monkeypatch, tmp_path, capsys):
    from experiments import compare_subsample

    out = tmp_path / "cmp"
    run = out / "subsample1-seed0"
    shutil.copytree(ZOO_NAV, run)  # finished (its progress.csv has every row) and evaluated with batches of 4000 steps
    shutil.copy(run / "checkpoints" / "best.pt", run / "checkpoints" / "latest.pt")  # the zoo keeps best.pt only
    os.utime(run / "checkpoints" / "best.pt", (1, 1))
    calls = []
    monkeypatch.setattr(steps, "run_metarl", lambda *args, capture=False: calls.append(args) or "")
    iterations = str(len((run / "progress.csv").read_text().splitlines()) - 1)
    for flags, expected in ((["--batch-steps", "4000"], []),  # current: reused
                            (["--batch-steps", "0"], [("evaluate", str(run), "--batch-steps", "0", "--overwrite")])):
        calls.clear()
        monkeypatch.setattr(sys, "argv", ["compare_subsample", "navigation2d", "--output", str(out), "--fractions", "1",
                                          "--seeds", "0", "--iterations", iterations, *flags])
        compare_subsample.main()
        assert calls == expected, calls
    capsys.readouterr()
    for flags, needle in ((["--seeds", "0", "0"], "--seeds: 0 is given twice"),
                          (["--fractions", "0.5", "0.5000001"], "--fractions: 0.5 is given twice")):
        monkeypatch.setattr(sys, "argv", ["compare_subsample", "navigation2d", "--output", str(out), *flags])
        with pytest.raises(SystemExit):
            compare_subsample.main()
        assert needle in capsys.readouterr().err
    # runs of another config are refused before anything trains: another task, or another fraction in the folder
    shutil.copytree(run, out / "subsample0.5-seed0")
    for task, fractions, needle in (("halfcheetah_dir", ["1"], "holds a run of another config than halfcheetah_dir"),
                                    ("navigation2d", ["1", "0.5"], "than navigation2d with hvp_subsample 0.5 and seed 0 "
                                                                   "(algo.hvp_subsample differ)")):
        calls.clear()
        monkeypatch.setattr(sys, "argv", ["compare_subsample", task, "--output", str(out), "--fractions", *fractions,
                                          "--seeds", "0", "--iterations", iterations])
        with pytest.raises(SystemExit) as exc:
            compare_subsample.main()
        assert needle in str(exc.value.code) and calls == [], exc.value.code
    # --report refuses an evaluation older than its run's best checkpoint
    shutil.rmtree(out / "subsample0.5-seed0")
    os.utime(run / "checkpoints" / "best.pt")
    monkeypatch.setattr(sys, "argv", ["compare_subsample", "navigation2d", "--output", str(out), "--fractions", "1",
                                      "--seeds", "0", "--report"])
    with pytest.raises(SystemExit) as exc:
        compare_subsample.main()
    assert "best.pt is newer than its evaluation; run the comparison without --report" in str(exc.value.code)


def test_a_sigterm_to_bench_sampling_stops_its_competitor(tmp_path):
    """The competing training run was left running with no parent when the bench got SIGTERM or SIGHUP."""
    out = tmp_path / "bench"
    bench = subprocess.Popen([sys.executable, "-m", "experiments.bench_sampling", "--config", "smoke_halfcheetah_vel",
                              "--repeat", "200", "--competitor", "--output", str(out)], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    progress = out / "competitor" / "progress.csv"
    deadline = time.time() + 120
    while time.time() < deadline and not progress.exists():
        time.sleep(0.1)
    assert progress.exists() and bench.poll() is None
    bench.send_signal(signal.SIGTERM)
    _, err = bench.communicate(timeout=180)
    assert bench.returncode == 128 + signal.SIGTERM and "Traceback" not in err, err
    still = subprocess.run(["pgrep", "-f", str(out)], capture_output=True, text=True).stdout.split()
    assert still == [], f"the competing run is still running: {still}"
    assert (out / "competitor" / "checkpoints" / "latest.pt").exists()  # it stopped as metarl train stops: saved


def test_compare_algorithms_reads_evaluations_safely_and_keeps_an_existing_figure(monkeypatch, tmp_path, capsys):
    from experiments import compare_algorithms

    evals = tmp_path / "eval"
    for seed, entry in ((0, "navigation2d"), (1, "navigation2d")):
        shutil.copytree(os.path.join(ROOT, "experiments", "zoo", entry, "evaluation"), evals / f"nav_maml_trpo_s{seed}_it100")
    figure = tmp_path / "fig.png"
    figure.write_bytes(b"mine")

    def run(*flags):
        monkeypatch.setattr(sys, "argv", ["compare_algorithms", "--eval-dir", str(evals), "--runs-dir", str(tmp_path),
                                          *flags])
        with pytest.raises(SystemExit) as exc:
            compare_algorithms.main()
        return exc.value.code, capsys.readouterr().err

    code, err = run("--figure", str(figure))
    assert code == 2 and "exists; pass --overwrite" in err and figure.read_bytes() == b"mine"
    shutil.copytree(os.path.join(ROOT, "experiments", "zoo", "halfcheetah_vel", "evaluation"), evals / "nav_promp_s0_it100")
    code, err = run()
    assert code == 2 and "is an evaluation of metarl/HalfCheetahVel-v0 on 40 goals" in err, err
    shutil.rmtree(evals / "nav_promp_s0_it100")
    (evals / "nav_maml_trpo_s1_it100" / "results.json").write_text("{bad json")
    code, err = run()
    assert code == 2 and "is not a readable metarl evaluation" in err and "Traceback" not in err, err


def test_timing_gymnasiums_own_env_leaves_no_log_in_the_working_directory(tmp_path, monkeypatch):
    """MuJoCo logs a deprecation of gymnasium's half-cheetah XML to MUJOCO_LOG.TXT in the working directory."""
    from experiments import bench_envs

    monkeypatch.chdir(tmp_path)
    assert bench_envs.time_gym_sync("HalfCheetah-v5", 2, 5) > 0
    assert os.listdir(tmp_path) == [] and os.getcwd() == str(tmp_path)
