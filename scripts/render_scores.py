"""Render music from scores into ``data_cache/scores/``: audio whose instruments, tempo and key are known exactly.

Each track is one to three segments. A segment is a piece (or the start of one) from the music21 corpus (Bach
chorales, string quartets by Haydn, Mozart and Beethoven, madrigals by Monteverdi, Palestrina, folk tunes from
O'Neill's 1850 collection) with every part given an instrument of one ensemble (string quartet, woodwinds,
brass, piano, organ, choir, guitars, mallets, synthesizers ...), played at the track's tempo and transposed to
the track's key, optionally over a drum kit. Segments of one track share tempo, key and drums and change
ensemble, as an arrangement does from verse to chorus. MIDI is written with music21 and mido and rendered with
FluidSynth (Debian ``fluidsynth``) and the TimGM6mb General MIDI soundfont (Debian ``timgm6mb-soundfont``).

``sources.json`` (the format of ``scripts/get_music.py``, which every music reader of v2meow understands)
records per track: the exact labels (``instruments`` in order of appearance, ``bpm``, ``key``, ``genre``,
``composer``), the segments (start, end, piece, ensemble, instruments) and whether it is held out (a seeded
hash of its name). The split is by track: one corpus piece may sound in a training track and in a held-out
one, in another arrangement, tempo and key.

    apt-get install fluidsynth timgm6mb-soundfont && pip install music21 mido
    python scripts/render_scores.py --tracks 120            # ≈ 2.8 h of music, about 5 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_RATE = 16000
SOUNDFONT = "/usr/share/sounds/sf2/TimGM6mb.sf2"
KEY_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
LICENCE = "public-domain scores (music21 corpus, BSD-3-Clause); TimGM6mb soundfont GPL-2"

# General MIDI programs (0-based) and the name a caption uses.
GM = {
    "piano": 0, "electric piano": 4, "harpsichord": 6, "vibraphone": 11, "marimba": 12, "church organ": 19,
    "accordion": 21, "nylon guitar": 24, "steel guitar": 25, "electric bass": 33, "violin": 40, "viola": 41,
    "cello": 42, "contrabass": 43, "pizzicato strings": 45, "harp": 46, "strings": 48, "choir": 52,
    "trumpet": 56, "trombone": 57, "tuba": 58, "french horn": 60, "soprano sax": 64, "alto sax": 65,
    "oboe": 68, "bassoon": 70, "clarinet": 71, "flute": 73, "recorder": 74, "pan flute": 75,
    "square lead synth": 80, "sawtooth lead synth": 81, "warm pad synth": 89, "synth bass": 38,
}
# Ensembles: instruments from the top part down; a score with more parts repeats the last one.
ENSEMBLES = {
    "string quartet": ["violin", "violin", "viola", "cello"],
    "string orchestra": ["strings", "strings", "strings", "contrabass"],
    "woodwind quartet": ["flute", "oboe", "clarinet", "bassoon"],
    "brass quartet": ["trumpet", "trumpet", "french horn", "trombone"],
    "solo piano": ["piano"],
    "harpsichord": ["harpsichord"],
    "church organ": ["church organ"],
    "choir": ["choir"],
    "guitar duo": ["steel guitar", "nylon guitar"],
    "mallets": ["vibraphone", "marimba", "marimba", "marimba"],
    "synthesizers": ["square lead synth", "warm pad synth", "warm pad synth", "synth bass"],
    "saxophones": ["soprano sax", "alto sax", "alto sax", "electric bass"],
    "flute and harp": ["flute", "harp"],
    "accordion band": ["accordion", "accordion", "accordion", "tuba"],
    "electric piano band": ["electric piano", "electric piano", "electric piano", "electric bass"],
    "pizzicato strings": ["pizzicato strings"],
}
# corpus group → (composer, genre, weight)
GROUPS = {
    "bach": ("Johann Sebastian Bach", "chorale", 0.40),
    "haydn": ("Joseph Haydn", "string quartet", 0.07),
    "mozart": ("Wolfgang Amadeus Mozart", "classical", 0.07),
    "beethoven": ("Ludwig van Beethoven", "string quartet", 0.07),
    "monteverdi": ("Claudio Monteverdi", "madrigal", 0.12),
    "palestrina": ("Giovanni Pierluigi da Palestrina", "renaissance polyphony", 0.10),
    "oneills1850": (None, "irish folk tune", 0.17),
}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def seeded_hash(name: str, seed: int) -> float:
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def corpus_paths() -> dict[str, list[str]]:
    from music21 import corpus

    out: dict[str, list[str]] = {g: [] for g in GROUPS}
    for p in corpus.getPaths():
        g = corpus_relpath(str(p)).split(os.sep, 1)[0]
        if g in out:
            out[g].append(str(p))
    return {g: sorted(v) for g, v in out.items() if v}


def corpus_relpath(path: str) -> str:
    """``.../music21/corpus/bach/bwv66.6.mxl`` → ``bach/bwv66.6.mxl``."""
    return path.split("corpus" + os.sep, 1)[-1]


def load_piece(path: str, rng: np.random.Generator):
    """A music21 Score with notes (an opus gives one of its scores at random), or None."""
    from music21 import converter, stream

    try:
        s = converter.parse(path)
    except Exception:  # a corpus file music21 cannot read is skipped
        return None
    if isinstance(s, stream.Opus):
        scores = list(s.scores)
        if not scores:
            return None
        s = scores[int(rng.integers(len(scores)))]
    if not s.recurse().notes:
        return None
    return s


def first_quarters(score, quarters: float):
    """``score`` without the measures that start at or after ``quarters`` quarter notes (in place).

    Only the start of a work is heard, so key analysis and MIDI translation need not see the rest (a whole
    Beethoven movement takes music21 many seconds to translate)."""
    for part in score.parts:
        for m in list(part.getElementsByClass("Measure")):
            if m.offset >= quarters:
                part.remove(m)
    return score


def piece_key(score) -> tuple[int, str]:
    """(tonic pitch class, mode) of the score, by music21's key analysis."""
    k = score.analyze("key")
    return int(k.tonic.pitchClass), str(k.mode)


