"""``v2meow evaluate``: generate for a folder of videos, score with the paper's metrics, write a report.

Rows: the model, and the baselines every report shows beside it (METRICS.md):
- ground truth: each video's own music, scored against itself (BCS = BHS = 100 by construction);
- random shuffle: another video's music (a seeded derangement);
- codec round trip: each video's own music through the model's codec (encoded and decoded): the best any
  generation can sound through that codec;
- no video: the same model given a black, still video of the same length (nothing to see).

Metrics (each names its backend in the report's notes):
- FAD between each system's audio and the reference music, on embeddings of a named backend, the same for
  every model under test: offline default ``semantic``, a semantic tokenizer's music encoder at its token layer
  (25 frames/s), pinned in ``v2meow/assets/fad`` so that releases with new tokenizers still compare; beside it
  ``codec``, the shipped codec's encoder (50 frames/s), which fails a sanity
  check the first passes: at equal loudness it scores the music's own codec round trip worse than the untrained
  stages' noise, and the same music 6 dB quieter at 0.43 (docs/embedded-model.md); ``vggish`` with user weights;
- BCS / BHS / F1 (LORIS-adjusted, and the original) on 2 s / 6 s / 10 s segments, as in Table 2;
- beat F-measure (±70 ms) of the generated music's tracked beats against the video's visual beats
  (from a synth-data sidecar when there is one, else from onsets of the ``motion`` encoder's energy), and the
  same music against every other scored video's beats (the mismatched control: music that follows its video
  scores higher on its own video's beats than on the others');
- KLD and MCC need a classifier / joint music model: reported when the model has one, else "–" with
  the reason in the notes.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from v2meow.errors import UserError
from v2meow.generation import candidate_seeds
from v2meow.metrics.beats import BeatAlignment, beat_f_own_and_others, segment_clip, track_beats
from v2meow.metrics.fad import AudioEmbedder, FrechetAudioDistance, embed_audio
from v2meow.metrics.joint_backends import JointModelEmbedder, ZeroShotTagger, load_joint_backend
from v2meow.metrics.kld import ClassKLDivergence
from v2meow.metrics.mcc import JointCosine
from v2meow.metrics.report import Column, Report, format_table

MODEL_ROW = "v2meow"


@dataclass
class EvalOptions:
    seconds: float = 10.0  # length scored per video (its start)
    generations: int = 1  # samples per video (the paper's Table 2 uses 5)
    segments: tuple[float, ...] = (2.0, 6.0, 10.0)
    seed: int = 0
    max_videos: int | None = None
    guidance: float | None = None  # on the prompt; None: the model's own (generation.prompt_guidance)
    candidates: int | None = None  # best of N by the video's beats, as `generate --candidates N` (None: the model's)
    fad_backend: str = "semantic"  # "semantic" or "codec" (offline), or "vggish" (needs vggish_weights)
    fad_also: tuple[str, ...] = ("codec",)  # further backends, each its own column fad_<name>
    vggish_weights: str | None = None
    plots: bool = True
    prompts: dict[str, str] = field(default_factory=dict)
    joint: str | None = None  # the joint model MCC and KLD are scored with (None: the model's own)
    device: str | None = "cpu"  # where the stages and the codec run (V2Meow.place; None: a CUDA GPU when there is one)
    precision: str = "fp32"  # what the stages compute in


class CodecEmbedder(AudioEmbedder):
    """FAD embeddings from the model's codec encoder: one latent vector per codec frame (50 / s)."""

    def __init__(self, codec):
        self.codec = codec
        self.name = f"codec-encoder:{codec.identity().get('name', 'codec')}"
        self.sample_rate = codec.sample_rate
        self.dim = int(codec.config.latent_dim) if hasattr(codec, "config") else 0
        self._id = codec.identity()

    @torch.no_grad()
    def embed(self, wav: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))[None]
        z = self.codec.encoder(self.codec.pad_to_hop(x))  # [1, D, T_a]
        return z[0].T.double().numpy()

    def identity(self) -> dict[str, Any]:
        return {"name": self.name, "sample_rate": self.sample_rate, "dim": self.dim, "codec": self._id}


