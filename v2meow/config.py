"""The whole model's configuration: which parts, and how big. Presets live in ``v2meow/configs/<name>/``.

A preset YAML maps 1:1 onto :class:`V2MeowConfig`. Stage ``streams`` may be left out of a preset: they
are filled in from the visual encoders when the model is built, and saved resolved in ``config.json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from v2meow.configbase import Config, check
from v2meow.errors import ConfigError, UserError
from v2meow.features.registry import EncoderConfig, expand_encoder_configs
from v2meow.generation import MAX_CANDIDATES, MAX_DRUM_REDRAWS, MAX_GUIDANCE
from v2meow.modules.adaptors import StreamSpec
from v2meow.stages.coarse import CoarseStageConfig
from v2meow.stages.fine import FineStageConfig
from v2meow.stages.semantic import SemanticStageConfig
from v2meow.text.towers import TextConfig
from v2meow.tokenizers.codec.factory import CodecConfig
from v2meow.tokenizers.semantic import SemanticEncoderConfig
from v2meow.tokenizers.ssl import SSL_BACKENDS, SSLEncoderConfig

PRESET_FILE = "model.yaml"


SEMANTIC_BACKENDS = ("v2meow",) + SSL_BACKENDS


@dataclass
class SemanticTokenizerConfig(Config):
    """k-means of an audio encoder's layer. ``backend``: ``v2meow`` (the project's encoder, ``encoder``) or a
    pretrained SSL model (``hubert`` | ``mert`` | ``w2v-bert``, settings in ``ssl``)."""

    backend: str = "v2meow"
    encoder: SemanticEncoderConfig | None = None
    ssl: SSLEncoderConfig | None = None
    vocab_size: int = 1024  # k-means clusters K_s
    chroma: int = 0  # copies of the frames' chroma appended to the layer's features (SemanticTokenizer)

    def __post_init__(self) -> None:
        if self.backend == "v2meow" and self.encoder is None:
            self.encoder = SemanticEncoderConfig()
        super().__post_init__()

    def validate(self) -> None:
        check(2 <= self.vocab_size <= 65536, f"semantic vocab_size must be in 2..65536, got {self.vocab_size}.")
        check(0 <= self.chroma <= 16, f"semantic tokenizer chroma must be in 0..16, got {self.chroma}.")
        check(self.backend in SEMANTIC_BACKENDS,
              f"semantic tokenizer backend must be one of {', '.join(SEMANTIC_BACKENDS)}, got {self.backend!r}.")
        if self.backend == "v2meow":
            check(self.ssl is None, "the v2meow semantic encoder takes no ssl section.")
        else:
            check(self.ssl is not None, f"semantic tokenizer backend {self.backend!r} needs an ssl section.")
            check(self.encoder is None, f"semantic tokenizer backend {self.backend!r} takes no encoder section.")

    @property
    def frame_rate(self) -> float:
        """Semantic tokens per second."""
        return self.encoder.frame_rate if self.backend == "v2meow" else self.ssl.frame_rate

    @property
    def sample_rate(self) -> int:
        """Rate of the audio the tokenizer reads."""
        return self.encoder.sample_rate if self.backend == "v2meow" else self.ssl.sample_rate

    @property
    def layer(self) -> int:
        """The encoder layer the k-means is fitted on."""
        return self.encoder.token_layer if self.backend == "v2meow" else self.ssl.layer


LOUDNESS_LUFS_RANGE = (-60.0, -5.0)  # what a soundtrack may be brought to; 0 leaves its level alone


def loudness_ok(lufs: float) -> bool:
    return lufs == 0 or LOUDNESS_LUFS_RANGE[0] <= lufs <= LOUDNESS_LUFS_RANGE[1]


LIMIT_DB_RANGE = (0.0, 20.0)  # how much the loudness limiter may take off the peaks


def limit_ok(limit_db: float) -> bool:
    return LIMIT_DB_RANGE[0] <= limit_db <= LIMIT_DB_RANGE[1]


def check_loudness(lufs: float, limit_db: float = 0.0) -> None:
    """A loudness (``--loudness``) and limiter budget (``--limit``) asked of ``generate``, refused in one sentence
    when out of range."""
    if not loudness_ok(lufs):
        raise UserError(f"--loudness must be in {list(LOUDNESS_LUFS_RANGE)} LUFS, or 0 to keep the model's level; "
                        f"got {lufs}.")
    if not limit_ok(limit_db):
        raise UserError(f"--limit must be in {list(LIMIT_DB_RANGE)} dB, got {limit_db}.")


@dataclass
class GenerationConfig(Config):
    """Whole-length generation: windows of the stages' length, each continuing from the previous one."""

    prompt_seconds: float = 5.0  # how much of the previous window each new window is prompted with
    fine_prompt_seconds: float = 1.0  # the same for stage 3's short windows (0: each starts afresh)
    max_seconds: float = 4 * 3600.0  # longest soundtrack one call writes
    decode_chunk_seconds: float = 10.0  # the codec decodes in chunks of this length ...
    decode_margin_seconds: float = 0.5  # ... each seeing this much context on both sides
    # The soundtrack's integrated loudness (ITU-R BS.1770, LUFS), by one gain that never takes a sample past
    # -1 dBFS: the stages' own level follows their training music loosely. 0 keeps the level they make.
    loudness_lufs: float = -16.0
    # Where a few sharp peaks would stop that gain short of the loudness, a look-ahead limiter may take up to
    # this much off them (dB; 0: the gain stops at the peaks). Off by default: 6 dB brings 38 of 48 held-out
    # soundtracks within 1 LU of -16 LUFS (19 without), but louder soundtracks score a worse FAD against the
    # held-out music (docs/embedded-model.md, "Levels"); `generate --limit 6` turns it on.
    limit_db: float = 0.0
    # Soundtracks sampled together per call, the one whose onsets best meet the video's visual beats kept
    # (best of N; `generate --candidates` overrides it). A trained model sets its own, chosen by measurement.
    candidates: int = 1
    # Classifier-free guidance on a text prompt (stage 1 contrasts the prompted logits with the unprompted ones;
    # 1 = off; `generate --guidance` overrides it). A trained model sets its own, chosen by measurement.
    prompt_guidance: float = 1.0
    # Where the picture moves on one steady pulse over the whole clip (its beat clock: a bouncing ball, a dancer's
    # steps), the stages read that pulse as they read a named tempo (v2meow.features.tempo.steady_pulse), and
    # best of N scores against it. No effect with a named tempo, or on a picture without such a pulse; `generate
    # --no-lock-tempo` turns it off. A trained model sets its own, chosen by measurement.
    lock_tempo: bool = False
    # With lock_tempo, also lock each stretch of at least this many seconds whose clock ticks steadily, where the
    # whole does not (0: the whole stretch scored or nothing). Off in the shipped model: on 30 s videos whose motion
    # changes it raised tempo accuracy from 44 % to 78 %, beat F's gap by +0.074 +- 0.060 (docs/embedded-model.md).
    lock_stretch_seconds: float = 0.0
    # Best of N also weighs how noisy each candidate is: its total loses this many times its noise score (the
    # energy-weighted spectral flatness, v2meow.metrics.alignment.noise_score). 0: beats (and the prompt) alone.
    # Measured on the shipped model (docs/embedded-model.md, "Best of 4 against noise"): penalties of 0.5-8 made
    # the picks less noisy and did not improve FAD, KLD or MCC on either 48-video set, so it ships at 0.
    noise_penalty: float = 0.0
    # Best of N prefers the picture's tempo: where the visual beats tick on one pulse (the beat clock, a named or
    # locked tempo), it keeps the best-scored candidate whose tempo (v2meow.metrics.alignment.music_tempo) lies
    # within 8 % of the pulse's, and the best-scored of all when none does. On in the shipped model since 2026-12-06:
    # tempo acc1 53 -> 75 % on the gate's periodic-motion clips, nothing else worse (docs/embedded-model.md).
    tempo_pick: bool = False
    # Where the picture moves on one steady pulse over the whole clip (or a tempo is named or locked), each candidate
    # whose tempo lies within this fraction of the pulse's has its own tracked beats time-warped onto the pulse's,
    # no interval stretched by more than this fraction, the pitch kept (v2meow.metrics.alignment.fit_to_pulses); the
    # stages then make that much more music, plus one beat, to warp within. 0: off. On in the shipped model since
    # 2026-12-06 at 0.15: periodic-motion clips' beat F 0.48 -> 0.82, tempo acc1 72 -> 94 % (docs/embedded-model.md).
    fit_pulse: float = 0.0
    # With fit_pulse, also fit each stretch of at least this many seconds whose clock ticks steadily, where the whole
    # clip does not (v2meow.features.tempo.steady_pulses); between them the music plays as made. 0: the whole only.
    # Off in the shipped model: at 6 s it raised beat F's gap on changing pictures by +0.117 +- 0.054 (tempo 44 ->
    # 61 %) but lowered MCC on the held-out videos it touched (docs/embedded-model.md).
    fit_stretch_seconds: float = 0.0
    # With a named tempo and the fit on: the stages first read the picture's own rhythm streams, and each candidate
    # whose tempo lies within this fraction of the named one is fitted onto its pulse (a wider fit_pulse for it);
    # only where no candidate then is at the tempo (within 8 %, as best of N reads it) are the rhythm streams
    # replaced by those of a picture flashing on the pulse and the candidates made again (the one way of 0, which
    # meets every tempo with noisier, less tonal music). 0.3 in the shipped model since 2026-12-06: on 40 fresh
    # clips tempo acc1 95 -> 100 %, tonal clarity 0.58 -> 0.67, flatness 0.054 -> 0.008, 6 clips made again
    # (docs/embedded-model.md, "The picture's own rhythm first").
    named_fit: float = 0.0
    # Semantic tokens that stand for drums playing alone. Where at least drum_share of a window's new tokens are
    # among them, stage 1 draws that window again for that candidate, up to drum_redraws times (keeping the draw
    # with the fewest): renders in the training corpus ran a drum loop on for up to a minute after a short piece
    # ended, the stages learnt to write that loop, and each window continuing the last one's tail kept it going
    # (docs/long-videos.md, "Drums alone"). The tokens belong to one semantic tokenizer: scripts/drum_tokens.py
    # finds them for another. () or 0 redraws: off, as shipped: on 16 fresh 120 s videos the shipped tokenizer's 12
    # drum tokens with 3 redraws took drums alone from 16 % of the time to 1 %, but FAD on the 240-video gate rose
    # from 11.10 to 13.28 (what the stages write instead sits further from the corpus's music).
    drum_tokens: tuple[int, ...] = ()
    drum_share: float = 0.5
    drum_redraws: int = 0
    # Whether the redraws look at a soundtrack's opening window too, or only at the windows that continue the one
    # before (where a drum loop, once entered, goes on window after window). Measured on the shipped model with 3
    # redraws, false: on 17 long videos drums alone 19.9 -> 1.8 % of the time and the sound better, but FAD +1.2 and
    # beat F -1.6 standard errors, so it is not on (docs/long-videos.md, "Redraws only where a window continues").
    drum_redraw_opening: bool = True
    # Intra-op threads of the stages' step loops on the CPU (0: torch's own setting; never more than it). A small
    # model's step is hundreds of small products, and torch's worker threads wait for each other at every one: for
    # the embedded model, best of 4 for 10 s took 4.2-4.8 s with one thread and 103-159 s with two while another
    # program kept both cores busy (14.5-15.2 s with one core busy), against 4.35-4.43 s and 3.3-4.1 s on an idle
    # machine (docs/performance.md). The codec and the features keep torch's setting.
    step_threads: int = 0

    def validate(self) -> None:
        check(self.prompt_seconds >= 0, f"prompt_seconds must be >= 0, got {self.prompt_seconds}.")
        check(self.fine_prompt_seconds >= 0, f"fine_prompt_seconds must be >= 0, got {self.fine_prompt_seconds}.")
        check(0 < self.max_seconds <= 24 * 3600, f"max_seconds must be in (0, 86400], got {self.max_seconds}.")
        check(self.decode_chunk_seconds > 0 and self.decode_margin_seconds >= 0, "decode chunk sizes must be > 0.")
        check(1 <= self.candidates <= MAX_CANDIDATES,
              f"candidates must be in 1..{MAX_CANDIDATES}, got {self.candidates}.")
        check(0 < self.prompt_guidance <= MAX_GUIDANCE,
              f"prompt_guidance must be in (0, {MAX_GUIDANCE:g}], got {self.prompt_guidance}.")
        check(limit_ok(self.limit_db), f"limit_db must be in {list(LIMIT_DB_RANGE)} dB, got {self.limit_db}.")
        check(self.lock_stretch_seconds >= 0, f"lock_stretch_seconds must be >= 0, got {self.lock_stretch_seconds}.")
        check(0 <= self.fit_pulse <= 0.5, f"fit_pulse must be in [0, 0.5], got {self.fit_pulse}.")
        check(0 <= self.named_fit <= 0.5, f"named_fit must be in [0, 0.5], got {self.named_fit}.")
        check(self.fit_stretch_seconds >= 0, f"fit_stretch_seconds must be >= 0, got {self.fit_stretch_seconds}.")
        check(0 < self.drum_share <= 1, f"drum_share must be in (0, 1], got {self.drum_share}.")
        check(0 <= self.drum_redraws <= MAX_DRUM_REDRAWS,
              f"drum_redraws must be in 0..{MAX_DRUM_REDRAWS}, got {self.drum_redraws}.")
        check(len(set(self.drum_tokens)) == len(self.drum_tokens), "drum_tokens repeat a token.")
        check(0 <= self.step_threads <= 1024, f"step_threads must be in 0..1024, got {self.step_threads}.")
        check(self.noise_penalty >= 0, f"noise_penalty must be >= 0, got {self.noise_penalty}.")
        check(loudness_ok(self.loudness_lufs),
              f"loudness_lufs must be in {list(LOUDNESS_LUFS_RANGE)} LUFS, or 0 (off), got {self.loudness_lufs}.")


