"""scripts/eval_embedded.py's tables from a results.json, whichever runs it holds."""

from script_module import load_script


def _row(fad):
    return {"fad": fad, "fad_codec": 1.0, "kld": 1.5, "mcc": 0.5, "bcs": 0.8, "bhs": 0.9, "f1": 0.85, "beat_f": 0.4,
            "beat_f_other": 0.2}


def _evaluate(fad):
    return {"v2meow": _row(fad), "no_video": _row(30.0), "codec_round_trip": _row(3.0), "random_shuffle": _row(0.0),
            "ground_truth": _row(0.0)}


def test_the_evaluate_table_is_written_from_best_of_n_runs_alone_and_from_both():
    markdown = load_script("eval_embedded").markdown
    best_only = markdown({"evaluate_trained_best4": _evaluate(11.0), "evaluate_untrained_best4": _evaluate(30.5)})
    assert "| trained stages, best of 4 | 11.000 |" in best_only
    assert "| untrained stages, best of 4 | 30.500 |" in best_only and "| codec round trip | 3.000 |" in best_only
    assert "| trained stages |" not in best_only
    both = markdown({"evaluate_trained": _evaluate(12.0), "evaluate_trained_best4": _evaluate(11.0),
                     "evaluate_untrained": _evaluate(31.0)})
    lines = [line.split(" | ")[0] for line in both.splitlines() if line.startswith("| ") and "stages" in line]
    assert lines == ["| trained stages", "| trained stages, best of 4", "| untrained stages",
                     "| trained stages, black video"]
    assert "FAD" not in markdown({"evaluate_trained_best4": _evaluate(11.0)})  # nothing to set it against


def test_heldout_videos_leave_the_beat_sidecars_out_for_motion_beats(tmp_path, monkeypatch):
    """--motion-beats: the folder links the held-out videos alone, so that visual beats come from motion; one folder
    never mixes the two ways."""
    import json

    import pytest

    from v2meow.metrics.alignment import _sidecar_beats

    ev = load_script("eval_embedded")
    src = tmp_path / "data_cache" / "videos" / "scores"
    src.mkdir(parents=True)
    for name, heldout in (("a", True), ("b", False), ("c", True)):
        (src / f"{name}.mp4").write_bytes(b"not decoded here")
        (src / f"{name}.json").write_text(json.dumps({"source": {"info": {"heldout": heldout}}, "beats": [0.5, 1.0]}))
    monkeypatch.setattr(ev, "ROOT", tmp_path)
    exact = ev.heldout_videos(5, tmp_path / "exact")
    motion = ev.heldout_videos(5, tmp_path / "motion", sidecars=False)
    assert sorted(p.name for p in exact.iterdir()) == ["a.json", "a.mp4", "c.json", "c.mp4"]
    assert sorted(p.name for p in motion.iterdir()) == ["a.mp4", "c.mp4"]
    assert list(_sidecar_beats(str(exact / "a.mp4"))) == [0.5, 1.0] and _sidecar_beats(str(motion / "a.mp4")) is None
    with pytest.raises(SystemExit, match="--motion-beats"):
        ev.heldout_videos(5, tmp_path / "exact", sidecars=False)
    with pytest.raises(SystemExit, match="--motion-beats"):
        ev.heldout_videos(5, tmp_path / "motion")
