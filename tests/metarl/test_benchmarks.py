"""The benchmark scripts run end to end on a tiny config (what they print is measured, not asserted); the
FLOP count they print is checked against closed forms."""

import os
import shutil
import sys

import numpy as np
import pytest

from experiments import bench_meta

ROOT_DIR = os.path.join(os.path.dirname(__file__), "..", "..")

def test_bench_meta_prints_the_rate_ratio_and_the_subsample(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["bench_meta", "--config", "smoke_halfcheetah_vel", "--subsample", "0.5",
                                      "--repeat", "2"])
    bench_meta.main()
    out = capsys.readouterr().out
    assert "one meta-iteration" in out and "physics (env.step)" in out
    for name in ("written-out products", "hvp_subsample 0.5", "autograd products (before)"):
        line = next(row for row in out.splitlines() if name in row)
        assert "GFLOP/s" in line and line.count("ratio") == 2 and "bmm on every layer" in line


def test_bench_meta_times_another_version_of_the_products_in_the_same_run(monkeypatch, capsys, tmp_path):
    """``--against FILE`` alternates this metarl/curvature.py with another version of it on the same batch; a copy of
    this one gives the same parameters (its FLOPs too) and a time ratio."""
    import re

    import metarl.maml
    from metarl import curvature

    copy = tmp_path / "copy_of_curvature.py"
    copy.write_text(open(curvature.__file__).read())
    monkeypatch.setattr(sys, "argv", ["bench_meta", "--config", "smoke_halfcheetah_vel", "--no-autograd",
                                      "--against", str(copy), "--repeat", "2"])
    bench_meta.main()
    out = capsys.readouterr().out
    assert metarl.maml.curvature is curvature  # the switch is restored
    ours = next(r for r in out.splitlines() if "written-out products (metarl.curvature)" in r)
    theirs = next(r for r in out.splitlines() if "version of copy_of_curvature.py" in r)
    gflop = [re.search(r"([\d.]+) GFLOP ", r).group(1) for r in (ours, theirs)]
    assert gflop[0] == gflop[1] and "ratio" in theirs
    summary = re.search(r"this version against copy_of_curvature.py: ([\d.]+) of the time; the updates' parameters "
                        r"differ by at most (\S+) ", out)
    assert summary and float(summary.group(1)) > 0 and float(summary.group(2)) == 0.0


@pytest.mark.parametrize("modules", [("maml",), ("maml", "curvature")])
def test_bench_meta_times_another_version_of_the_learner_in_the_same_run(monkeypatch, capsys, tmp_path, modules):
    """``--against FILE`` with a version of metarl/maml.py (and of metarl/curvature.py) alternates that learner with
    this one, exact and with the subsample; copies of this version give the same parameters and FLOPs in both."""
    import re

    import metarl.curvature
    import metarl.maml

    argv = ["bench_meta", "--config", "smoke_halfcheetah_vel", "--no-autograd", "--subsample", "0.5"]
    for name in modules:
        copy = tmp_path / f"copy_of_{name}.py"
        copy.write_text(open(getattr(metarl, name).__file__).read())
        argv += ["--against", str(copy)]
    monkeypatch.setattr(sys, "argv", argv)
    bench_meta.main()
    out = capsys.readouterr().out
    against = " + ".join(f"copy_of_{name}.py" for name in modules)
    rows = {name: next(r for r in out.splitlines() if r.strip().startswith(name)) for name in (
        "written-out products (metarl.curvature)", f"version of {against} ", "written-out, hvp_subsample 0.5",
        f"version of {against}, hvp_subsample 0.5")}
    gflop = {name: re.search(r"([\d.]+) GFLOP ", row).group(1) for name, row in rows.items()}
    assert gflop["written-out products (metarl.curvature)"] == gflop[f"version of {against} "]
    assert gflop["written-out, hvp_subsample 0.5"] == gflop[f"version of {against}, hvp_subsample 0.5"]
    for fraction in ("", ", hvp_subsample 0.5"):
        summary = re.search(rf"this version against {re.escape(against)}{fraction}: ([\d.]+) of the time; the "
                            r"updates' parameters differ by at most (\S+) ", out)
        assert summary and float(summary.group(1)) > 0 and float(summary.group(2)) == 0.0, out


def test_bench_meta_refuses_a_file_that_is_not_the_products(monkeypatch, capsys, tmp_path):
    other = tmp_path / "other.py"
    other.write_text("x = 1\n")
    for path, needle in ((tmp_path / "none.py", "is not a file"),
                         (other, "has neither MAMLTRPO nor supports() and Linearization")):
        monkeypatch.setattr(sys, "argv", ["bench_meta", "--config", "smoke_halfcheetah_vel", "--against", str(path)])
        with pytest.raises(SystemExit) as exc:
            bench_meta.main()
        err = capsys.readouterr().err
        assert exc.value.code == 2 and "--against" in err and needle in err, err
    twice = ["--against", str(tmp_path / "a.py"), "--against", str(tmp_path / "b.py")]
    for name in ("a", "b"):
        (tmp_path / f"{name}.py").write_text(open(bench_meta.curvature.__file__).read())
    monkeypatch.setattr(sys, "argv", ["bench_meta", "--config", "smoke_halfcheetah_vel", *twice])
    with pytest.raises(SystemExit) as exc:
        bench_meta.main()
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "are both versions of metarl/curvature.py; give at most one of each" in err, err


