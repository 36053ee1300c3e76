"""Render music from scores into ``data_cache/scores/``: audio whose instruments, tempo and key are known exactly.

Each track is one to three segments. A segment is a piece (or the start of one) from the music21 corpus (Bach
chorales, string quartets by Haydn, Mozart and Beethoven, madrigals by Monteverdi, Palestrina, folk tunes from
O'Neill's 1850 collection) with every part given an instrument of one ensemble (string quartet, woodwinds,
brass, piano, organ, choir, guitars, mallets, synthesizers ...), played at the track's tempo and transposed to
the track's key, optionally over a drum kit. Segments of one track share tempo, key and drums and change
ensemble, as an arrangement does from verse to chorus. MIDI is written with music21 and mido and rendered with
FluidSynth (Debian ``fluidsynth``) through a General MIDI SoundFont drawn per track: FluidR3_GM (Debian
``fluid-soundfont-gm``, MIT) or MuseScore General (Debian ``musescore-general-soundfont``, MIT) by default, so the
audio is free for any use, weights trained on it included. TimGM6mb (``timgm6mb-soundfont``, GPL-2) can be asked for
with ``--soundfonts timgm6mb`` for evaluation music or a user's own training, never for weights that ship. Each
segment is played at its own dynamics (note velocities scaled, with a crescendo or diminuendo), and FluidSynth
writes floating-point samples, so a loud render is scaled, never clipped.

``sources.json`` (the format of ``scripts/get_music.py``, which every music reader of v2meow understands)
records per track: the exact labels (``instruments`` in order of appearance, ``bpm``, ``key``, ``genre``,
``composer``), the segments (start, end, piece, ensemble, instruments, dynamics), the SoundFont and the licence,
and whether it is held out. The split holds out whole works: a corpus work is held out when a seeded hash of its
path falls in the lowest ``--heldout`` fraction, a track is held out when the same hash of its name does, and a
held-out track plays only held-out works while a training track plays only the others, so no held-out work is
ever heard in training, in any arrangement.

    apt-get install fluidsynth fluid-soundfont-gm musescore-general-soundfont && pip install music21 mido
    python scripts/render_scores.py --tracks 120            # ≈ 2.8 h of music
    python scripts/render_scores.py --tracks 1700 -o data_cache/corpus/scores   # the corpus: ≈ 40 h

FluidR3 renders about 90 times faster than real time, MuseScore General about 5 times (it gets 5 % of the tracks
by default); parsing the longer quartet scores costs seconds each.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
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
KEY_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
SCORES_LICENCE = "public-domain works from the music21 corpus (music21: BSD-3-Clause)"
# name → (file, Debian package, licence); only MIT fonts go into music that trains shipped weights
SOUNDFONTS = {
    "fluidr3": ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "fluid-soundfont-gm", "MIT"),
    "musescore": ("/usr/share/sounds/sf3/MuseScore_General.sf3", "musescore-general-soundfont", "MIT"),
    "timgm6mb": ("/usr/share/sounds/sf2/TimGM6mb.sf2", "timgm6mb-soundfont", "GPL-2"),
}

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


def score_to_midi(score, programs: list[int], bpm: float, transpose: int, max_quarters: float,
                  dynamics: tuple[float, float] = (1.0, 1.0)) -> bytes:
    """MIDI bytes of ``score`` (its first ``max_quarters`` quarter notes), part i on program ``programs[i]``.

    ``dynamics`` (start, end): note velocities are scaled by a factor going linearly from start to end over the
    excerpt (a crescendo when end > start)."""
    import mido
    from music21 import key as m21key
    from music21 import midi as m21midi
    from music21 import tempo as m21tempo

    s = score.transpose(transpose) if transpose else score
    # Tempo marks give way to the track's tempo; key signatures do not sound, and a transposed one can have more
    # than 7 sharps, which a MIDI file cannot hold.
    for mark in list(s.recurse().getElementsByClass((m21tempo.MetronomeMark, m21key.KeySignature))):
        mark.activeSite.remove(mark)
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
            if m.type == "note_on" and m.velocity > 0:
                gain = dynamics[0] + (dynamics[1] - dynamics[0]) * min(now, limit) / max(limit, 1)
                m = m.copy(velocity=int(np.clip(round(m.velocity * gain), 1, 127)))
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
    """Adds a GM drum kit (channel 10) playing a steady pattern for ``seconds``, or until the last note of the music
    ends if that comes first: a piece shorter than its segment is not followed by the drums alone (renders before
    this had up to a minute of drum loop after such a piece, and a model trained on them learnt to write one)."""
    import mido

    mid = mido.MidiFile(file=io.BytesIO(midi_bytes))
    tpb = mid.ticks_per_beat
    n_beats = min(int(seconds * bpm / 60.0), math.ceil(last_note_end(mid) / tpb))
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


def last_note_end(mid) -> int:
    """The tick at which the last note of ``mid`` (a ``mido.MidiFile``) ends (0 without notes)."""
    end = 0
    for track in mid.tracks:
        now, sounding = 0, 0
        for m in track:
            now += m.time
            if m.type in ("note_on", "note_off"):
                sounding = now
        end = max(end, sounding)
    return end


def synthesize(midi_bytes: bytes, seconds: float, soundfont: str) -> np.ndarray:
    """FluidSynth render of MIDI through ``soundfont`` → mono float32 at 16 kHz, cut or padded to ``seconds``.

    FluidSynth writes 32-bit float samples, so nothing is clipped however loud the render (the caller
    scales it)."""
    import soundfile as sf

    with tempfile.TemporaryDirectory() as tmp:
        mid, wav = os.path.join(tmp, "in.mid"), os.path.join(tmp, "out.wav")
        with open(mid, "wb") as f:
            f.write(midi_bytes)
        # a render takes a few seconds; one that runs on (a voice that never stops) is abandoned, not kept
        subprocess.run(["fluidsynth", "-ni", "-q", "-g", "0.6", "-r", str(SAMPLE_RATE), "-O", "float", "-F", wav,
                        soundfont, mid],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
        y, sr = sf.read(wav, dtype="float32", always_2d=True)
    assert sr == SAMPLE_RATE, sr
    y = y.mean(axis=1)
    n = int(seconds * SAMPLE_RATE)
    return np.pad(y[:n], (0, max(0, n - len(y))))


def split_works(paths: dict[str, list[str]], heldout: bool, fraction: float, seed: int) -> dict[str, list[str]]:
    """The works of each corpus group on one side of the split (held out or training), by a seeded hash of each
    work's corpus path; a group with no work on that side is dropped."""
    out = {g: [p for p in v if (seeded_hash(corpus_relpath(p), seed) < fraction) == heldout]
           for g, v in paths.items()}
    return {g: v for g, v in out.items() if v}