@dataclass
class V2MeowConfig(Config):
    name: str = "custom"
    encoders: list[EncoderConfig] = field(default_factory=list)
    text: TextConfig | None = None
    semantic: SemanticStageConfig = field(default_factory=SemanticStageConfig)
    coarse: CoarseStageConfig = field(default_factory=CoarseStageConfig)
    fine: FineStageConfig = field(default_factory=FineStageConfig)
    codec: CodecConfig = field(default_factory=CodecConfig)
    semantic_tokenizer: SemanticTokenizerConfig = field(default_factory=SemanticTokenizerConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)

    def __post_init__(self) -> None:
        # "clip+i3d" (Table 1 of the paper) means two encoders; stored expanded, so config.json lists each.
        self.encoders = expand_encoder_configs(list(self.encoders))
        super().__post_init__()

    def validate(self) -> None:
        check(len(self.encoders) > 0, "a model needs at least one visual encoder.")
        window = min(self.semantic.window_seconds, self.coarse.window_seconds)
        check(self.generation.prompt_seconds < window,
              f"generation.prompt_seconds ({self.generation.prompt_seconds}) must be shorter than the "
              f"{window} s window.")
        check(self.generation.fine_prompt_seconds < self.fine.window_seconds,
              f"generation.fine_prompt_seconds ({self.generation.fine_prompt_seconds}) must be shorter than "
              f"stage 3's {self.fine.window_seconds} s window.")
        names = [e.name for e in self.encoders]
        check(len(set(names)) == len(names), f"visual encoders repeat: {names}.")
        check(all(0 <= t < self.semantic.vocab_size for t in self.generation.drum_tokens),
              f"generation.drum_tokens must be semantic tokens (0..{self.semantic.vocab_size - 1}).")