def test_flop_count_includes_the_in_place_products():
    import torch

    a, w, out = torch.randn(3, 5, 4), torch.randn(3, 4, 2), torch.zeros(3, 5, 2)
    flat_out, flat_a = torch.zeros(15, 2), torch.randn(15, 4)
    expected = 2 * 3 * 5 * 4 * 2  # 2 b n k m, as torch counts bmm
    assert bench_meta.count_flops(lambda: torch.bmm(a, w)) == expected
    assert bench_meta.count_flops(lambda: out.baddbmm_(a, w)) == expected
    assert bench_meta.count_flops(lambda: flat_out.addmm_(flat_a, w[0])) == expected
    assert bench_meta.count_flops(lambda: torch.baddbmm(out, a, w)) == expected


def test_layer_reference_counts_the_flops_of_its_products():
    import torch

    sizes = [5, 7, 7, 3]  # obs -> hidden -> hidden -> act, as the policy's layers
    products, flops = bench_meta.layer_products(2, 11, sizes, torch.device("cpu"), torch.float32)
    assert len(products) == 2 + 3 + 3  # the first layer needs no input gradient
    assert bench_meta.count_flops(lambda: [f() for f in products]) == flops
    assert flops == 2 * 2 * 11 * (2 * 5 * 7 + 3 * 7 * 7 + 3 * 7 * 3)


def test_bench_meta_times_the_layer_layouts(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["bench_meta", "--config", "smoke_halfcheetah_vel", "--no-autograd", "--layouts"])
    bench_meta.main()
    out = capsys.readouterr().out
    assert "freed memory kept" in out
    rows = [row for row in out.splitlines() if row.strip().startswith(("a @ w", "a^T b"))]
    assert len(rows) == 2 * 3  # obs -> 16 -> 16 -> act: three layers, two kinds of product each
    assert all("row-major" in r and "column-major" in r for r in rows[::2])


@pytest.mark.slow  # TorchInductor compiles C++ kernels first: tens of seconds on 2 cores
def test_bench_meta_compiles_the_product_and_times_both(monkeypatch, capsys):
    import re

    monkeypatch.setattr(sys, "argv", ["bench_meta", "--config", "smoke_halfcheetah_vel", "--no-autograd", "--compile"])
    bench_meta.main()
    out = capsys.readouterr().out
    assert "through torch.compile (TorchInductor), alternating, median of 3" in out
    assert "first compiled call (compiling)" in out
    for name in ("as written", "torch.compile"):
        row = next(r for r in out.splitlines() if r.strip().startswith(name) and "(times" in r)
        assert len(re.search(r"\(times ([^)]*)\)", row).group(1).split(", ")) == 3
    diff = float(re.search(r"largest difference (\S+) of the product", out).group(1))
    assert diff < 1e-4  # the same product: float32 round-off apart


def test_bench_memory_runs_both_settings_in_their_own_processes(monkeypatch, capsys):
    from experiments import bench_memory

    monkeypatch.setattr(sys, "argv", ["bench_memory", "--config", "smoke_halfcheetah_vel", "--rounds", "1",
                                      "--updates", "1"])
    bench_memory.main()
    out = capsys.readouterr().out
    assert "kept (trainer's default)" in out and "glibc defaults" in out and "of the time with glibc's defaults" in out


def test_bench_side_by_side_runs_both_wait_policies_alone_and_in_pairs(monkeypatch, capsys, tmp_path):
    import csv

    from experiments import bench_side_by_side

    out_dir = tmp_path / "side"
    monkeypatch.setattr(sys, "argv", ["bench_side_by_side", "--config", "smoke_navigation2d", "--iterations", "1",
                                      "--rounds", "1", "--output", str(out_dir)])
    bench_side_by_side.main()
    out = capsys.readouterr().out
    for policy in ("openmp", "metarl"):
        for run in ("lone", "pair-a", "pair-b"):
            rows = list(csv.DictReader(open(out_dir / "round0" / policy / run / "progress.csv")))
            assert len(rows) == 1 and float(rows[0]["time/iteration"]) > 0
            label = bench_side_by_side.POLICIES[policy]
            assert any(line.strip().startswith(label) and f" {run} " in line for line in out.splitlines())
        assert any(line.strip().startswith(label) and "side by side" in line for line in out.splitlines())


def test_compare_hvp_prints_both_products_for_both_directions(monkeypatch, capsys):
    from experiments import compare_hvp

    monkeypatch.setattr(sys, "argv", ["compare_hvp", "--config", "smoke_halfcheetah_vel", "--tasks", "2"])
    compare_hvp.main()
    out = capsys.readouterr().out
    rows = [r for r in out.splitlines() if "cosine" in r]
    assert "dtype float32" in out and len(rows) == 2
    assert all("entries moved" in r and "finite difference" in r for r in rows)


