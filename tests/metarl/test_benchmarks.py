"""The benchmark scripts run end to end on a tiny config (what they print is measured, not asserted)."""

import sys

from experiments import bench_meta


def test_bench_meta_prints_the_rate_ratio_and_the_subsample(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["bench_meta", "--config", "smoke_halfcheetah_vel", "--subsample", "0.5",
                                      "--repeat", "2"])
    bench_meta.main()
    out = capsys.readouterr().out
    assert "one meta-iteration" in out and "physics (env.step)" in out
    for name in ("written-out products", "hvp_subsample 0.5", "autograd products (before)"):
        line = next(row for row in out.splitlines() if name in row)
        assert "GFLOP/s" in line and "ratio" in line