class SemanticEmbedder(AudioEmbedder):
    """FAD embeddings from a semantic tokenizer's music encoder: its token layer's features, one per frame."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self._id = tokenizer.identity()
        self.name = f"semantic-encoder:{self._id.get('backend', 'v2meow')}"
        self.sample_rate = tokenizer.sample_rate
        self.dim = tokenizer.kmeans.dim  # its centroids live in the features' space

    @torch.no_grad()
    def embed(self, wav: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))[None]
        return self.tokenizer.encoder.features(x, self.tokenizer.layer)[0].double().numpy()

    def identity(self) -> dict[str, Any]:
        return {"name": self.name, "sample_rate": self.sample_rate, "dim": self.dim, "tokenizer": self._id}


def visual_beats(video: str, duration: float) -> tuple[np.ndarray, str]:
    """The video's beat times: a synth-data sidecar's, else onsets of the motion encoder's energy at 10 Hz
    (:func:`v2meow.metrics.alignment.video_beats`)."""
    from v2meow.metrics.alignment import video_beats

    vb = video_beats(video, duration, curve=False)
    return vb.times, vb.source


def black_video(like: str, seconds: float, out: str) -> str:
    """A black, still MP4 of ``seconds`` (the "no video" baseline's input)."""
    import av

    from v2meow.io.video import probe

    info = probe(like)
    w, h = max(16, info.width // 2 * 2), max(16, info.height // 2 * 2)
    with av.open(out, "w") as c:
        s = c.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        frame = av.VideoFrame.from_ndarray(np.zeros((h, w, 3), np.uint8), format="rgb24")
        for i in range(max(1, math.ceil(seconds * 10))):
            frame.pts = i
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return out


@torch.no_grad()
def codec_round_trip(model, wav: np.ndarray) -> np.ndarray:
    """``wav [N]`` encoded and decoded by ``model``'s codec (in the pipeline's decode chunks), trimmed or padded
    to ``N`` samples."""
    x = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))[None]
    x = x.to(next(model.codec.parameters(), x).device)  # where the model placed it
    out = model.decode(model.codec.encode(x))[0].cpu().numpy()
    return np.pad(out, (0, max(0, len(wav) - len(out))))[: len(wav)]


def _derangement(n: int, seed: int) -> np.ndarray:
    """A permutation with no fixed point (n >= 2), seeded."""
    rng = np.random.default_rng([seed, 0x5A0F])
    while True:
        p = rng.permutation(n)
        if n < 2 or not np.any(p == np.arange(n)):
            return p


