"""metarl.logger: progress.csv keeps its rows when a resumed run logs scalars its header lacks."""

import csv

from metarl.logger import RunLogger


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_a_resumed_run_with_new_scalars_widens_the_header_and_keeps_earlier_rows(tmp_path):
    log = RunLogger(str(tmp_path))
    for i in range(3):
        log.log(i, {"return/post": float(i), "trpo/kl_before": 0.5 + i})
    log.close()
    # resumed at iteration 2 by a version that renamed one scalar and added another
    log = RunLogger(str(tmp_path), start_iteration=2)
    log.log(2, {"return/post": 20.0, "outer/kl_before": 7.0, "eval/x": float("nan")})
    log.log(3, {"return/post": 30.0, "outer/kl_before": 8.0, "eval/x": 1.5})
    log.close()
    rows = _rows(tmp_path / "progress.csv")
    assert list(rows[0]) == ["iteration", "return/post", "trpo/kl_before", "outer/kl_before", "eval/x"]
    assert [r["iteration"] for r in rows] == ["0", "1", "2", "3"]  # the interrupted run's row 2 was dropped
    assert rows[1]["trpo/kl_before"] == "1.5" and rows[1]["outer/kl_before"] == ""  # earlier values kept
    assert rows[2]["trpo/kl_before"] == "" and rows[2]["outer/kl_before"] == "7.0" and rows[2]["eval/x"] == "nan"
    assert rows[3]["return/post"] == "30.0" and rows[3]["eval/x"] == "1.5"


def test_the_same_scalars_append_without_rewriting(tmp_path):
    log = RunLogger(str(tmp_path))
    log.log(0, {"a": 1.0, "b": 2.0})
    log.log(1, {"b": 4.0, "a": 3.0})  # order of the keys does not matter
    log.close()
    assert _rows(tmp_path / "progress.csv") == [{"iteration": "0", "a": "1.0", "b": "2.0"},
                                                {"iteration": "1", "a": "3.0", "b": "4.0"}]


def test_a_new_column_is_kept_when_the_file_was_removed_meanwhile(tmp_path):
    log = RunLogger(str(tmp_path))
    log.log(0, {"a": 1.0})
    (tmp_path / "progress.csv").unlink()
    log.log(1, {"a": 2.0, "c": 3.0})
    log.close()
    assert _rows(tmp_path / "progress.csv") == [{"iteration": "1", "a": "2.0", "c": "3.0"}]
