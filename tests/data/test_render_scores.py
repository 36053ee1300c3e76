"""scripts/render_scores.py: MIDI from a corpus score (instruments, tempo, length, dynamics) and the drum part; the
split by work; the FluidSynth render where Debian's fluidsynth and the FluidR3 soundfont are installed. And
scripts/build_corpus.py's merged manifest, which keeps out what is not free for any use."""

import importlib.util
import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

mido = pytest.importorskip("mido")
pytest.importorskip("music21")

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def rs():
    spec = importlib.util.spec_from_file_location("render_scores", ROOT / "scripts" / "render_scores.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def chorale():
    from music21 import corpus

    return corpus.parse("bach/bwv66.6")  # four parts, about 40 quarter notes


def _abs_events(mid):
    out = []
    for i, track in enumerate(mid.tracks):
        now = 0
        for m in track:
            now += m.time
            out.append((i, now, m))
    return out


def test_score_to_midi_sets_programs_tempo_and_length(rs, chorale):
    programs = [40, 41, 42, 43]
    raw = rs.score_to_midi(chorale, programs, bpm=120.0, transpose=3, max_quarters=16.0)
    mid = mido.MidiFile(file=io.BytesIO(raw))
    events = _abs_events(mid)
    tempos = [m for _, _, m in events if m.type == "set_tempo"]
    assert [m.tempo for m in tempos] == [mido.bpm2tempo(120.0)]
    # one program per part, in order, and every note of a part on that part's channel(s)
    progs = {}
    for i, _, m in events:
        if m.type == "program_change":
            progs.setdefault(i, set()).add(m.program)
    assert [sorted(v) for _, v in sorted(progs.items())] == [[p] for p in programs]
    # nothing starts after 16 quarter notes (8 s at 120 BPM), and every channel is silenced at the end
    limit = 16 * mid.ticks_per_beat
    ons = [(t, m) for _, t, m in events if m.type == "note_on" and m.velocity > 0]
    assert ons and max(t for t, _ in ons) < limit
    assert mid.length == pytest.approx(8.0, abs=0.05)
    chans = {m.channel for _, m in ons}
    silenced = {m.channel for _, _, m in events if m.type == "control_change" and m.control == 123}
    assert chans <= silenced
    # transposed up three semitones
    plain = mido.MidiFile(file=io.BytesIO(rs.score_to_midi(chorale, programs, 120.0, 0, 16.0)))
    first = [m.note for _, _, m in sorted(_abs_events(plain), key=lambda e: e[1]) if m.type == "note_on"][:4]
    moved = [m.note for _, _, m in sorted(events, key=lambda e: e[1]) if m.type == "note_on"][:4]
    assert sorted(moved) == sorted(n + 3 for n in first)


def test_drums_follow_the_beat(rs, chorale):
    raw = rs.score_to_midi(chorale, [0], bpm=100.0, transpose=0, max_quarters=16.0)
    mid = mido.MidiFile(file=io.BytesIO(rs.add_drums(raw, beats_per_bar=4, style=0, seconds=6.0, bpm=100.0)))
    tpb = mid.ticks_per_beat
    drums = [(t, m.note) for _, t, m in _abs_events(mid) if getattr(m, "channel", None) == 9 and m.type == "note_on"]
    beats = 10  # 6 s at 100 BPM
    kicks = [t for t, n in drums if n == 36]
    hats = [t for t, n in drums if n == 42]
    snares = [t for t, n in drums if n == 38]
    assert kicks == [b * tpb for b in range(0, beats, 4)]
    assert hats == [b * tpb for b in range(beats)]
    assert snares == [b * tpb for b in range(1, beats, 2)]


def test_drums_stop_where_a_shorter_piece_ends(rs, chorale):
    # 16 quarter notes of music (9.6 s at 100 BPM) in a 30 s segment: the drums play the 16 beats, not 50
    raw = rs.score_to_midi(chorale, [0], bpm=100.0, transpose=0, max_quarters=16.0)
    mid = mido.MidiFile(file=io.BytesIO(rs.add_drums(raw, beats_per_bar=4, style=0, seconds=30.0, bpm=100.0)))
    tpb = mid.ticks_per_beat
    events = _abs_events(mid)
    drums = [t for _, t, m in events if getattr(m, "channel", None) == 9 and m.type == "note_on" and m.velocity > 0]
    notes = [t for _, t, m in events if getattr(m, "channel", 9) != 9 and m.type == "note_on" and m.velocity > 0]
    assert max(notes) < 16 * tpb <= max(notes) + 4 * tpb
    assert sorted({t // tpb for t in drums}) == list(range(16))
    assert rs.last_note_end(mido.MidiFile(file=io.BytesIO(raw))) == pytest.approx(16 * tpb, abs=tpb // 2)


def test_a_drum_track_rendered_before_drums_stopped_with_the_piece_is_rendered_again(rs):
    labels = {"instruments": ["violin", "drums"]}
    assert not rs.current({"labels": labels})  # rendered before: its drums may run on alone
    assert rs.current({"labels": labels, "drums_end_with_piece": True})
    assert rs.current({"labels": {"instruments": ["violin"]}})  # no drums: nothing changed for it


def _velocities(raw):
    return sorted((t, m.note, m.velocity) for _, t, m in _abs_events(mido.MidiFile(file=io.BytesIO(raw)))
                  if m.type == "note_on" and m.velocity > 0)


def test_dynamics_scale_velocities_along_the_excerpt(rs, chorale):
    plain = _velocities(rs.score_to_midi(chorale, [0], 120.0, 0, 16.0))
    cresc = _velocities(rs.score_to_midi(chorale, [0], 120.0, 0, 16.0, dynamics=(0.5, 1.0)))
    assert [e[:2] for e in plain] == [e[:2] for e in cresc]
    ratios = np.array([c[2] / p[2] for p, c in zip(plain, cresc)])  # in time order
    first, last = ratios[: len(ratios) // 4].mean(), ratios[-len(ratios) // 4 :].mean()
    assert 0.45 < first < 0.7 and 0.85 < last <= 1.0  # softer at the start, close to as written at the end


def test_far_transposition_has_no_key_signature_midi_cannot_hold(rs):
    from music21 import corpus

    score = corpus.parse("bach/bwv66.6")  # F# minor: three sharps; up six semitones would need nine
    raw = rs.score_to_midi(score, [0], 120.0, 6, 8.0)
    mid = mido.MidiFile(file=io.BytesIO(raw))
    assert not [m for _, _, m in _abs_events(mid) if m.type == "key_signature"]


def test_held_out_works_never_sound_in_training_tracks(rs):
    paths = {"bach": [f"/c/corpus/bach/bwv{i}.mxl" for i in range(200)], "palestrina": ["/c/corpus/palestrina/a.krn"]}
    train = rs.split_works(paths, False, 0.15, seed=0)
    held = rs.split_works(paths, True, 0.15, seed=0)
    t, h = set(train["bach"]), set(held["bach"])
    assert not t & h and t | h == set(paths["bach"])
    assert 10 < len(h) < 50  # about 15 % of 200
    # the one Palestrina work falls on one side only; the other side has no such group
    assert ("palestrina" in train) != ("palestrina" in held)


def test_build_corpus_manifest_refuses_music_that_is_not_free(tmp_path):
    spec = importlib.util.spec_from_file_location("build_corpus", ROOT / "scripts" / "build_corpus.py")
    bc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bc)
    import json

    (tmp_path / "scores").mkdir()
    (tmp_path / "mit_music").mkdir()
    scores = [{"name": "score0000", "path": "score0000.flac", "licence": "public domain; FluidR3_GM.sf2 SoundFont MIT",
               "free_for_any_use": True, "heldout": False, "duration": 60.0},
              {"name": "score0001", "path": "score0001.flac", "licence": "public domain; TimGM6mb.sf2 SoundFont GPL-2",
               "free_for_any_use": False, "heldout": False, "duration": 60.0}]
    music = [{"name": "immich/a", "path": "immich/a.flac", "licence": "MIT", "heldout": True, "duration": 30.0},
             {"name": "wesnoth/b", "path": "wesnoth/b.flac", "licence": "GPL-2+", "heldout": False, "duration": 90.0}]
    (tmp_path / "scores" / "sources.json").write_text(json.dumps({"files": scores}))
    (tmp_path / "mit_music" / "sources.json").write_text(json.dumps({"files": music}))
    m = bc.merge(tmp_path, ["scores", "mit_music"])
    assert [e["path"] for e in m["files"]] == ["mit_music/immich/a.flac", "scores/score0000.flac"]
    assert sorted(m["refused_not_free"]) == ["mit_music/wesnoth/b.flac", "scores/score0001.flac"]
    assert m["seconds"] == 90.0 and m["heldout_seconds"] == 30.0
    assert json.loads((tmp_path / "sources.json").read_text()) == m


@pytest.mark.skipif(not (shutil.which("fluidsynth") and os.path.isfile("/usr/share/sounds/sf2/FluidR3_GM.sf2")),
                    reason="needs Debian's fluidsynth and fluid-soundfont-gm")
def test_fluidsynth_renders_the_chorale(rs, chorale):
    raw = rs.score_to_midi(chorale, [0, 0, 0, 0], bpm=120.0, transpose=0, max_quarters=8.0)
    y = rs.synthesize(raw, 5.0, rs.SOUNDFONTS["fluidr3"][0])
    assert y.shape == (5 * rs.SAMPLE_RATE,) and y.dtype == np.float32
    loud = np.sqrt(np.mean(y[: 3 * rs.SAMPLE_RATE] ** 2))
    tail = np.sqrt(np.mean(y[int(4.7 * rs.SAMPLE_RATE):] ** 2))
    assert loud > 0.01 and tail < loud / 10  # four quarter-note beats of music (4 s), then the notes have ended