def evaluate(model_path: str, videos_dir: str, out_dir: str, opts: EvalOptions | None = None,
             progress: bool = True) -> Report:
    from v2meow.data.extract import list_videos
    from v2meow.io.audio import load_audio, save_audio
    from v2meow.io.video import probe
    from v2meow.pipeline import V2Meow

    opts = opts or EvalOptions()
    if opts.seconds <= 0 or opts.generations < 1:
        raise UserError("--seconds must be > 0 and --generations at least 1.")
    if opts.candidates is not None:
        candidate_seeds(opts.seed, opts.candidates)  # checks --candidates before any work
    from v2meow.device import resolve_placement

    device, _ = resolve_placement(opts.device, opts.precision)  # a device this machine lacks: said before loading
    model = V2Meow.from_pretrained(model_path).place(device, opts.precision)
    candidates = model.cfg.generation.candidates if opts.candidates is None else opts.candidates
    sr = model.sample_rate
    root = Path(videos_dir)
    clips, skipped = [], []
    for rel in list_videos(root):
        info = probe(str(root / rel))
        if not info.has_audio:
            skipped.append(f"{rel}: no audio track to compare with")
            continue
        clips.append((rel, min(opts.seconds, info.duration)))
        if opts.max_videos and len(clips) >= opts.max_videos:
            break
    if len(clips) < 2:
        raise UserError(f"{videos_dir} needs at least two videos with sound (the random-shuffle baseline).")

    out = Path(out_dir)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    refs = [load_audio(str(root / rel), sample_rate=sr, duration=sec) for rel, sec in clips]
    shuffle = _derangement(len(clips), opts.seed)

    systems: dict[str, list[list[np.ndarray]]] = {MODEL_ROW: [], "no_video": [], "ground_truth": [],
                                                  "random_shuffle": [], "codec_round_trip": []}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(clips) * opts.generations * 2, desc="evaluate", unit="gen")
    with tempfile.TemporaryDirectory() as tmp:
        for i, (rel, sec) in enumerate(clips):
            video = str(root / rel)
            prompt = opts.prompts.get(rel)
            blank = black_video(video, sec, os.path.join(tmp, f"black{i}.mp4"))
            gens, blind = [], []
            for g in range(opts.generations):
                seed = opts.seed + 1000 * i + g
                kw = dict(prompt=prompt, seconds=sec, seed=seed, guidance=opts.guidance, candidates=opts.candidates)
                gens.append(model.generate(video, **kw).wav)
                blind.append(model.generate(blank, **kw).wav)
                if bar is not None:
                    bar.update(2)
            save_audio(str(out / "audio" / f"{i:04d}_{Path(rel).stem}.wav"), gens[0], sr)
            systems[MODEL_ROW].append(gens)
            systems["no_video"].append(blind)
            systems["ground_truth"].append([refs[i]])
            other = refs[shuffle[i]]
            n = len(refs[i])
            systems["random_shuffle"].append([np.pad(other, (0, max(0, n - len(other))))[:n]])
            systems["codec_round_trip"].append([codec_round_trip(model, refs[i])])
    if bar is not None:
        bar.close()

    shortest = min(sec for _, sec in clips)
    usable = tuple(s for s in opts.segments if s <= shortest + 1e-6)
    if len(usable) < len(opts.segments):
        skipped.append(f"segment lengths {[s for s in opts.segments if s not in usable]} s are longer than the "
                       f"shortest scored clip ({shortest:g} s) and were left out")
    if not usable:
        usable = (float(math.floor(shortest)) if shortest >= 1 else shortest,)
    opts.segments = usable
    embedders = {col: _fad_embedder(b, opts) for col, b in _fad_columns(opts)}
    joint, joint_source = load_joint_backend(model, opts.joint)
    semantic_backends = None
    if joint is not None:
        semantic_backends = (JointModelEmbedder(joint), ZeroShotTagger(joint))
    prompts = [opts.prompts.get(rel) for rel, _ in clips]
    ref_emb = {col: [embed_audio(e, r, sr) for r in refs] for col, e in embedders.items()}
    beats = [visual_beats(str(root / rel), sec) for rel, sec in clips]
    report = Report(title=f"{len(clips)} videos from {videos_dir}, first {opts.seconds:g} s, "
                          f"{opts.generations} generation(s) each")
    per_clip: dict[str, list[dict]] = {}
    for name, outputs in systems.items():
        row, clip_rows = _score_system(outputs, refs, ref_emb, embedders, beats, sr, opts, semantic_backends,
                                       prompts)
        per_clip[name] = clip_rows
        if name == MODEL_ROW:
            report.add_row(name, row)
        else:  # the standard three, then the codec round trip under its own name
            report.add_row(name, row, kind="baseline")
    report.notes = {
        "fad": {"backend": embedders["fad"].name, "n_reference_frames": int(sum(len(e) for e in ref_emb["fad"])),
                "also": {col: e.name for col, e in embedders.items() if col != "fad"}},
        "beats": {"onsets": "librosa onset_detect at 22050 Hz (METRICS.md; computed by v2meow.metrics.onsets)",
                  "segments_s": list(opts.segments),
                  "visual_beats": sorted({src for _, src in beats})},
        "kld": (f"KL(ref || gen) of zero-shot tag probabilities ({len(semantic_backends[1].tags)} music tags) "
                f"from {joint_source}, per item" if semantic_backends else f"not computed: {joint_source}"),
        "mcc": (f"cosine of generated and reference audio in the joint space of {joint_source}, first 10 s"
                + ("; mcc_text: generated audio vs prompt" if any(prompts) else "")
                if semantic_backends else f"not computed: {joint_source}"),
        "no_video": "the same model given a black, still video of the same length",
        "candidates": (f"each generation is the best of {candidates} by the video's beats (generate --candidates)"
                       if candidates > 1 else "one soundtrack per generation"),
        "codec_round_trip": "each reference encoded and decoded by the model's codec, all its levels",
        "device": f"{model.device} ({opts.precision}): where the stages and the codec ran",
        "skipped": skipped,
        "videos": [rel for rel, _ in clips],
    }
    _write(report, per_clip, out, opts, beats, systems, sr)
    return report