def test_bench_sampling_times_both_calls_beside_a_competitor(monkeypatch, capsys, tmp_path):
    import subprocess

    from experiments import bench_sampling

    started = []

    class Recorded(subprocess.Popen):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            if "metarl.cli" in args[0]:  # the competing training run (not other helpers' processes)
                started.append(self)

    monkeypatch.setattr(bench_sampling.subprocess, "Popen", Recorded)
    run = tmp_path / "competitor"
    run.mkdir()
    (run / "notes.txt").write_text("mine")  # not this script's folder: refused before anything runs
    with pytest.raises(SystemExit) as exc:
        bench_sampling.main(["--config", "smoke_navigation2d", "--repeat", "2", "--competitor", "--output", str(run)])
    assert exc.value.code == 2 and "holds files this script did not write" in capsys.readouterr().err
    shutil.copytree(os.path.join(ROOT_DIR, "experiments", "zoo", "navigation2d"), tmp_path / "trained")
    with pytest.raises(SystemExit):  # a trained run was replaced by the competitor's --overwrite (a sweep)
        bench_sampling.main(["--config", "smoke_navigation2d", "--competitor", "--output", str(tmp_path / "trained")])
    assert (run / "notes.txt").read_text() == "mine" and not started
    assert os.path.isfile(tmp_path / "trained" / "checkpoints" / "best.pt")
    run = tmp_path / "run"
    for _ in range(2):  # the second time over the first one's folder: its competing run is replaced
        assert bench_sampling.main(["--config", "smoke_navigation2d", "--repeat", "2", "--competitor",
                                    "--output", str(run)]) == 0
        out = capsys.readouterr().out
        assert "competitor: a training run of the same config" in out
        assert "same episodes: True; replayed calls give the passes' actions: True" in out
        assert "the same calls, no physics between" in out
        for name in ("sampling_step (the sampler's)", "former sampling_step", "policy.sample per call (reference)"):
            line = next(row for row in out.splitlines() if name in row)
            assert line.count("%") == 3  # the median share and one per pass
        assert started[-1].returncode is not None  # the competing run was stopped


def test_seed_spread_tabulates_seeds_against_the_paper(capsys, tmp_path):
    """The shipped seeds of HalfCheetahVel against the paper; bad input is named; a short evaluation is not compared."""
    import json
    import os
    import shutil

    from experiments import seed_spread

    root = os.path.join(os.path.dirname(__file__), "..", "..", "experiments", "zoo", "halfcheetah_vel")
    seeds = [f"seed0={os.path.join(root, 'evaluation')}"] + [
        f"seed{s}={os.path.join(root, 'seeds', f'seed{s}', 'evaluation')}" for s in (1, 2)]
    assert seed_spread.main(seeds) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2].startswith("| seed0 | -145.98 ± 10.25 (-1.24) | -99.29 ± 6.17 (-2.60)")
    assert lines[5].startswith("| mean ± s.e. over 3 seeds | -139.70 ± 3.80 (-1.10)")
    assert lines[6].startswith("| paper | -129.53 ± 8.44")  # the published summary, as metarl plot shows it
    assert lines[7].startswith("| paper minus ours, paired by goal | +10.17 ± 5.28 |")
    assert lines[8].startswith("| paper's run against one run of ours (t, 2 d.o.f.) | +1.34 |")
    # (paper - mean) / (s sqrt(1 + 1/n)): Student's t with n - 1 degrees of freedom for one more run of ours
    assert seed_spread.single_run_t(np.array([0.0, 2.0, 4.0]), 10.0) == pytest.approx(8 / (2 * np.sqrt(4 / 3)))
    # one evaluation on the faster 18 goals: its row, the paper's over the same goals, no spread
    assert seed_spread.main([seeds[0], "--goals", "1:2.01"]) == 0
    out, err = capsys.readouterr()
    assert "18 of 40 test goals" in err and "no spread" in err and "mean ±" not in out
    assert "| seed0 | -197.17 ± 13.12" in out and "| paper | -156.87 ± 12.50 |" in out
    zoo_dir = os.path.join(root, "..", "halfcheetah_dir", "evaluation")
    for argv, words in [
        ([seeds[0], f"b={zoo_dir}"], "different tasks"),
        ([seeds[0], "--goals", "2:3"], "0 test goal(s)"),
        ([seeds[0], "--goals", "1-2"], "LO:HI"),
        ([seeds[0], seeds[0]], "twice"),
        ([f"={root}/evaluation"], "no label"),
        ([seeds[0], "--method", "bogus"], "no 'bogus' curve"),
    ]:
        assert seed_spread.main(argv) == 2 and words in capsys.readouterr().err, argv
    # other test goals are refused; an evaluation off the paper's protocol is shown without the paper
    other = tmp_path / "other"
    shutil.copytree(os.path.join(root, "evaluation"), other)
    data = json.loads((other / "results.json").read_text())
    data["tasks"][0][0] += 0.5
    (other / "results.json").write_text(json.dumps(data))
    assert seed_spread.main([seeds[0], f"b={other}"]) == 2 and "different test goals" in capsys.readouterr().err
    data["tasks"][0][0] -= 0.5
    data["settings"]["episodes_per_task"] = 10
    (other / "results.json").write_text(json.dumps(data))
    assert seed_spread.main([seeds[0], f"b={other}"]) == 0
    out, err = capsys.readouterr()
    assert "10 episodes per goal (the paper: 20)" in err and "paper" not in out and "(-" not in out