def preset_names() -> list[str]:
    root = resources.files("v2meow") / "configs"
    return sorted(p.name for p in root.iterdir() if p.is_dir() and (p / PRESET_FILE).is_file())


def load_yaml(path: str | Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except OSError as e:
        raise UserError(f"Cannot read config {path}: {e.strerror}.") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"Config {path} is not valid YAML ({e.__class__.__name__}).") from None
    if not isinstance(data, dict):
        raise ConfigError(f"Config {path} must be a mapping at the top level.")
    return data


def preset_file(name: str, file: str) -> Path | None:
    """A file of a shipped preset (e.g. ``train.yaml``), or None."""
    if name not in preset_names():
        return None
    path = resources.files("v2meow") / "configs" / name / file
    return Path(str(path)) if path.is_file() else None


def load_preset(name: str) -> V2MeowConfig:
    """The model config of preset ``name`` (``debug``, ``embedded``, ``paper``)."""
    if name not in preset_names():
        raise UserError(f"Unknown preset {name!r}; available: {', '.join(preset_names())}.")
    path = resources.files("v2meow") / "configs" / name / PRESET_FILE
    with resources.as_file(path) as p:
        data = load_yaml(p)
    return V2MeowConfig.from_dict(data, where=f"preset {name}")


# -- fit checks: the parts of one model must agree -----------------------------------------------------------