def _fad_columns(opts: EvalOptions) -> list[tuple[str, str]]:
    """``(column, backend)`` of every FAD reported: ``fad`` for the main backend, ``fad_<name>`` for the others."""
    others = [b for b in opts.fad_also if b != opts.fad_backend]
    return [("fad", opts.fad_backend)] + [(f"fad_{b}", b) for b in others]


def _fad_embedder(backend: str, opts: EvalOptions) -> AudioEmbedder:
    if backend == "semantic":
        # the pinned reference encoder (v2meow/assets/fad): the same embedding for every model under test and every
        # release, whichever semantic tokenizer ships, so FADs compare
        from v2meow.tokenizers.default import load_fad_semantic

        return SemanticEmbedder(load_fad_semantic())
    if backend == "codec":
        # the shipped, trained codec: the same embedding for every model under test
        from v2meow.tokenizers.default import load_tokenizers

        return CodecEmbedder(load_tokenizers().codec)
    if backend == "vggish":
        if not opts.vggish_weights:
            raise UserError("--fad-backend vggish needs --vggish-weights PATH (a converted VGGish safetensors file).")
        from v2meow.metrics.vggish import VGGish, VGGishEmbedder

        return VGGishEmbedder(VGGish.from_safetensors(opts.vggish_weights))
    raise UserError(f"Unknown FAD backend {backend!r}; choose semantic, codec or vggish.")


def _score_system(outputs, refs, ref_emb, embedders, beats, sr, opts, semantic_backends=None,
                  prompts=None) -> tuple[dict, list[dict]]:
    fads = {col: FrechetAudioDistance(e) for col, e in embedders.items()}
    mcc = kld = mcc_text = None
    if semantic_backends is not None:
        joint_emb, tagger = semantic_backends
        mcc = JointCosine(joint_emb, target="audio")
        mcc_text = JointCosine(joint_emb, target="text")
        kld = ClassKLDivergence(tagger, per="item")
    for col, fad in fads.items():
        for e in ref_emb[col]:
            fad.update_reference(e)
    loris = {s: BeatAlignment("loris") for s in opts.segments}
    original = {s: BeatAlignment("original") for s in opts.segments}
    beat_f, beat_f_other = [], []  # per generation: against its own video's beats, against the others'
    clip_rows = []
    for i, (gens, ref, (vb, _)) in enumerate(zip(outputs, refs, beats)):
        clip = BeatAlignment("loris")
        for wav in gens:
            for col, fad in fads.items():
                fad.update_generated(embed_audio(embedders[col], wav, sr))
            if mcc is not None:
                mcc.update_audio(wav, ref, sr)
                kld.update_audio(wav, ref, sr)
                if prompts and prompts[i]:
                    mcc_text.update_text([wav], [prompts[i]], sr)
            for s in opts.segments:
                for g_seg, r_seg in zip(segment_clip(wav, sr, s), segment_clip(ref, sr, s)):
                    loris[s].update(g_seg, r_seg, sr)
                    original[s].update(g_seg, r_seg, sr)
            clip.update(wav, ref, sr)
            others = [b for j, (b, _) in enumerate(beats) if j != i]  # the mismatched control
            own, other = beat_f_own_and_others(track_beats(wav, sr), vb, others)
            beat_f.append(own)
            beat_f_other.append(other)
        c = clip.compute()
        clip_rows.append({"bcs": c["bcs"], "bhs": c["bhs"]})
    row: dict[str, Any] = {}
    for col, fad in fads.items():
        row[col] = fad.compute()["fad"]
    main_seg = max(opts.segments)
    for s in opts.segments:
        lo, og = loris[s].compute(), original[s].compute()
        suffix = "" if s == main_seg else f"_{s:g}s"
        row[f"bcs{suffix}"], row[f"bhs{suffix}"], row[f"f1{suffix}"] = lo["bcs"], lo["bhs"], lo["f1"]
        row[f"bcs_std{suffix}"], row[f"bhs_std{suffix}"] = lo["bcs_std"], lo["bhs_std"]
        row[f"bcs_orig{suffix}"], row[f"bhs_orig{suffix}"] = og["bcs"], og["bhs"]
        row[f"segments{suffix}"] = lo["n"]
    row["beat_f"] = float(np.mean(beat_f))
    row["beat_f_other"] = float(np.mean(beat_f_other))
    if mcc is not None:
        row["mcc"] = mcc.compute()["mcc"]
        row["kld"] = kld.compute()["kld"]
        if prompts and any(prompts):
            row["mcc_text"] = mcc_text.compute()["mcc"]
    return row, clip_rows


