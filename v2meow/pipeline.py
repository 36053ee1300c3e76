"""``V2Meow``: video (+ text) -> waveform; ``from_pretrained`` / ``save_pretrained``.

A model directory (format and its checks: :mod:`v2meow.modeldir`) holds ``config.json`` (format name and
version, the resolved :class:`V2MeowConfig`, and one entry per part with its file, size and SHA-256) and one
``<part>.safetensors`` per part. Loading never unpickles anything and validates the config before any tensor
is allocated.

Pretrained backbones (CLIP, I3D, ViT-VQGAN, EnCodec/DAC, HuBERT/MERT/w2v-BERT, CLAP) are parts like the others:
their weights are saved into the directory (``encoder_<name>``, ``codec``, ``semantic_encoder``, ``joint``) and
their network configuration into ``config.json``, so a directory is self-contained and loads offline without
the checkpoints it was first built from. A part may carry string metadata in its safetensors header (CLAP's
tokenizer) through ``safetensors_metadata()`` / ``load_safetensors_metadata()``."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor, nn

from v2meow.config import V2MeowConfig, check_fit, check_loudness, load_preset, preset_names, resolve_streams
from v2meow.errors import ConfigError, UserError
from v2meow.features.registry import build_encoder, extract_features, probe
from v2meow.features.tempo import (
    Pulse,
    check_tempo,
    impose_pulses,
    named_pulse,
    prompt_tempo,
    steady_pulses,
    tempo_beats,
)
from v2meow.generation import (
    MAX_DRUM_REDRAWS,
    MAX_GUIDANCE,
    SECONDS_SLACK,
    candidate_seeds,
    check_seconds,
    check_start,
    decode_chunks,
    plan_windows,
    prompt_units,
    step_threads,
    sweep_coarse,
    sweep_semantic,
)
from v2meow.io.audio import match_loudness
from v2meow.modeldir import (
    ALLOCATION_HEADROOM,
    CONFIG_FILE,
    FORMAT,
    FORMAT_VERSION,
    MAX_CONFIG_BYTES,
    MAX_PARAMETERS,
    AllocationGuard,
    check_weight_files,
    load_parts,
    load_state,
    read_model_config,
    write_model_dir,
)
from v2meow.progress import AGAIN
from v2meow.sampling import make_generator
from v2meow.stages.coarse import CoarseStage
from v2meow.stages.fine import FineStage
from v2meow.stages.semantic import SemanticStage
from v2meow.text.towers import AudioTextTower, build_text_tower
from v2meow.tokenizers.codec.factory import build_codec
from v2meow.tokenizers.kmeans import KMeans
from v2meow.tokenizers.patterns import join_levels
from v2meow.tokenizers.semantic import SemanticEncoder, SemanticTokenizer, kmeans_fit_identity
from v2meow.tokenizers.ssl import build_ssl_encoder

if TYPE_CHECKING:
    from v2meow.metrics.alignment import CandidateScore, PulseFit, VideoBeats

FIT_PULSE = 0.15  # generate(fit_pulse=True)'s largest stretch where the model's config sets none

# The model directory format (v2meow.modeldir), the fit checks (v2meow.config) and the windowing
# (v2meow.generation) lived here before; their names are still importable from here.
__all__ = [
    "V2Meow", "Soundtrack", "ProgressCallback", "PARTS", "SECONDS_SLACK", "SHIPPED_TOKENIZERS",
    "FORMAT", "FORMAT_VERSION", "CONFIG_FILE", "MAX_CONFIG_BYTES", "ALLOCATION_HEADROOM", "MAX_PARAMETERS",
    "AllocationGuard", "check_weight_files", "load_state", "read_model_config",
    "check_fit", "resolve_streams", "plan_windows",
]
PARTS = ("semantic", "coarse", "fine", "codec", "semantic_encoder", "semantic_kmeans")
SHIPPED_TOKENIZERS = ("embedded",)  # presets whose tokenizers ship trained in the package
# The parts the package ships for those presets (v2meow/assets/tokenizers and joint): a model directory with
# ``"base": "embedded"`` holds only its other parts (the shipped model, v2meow/assets/embedded, holds the stages).
SHIPPED_PARTS = ("codec", "semantic_encoder", "semantic_kmeans", "joint")
ProgressCallback = Callable[[str, int, int], None]  # (stage name, steps done, steps total)


@dataclass
class Soundtrack:
    """A generated soundtrack: ``wav [N]`` float32 at ``sample_rate``, and the tokens it came from.

    It scores ``[start, start + seconds)`` of the video. ``seed`` is the seed that makes it again alone;
    with best-of-N, ``scores`` holds every candidate's score (:class:`v2meow.metrics.alignment.CandidateScore`)
    in candidate order, ``chosen`` the kept one's index, and ``visual`` the video's beats they were scored by.
    ``tempo`` is the steady pulse (BPM) over the whole stretch that the music was made or fitted to, ``tempo_source``
    where a pulse came from: ``"tempo"`` (named) or ``"steady pulse"`` (locked to the picture's; ``pulses`` then
    lists the stretches locked, :class:`v2meow.features.tempo.Pulse`); None otherwise. ``remade`` says the candidates
    were made twice: first from the picture's own rhythm, none of which reached the named tempo (fitted within
    ``generation.named_fit``), then from a picture flashing on its pulse (:meth:`V2Meow.generate`). ``fits`` says
    how ``wav`` was stretched onto the picture's steady pulse (``generation.fit_pulse``): one
    :class:`v2meow.metrics.alignment.PulseFit` per stretch fitted, none where it was not; the tokens are those of the
    music before the stretch."""

    wav: np.ndarray
    sample_rate: int
    semantic: Tensor  # [T_s]
    acoustic: Tensor  # [N_q, T_a]
    start: float = 0.0
    seed: int | None = None
    chosen: int = 0
    scores: list[CandidateScore] = field(default_factory=list)
    visual: VideoBeats | None = None
    tempo: float | None = None
    tempo_source: str | None = None
    pulses: list[Pulse] = field(default_factory=list)
    fits: list[PulseFit] = field(default_factory=list)
    remade: bool = False

    @property
    def seconds(self) -> float:
        return len(self.wav) / self.sample_rate



class V2Meow(nn.Module):
    """The three stages, the codec and the frozen front ends, behind ``generate``."""

    def __init__(self, cfg: V2MeowConfig, load_weights: bool = True):
        """Build every part of ``cfg``. Pretrained backbones load their weights from their configured paths;
        with ``load_weights`` False (``from_pretrained``) they are built from their stored network configs and
        the model directory supplies every weight."""
        super().__init__()
        self.encoders = [build_encoder(e, load_weights=load_weights) for e in cfg.encoders]
        resolve_streams(cfg, self.encoders)
        check_fit(cfg, self.encoders)
        self.cfg = cfg
        self.text = build_text_tower(cfg.text, load_weights=load_weights) if cfg.text is not None else None
        self.semantic = SemanticStage(cfg.semantic)
        self.coarse = CoarseStage(cfg.coarse)
        self.fine = FineStage(cfg.fine) if cfg.fine.fine_levels > 0 else None  # None: coarse levels decode alone
        self.codec = build_codec(cfg.codec, load_weights=load_weights)
        st = cfg.semantic_tokenizer
        self.semantic_encoder = (SemanticEncoder(st.encoder) if st.backend == "v2meow"
                                 else build_ssl_encoder(st.backend, st.ssl, load_weights=load_weights))
        self.semantic_kmeans = KMeans()

    # -- parts ----------------------------------------------------------------------------------
    def parts(self) -> dict[str, nn.Module]:
        """Every part with weights, by file stem: the fixed ``PARTS``, then pretrained visual encoders
        (``encoder_<name>``) and a joint music-text model with weights (``joint``)."""
        out = {name: getattr(self, name) for name in PARTS if getattr(self, name) is not None}
        for e in self.encoders:
            if isinstance(e, nn.Module):
                out[f"encoder_{e.name}"] = e
        if isinstance(self.text, nn.Module):
            out["joint"] = self.text
        return out

    @property
    def semantic_tokenizer(self) -> SemanticTokenizer:
        """Audio -> semantic tokens (used by extraction; generation does not need it)."""
        st = self.cfg.semantic_tokenizer
        return SemanticTokenizer(self.semantic_encoder, self.semantic_kmeans, layer=st.layer, chroma=st.chroma)

    def randomize_semantic_kmeans(self, seed: int = 0) -> None:
        """Give an untrained model random k-means centroids (debug preset: every weight is random)."""
        st = self.cfg.semantic_tokenizer
        d = (st.encoder.width if st.backend == "v2meow" else self.semantic_encoder.dim) + 12 * st.chroma
        fitted_on = kmeans_fit_identity(self.semantic_encoder, st.layer, st.chroma)
        self.semantic_kmeans = KMeans.random(st.vocab_size, d, fitted_on, seed)

    @property
    def sample_rate(self) -> int:
        return self.cfg.codec.sample_rate

    @property
    def window_seconds(self) -> float:
        return self.cfg.semantic.window_seconds

    # -- loading and saving ---------------------------------------------------------------------
    @classmethod
    def from_preset(cls, name: str, seed: int = 0) -> V2Meow:
        """A model of preset ``name``: the parts the package ships trained weights for (the ``embedded``
        preset's tokenizers and joint model) are loaded; every other weight is drawn from ``seed``."""
        cfg = load_preset(name)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = cls(cfg)
            model.randomize_semantic_kmeans(seed)
        if name in SHIPPED_TOKENIZERS:
            model.load_shipped_tokenizers()
        return model.eval()

    def load_shipped_tokenizers(self) -> None:
        """Put the package's trained codec and semantic tokenizer (``v2meow/assets/tokenizers``) in place."""
        from v2meow.tokenizers.default import load_tokenizers

        tok = load_tokenizers()
        if tok.codec.config.to_dict() != self.cfg.codec.soundstream.to_dict():
            raise ConfigError("The preset's codec config differs from the shipped codec's.")
        self.codec.load_state_dict(tok.codec.state_dict())
        self.semantic_encoder.load_state_dict(tok.semantic.encoder.state_dict())
        self.semantic_kmeans = tok.semantic.kmeans
        self.semantic_tokenizer.identity()  # checks that the k-means belongs to this encoder

    def load_shipped_parts(self) -> list[str]:
        """The shipped tokenizers and, when this model's text tower is the shipped joint model, its weights; returns
        the names of the parts put in place."""
        from v2meow.text.joint import EMBEDDED, JointModel

        self.load_shipped_tokenizers()
        names = [p for p in SHIPPED_PARTS if p != "joint"]
        if isinstance(self.text, JointModel):
            shipped = JointModel.load(EMBEDDED)
            if shipped.cfg.replace(weights=None) == self.text.cfg.replace(weights=None):
                self.text.load_state_dict(shipped.state_dict())
                names.append("joint")
        return names

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike) -> V2Meow:
        """Load a model directory (``config.json`` + safetensors); ``embedded``: the model the package ships (its
        trained stages, as ``v2meow generate`` uses it); any other preset name builds that preset with random
        stages (:meth:`from_preset`, which also gives the ``embedded`` preset untrained, as a training base)."""
        path = str(path)
        if not os.path.exists(path) and path == "embedded":
            from v2meow.soundtrack import shipped_model

            path = shipped_model() or path
        if not os.path.exists(path) and path in preset_names():
            return cls.from_preset(path)
        root = Path(path)
        if not root.is_dir():
            hint = f" or a preset ({', '.join(preset_names())})" if os.sep not in path else ""
            raise UserError(f"Model {path} is not a directory; give a model directory{hint}.")
        meta = read_model_config(root)
        base = meta.get("base")
        if base is not None and base not in SHIPPED_TOKENIZERS:
            raise UserError(f"Model {root} builds on {base!r}, which is not a preset this v2meow ships weights for "
                            f"({', '.join(SHIPPED_TOKENIZERS)}).")
        cfg = V2MeowConfig.from_dict(meta["config"], where=f"{root / CONFIG_FILE}")
        held = check_weight_files(root, meta)
        with AllocationGuard(min(MAX_PARAMETERS, 2 * held + ALLOCATION_HEADROOM), root, held):
            model = cls(cfg, load_weights=False)
        parts = model.parts()
        if base is not None:  # the shipped parts come from the package; the directory holds the rest
            for name in model.load_shipped_parts():
                parts.pop(name, None)
        load_parts(root, meta, parts)
        return model.eval()

    def save_pretrained(self, path: str | os.PathLike, dtype: torch.dtype | None = None,
                        base: str | None = None) -> Path:
        """Write ``config.json`` and one safetensors file per part; the directory is replaced atomically. With
        ``base`` (a preset whose weights ship, ``embedded``), the parts the package ships are left out: they must
        equal the shipped ones, and loading takes them from the package."""
        extras = {"semantic_kmeans": {"fitted_on": self.semantic_kmeans.fitted_on}}
        parts = self.parts()
        if base is not None:
            if base not in SHIPPED_TOKENIZERS:
                raise UserError(f"Only a preset whose weights ship ({', '.join(SHIPPED_TOKENIZERS)}) can be a base.")
            shipped = V2Meow(self.cfg)
            for name in shipped.load_shipped_parts():
                mine, theirs = parts.pop(name).state_dict(), getattr(shipped, "text" if name == "joint" else name)
                theirs = theirs.state_dict()
                if mine.keys() != theirs.keys() or any(not torch.equal(mine[k], theirs[k]) for k in mine):
                    raise UserError(f"This model's {name} is not the one {base!r} ships; save it whole instead.")
        return write_model_dir(path, self.cfg.to_dict(), parts, dtype=dtype, part_extras=extras, base=base)

    # -- where it runs ---------------------------------------------------------------------------
    def place(self, device: str | torch.device | None = "cpu", precision: str = "fp32") -> V2Meow:
        """Run generation on ``device`` (``cpu``, ``cuda``, ``cuda:1``; None: a CUDA GPU when torch sees
        one, else the CPU), the stages computing in ``precision`` (``fp32``, ``bf16``); returns
        the model. The stages and the codec move there; the codec stays in float32 (it renders every sample), and
        the video's features, the text tower and the scoring of the candidates stay on the CPU. The uniform numbers
        each candidate samples with come from its seed's generator on the CPU wherever the stages run, so a seed
        stands for the same draws on every device; the tokens can still part where the devices' arithmetic does.
        A lower precision rounds the stages' weights: a model placed in one cannot be placed back in ``fp32``."""
        from v2meow.device import resolve_placement

        dev, dtype = resolve_placement(device, precision)
        now = next(self.coarse.parameters()).dtype
        if now not in (torch.float32, dtype):
            raise ValueError(f"the stages compute in {now} already: load the model again to place it in {dtype}")
        for name in ("semantic", "coarse", "fine", "codec"):
            part = getattr(self, name)
            if part is not None:
                part.to(dev)
        for stage in (self.semantic, self.coarse, self.fine):
            if stage is not None:
                stage.to(dtype)
        return self

    @property
    def device(self) -> torch.device:
        """Where the stages run (:meth:`place`)."""
        return next(self.coarse.parameters()).device

    # -- generation -----------------------------------------------------------------------------
    def embed_prompt(self, prompt: str | None) -> Tensor | None:
        if prompt is None:
            return None
        if self.text is None or self.cfg.semantic.joint_dim == 0:
            raise UserError("This model was built without text control; run it without --prompt.")
        return self.text.embed_text([prompt])

    @torch.no_grad()
    def embed_audio_segments(self, wav: Tensor) -> Tensor | None:
        """A clip's music ``[T]`` (at :attr:`sample_rate`) in the joint space ``[D_m]``: the mean of its 10 s
        segments' audio embeddings, the training stand-in for the prompt. None without an audio tower."""
        if self.cfg.semantic.joint_dim == 0 or not isinstance(self.text, AudioTextTower):
            return None
        return self.text.embed_audio_segments(wav, self.sample_rate)

    @torch.inference_mode()  # no autograd bookkeeping at all: 6-10 % faster than no_grad in stage 2's step loop
    def generate(
        self,
        video: str | os.PathLike,
        prompt: str | None = None,
        seconds: float | None = None,
        seed: int | None = None,
        guidance: float | None = None,
        progress: ProgressCallback | None = None,
        start: float = 0.0,
        candidates: int | None = None,
        score: bool | None = None,
        loudness: float | None = None,
        limit_db: float | None = None,
        tempo: float | None = None,
        lock_tempo: bool | None = None,
        fit_pulse: bool | None = None,
        drum_redraws: int | None = None,
    ) -> Soundtrack:
        """A soundtrack for ``seconds`` of ``video`` from ``start`` (default: all of it from the start).

        Longer than one window, each stage sweeps the length in windows; every window after the first is
        prompted with the tokens of the previous window's last ``generation.prompt_seconds`` (AudioLM-style
        continuation) while its encoder sees the matching stretch of video, so the music stays one piece;
        stage 3's short windows continue the fine codes of the previous one's last
        ``generation.fine_prompt_seconds``.

        ``progress(stage, done, total)`` is called as each of ``features``, ``semantic``, ``coarse``, ``fine``
        and ``decode`` advances (:mod:`v2meow.progress` makes one fraction of the whole job of them).

        Best of N: the stages sample ``candidates`` (default: ``generation.candidates``) soundtracks in one batch,
        candidate ``i`` drawing from a generator seeded ``seed + i`` (:func:`v2meow.generation.candidate_seeds`),
        so ``generate(..., seed=seed + i)`` alone makes it again. Each is scored by how its onsets meet the video's
        visual beats, plus its joint-space similarity to the prompt when the model's joint model has an audio side
        (:mod:`v2meow.metrics.alignment`); the best is returned with every candidate's score in
        ``Soundtrack.scores``. ``score`` (default: when ``candidates > 1``) scores anyway.

        Each soundtrack is brought to ``loudness`` LUFS (default ``generation.loudness_lufs``; 0 keeps the stages'
        level) by one gain that keeps every sample under -1 dBFS, a look-ahead limiter taking up to ``limit_db``
        (default ``generation.limit_db``) off the peaks that would stop it short (:func:`match_loudness`).

        ``tempo`` (BPM; default: the tempo the prompt names, "... at 120 BPM", else none) names a steady pulse at
        that tempo, phased to the picture's own motion peaks (:mod:`v2meow.features.tempo`); best of N scores the
        candidates against its beats. Where the fit is on and ``generation.named_fit`` > 0, the stages read the
        picture's own rhythm and each candidate within ``named_fit`` of the tempo is fitted onto the pulse (below);
        where none is then at the tempo (its tempo as best of N reads it within 8 % of it; or otherwise), the rhythm
        the stages read is set to the pulse's and they make the candidates (again), fitted within
        ``generation.fit_pulse``. With no tempo
        named and ``lock_tempo`` (default ``generation.lock_tempo``), a picture that moves on one steady pulse over
        the whole stretch (or, with ``generation.lock_stretch_seconds``, for at least that long;
        :func:`~v2meow.features.tempo.steady_pulses`) has that pulse, its tempo and phase, set the same way over the
        stretch it holds.

        With ``fit_pulse`` (default: on where ``generation.fit_pulse`` > 0), where the picture moves on one steady
        pulse over the whole stretch (or, with ``generation.fit_stretch_seconds``, for at least that long; or a tempo
        is named or locked), each candidate whose tempo there lies within ``generation.fit_pulse`` (:data:`FIT_PULSE`,
        where the model sets none) of the pulse's has its beats time-warped onto the pulse's, the pitch kept
        (:func:`v2meow.metrics.alignment.fit_to_pulses`); the stages make that much more music, and a beat, to warp
        within.

        ``drum_redraws`` (default ``generation.drum_redraws``, 0 in the shipped model) draws each candidate's stage-1
        window again, up to that many times, where at least ``generation.drum_share`` of its new tokens are among the
        model's ``generation.drum_tokens`` (a drum loop playing alone; docs/long-videos.md).
        """
        info = probe(str(video))
        tempo = check_tempo(tempo) if tempo is not None else prompt_tempo(prompt)
        joint = self.embed_prompt(prompt)
        start = check_start(self.cfg, start, info.duration)
        seconds = check_seconds(self.cfg, seconds, info.duration - start, start)
        guidance = self.cfg.generation.prompt_guidance if guidance is None else guidance
        if not (0.0 < guidance <= MAX_GUIDANCE):
            raise UserError(f"--guidance must be in (0, {MAX_GUIDANCE:g}], got {guidance}.")
        loudness = self.cfg.generation.loudness_lufs if loudness is None else loudness
        limit_db = self.cfg.generation.limit_db if limit_db is None else limit_db
        check_loudness(loudness, limit_db)
        seeds = candidate_seeds(seed, self.cfg.generation.candidates if candidates is None else candidates)
        redraws = self._drum_redraws(drum_redraws)

        def report(stage: str) -> Callable[[int, int], None] | None:
            return None if progress is None else (lambda done, total: progress(stage, done, total))

        on_features = report("features")
        if on_features is not None:
            on_features(0, 1)
        feats = extract_features(str(video), self.encoders, start=start, duration=seconds)
        stretch = self.cfg.generation.fit_pulse if fit_pulse is None else \
            (self.cfg.generation.fit_pulse or FIT_PULSE) if fit_pulse else 0.0
        pulse, pulse_source, locked, remade = None, "tempo", [], False
        keep = False  # a named tempo's candidates made from the picture's own rhythm first
        if tempo is not None:
            named = named_pulse(feats, self.encoders, tempo, seconds)
            keep = stretch > 0 and self.cfg.generation.named_fit > 0
            feats, pulse = (feats, named.beats()) if keep else impose_pulses(feats, self.encoders, [named])
        elif "beat" in feats and (self.cfg.generation.lock_tempo if lock_tempo is None else lock_tempo):
            rate = next(e.rate for e in self.encoders if e.name == "beat")
            locked = steady_pulses(feats["beat"], rate, seconds, self.cfg.generation.lock_stretch_seconds)
            if locked:
                feats, pulse = impose_pulses(feats, self.encoders, locked)
                pulse_source = "steady pulse"
                if len(locked) == 1 and locked[0].start == 0.0 and locked[0].end == seconds:
                    tempo = locked[0].bpm
        if on_features is not None:
            on_features(1, 1)
        n = int(round(seconds * self.sample_rate))
        first = self.cfg.generation.named_fit if keep else stretch
        semantic, codes, wavs, fits = self._make(feats, seconds, n, first, pulse if tempo is not None else None,
                                                 locked, joint, guidance, seeds, report, redraws)
        if keep and not self._any_at_tempo(wavs, tempo):
            # no candidate reached the named tempo, fitted or not: made again on a picture flashing on its pulse
            (feats, pulse), remade = impose_pulses(feats, self.encoders, [named]), True
            if progress is not None:
                progress(AGAIN, 0, 1)
            semantic, codes, wavs, fits = self._make(feats, seconds, n, stretch, pulse, locked, joint, guidance,
                                                     seeds, report, redraws)
        if loudness != 0:
            wavs = np.stack([match_loudness(w, self.sample_rate, loudness, limit_db=limit_db) for w in wavs])
        scores, chosen, visual = [], 0, None
        if score if score is not None else len(seeds) > 1:
            from v2meow.metrics.alignment import (
                PULSE_SOURCES,
                best_candidate,
                music_tempo,
                pick_at_tempo,
                score_candidates,
                video_beats,
            )

            visual = video_beats(str(video), seconds, start)
            if pulse is not None and (pulse_source == "tempo" or visual.source != "sidecar"):
                # a locked stretch's pulse replaces the picture's beats there (a sidecar's beats outrank it)
                outside = [t for t in visual.times if not any(p.start <= t < p.end for p in locked)] if locked else []
                visual = replace(visual, times=np.sort(np.concatenate([outside, pulse])), source=pulse_source)
            tower = self.text if joint is not None and isinstance(self.text, AudioTextTower) else None
            scores = score_candidates(list(wavs), self.sample_rate, seeds, visual, tower, joint,
                                      noise_penalty=self.cfg.generation.noise_penalty)
            chosen = best_candidate(scores)
            if self.cfg.generation.tempo_pick and visual.source in PULSE_SOURCES:
                scores = [replace(c, tempo=music_tempo(w, self.sample_rate)) for c, w in zip(scores, wavs)]
                chosen = pick_at_tempo(scores, visual)
        return Soundtrack(wav=wavs[chosen], sample_rate=self.sample_rate, semantic=semantic[chosen],
                          acoustic=codes[chosen], start=start, seed=seeds[chosen], chosen=chosen, scores=scores,
                          visual=visual, tempo=tempo, tempo_source=pulse_source if pulse is not None else None,
                          pulses=locked, fits=fits[chosen], remade=remade)

    def _make(self, feats: dict[str, np.ndarray], seconds: float, n: int, stretch: float, pulse: np.ndarray | None,
              locked: list[Pulse], joint: Tensor | None, guidance: float, seeds: list[int],
              report: Callable[[str], Callable[[int, int], None] | None], redraws: int = 0,
              ) -> tuple[Tensor, Tensor, np.ndarray, list[list[PulseFit]]]:
        """One batch of candidates, one per seed (each from a fresh generator seeded with it): their semantic
        tokens, codes, ``n`` samples of each (``[B, n]``, fitted onto the pulses of :meth:`_fit_pulses` where
        ``stretch`` > 0) and each candidate's fits. ``redraws``: stage 1's drums-alone redraws (:meth:`generate`)."""
        gens = [make_generator(s) for s in seeds]  # one per candidate: row i samples as seed + i alone would
        fit_on = self._fit_pulses(feats, seconds, pulse, locked) if stretch > 0 else []
        made = seconds  # with a pulse to fit, a margin to stretch and shift within (features hold their last row)
        if fit_on:
            made = (seconds + max(p.period for p in fit_on)) * (1.0 + stretch)
        feats_t = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in feats.items()}
        with step_threads(self.cfg.generation.step_threads if self.device.type == "cpu" else 0):
            semantic = sweep_semantic(self, feats_t, made, joint, guidance, gens, report("semantic"), redraws)
            coarse = sweep_coarse(self, feats_t, semantic, made, gens, report("coarse"))
            codes = coarse
            if self.fine is not None:
                fine = self.fine.generate(coarse, generator=gens, progress=report("fine"),
                                          prompt_frames=prompt_units(self.cfg, self.cfg.fine.frame_rate, fine=True))
                codes = join_levels(coarse, fine)
        wavs = self.decode(codes, report("decode"))[:, : int(round(made * self.sample_rate))].float()
        wavs = wavs.clamp(-1.0, 1.0).cpu().numpy()
        if not fit_on:
            return semantic, codes, wavs[:, :n], [[] for _ in seeds]
        from v2meow.metrics.alignment import fit_to_pulses

        fitted = [fit_to_pulses(w, self.sample_rate, fit_on, n, stretch) for w in wavs]
        return semantic, codes, np.stack([f[0] for f in fitted]), [f[1] for f in fitted]

    def _drum_redraws(self, redraws: int | None) -> int:
        """``generate``'s ``drum_redraws`` checked (None: the model's own)."""
        g = self.cfg.generation
        if redraws is None:
            return g.drum_redraws if g.drum_tokens else 0
        if isinstance(redraws, bool) or not isinstance(redraws, int) or not 0 <= redraws <= MAX_DRUM_REDRAWS:
            raise UserError(f"--drum-redraws must be a whole number from 0 to {MAX_DRUM_REDRAWS}, got {redraws}.")
        if redraws and not g.drum_tokens:
            raise UserError("This model names no semantic tokens of drums playing alone (generation.drum_tokens), "
                            "so --drum-redraws has nothing to look for (docs/long-videos.md says how to find them).")
        return redraws

    def _any_at_tempo(self, wavs: np.ndarray, bpm: float) -> bool:
        """Whether any of ``wavs [B, N]`` is at ``bpm``, as best of N reads a candidate's tempo
        (:func:`v2meow.metrics.alignment.music_tempo`, within :data:`~v2meow.metrics.alignment.TEMPO_TOLERANCE`)."""
        from v2meow.metrics.alignment import at_tempo, music_tempo

        return any(at_tempo(music_tempo(w, self.sample_rate), bpm) for w in wavs)

    def _fit_pulses(self, feats: dict[str, np.ndarray], seconds: float, pulse: np.ndarray | None,
                    locked: list[Pulse]) -> list[Pulse]:
        """The steady pulses the soundtrack is warped onto (``generation.fit_pulse``): a named or locked tempo's
        (``pulse``, its beats over the whole clip) or the locked stretches; else the picture's own where it moves
        on one steady pulse over all of it, or (with ``generation.fit_stretch_seconds``) over stretches of it
        (:func:`v2meow.features.tempo.steady_pulses`); none where there is none."""
        from v2meow.metrics.alignment import beats_pulse

        if pulse is None and locked:
            return list(locked)
        if pulse is None:
            if "beat" not in feats:
                return []
            rate = next(e.rate for e in self.encoders if e.name == "beat")
            found = steady_pulses(feats["beat"], rate, seconds, self.cfg.generation.fit_stretch_seconds)
            if len(found) != 1 or found[0].start > 0.0 or found[0].end < seconds:
                return found
            # through its beats, as a named tempo's comes: the pulse is then the one the fit was measured and
            # gated with, to the last bit (its tempo read back from the beats' median interval)
            pulse = tempo_beats(found[0].bpm, seconds, found[0].phase)
        whole = beats_pulse(pulse, seconds)
        return [] if whole is None else [whole]

    def decode(self, codes: Tensor, progress: Callable[[int, int], None] | None = None) -> Tensor:
        """Codec decode of ``codes [B, N_q, T_a]`` -> ``[B, T_a * hop]`` (:func:`v2meow.generation.decode_chunks`)."""
        return decode_chunks(self, codes, progress)
