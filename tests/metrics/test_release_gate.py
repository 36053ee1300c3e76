"""scripts/release_gate.py: tempo accuracy judged clip by clip."""

import numpy as np
from script_module import load_script


def test_tempo_accuracy_is_clearly_better_beyond_two_standard_errors_and_worse_beyond_one():
    gate = load_script("release_gate")
    base = np.array([1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0] * 3)
    fixed = base.copy()
    fixed[[1, 2, 3, 5, 6, 7, 13, 14]] = 1  # 8 clips now at the tempo, none lost
    row = gate.tempo_row("tempo", base, fixed)
    assert row["verdict"] == "better" and row["clear"] and "z" not in row
    one = base.copy()
    one[1] = 1
    assert gate.tempo_row("tempo", base, one)["verdict"] == "better" and not gate.tempo_row("tempo", base, one)["clear"]
    swap = base.copy()
    swap[[0, 4]], swap[1] = 0, 1  # two clips lost, one gained: a swap, within its noise
    assert gate.tempo_row("tempo", base, swap)["verdict"] == "within noise"
    lost = base.copy()
    lost[[0, 4, 8, 12, 16, 20]] = 0  # 6 of 9 lost: beyond one standard error
    assert gate.tempo_row("tempo", base, lost)["verdict"] == "worse"
    assert gate.tempo_row("tempo", base, base)["verdict"] == "equal"


def test_drums_gap_pairs_two_folders_of_soundtracks_by_name(tmp_path, capsys):
    """scripts/drums_gap.py: a candidate whose soundtracks lose their drums-alone halves reads a lower share."""
    import json

    import soundfile
    from media import drum_loop

    gap = load_script("drums_gap")
    sr = 16000
    loop, chord = drum_loop(5.0, sr)
    half = len(loop) // 2
    base, cand = tmp_path / "base", tmp_path / "cand"
    base.mkdir(), cand.mkdir()
    for k in range(3):
        soundfile.write(str(base / f"{k}.wav"), np.concatenate([loop[:half], (loop + chord)[half:]]), sr)
        soundfile.write(str(cand / f"{k}.wav"), loop + chord, sr)
    soundfile.write(str(base / "only_here.wav"), loop, sr)  # no pair: left out
    assert gap.main([str(base), str(cand), "--json", str(tmp_path / "gap.json")]) == 0
    out = json.loads((tmp_path / "gap.json").read_text())
    assert sorted(out["rows"]) == ["0.wav", "1.wav", "2.wav"]
    assert out["rows"]["0.wav"]["base"] == [0.5, 2.5] and out["rows"]["0.wav"]["candidate"] == [0.0, 0.0]
    assert out["paired"] == -0.5
    assert "3 soundtracks" in capsys.readouterr().out
    assert gap.main([str(base), str(tmp_path / "none")]) == 2


def test_spectrogram_rows_draws_one_row_per_soundtrack_and_refuses_a_missing_file(tmp_path):
    import soundfile

    rows = load_script("spectrogram_rows")
    t = np.arange(16000) / 16000
    soundfile.write(str(tmp_path / "a.wav"), 0.1 * np.sin(2 * np.pi * 220 * t), 16000)
    soundfile.write(str(tmp_path / "b.wav"), 0.1 * np.sin(2 * np.pi * 440 * t[:8000]), 16000)
    out = tmp_path / "f.png"
    assert rows.main([str(out), f"a={tmp_path / 'a.wav'}", f"b={tmp_path / 'b.wav'}"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert rows.main([str(tmp_path / "g.png"), f"a={tmp_path / 'none.wav'}"]) == 2
    assert not (tmp_path / "g.png").exists()


def test_long_gap_scores_beats_on_the_beat_and_refuses_a_set_without_videos(tmp_path, capsys):
    """scripts/long_gap.py: a drum loop on the half second meets beats on the half second and misses beats a quarter
    second off; with too few long videos it says so in one sentence and exits 2."""
    from media import drum_loop

    gap = load_script("long_gap")
    loop, chord = drum_loop(12.0, gap.SR)
    on = np.arange(0.0, 12.0, 0.5)
    assert gap.beat_f(loop + chord, on) > 0.8
    assert gap.beat_f(loop + chord, on + 0.25) < 0.3
    assert gap.paired_se(np.array([1.0, 3.0])) == 1.0
    assert gap.main([str(tmp_path), str(tmp_path), "--videos", "3", "--video-dir", str(tmp_path)]) == 2
    assert "a pairing needs two" in capsys.readouterr().err
    assert gap.main([str(tmp_path), "--start", "200"]) == 2