def make_track(job: dict) -> dict:
    rng = np.random.default_rng(job["seed"])
    paths: dict[str, list[str]] = job["paths"]
    font = job["soundfont"]
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
        dyn = (float(rng.uniform(0.45, 1.15)), float(rng.uniform(0.45, 1.15)))
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
                midi = score_to_midi(score, programs, bpm, shift, seg_seconds * bpm / 60.0, dyn)
            except Exception:
                continue
            if drums >= 0:
                midi = add_drums(midi, beats_per_bar, drums, seg_seconds, bpm)
            try:
                y = synthesize(midi, seg_seconds, SOUNDFONTS[font][0])
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
                         "transpose": shift, "dynamics": [round(d, 3) for d in dyn]})
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
    file, package, font_licence = SOUNDFONTS[font]
    return {"name": job["name"], "path": job["path"],
            "source": f"music21 corpus rendered with FluidSynth and {os.path.basename(file)}",
            "package": "scores", "soundfont": font, "soundfont_package": package,
            "licence": f"{SCORES_LICENCE}; {os.path.basename(file)} SoundFont {font_licence}",
            "free_for_any_use": font_licence == "MIT", "heldout": job["heldout"],
            "duration": round(len(y) / SAMPLE_RATE, 3), "labels": labels, "segments": segments,
            "drums_end_with_piece": True}