def _columns(opts: EvalOptions) -> list[Column]:
    label = {"codec": "FAD (codec)", "semantic": "FAD (semantic)", "vggish": "FAD VGGish"}
    cols = [Column(col, label.get(b, f"FAD {b}"), digits=3, better="lower") for col, b in _fad_columns(opts)]
    cols += [Column("kld", "KLD (tags)", digits=2, better="lower"), Column("mcc", "MCC", digits=3, better="higher")]
    main_seg = max(opts.segments)
    cols += [Column("bcs", f"BCS {main_seg:g}s", scale=100, digits=1, better="higher"),
             Column("bhs", f"BHS {main_seg:g}s", scale=100, digits=1, better="higher"),
             Column("f1", f"F1 {main_seg:g}s", scale=100, digits=1, better="higher"),
             Column("beat_f", "Beat F (±70 ms)", digits=3, better="higher"),
             Column("beat_f_other", "Beat F, other videos' beats", digits=3)]
    return cols


def _write(report: Report, per_clip, out: Path, opts: EvalOptions, beats, systems, sr) -> None:
    report.save(str(out / "report.json"))
    lines = [f"# {report.title}", "", format_table(report.rows, _columns(opts)), ""]
    seg_rows = []
    for r in report.rows:
        for s in sorted(opts.segments):
            suffix = "" if s == max(opts.segments) else f"_{s:g}s"
            seg_rows.append({"name": f"{r['name']} ({s:g}s)", "bcs": r.get(f"bcs{suffix}"),
                             "bcs_std": r.get(f"bcs_std{suffix}"), "bhs": r.get(f"bhs{suffix}"),
                             "bhs_std": r.get(f"bhs_std{suffix}"), "f1": r.get(f"f1{suffix}"),
                             "segments": r.get(f"segments{suffix}")})
    lines += ["## Beat alignment by segment length (LORIS-adjusted, as Table 2)", "",
              format_table(seg_rows, [Column("bcs", "Beat coverage", scale=100, digits=1),
                                      Column("bcs_std", "(std)", scale=100, digits=1),
                                      Column("bhs", "Beat hit", scale=100, digits=1),
                                      Column("bhs_std", "(std)", scale=100, digits=1),
                                      Column("f1", "F1", scale=100, digits=1), Column("segments", "N")]), "",
              "## Notes", "", "```json", json.dumps(report.notes, indent=1), "```", ""]
    tmp = out / ".report.md.tmp"
    tmp.write_text("\n".join(lines))
    os.replace(tmp, out / "report.md")
    if opts.plots:
        _plots(out, per_clip, beats, systems, sr)


def _plots(out: Path, per_clip, beats, systems, sr) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from v2meow.metrics.beats import detect_onsets, to_beat_audio

    (out / "plots").mkdir(exist_ok=True)
    fig, ax = plt.subplots(figsize=(8, 3.5))
    names = [n for n in per_clip if n != "ground_truth"]
    n_clips = len(per_clip[MODEL_ROW])
    width = 0.8 / len(names)
    for k, name in enumerate(names):
        ax.bar(np.arange(n_clips) + k * width, [c["bhs"] for c in per_clip[name]], width, label=name)
    ax.set_xlabel("clip")
    ax.set_ylabel("beat hit score (LORIS)")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "plots" / "beat_alignment_per_clip.png", dpi=100)
    plt.close(fig)

    wav = systems[MODEL_ROW][0][0]
    vb, src = beats[0]
    y = to_beat_audio(wav, sr)
    onsets = detect_onsets(y)
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.specgram(y + 1e-9, NFFT=1024, Fs=22050, noverlap=512, cmap="magma")
    for t in onsets:
        ax.axvline(t, color="cyan", lw=0.8, alpha=0.8)
    for t in vb:
        ax.axvline(t, color="white", lw=1.2, ls="--", alpha=0.9)
    ax.set_title(f"clip 0: generated onsets (cyan) and visual beats ({src}, dashed)")
    ax.set_xlabel("seconds")
    ax.set_ylabel("Hz")
    fig.tight_layout()
    fig.savefig(out / "plots" / "spectrogram_onsets_vs_visual_beats.png", dpi=100)
    plt.close(fig)
