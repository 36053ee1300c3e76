"""Tables like the paper's, and the JSON report."""

from __future__ import annotations

import json

import pytest

from v2meow.errors import UserError
from v2meow.metrics.report import BASELINES, Column, Report, format_table


def test_format_table_by_hand() -> None:
    rows = [{"name": "V2Meow", "kld": 0.6123, "bcs": 0.9345}, {"name": "No video", "kld": float("nan")}]
    columns = [Column("kld", "KLD", digits=2, better="lower"), Column("bcs", "BCS", scale=100, digits=1)]
    table = format_table(rows, columns)
    assert table == (
        "| Name | KLD ↓ | BCS |\n"
        "|---|---:|---:|\n"
        "| V2Meow | 0.61 | 93.5 |\n"
        "| No video | – | – |"
    )
    assert format_table([{"name": "a|b", "n": 5}], ["n"]) == "| Name | n |\n|---|---:|\n| a\\|b | 5 |"


def test_report_always_shows_the_baselines() -> None:
    r = Report(title="MV100K, 10 s", notes={"kld": {"classifier": "passt"}})
    r.add_row("V2Meow", {"kld": 0.5, "mcc": 0.3, "bcs": 0.9})
    r.add_baseline("ground_truth", {"bcs": 1.0, "bhs": 1.0, "f1": 1.0})
    assert r.missing_baselines() == ["random_shuffle", "no_video"]
    md = r.to_markdown()
    for title in BASELINES.values():
        assert f"| {title} |" in md
    assert "| Ground truth | – | – | – | – | 100.0 | 100.0 | 100.0 |" in md
    assert '- kld: {"classifier": "passt"}' in md
    with pytest.raises(UserError):
        r.add_baseline("oracle", {})


def test_report_json_round_trip(tmp_path) -> None:
    r = Report(title="t")
    r.add_row("m", {"fad_vggish": 2.5, "bcs_std": float("nan"), "n": 3})
    r.add_row("m", {"fad_vggish": 2.0})  # replaces the row of the same name
    path = tmp_path / "report.json"
    r.save(path)
    data = json.loads(path.read_text())
    assert data["rows"] == [{"name": "m", "kind": "model", "fad_vggish": 2.0}]
    r.add_row("m", {"bcs_std": float("nan")})
    assert json.loads(r.to_json())["rows"][0]["bcs_std"] is None  # NaN is not JSON
    loaded = Report.load(path)
    assert loaded.title == "t" and loaded.row("m") == {"name": "m", "kind": "model", "fad_vggish": 2.0}
    with pytest.raises(UserError):
        Report.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(UserError):
        Report.load(tmp_path / "bad.json")