def current(entry: dict) -> bool:
    """Whether a track rendered by an earlier run is as this renderer makes it: a drum part rendered before drums
    stopped with the piece's last note may run on alone, so such a track is rendered again."""
    return entry.get("drums_end_with_piece", False) or "drums" not in entry["labels"]["instruments"]


def parse_soundfonts(spec: str) -> dict[str, float]:
    """``"fluidr3:0.8,musescore:0.2"`` → {name: probability}; a name alone weighs 1."""
    out: dict[str, float] = {}
    for item in filter(None, (x.strip() for x in spec.split(","))):
        name, _, w = item.partition(":")
        if name not in SOUNDFONTS:
            raise SystemExit(f"unknown soundfont {name!r}; choose from {', '.join(SOUNDFONTS)}")
        out[name] = float(w) if w else 1.0
    if not out or min(out.values()) < 0 or sum(out.values()) <= 0:
        raise SystemExit(f"--soundfonts needs at least one name with a positive weight, got {spec!r}")
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-o", "--out", default=str(ROOT / "data_cache" / "scores"))
    p.add_argument("--tracks", type=int, default=120)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--heldout", type=float, default=0.15, help="fraction of works (and of tracks) held out")
    p.add_argument("--soundfonts", default="fluidr3:0.95,musescore:0.05",
                   help="SoundFonts and their shares, drawn per track (default: the two MIT fonts)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = p.parse_args()
    fonts = parse_soundfonts(args.soundfonts)
    missing = [SOUNDFONTS[f][1] for f in fonts if not os.path.isfile(SOUNDFONTS[f][0])]
    if not shutil.which("fluidsynth") or missing:
        raise SystemExit(f"needs FluidSynth and the SoundFonts: apt-get install fluidsynth {' '.join(missing)}")
    names, weights = list(fonts), np.array(list(fonts.values()))
    paths = corpus_paths()
    sides = {h: split_works(paths, h, args.heldout, args.seed) for h in (False, True)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    manifest = out / "sources.json"
    entries, jobs = {}, []
    for i in range(args.tracks):
        name = f"score{i:04d}"
        path, side = f"{name}.flac", out / f"{name}.json"
        if side.is_file() and (out / path).is_file():  # rendered by an earlier run: its labels are beside it
            entry = json.loads(side.read_text())
            entries[name] = entry  # an outdated render stays listed, as it is on disk, until its new one replaces it
            if current(entry):
                continue
        seed = int.from_bytes(hashlib.sha256(f"{args.seed}:{name}".encode()).digest()[:8], "big")
        heldout = seeded_hash(name, args.seed) < args.heldout
        font = names[int(np.random.default_rng(seed + 1).choice(len(names), p=weights / weights.sum()))]
        jobs.append({"name": name, "path": path, "seed": seed, "paths": sides[heldout], "heldout": heldout,
                     "soundfont": font, "out": str(out)})
    write_manifest(manifest, entries)  # what earlier runs rendered, before this one adds to it
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
            log(f"[{k + 1}/{len(jobs)}] {e['name']} {e['duration']:.0f} s {e['soundfont']} {e['labels']['genre']}: "
                f"{', '.join(s['ensemble'] for s in e['segments'])}")
            if (k + 1) % 5 == 0:  # a run stopped part-way leaves a manifest of (nearly) all it rendered
                write_manifest(manifest, entries)
    write_manifest(manifest, entries)
    files = list(entries.values())
    hours = sum(e["duration"] for e in files) / 3600
    log(f"{len(files)} tracks, {hours:.2f} h, {sum(e['heldout'] for e in files)} held out → {manifest}")
    return 0


def write_manifest(manifest: Path, entries: dict[str, dict]) -> None:
    tmp = manifest.with_suffix(".tmp")
    tmp.write_text(json.dumps({"files": [entries[k] for k in sorted(entries)]}, indent=1))
    os.replace(tmp, manifest)


if __name__ == "__main__":
    raise SystemExit(main())