def test_seed_spread_names_bad_evaluations_and_takes_the_common_steps(capsys, tmp_path):
    import json
    import shutil

    from experiments import seed_spread

    zoo = os.path.join(os.path.dirname(__file__), "..", "..", "experiments", "zoo", "navigation2d", "evaluation")
    good = tmp_path / "good"
    shutil.copytree(zoo, good)
    saved = json.loads((good / "results.json").read_text())

    def variant(name, change):
        folder = tmp_path / name
        folder.mkdir()
        data = json.loads(json.dumps(saved))
        change(data)
        (folder / "results.json").write_text(json.dumps(data))
        return str(folder)

    def two_more_steps(d):  # evaluated with --steps 6 where the other seed has the default
        d["returns"] = [row + [row[-1], row[-1]] for row in d["returns"]]
        d["summary"] += [dict(d["summary"][-1], adaptation_steps=len(d["summary"]) + i) for i in range(2)]
        d["settings"]["steps"] += 2

    more = variant("more", two_more_steps)
    assert seed_spread.main([f"seed0={good}", f"seed1={more}"]) == 0
    out, err = capsys.readouterr()
    steps = len(saved["summary"])
    assert f"step {steps - 1} |" in out and f"step {steps} " not in out and "different numbers of adaptation steps" in err
    corrupt = {"no_tasks": lambda d: d.pop("tasks"), "flat_tasks": lambda d: d.update(tasks=[t[0] for t in d["tasks"]]),
               "short_returns": lambda d: d.update(returns=d["returns"][:10]),
               "text_kwargs": lambda d: d["settings"]["env"].update(kwargs="abc"),
               "text_steps": lambda d: d["settings"].update(steps="4")}
    cases = [([f"seed0={good}", f"seed1={variant(name, change)}"], "is not a readable metarl evaluation")
             for name, change in corrupt.items()]
    cases += [([f"seed0={good}", f"seed1={good}/"], "seed0 and seed1 are the same evaluation"),
              (["seed0="], "'seed0=' has no DIR"), ([f"a|b={good}"], "holds '|'")]
    for argv, needle in cases:
        assert seed_spread.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert needle in err and "Traceback" not in err, (argv, err)
    # a negative LO after a space, as well as with '=' (Navigation2D's goals: both coordinates in [-0.5, 0.5])
    assert seed_spread.main([f"seed0={good}", "--goals", "-0.5:0"]) == 0
    spaced = capsys.readouterr()
    assert seed_spread.main([f"seed0={good}", "--goals=-0.5:0"]) == 0
    assert capsys.readouterr() == spaced and "test goals, those in [-0.5, 0.0)" in spaced.err


def test_zoo_seeds_reproduce_the_seed_spread_tables():
    """An entry's other seeds: finished ones load and their evaluations follow the paper's protocol; one still
    training (no evaluation yet) is a run directory that ``metarl train --resume`` continues."""
    import os

    import metarl
    from metarl import evaluation as ev
    from metarl.trainer import saved_run

    zoo = os.path.join(os.path.dirname(__file__), "..", "..", "experiments", "zoo")
    finished = 0
    for entry in sorted(os.listdir(zoo)):
        folder = os.path.join(zoo, entry, "seeds")
        shipped = metarl.load_config(os.path.join(zoo, "..", "configs", f"{entry}.yaml"))
        for seed in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
            run_dir = os.path.join(folder, seed)
            if not os.path.isdir(os.path.join(run_dir, "evaluation")):  # in progress
                cfg, saved = saved_run(run_dir)
                assert cfg.seed == int(seed.removeprefix("seed")) and cfg.env.id == shipped.env.id
                assert saved is not None and 0 < saved["iteration"] < cfg.iterations
                continue
            run = metarl.load_run(run_dir)
            assert run.config.seed == int(seed.removeprefix("seed")) and run.config.env.id == shipped.env.id
            results = ev.load_results(os.path.join(run_dir, "evaluation"))
            assert ev.protocol_differences(results["settings"]) == []
            finished += 1
    assert finished >= 7  # two HalfCheetahVel seeds, five HalfCheetahDir seeds


def _reproduce_commands(monkeypatch, tmp_path, *flags):
    """The ``metarl`` commands experiments/reproduce.py runs for ``flags`` (recorded, not run), each into a new folder."""
    from experiments import reproduce, steps

    calls = []
    monkeypatch.setattr(steps, "run_metarl", lambda *args, capture=False: calls.append(args) or "")
    out = tmp_path / f"fig-{len(os.listdir(tmp_path))}"
    monkeypatch.setattr(sys, "argv", ["reproduce", "smoke_navigation2d", "--output", str(out), *flags])
    reproduce.main()
    return calls


def test_reproduce_trains_the_baselines_with_the_chosen_algorithm(monkeypatch, tmp_path):
    for flags, algo in (((), "trpo"), (("--baseline-algo", "ppo"), "ppo")):
        baselines = [c for c in _reproduce_commands(monkeypatch, tmp_path, *flags) if c[0] == "baseline"]
        assert [c[1] for c in baselines] == ["pretrained", "oracle"]
        assert all(c[c.index("--algo") + 1] == algo for c in baselines)
    with pytest.raises(SystemExit):
        _reproduce_commands(monkeypatch, tmp_path, "--baseline-algo", "a2c")


@pytest.mark.slow
def test_reproduce_runs_the_whole_chain_with_ppo_baselines(tmp_path):
    # as a user runs it, tiny budgets: train, both baselines, four evaluations, the figure and the table
    import subprocess

    from metarl.checkpoint import load_checkpoint

    out = tmp_path / "fig"
    from experiments import reproduce

    subprocess.run([sys.executable, reproduce.__file__, "smoke_navigation2d", "--output", str(out),
                    "--iterations", "2", "--baseline-steps", "2048", "--baseline-algo", "ppo"],
                   check=True, capture_output=True)
    for kind in ("pretrained", "oracle"):
        assert load_checkpoint(str(out / kind / "checkpoints" / "best.pt"))["sb3_algo"] == "ppo"
    table = (out / "table.txt").read_text()
    assert all(f"{m} " in table for m in ("maml", "pretrained", "oracle", "random")) and (out / "figure.png").exists()


def test_bench_side_by_side_never_removes_a_folder_it_did_not_write(monkeypatch, capsys, tmp_path):
    from experiments import bench_side_by_side

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "keep.txt").write_text("notes")
    for argv in (["--output", str(mine)], ["--output", str(mine), "--wait-policy", "bogus"],
                 ["--output", str(mine / "keep.txt")], ["--output", str(tmp_path / "new"), "--config", "nosuch"]):
        monkeypatch.setattr(sys, "argv", ["bench_side_by_side", *argv])
        with pytest.raises(SystemExit) as exc:
            bench_side_by_side.main()
        assert exc.value.code == 2
        assert (mine / "keep.txt").read_text() == "notes"
    err = capsys.readouterr().err
    assert "did not write" in err and "--wait-policy" in err and "is a file" in err and "--config" in err
    assert not (tmp_path / "new").exists()