def resolve_streams(cfg: V2MeowConfig, encoders: list) -> None:
    """Fill the stages' visual streams from the encoders where a preset left them out."""
    specs = [StreamSpec(name=e.name, dim=e.dim, rate=e.rate) for e in encoders]
    if not cfg.semantic.streams:
        cfg.semantic.streams = list(specs)
    if cfg.coarse.variant == "encdec" and not cfg.coarse.streams:
        cfg.coarse.streams = list(specs)


def stream_mismatches(cfg: V2MeowConfig, available: dict[str, tuple[Any, Any]]) -> list[tuple[str, StreamSpec, Any]]:
    """The visual streams stages 1 and 2 read that ``available`` (name -> ``(dim, rate)``) lacks or holds with
    another dim or rate, as ``(stage, stream, (dim, rate) or None)``."""
    out = []
    for stage, streams in (("stage 1", cfg.semantic.streams), ("stage 2", cfg.coarse.streams)):
        for s in streams:
            got = available.get(s.name)
            if got is None or tuple(got) != (s.dim, s.rate):
                out.append((stage, s, got))
    return out


def check_fit(cfg: V2MeowConfig, encoders: list) -> None:
    """Refuse stages that do not fit together, each mismatch in one sentence."""
    problems = []
    for stage, s, got in stream_mismatches(cfg, {e.name: (e.dim, e.rate) for e in encoders}):
        if got is None:
            problems.append(f"{stage} reads visual stream {s.name!r}, which no encoder produces")
        else:
            problems.append(f"{stage} expects {s.name!r} features of dim {s.dim} at {s.rate}/s, "
                            f"but the encoder gives dim {got[0]} at {got[1]}/s")
    k_s = cfg.semantic_tokenizer.vocab_size
    if cfg.semantic.vocab_size != k_s or cfg.coarse.semantic_vocab != k_s:
        problems.append(f"the semantic tokenizer has {k_s} tokens but stage 1 writes {cfg.semantic.vocab_size} "
                        f"and stage 2 reads {cfg.coarse.semantic_vocab}")
    sem_rate = cfg.semantic_tokenizer.frame_rate
    if not (cfg.semantic.token_rate == cfg.coarse.semantic_rate == sem_rate):
        problems.append(f"semantic token rates differ (tokenizer {sem_rate}/s, stage 1 {cfg.semantic.token_rate}/s, "
                        f"stage 2 {cfg.coarse.semantic_rate}/s)")
    c = cfg.codec
    if cfg.semantic_tokenizer.sample_rate != c.sample_rate:
        # Extraction hands both tokenizers the same audio, at the codec's rate.
        problems.append(f"the semantic tokenizer reads audio at {cfg.semantic_tokenizer.sample_rate} Hz but the codec "
                        f"at {c.sample_rate} Hz")
    if cfg.coarse.levels != cfg.fine.coarse_levels:
        problems.append(f"stage 2 writes {cfg.coarse.levels} coarse levels but stage 3 reads {cfg.fine.coarse_levels}")
    if cfg.fine.fine_levels == 0 and cfg.fine.coarse_levels > c.num_levels:
        problems.append(f"stage 2 writes {cfg.fine.coarse_levels} levels but the codec has {c.num_levels}")
    if cfg.fine.fine_levels > 0 and cfg.fine.coarse_levels + cfg.fine.fine_levels != c.num_levels:
        problems.append(f"coarse ({cfg.fine.coarse_levels}) + fine ({cfg.fine.fine_levels}) levels do not add up "
                        f"to the codec's {c.num_levels}")
    if not (cfg.coarse.codebook_size == cfg.fine.codebook_size == c.codebook_size):
        problems.append(f"codebook sizes differ (codec {c.codebook_size}, stage 2 {cfg.coarse.codebook_size}, "
                        f"stage 3 {cfg.fine.codebook_size})")
    if not (cfg.coarse.frame_rate == cfg.fine.frame_rate == c.frame_rate):
        problems.append(f"acoustic frame rates differ (codec {c.frame_rate}/s, stage 2 {cfg.coarse.frame_rate}/s, "
                        f"stage 3 {cfg.fine.frame_rate}/s)")
    if cfg.semantic.joint_dim and cfg.text is not None and cfg.text.dim != cfg.semantic.joint_dim:
        problems.append(f"the text tower gives {cfg.text.dim}-d embeddings but stage 1 reads {cfg.semantic.joint_dim}")
    if problems:
        raise ConfigError("The model's parts do not fit together: " + "; ".join(problems) + ".")

