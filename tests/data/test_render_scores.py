"""scripts/render_scores.py: MIDI from a corpus score (instruments, tempo, length) and the drum part; the FluidSynth
render where Debian's fluidsynth and the TimGM6mb soundfont are installed."""

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


@pytest.mark.skipif(not (shutil.which("fluidsynth") and os.path.isfile("/usr/share/sounds/sf2/TimGM6mb.sf2")),
                    reason="needs Debian's fluidsynth and timgm6mb-soundfont")
def test_fluidsynth_renders_the_chorale(rs, chorale):
    raw = rs.score_to_midi(chorale, [0, 0, 0, 0], bpm=120.0, transpose=0, max_quarters=8.0)
    y = rs.synthesize(raw, seconds=5.0)
    assert y.shape == (5 * rs.SAMPLE_RATE,) and y.dtype == np.float32
    loud = np.sqrt(np.mean(y[: 3 * rs.SAMPLE_RATE] ** 2))
    tail = np.sqrt(np.mean(y[int(4.7 * rs.SAMPLE_RATE):] ** 2))
    assert loud > 0.01 and tail < loud / 10  # four quarter-note beats of music (4 s), then the notes have ended