def test_ship_zoo_checks_the_run_and_the_entry_before_removing_anything(monkeypatch, capsys, tmp_path):
    from experiments import ship_zoo

    run, entry = tmp_path / "run", tmp_path / "entry"
    for name in ship_zoo.SHIPPED:
        (run / name).parent.mkdir(parents=True, exist_ok=True)
        (run / name).write_text("saved")
    entry.mkdir()
    (entry / "old.txt").write_text("shipped before")
    cases = {(str(tmp_path / "nosuch"), str(entry)): "has no config.yaml",
             (str(run), str(run)): "is the run", (str(run), str(run / "checkpoints")): "is the run",
             (str(run), str(run / "config.yaml")): "is the run", (str(run), str(entry / "old.txt")): "is a file",
             (str(run), str(entry)): "is not a checkpoint file"}  # files in place, no metarl checkpoint: nothing shipped
    for (source, target), needle in cases.items():
        monkeypatch.setattr(sys, "argv", ["ship_zoo", source, target, "--overwrite"])
        with pytest.raises(SystemExit) as exc:
            ship_zoo.main()
        assert exc.value.code == 2 and needle in capsys.readouterr().err
    assert (entry / "old.txt").read_text() == "shipped before"
    assert all((run / name).read_text() == "saved" for name in ship_zoo.SHIPPED)


def test_ship_zoo_leaves_the_old_entry_when_the_new_one_fails(monkeypatch, tmp_path):
    from experiments import ship_zoo

    run = os.path.join(os.path.dirname(__file__), "..", "..", "experiments", "zoo", "navigation2d")
    entry = tmp_path / "entry"
    entry.mkdir()
    (entry / "old.txt").write_text("shipped before")

    def fail(*args, **kwargs):
        raise RuntimeError("evaluation failed")

    monkeypatch.setattr(ship_zoo.metarl, "evaluate", fail)
    with pytest.raises(RuntimeError, match="evaluation failed"):
        ship_zoo.ship(run, str(entry), overwrite=True)
    assert sorted(os.listdir(entry)) == ["old.txt"] and (entry / "old.txt").read_text() == "shipped before"
    assert sorted(os.listdir(tmp_path)) == ["entry"]  # no backup or partial copy left beside it
    monkeypatch.setattr(ship_zoo, "MAX_BYTES", 10)  # too large: refused the same way, after the evaluation
    monkeypatch.setattr(ship_zoo.metarl, "evaluate", lambda entry, output: os.makedirs(output))
    with pytest.raises(ship_zoo.ShipError, match="must stay under 10"):
        ship_zoo.ship(run, str(entry), overwrite=True)
    assert sorted(os.listdir(entry)) == ["old.txt"] and sorted(os.listdir(tmp_path)) == ["entry"]
    # a full disk (or a size limit) while copying: one line from the script, the entry as it was
    import errno

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ship_zoo.metarl, "evaluate", full)
    monkeypatch.setattr(sys, "argv", ["ship_zoo.py", run, str(entry), "--overwrite"])
    with pytest.raises(SystemExit) as exc:
        ship_zoo.main()
    assert str(exc.value.code).startswith(f"ship_zoo: could not write {entry}: No space left on device; free some disk")
    assert sorted(os.listdir(entry)) == ["old.txt"] and sorted(os.listdir(tmp_path)) == ["entry"]
    # the restore itself fails: the message says where the former entry is, whole, instead of "as it was"
    real_rename = os.rename

    def rename(src, dst):
        if str(dst) == str(entry):
            raise OSError(errno.EACCES, "Permission denied")
        return real_rename(src, dst)

    monkeypatch.setattr(ship_zoo.os, "rename", rename)
    with pytest.raises(ship_zoo.ShipError, match="putting the former entry back failed too .Permission denied.; it is "
                                                 "whole in") as failed:
        ship_zoo.ship(run, str(entry), overwrite=True)
    monkeypatch.setattr(ship_zoo.os, "rename", real_rename)
    backup = str(failed.value).split("it is whole in ")[1].split(":")[0].strip("'")
    assert sorted(os.listdir(backup)) == ["old.txt"]


def test_ship_zoo_restores_the_entry_when_stopped_at_the_rename(monkeypatch, tmp_path):
    """A Ctrl-C handled as the entry's rename returns (before the ship records it) still puts the entry back; one
    before the rename removes nothing."""
    from experiments import ship_zoo

    run = os.path.join(os.path.dirname(__file__), "..", "..", "experiments", "zoo", "navigation2d")
    entry = tmp_path / "entry"
    entry.mkdir()
    (entry / "old.txt").write_text("shipped before")
    rename = os.rename

    def renamed_then_stopped(src, dst):  # the first rename only: the restore's is the real one
        monkeypatch.setattr(ship_zoo.os, "rename", rename)
        rename(src, dst)
        raise KeyboardInterrupt

    def stopped_before(src, dst):
        monkeypatch.setattr(ship_zoo.os, "rename", rename)
        raise KeyboardInterrupt

    for stop in (renamed_then_stopped, stopped_before):
        monkeypatch.setattr(ship_zoo.os, "rename", stop)
        with pytest.raises(KeyboardInterrupt):
            ship_zoo.ship(run, str(entry), overwrite=True)
        assert ship_zoo.os.rename is rename  # the ship reached the rename
        assert (entry / "old.txt").read_text() == "shipped before", stop.__name__
        assert sorted(os.listdir(tmp_path)) == ["entry"], stop.__name__