def score_to_midi(score, programs: list[int], bpm: float, transpose: int, max_quarters: float) -> bytes:
    """MIDI bytes of ``score`` (its first ``max_quarters`` quarter notes), part i on program ``programs[i]``."""
    import mido
    from music21 import midi as m21midi
    from music21 import tempo as m21tempo

    s = score.transpose(transpose) if transpose else score
    for mm in list(s.recurse().getElementsByClass(m21tempo.MetronomeMark)):
        mm.activeSite.remove(mm)
    mf = m21midi.translate.music21ObjectToMidiFile(s)
    raw = mf.writestr()
    mid = mido.MidiFile(file=io.BytesIO(raw))
    # one program per track (music21 writes one track per part, after a conductor track), one tempo for all
    tempo_us = mido.bpm2tempo(bpm)
    part = 0
    for track in mid.tracks:
        has_notes = any(m.type == "note_on" for m in track)
        keep = [m for m in track if not (m.is_meta and m.type == "set_tempo") and m.type != "program_change"]
        track[:] = keep
        if has_notes:
            prog = programs[min(part, len(programs) - 1)]
            chans = sorted({m.channel for m in track if hasattr(m, "channel")}) or [part % 9]
            for ch in chans:
                track.insert(0, mido.Message("program_change", channel=ch, program=prog, time=0))
            part += 1
    mid.tracks[0].insert(0, mido.MetaMessage("set_tempo", tempo=tempo_us, time=0))
    limit = int(max_quarters * mid.ticks_per_beat)  # only what will be heard: later notes are dropped
    for track in mid.tracks:
        kept, now, last = [], 0, 0
        for m in track:
            now += m.time
            if now >= limit:  # a note may end at the limit, none starts there
                ending = m.type == "note_off" or (m.type == "note_on" and m.velocity == 0) or m.type == "end_of_track"
                if not ending:
                    continue
            t = min(now, limit)
            if m.type == "end_of_track":  # silence every channel first: an unmatched note-on would ring forever
                for ch in sorted({x.channel for x in kept if hasattr(x, "channel")}):
                    kept.append(mido.Message("control_change", channel=ch, control=123, value=0, time=t - last))
                    last = t
            kept.append(m.copy(time=t - last))
            last = t
        track[:] = kept
    out = io.BytesIO()
    mid.save(file=out)
    return out.getvalue()