def test_ship_zoo_refuses_files_that_are_not_the_runs_own_and_keeps_a_backup(monkeypatch, capsys, tmp_path):
    """config.yaml and metarl-run.json are checked against the checkpoint; a leftover backup is never removed."""
    import shutil

    from experiments import ship_zoo

    zoo_run = os.path.join(os.path.dirname(__file__), "..", "..", "experiments", "zoo", "navigation2d")
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")

    def copy() -> str:
        run = tmp_path / f"run{len(os.listdir(tmp_path))}"
        for name in ship_zoo.SHIPPED:
            (run / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(os.path.join(zoo_run, name), run / name)
        return str(run)

    edits = {"config.yaml": [("env: [unclosed", "not valid YAML"),
                             ("seed: !!python/object/apply:os.system [echo hi]\n", "config.yaml"),
                             ("seed: 7\n", "seed: 7 in config.yaml, 0 in the checkpoint")],
             "metarl-run.json": [("{bad", "is not readable JSON"), ('{"format": "other"}', "not a metarl run marker")]}
    entry = tmp_path / "entry"
    for name, changes in edits.items():
        for text, needle in changes:
            run = copy()
            if text.startswith("seed: 7"):  # a valid config that is not the checkpoint's
                saved = (tmp_path / run / name).read_text()
                assert "\nseed: 0\n" in saved
                (tmp_path / run / name).write_text(saved.replace("\nseed: 0\n", "\n" + text))
            else:
                (tmp_path / run / name).write_text(text)
            monkeypatch.setattr(sys, "argv", ["ship_zoo", run, str(entry)])
            with pytest.raises(SystemExit) as exc:
                ship_zoo.main()
            err = capsys.readouterr().err
            assert exc.value.code == 2 and needle in err and "Traceback" not in err, err
            assert not entry.exists()
    run = copy()
    (tmp_path / "real_entry").mkdir()
    (tmp_path / "real_entry" / "old.txt").write_text("shipped before")
    (tmp_path / "link").symlink_to(tmp_path / "real_entry")
    for target, needle in ((a_file / "entry", "which is a file"), ("", "expected a folder path"),
                           (tmp_path / "link", "is a symbolic link to"), (f"{tmp_path / 'link'}/", "is a symbolic link to")):
        monkeypatch.setattr(sys, "argv", ["ship_zoo", run, str(target) if target else ""])
        with pytest.raises(SystemExit) as exc:
            ship_zoo.main()
        assert exc.value.code == 2 and needle in capsys.readouterr().err
    assert (tmp_path / "link").is_symlink() and (tmp_path / "link" / "old.txt").read_text() == "shipped before"
    assert sorted(os.listdir(tmp_path / "real_entry")) == ["old.txt"] and not (tmp_path / "link.ship-backup").exists()
    entry.mkdir()
    (entry / "old.txt").write_text("shipped before")
    backup = tmp_path / "entry.ship-backup"
    backup.mkdir()
    (backup / "mine.txt").write_text("only copy")
    monkeypatch.setattr(sys, "argv", ["ship_zoo", run, str(entry), "--overwrite"])
    with pytest.raises(SystemExit) as exc:
        ship_zoo.main()
    assert exc.value.code == 2 and "entry.ship-backup' exists" in capsys.readouterr().err
    assert (backup / "mine.txt").read_text() == "only copy" and (entry / "old.txt").read_text() == "shipped before"


def test_ship_zoo_overwrite_keeps_the_entrys_seeds_and_ships_resumed_runs(monkeypatch, tmp_path):
    import shutil

    from experiments import ship_zoo

    run = tmp_path / "run"
    shutil.copytree(os.path.join(os.path.dirname(__file__), "..", "..", "experiments", "zoo", "navigation2d"), run)
    # a resume may change the run's iterations, device and progress bar: config.yaml then differs from best.pt there
    text = (run / "config.yaml").read_text()
    assert "\niterations: " in text
    (run / "config.yaml").write_text(text.replace("\niterations: ", "\niterations: 9", 1))
    entry = tmp_path / "entry"
    (entry / "seeds" / "seed1").mkdir(parents=True)
    (entry / "seeds" / "seed1" / "progress.csv").write_text("a seed's run")
    (entry / "config.yaml").write_text("the old entry's")
    monkeypatch.setattr(ship_zoo.metarl, "evaluate", lambda entry, output: os.makedirs(output))
    ship_zoo.ship(str(run), str(entry), overwrite=True, curve=True)
    assert (entry / "seeds" / "seed1" / "progress.csv").read_text() == "a seed's run"
    assert (entry / "config.yaml").read_text() == (run / "config.yaml").read_text()
    assert sorted(os.listdir(tmp_path)) == ["entry", "run"]  # no backup or replaced entry left beside it
    (tmp_path / "entry.ship-old").mkdir()  # what a SIGKILL while moving the seeds would leave
    with pytest.raises(ship_zoo.ShipError, match="entry.ship-old' exists: the entry a finished ship replaced"):
        ship_zoo.ship(str(run), str(entry), overwrite=True)


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP", "SIGHUP under nohup"])
def test_ship_zoo_killed_or_hung_up_leaves_the_entry_as_it_was(tmp_path, signame):
    """Stopped by SIGTERM or a closed terminal's SIGHUP: the entry as it was; under nohup (SIGHUP ignored) the ship
    goes on."""
    import shutil
    import signal
    import subprocess
    import time

    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(os.path.dirname(here))
    run = tmp_path / "run"
    shutil.copytree(os.path.join(root, "experiments", "zoo", "navigation2d"), run)
    entry = tmp_path / "entry"
    entry.mkdir()
    (entry / "old.txt").write_text("shipped before")
    nohup = signame.endswith("nohup")
    proc = subprocess.Popen([sys.executable, os.path.join(root, "experiments", "ship_zoo.py"), str(run), str(entry),
                             "--overwrite"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=(lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN)) if nohup else None)
    deadline = time.monotonic() + 120
    while not (entry / "checkpoints").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # killed once the new entry is being written (its evaluation takes seconds)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(getattr(signal, signame.split()[0]))
    out, err = proc.communicate(timeout=120)
    if nohup:
        assert proc.returncode == 0 and "wrote" in out and (entry / "evaluation" / "results.json").exists(), err
        return
    assert proc.returncode != 0 and "is as it was before" in err and "Traceback" not in err, err
    assert sorted(os.listdir(entry)) == ["old.txt"] and sorted(os.listdir(tmp_path)) == ["entry", "run"]


def test_reproduce_checks_its_arguments_before_writing(monkeypatch, capsys, tmp_path):
    from experiments import reproduce

    a_file = tmp_path / "a_file"
    a_file.write_text("keep")
    cases = {("nosuchtask", "--output", str(tmp_path / "d")): "no config named 'nosuchtask'",
             ("smoke_navigation2d", "--output", str(tmp_path / "d"), "--iterations", "0"): "--iterations",
             ("smoke_navigation2d", "--output", str(a_file)): "is a file"}
    for argv, needle in cases.items():
        monkeypatch.setattr(sys, "argv", ["reproduce", *argv])
        with pytest.raises(SystemExit) as exc:
            reproduce.main()
        assert exc.value.code == 2 and needle in capsys.readouterr().err
    assert not (tmp_path / "d").exists() and a_file.read_text() == "keep"


def test_bench_scripts_name_a_bad_config(monkeypatch, capsys):
    from experiments import bench_memory

    for module, argv, needle in ((bench_meta, ["--config", "nosuch"], "nosuch.yaml"),
                                 (bench_meta, ["--set", "algo.max_kl=-1"], "algo.max_kl"),
                                 (bench_memory, ["--config", "nosuch"], "nosuch.yaml")):
        monkeypatch.setattr(sys, "argv", ["bench", *argv])
        with pytest.raises(SystemExit) as exc:
            module.main()
        err = capsys.readouterr().err
        assert exc.value.code == 2 and needle in err and "Traceback" not in err


BAD_FLAGS = [
    ("bench_meta", ["--repeat", "0"], "--repeat: expected a positive integer, got 0"),
    ("bench_meta", ["--threads", "-2"], "--threads: expected a positive integer, got -2"),
    ("bench_meta", ["--subsample", "1.5"], "--subsample: expected a fraction in (0, 1]"),
    ("bench_meta", ["--subsample", "nan"], "--subsample: expected a fraction in (0, 1]"),
    ("bench_meta", ["--device", "tpu"], "--device: expected 'cpu' or 'cuda[:N]'"),
    ("bench_algorithms", ["--rounds", "0"], "--rounds: expected a positive integer, got 0"),
    ("bench_envs", ["--repeats", "0"], "--repeats: expected a positive integer, got 0"),
    ("bench_envs", ["--target", "-5"], "--target: expected a positive integer, got -5"),
    ("bench_ray", ["--episodes", "0"], "--episodes: expected a positive integer, got 0"),
    ("bench_ray", ["--bandwidth-gbit", "0"], "--bandwidth-gbit: expected a positive network speed"),
    ("bench_side_by_side", ["--output", "OUT", "--rounds", "0"], "--rounds: expected a positive integer, got 0"),
    ("bench_side_by_side", ["--output", "OUT", "--sampling-threads", "0"], "--sampling-threads: expected a positive integer"),
    ("compare_hvp", ["--tasks", "0"], "--tasks: expected a positive integer, got 0"),
    ("compare_hvp", ["--seed", "-1"], "--seed: expected an integer >= 0"),
    ("compare_hvp", ["--config", "bogus"], "--config: no experiments/configs/bogus.yaml"),
    ("compare_hvp", ["--config", "smoke_navigation2d", "--checkpoint", os.path.join(ROOT_DIR, "experiments", "zoo",
     "halfcheetah_vel")], "holds a policy of metarl/HalfCheetahVel-v0 with layers [20, 100, 100, 6], --config "
     "smoke_navigation2d one of metarl/Navigation2D-v0"),
    ("compare_subsample", ["navigation2d", "--output", "OUT", "--fractions", "1", "0"], "--fractions (algo.hvp_subsample): expected a fraction in (0, 1] of the tasks, got 0.0"),
    ("compare_subsample", ["navigation2d", "--output", "OUT", "--seeds", "0", "-3"], "--seeds: expected an integer >= 0"),
    ("compare_subsample", ["navigation2d", "--output", "OUT", "--iterations", "0"], "--iterations: expected a positive integer"),
    ("compare_subsample", ["navigation2d", "--output", "OUT", "--batch-steps", "-1"], "--batch-steps: expected env steps"),
    ("compare_algorithms", ["--iteration", "0"], "--iteration: expected a positive integer, got 0"),
]


@pytest.mark.parametrize("script, argv, needle", BAD_FLAGS, ids=[f"{s}{' '.join(a[-2:])}" for s, a, _ in BAD_FLAGS])
def test_scripts_refuse_bad_flags_before_any_work(script, argv, needle, monkeypatch, capsys, tmp_path):
    """A usage error (exit 2) that names the flag and the value, before any run, file or measurement."""
    import importlib

    module = importlib.import_module(f"experiments.{script}")
    out = tmp_path / "out"
    monkeypatch.setattr(sys, "argv", [script, *(str(out) if a == "OUT" else a for a in argv)])
    with pytest.raises(SystemExit) as exc:
        module.main()
    err = capsys.readouterr().err
    assert exc.value.code == 2 and needle in err and "Traceback" not in err, err
    assert not out.exists()


def test_bench_side_by_side_refuses_a_link_as_output(monkeypatch, capsys, tmp_path):
    from experiments import bench_side_by_side

    (tmp_path / "runs").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "runs")
    monkeypatch.setattr(sys, "argv", ["bench_side_by_side", "--output", str(tmp_path / "link")])
    with pytest.raises(SystemExit) as exc:
        bench_side_by_side.main()
    assert exc.value.code == 2 and "is a symbolic link to" in capsys.readouterr().err
    assert (tmp_path / "link").is_symlink() and (tmp_path / "runs").is_dir()


def test_scripts_say_what_is_missing_instead_of_a_traceback(monkeypatch, capsys, tmp_path):
    from experiments import compare_algorithms

    monkeypatch.setattr(sys, "argv", ["compare_algorithms", "--eval-dir", str(tmp_path), "--task", "nav"])
    with pytest.raises(SystemExit) as exc:
        compare_algorithms.main()
    assert "no evaluation found" in str(exc.value.code) and str(tmp_path) in str(exc.value.code)
    try:
        import ray  # noqa: F401
    except ImportError:  # the default install: bench_ray says how to get Ray
        from experiments import bench_ray

        monkeypatch.setattr(sys, "argv", ["bench_ray"])
        with pytest.raises(SystemExit) as exc:
            bench_ray.main()
        assert 'pip install -e ".[ray]"' in str(exc.value.code)


def test_bench_sampling_replay_gives_the_pass_actions_and_notices_other_noise():
    import torch

    from experiments import bench_sampling
    from metarl.config import load_config
    from metarl.environment import make_env
    from metarl.policy import GaussianMLPPolicy
    from metarl.sampler import rollout, task_noise, task_noise_seeds

    cfg = load_config(os.path.join(os.path.dirname(bench_sampling.__file__), "configs", "smoke_halfcheetah_vel.yaml"))
    T, E = 3, 2
    env = make_env(cfg.env, T * E)
    obs_dim, act_dim = env.single_observation_space.shape[0], env.single_action_space.shape[0]
    policy = GaussianMLPPolicy(obs_dim, act_dim, cfg.policy.hidden_sizes)
    gen = torch.Generator().manual_seed(1)
    params = {k: v.unsqueeze(0) + 0.01 * torch.randn(T, *v.shape, generator=gen) for k, v in policy.init_params(gen).items()}
    seeds = task_noise_seeds(gen, T)
    episodes, _ = rollout(env, policy, params, env.sample_tasks(T, np.random.default_rng(0)), E, 0, seeds, torch.float32)
    noise = task_noise(seeds, E, env.horizon, act_dim, torch.float32)
    seconds, same = bench_sampling.replay(policy, params, episodes, noise)
    assert same and seconds > 0
    assert not bench_sampling.replay(policy, params, episodes, noise.flip(0))[1]

    calls = []

    class Counting(GaussianMLPPolicy):
        def sampling_step(self, params, noise):
            step = super().sampling_step(params, noise)
            return lambda t, obs, out: (calls.append(t), step(t, obs, out))[1]

    ended = {k: v.clone() for k, v in episodes.items()}  # every episode over after 5 steps: the loop stopped there
    for k in ended:
        ended[k][:, :, 5:] = 0
    counting = Counting(obs_dim, act_dim, cfg.policy.hidden_sizes)
    assert bench_sampling.replay(counting, params, ended, noise)[1] and calls == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("script, argv, needle", [
    ("bench_envs.py", ["--repeats", "0"], "--repeats: expected a positive integer"),
    ("bench_ray.py", ["--rounds", "0"], "--rounds: expected a positive integer"),
    ("reproduce.py", ["navigation2d", "--output", "OUT", "--iterations", "0"], "--iterations: expected a positive integer"),
    ("compare_subsample.py", ["navigation2d", "--output", "OUT", "--seeds", "-1"], "--seeds: expected an integer >= 0"),
    # the scripts the docs run with -m work as files too (a sweep: ModuleNotFoundError: experiments)
    ("bench_algorithms.py", ["--rounds", "0"], "--rounds: expected a positive integer"),
    ("bench_memory.py", ["--rounds", "0"], "--rounds: expected a positive integer"),
    ("bench_meta.py", ["--repeat", "0"], "--repeat: expected a positive integer"),
    ("bench_sampling.py", ["--repeat", "0"], "--repeat: expected a positive integer"),
    ("bench_side_by_side.py", ["--output", "OUT", "--rounds", "0"], "--rounds: expected a positive integer"),
    ("compare_algorithms.py", ["--iteration", "0"], "--iteration: expected a positive integer"),
    ("compare_hvp.py", ["--tasks", "0"], "--tasks: expected a positive integer"),
])
def test_scripts_the_docs_run_as_files_work_as_files(script, argv, needle, tmp_path):
    """``python experiments/X.py`` from anywhere (as the README and `make bench` run them), not only ``-m``."""
    import subprocess

    path = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "experiments", script)
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, path, *(str(out) if a == "OUT" else a for a in argv)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and needle in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert not out.exists()