def add_drums(midi_bytes: bytes, beats_per_bar: int, style: int, seconds: float, bpm: float) -> bytes:
    """Adds a GM drum kit (channel 10) playing a steady pattern for ``seconds``."""
    import mido

    mid = mido.MidiFile(file=io.BytesIO(midi_bytes))
    tpb = mid.ticks_per_beat
    n_beats = int(seconds * bpm / 60.0)
    events: list[tuple[int, int, int]] = []  # (tick, note, velocity)
    for b in range(n_beats):
        t = b * tpb
        pos = b % beats_per_bar
        if pos == 0 or (style == 1 and pos == beats_per_bar // 2):
            events.append((t, 36, 100))  # kick
        if style != 2 and pos % 2 == 1:
            events.append((t, 38, 90))  # snare
        hat = 42 if style != 2 else 51  # closed hi-hat or ride
        events.append((t, hat, 60))
        if style == 1:
            events.append((t + tpb // 2, hat, 45))
    msgs = sorted([(t, 1, n, v) for t, n, v in events] + [(t + tpb // 8, 0, n, 0) for t, n, v in events])
    track = mido.MidiTrack()
    last = 0
    for tick, on, note, vel in msgs:  # offs sort before ons at the same tick
        kind = "note_on" if on else "note_off"
        track.append(mido.Message(kind, channel=9, note=note, velocity=vel, time=tick - last))
        last = tick
    mid.tracks.append(track)
    out = io.BytesIO()
    mid.save(file=out)
    return out.getvalue()


def synthesize(midi_bytes: bytes, seconds: float) -> np.ndarray:
    """FluidSynth render of MIDI → mono float32 at 16 kHz, cut or padded to ``seconds``."""
    import soundfile as sf

    with tempfile.TemporaryDirectory() as tmp:
        mid, wav = os.path.join(tmp, "in.mid"), os.path.join(tmp, "out.wav")
        with open(mid, "wb") as f:
            f.write(midi_bytes)
        # a render takes a few seconds; one that runs on (a voice that never stops) is abandoned, not kept
        subprocess.run(["fluidsynth", "-ni", "-q", "-g", "0.6", "-r", str(SAMPLE_RATE), "-F", wav, SOUNDFONT, mid],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
        y, sr = sf.read(wav, dtype="float32", always_2d=True)
    assert sr == SAMPLE_RATE, sr
    y = y.mean(axis=1)
    n = int(seconds * SAMPLE_RATE)
    return np.pad(y[:n], (0, max(0, n - len(y))))


def make_track(job: dict) -> dict:
    rng = np.random.default_rng(job["seed"])
    paths: dict[str, list[str]] = job["paths"]
    groups = [g for g in GROUPS if g in paths]
    w = np.array([GROUPS[g][2] for g in groups])
    group = str(rng.choice(groups, p=w / w.sum()))
    composer, genre, _ = GROUPS[group]
    bpm = float(np.round(rng.uniform(60, 150)))
    n_seg = int(rng.choice([1, 2, 3], p=[0.3, 0.4, 0.3]))
    ensembles = [str(e) for e in rng.choice(list(ENSEMBLES), size=n_seg, replace=False)]
    drums = int(rng.choice([-1, 0, 1, 2], p=[0.5, 0.2, 0.2, 0.1]))
    target_pc, mode, beats_per_bar = None, None, 4
    audio: list[np.ndarray] = []
    segments, instruments, t = [], [], 0.0
    for ens in ensembles:
        seg_seconds = float(rng.uniform(25, 70))
        names = ENSEMBLES[ens]
        programs = [GM[n] for n in names]
        y = path = shift = None
        for _ in range(8):  # a corpus file music21 cannot read or expand is replaced by another
            try:
                path = str(rng.choice(paths[group]))
                score = load_piece(path, rng)
                if score is None:
                    continue
                score = first_quarters(score, seg_seconds * bpm / 60.0)
                pc, m = piece_key(score)
                if target_pc is None:
                    target_pc, mode = int(rng.integers(12)), m
                shift = (target_pc - pc + 6) % 12 - 6
                midi = score_to_midi(score, programs, bpm, shift, seg_seconds * bpm / 60.0)
            except Exception:
                continue
            if drums >= 0:
                midi = add_drums(midi, beats_per_bar, drums, seg_seconds, bpm)
            try:
                y = synthesize(midi, seg_seconds)
            except subprocess.TimeoutExpired:
                continue
            break
        if y is None:
            continue
        nz = np.nonzero(np.abs(y) > 1e-3)[0]
        if len(nz) == 0:
            continue
        y = y[: nz[-1] + int(0.5 * SAMPLE_RATE)]  # a piece shorter than the segment ends with its last note
        peak = float(np.abs(y).max())
        y = y / peak * float(rng.uniform(0.4, 0.9))
        fade = min(len(y) // 4, int(1.0 * SAMPLE_RATE))
        y[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
        audio.append(y.astype(np.float32))
        dur = len(y) / SAMPLE_RATE
        segments.append({"start": round(t, 3), "end": round(t + dur, 3), "piece": corpus_relpath(path),
                         "ensemble": ens, "instruments": sorted(set(names), key=names.index),
                         "transpose": shift})
        for n in names:
            if n not in instruments:
                instruments.append(n)
        t += dur
    if not audio:
        return {"name": job["name"], "error": "no piece could be rendered"}
    y = np.concatenate(audio)
    labels = {"instruments": instruments + (["drums"] if drums >= 0 else []), "bpm": bpm,
              "key": f"{KEY_NAMES[target_pc]} {mode}", "genre": genre}
    if composer:
        labels["composer"] = composer
    import soundfile as sf

    out = Path(job["out"]) / job["path"]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.flac")
    sf.write(tmp, y, SAMPLE_RATE, subtype="PCM_16")
    os.replace(tmp, out)
    return {"name": job["name"], "path": job["path"], "source": "music21 corpus rendered with FluidSynth",
            "package": "scores", "licence": LICENCE, "duration": round(len(y) / SAMPLE_RATE, 3),
            "labels": labels, "segments": segments}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-o", "--out", default=str(ROOT / "data_cache" / "scores"))
    p.add_argument("--tracks", type=int, default=120)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--heldout", type=float, default=0.15, help="fraction of tracks held out")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = p.parse_args()
    if not shutil.which("fluidsynth") or not os.path.isfile(SOUNDFONT):
        raise SystemExit("needs FluidSynth and the TimGM6mb soundfont: apt-get install fluidsynth timgm6mb-soundfont")
    paths = corpus_paths()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    manifest = out / "sources.json"
    entries, jobs = {}, []
    for i in range(args.tracks):
        name = f"score{i:04d}"
        path, side = f"{name}.flac", out / f"{name}.json"
        if side.is_file() and (out / path).is_file():  # rendered by an earlier run: its labels are beside it
            entries[name] = json.loads(side.read_text())
            continue
        seed = int.from_bytes(hashlib.sha256(f"{args.seed}:{name}".encode()).digest()[:8], "big")
        jobs.append({"name": name, "path": path, "seed": seed, "paths": paths, "out": str(out)})
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        futures = [pool.submit(make_track, j) for j in jobs]
        for k, fut in enumerate(as_completed(futures)):
            e = fut.result()
            if "error" in e:
                log(f"{e['name']}: {e['error']}")
                continue
            entries[e["name"]] = e
            side = out / f"{e['name']}.json"
            side.with_suffix(".tmp").write_text(json.dumps(e))
            os.replace(side.with_suffix(".tmp"), side)
            log(f"[{k + 1}/{len(jobs)}] {e['name']} {e['duration']:.0f} s {e['labels']['genre']}: "
                f"{', '.join(s['ensemble'] for s in e['segments'])}")
    files = [entries[k] for k in sorted(entries)]
    for e in files:
        e["heldout"] = seeded_hash(e["name"], args.seed) < args.heldout
    tmp = manifest.with_suffix(".tmp")
    tmp.write_text(json.dumps({"files": files}, indent=1))
    os.replace(tmp, manifest)
    hours = sum(e["duration"] for e in files) / 3600
    log(f"{len(files)} tracks, {hours:.2f} h, {sum(e['heldout'] for e in files)} held out → {manifest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
