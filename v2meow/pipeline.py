"""``V2Meow``: video (+ text) -> waveform, and the model directory format.

A model directory holds ``config.json`` (format name and version, the resolved :class:`V2MeowConfig`, and
one entry per part with its file, size and SHA-256) and one ``<part>.safetensors`` per part. Loading never
unpickles anything and validates the config before any tensor is allocated.

Pretrained backbones (CLIP, I3D, ViT-VQGAN, EnCodec/DAC, HuBERT/MERT/w2v-BERT, CLAP) are parts like the others:
their weights are saved into the directory (``encoder_<name>``, ``codec``, ``semantic_encoder``, ``joint``) and
their network configuration into ``config.json``, so a directory is self-contained and loads offline without
the checkpoints it was first built from. A part may carry string metadata in its safetensors header (CLAP's
tokenizer) through ``safetensors_metadata()`` / ``load_safetensors_metadata()``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

import v2meow
from v2meow.config import V2MeowConfig, load_preset, preset_names
from v2meow.errors import ConfigError, UserError
from v2meow.features.registry import build_encoder, extract_features
from v2meow.io.atomic import publish
from v2meow.io.video import probe
from v2meow.modules.adaptors import StreamSpec
from v2meow.sampling import make_generator
from v2meow.stages.coarse import CoarseStage
from v2meow.stages.fine import FineStage
from v2meow.stages.semantic import SemanticStage
from v2meow.text.towers import build_text_tower
from v2meow.tokenizers.codec.factory import build_codec
from v2meow.tokenizers.kmeans import KMeans
from v2meow.tokenizers.patterns import join_levels
from v2meow.tokenizers.semantic import SemanticEncoder, SemanticTokenizer, kmeans_fit_identity
from v2meow.tokenizers.ssl import build_ssl_encoder

FORMAT = "v2meow-model"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
PARTS = ("semantic", "coarse", "fine", "codec", "semantic_encoder", "semantic_kmeans")
# Building a model from a directory's config may allocate twice the values its weight files hold plus this
# headroom (non-persistent buffers), and never more than MAX_PARAMETERS (80 GB in fp32): a config.json that asks
# for more is refused before the allocation (see AllocationGuard).
ALLOCATION_HEADROOM = 64 << 20
MAX_PARAMETERS = 20_000_000_000
# --seconds may exceed the video's length by this much (rounding of a length read off a player).
SECONDS_SLACK = 0.05
# A config.json larger than this is not a model config (the largest, with pretrained backbones, is a few KB).
MAX_CONFIG_BYTES = 16 << 20

SHIPPED_TOKENIZERS = ("embedded",)  # presets whose tokenizers ship trained in the package
ProgressCallback = Callable[[str, int, int], None]  # (stage name, steps done, steps total)


@dataclass
class Soundtrack:
    """A generated soundtrack: ``wav [N]`` float32 at ``sample_rate``, and the tokens it came from."""

    wav: np.ndarray
    sample_rate: int
    semantic: Tensor  # [T_s]
    acoustic: Tensor  # [N_q, T_a]

    @property
    def seconds(self) -> float:
        return len(self.wav) / self.sample_rate


def resolve_streams(cfg: V2MeowConfig, encoders: list) -> None:
    """Fill the stages' visual streams from the encoders where a preset left them out."""
    specs = [StreamSpec(name=e.name, dim=e.dim, rate=e.rate) for e in encoders]
    if not cfg.semantic.streams:
        cfg.semantic.streams = list(specs)
    if cfg.coarse.variant == "encdec" and not cfg.coarse.streams:
        cfg.coarse.streams = list(specs)


def check_fit(cfg: V2MeowConfig, encoders: list) -> None:
    """Refuse stages that do not fit together, each mismatch in one sentence."""
    enc = {e.name: e for e in encoders}
    problems = []
    for stage, streams in (("stage 1", cfg.semantic.streams), ("stage 2", cfg.coarse.streams)):
        for s in streams:
            e = enc.get(s.name)
            if e is None:
                problems.append(f"{stage} reads visual stream {s.name!r}, which no encoder produces")
            elif (s.dim, s.rate) != (e.dim, e.rate):
                problems.append(f"{stage} expects {s.name!r} features of dim {s.dim} at {s.rate}/s, "
                                f"but the encoder gives dim {e.dim} at {e.rate}/s")
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
    if cfg.fine.coarse_levels + cfg.fine.fine_levels != c.num_levels:
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


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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
        self.fine = FineStage(cfg.fine)
        self.codec = build_codec(cfg.codec, load_weights=load_weights)
        st = cfg.semantic_tokenizer
        self.semantic_encoder = (SemanticEncoder(st.encoder) if st.backend == "v2meow"
                                 else build_ssl_encoder(st.backend, st.ssl, load_weights=load_weights))
        self.semantic_kmeans = KMeans()

    # -- parts ----------------------------------------------------------------------------------
    def parts(self) -> dict[str, nn.Module]:
        """Every part with weights, by file stem: the fixed ``PARTS``, then pretrained visual encoders
        (``encoder_<name>``) and a joint music-text model with weights (``joint``)."""
        out = {name: getattr(self, name) for name in PARTS}
        for e in self.encoders:
            if isinstance(e, nn.Module):
                out[f"encoder_{e.name}"] = e
        if isinstance(self.text, nn.Module):
            out["joint"] = self.text
        return out

    @property
    def semantic_tokenizer(self) -> SemanticTokenizer:
        """Audio -> semantic tokens (used by extraction; generation does not need it)."""
        return SemanticTokenizer(self.semantic_encoder, self.semantic_kmeans, layer=self.cfg.semantic_tokenizer.layer)

    def randomize_semantic_kmeans(self, seed: int = 0) -> None:
        """Give an untrained model random k-means centroids (debug preset: every weight is random)."""
        g = torch.Generator().manual_seed(seed)
        st = self.cfg.semantic_tokenizer
        k = st.vocab_size
        d = st.encoder.width if st.backend == "v2meow" else self.semantic_encoder.dim
        self.semantic_kmeans.centroids = torch.randn(k, d, generator=g)
        self.semantic_kmeans.mean = torch.zeros(d)
        self.semantic_kmeans.scale = torch.ones(d)
        self.semantic_kmeans.fitted_on = kmeans_fit_identity(self.semantic_encoder, st.layer)

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

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike) -> V2Meow:
        """Load a model directory (``config.json`` + safetensors), or build a preset by name (random weights)."""
        path = str(path)
        if not os.path.exists(path) and path in preset_names():
            return cls.from_preset(path)
        root = Path(path)
        if not root.is_dir():
            hint = f" or a preset ({', '.join(preset_names())})" if os.sep not in path else ""
            raise UserError(f"Model {path} is not a directory; give a model directory{hint}.")
        meta = read_model_config(root)
        cfg = V2MeowConfig.from_dict(meta["config"], where=f"{root / CONFIG_FILE}")
        held = check_weight_files(root, meta)
        with AllocationGuard(min(MAX_PARAMETERS, 2 * held + ALLOCATION_HEADROOM), root, held):
            model = cls(cfg, load_weights=False)
        for name, module in model.parts().items():
            entry = meta["parts"].get(name)
            if entry is None:
                raise UserError(f"Model {root} lists no weights for part {name!r}.")
            file = root / str(entry.get("file", ""))
            if not file.is_file() or file.parent.resolve() != root.resolve():
                raise UserError(f"Model {root} is missing its weight file for {name!r} ({entry.get('file')}).")
            try:
                state = load_file(str(file))
            except (SafetensorError, OSError, ValueError) as e:
                raise UserError(f"Weight file {file} is corrupt or unreadable ({e.__class__.__name__}).") from None
            if name == "semantic_kmeans":
                module.fitted_on = dict(entry.get("fitted_on", {}))
            load_state(module, state, file)
            if hasattr(module, "load_safetensors_metadata"):
                with safe_open(str(file), framework="pt") as f:
                    module.load_safetensors_metadata(f.metadata())
        return model.eval()

    def save_pretrained(self, path: str | os.PathLike, dtype: torch.dtype | None = None) -> Path:
        """Write ``config.json`` and one safetensors file per part; the directory is replaced atomically."""
        root = Path(path)
        root.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
        try:
            entries: dict[str, Any] = {}
            for name, module in self.parts().items():
                state = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).contiguous().clone()
                         for k, v in module.state_dict().items()}
                file = f"{name}.safetensors"
                extra = module.safetensors_metadata() if hasattr(module, "safetensors_metadata") else None
                save_file(state, str(tmp / file), metadata=extra)
                entries[name] = {
                    "file": file,
                    "bytes": (tmp / file).stat().st_size,
                    "sha256": _sha256(tmp / file),
                    "parameters": int(sum(v.numel() for v in state.values())),
                }
                if name == "semantic_kmeans":
                    entries[name]["fitted_on"] = self.semantic_kmeans.fitted_on
            meta = {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "v2meow_version": v2meow.__version__,
                "config": self.cfg.to_dict(),
                "parts": entries,
            }
            (tmp / CONFIG_FILE).write_text(json.dumps(meta, indent=2, sort_keys=False))
            if root.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{root.name}.old.", dir=root.parent))
                os.replace(root, old / "m")
                publish(tmp, root)
                _rmtree(old)
            else:
                publish(tmp, root)
        except BaseException:
            _rmtree(tmp)
            raise
        return root

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
        if self.text is None or self.cfg.semantic.joint_dim == 0 or not hasattr(self.text, "embed_audio_segments"):
            return None
        return self.text.embed_audio_segments(wav, self.sample_rate)

    @torch.no_grad()
    def generate(
        self,
        video: str | os.PathLike,
        prompt: str | None = None,
        seconds: float | None = None,
        seed: int | None = None,
        guidance: float = 1.0,
        progress: ProgressCallback | None = None,
    ) -> Soundtrack:
        """A soundtrack for the first ``seconds`` of ``video`` (default: all of it).

        Longer than one window, each stage sweeps the length in windows; every window after the first is
        prompted with the tokens of the previous window's last ``generation.prompt_seconds`` (AudioLM-style
        continuation) while its encoder sees the matching stretch of video, so the music stays one piece.
        """
        info = probe(str(video))
        joint = self.embed_prompt(prompt)
        seconds = self.check_seconds(seconds, info.duration)
        if not (0.0 < guidance <= 20.0):
            raise UserError(f"--guidance must be in (0, 20], got {guidance}.")
        gen = make_generator(seed)
        feats = extract_features(str(video), self.encoders, start=0.0, duration=seconds)
        feats_t = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in feats.items()}

        def report(stage: str) -> Callable[[int, int], None] | None:
            return None if progress is None else (lambda done, total: progress(stage, done, total))

        semantic = self._sweep_semantic(feats_t, seconds, joint, guidance, gen, report("semantic"))
        coarse = self._sweep_coarse(feats_t, semantic, seconds, gen, report("coarse"))
        fine = self.fine.generate(coarse, generator=gen, progress=report("fine"))
        codes = join_levels(coarse, fine)
        wav = self.decode(codes, report("decode"))[0]
        n = int(round(seconds * self.sample_rate))
        wav = wav[:n].float().clamp(-1.0, 1.0).cpu().numpy()
        return Soundtrack(wav=wav, sample_rate=self.sample_rate, semantic=semantic[0], acoustic=codes[0])

    def _window_features(self, feats: dict[str, Tensor], names: list[str], t0: float, t1: float) -> dict:
        """Rows of each feature stream covering ``[t0, t1)`` seconds -> ``{name: [1, T, D]}``."""
        out = {}
        for e in self.encoders:
            if e.name in names:
                a = int(math.floor(t0 * e.rate + 1e-6))
                b = max(a + 1, int(math.ceil(t1 * e.rate - 1e-6)))
                rows = feats[e.name][a:b]
                if rows.shape[0] < b - a:  # the last window may run past the features by a rounding step
                    pad = rows[-1:].expand(b - a - rows.shape[0], -1)
                    rows = torch.cat([rows, pad])
                out[e.name] = rows[None]
        return out

    def _sweep_semantic(self, feats, seconds, joint, guidance, gen, progress) -> Tensor:
        rate = self.cfg.semantic.token_rate
        total = math.ceil(seconds * rate)
        windows = plan_windows(total, self.cfg.semantic.window_tokens, self._prompt_units(rate))
        names = [s.name for s in self.cfg.semantic.streams]
        out = torch.zeros(1, total, dtype=torch.long)
        done = 0
        for a, pe, b in windows:
            f = self._window_features(feats, names, a / rate, b / rate)
            tok = self.semantic.generate(
                f, b - pe, joint=joint, prompt=out[:, a:pe] if pe > a else None, guidance=guidance,
                generator=gen, progress=_offset(progress, done, total),
            )
            out[:, pe:b] = tok
            done += b - pe
        return out

    def _sweep_coarse(self, feats, semantic, seconds, gen, progress) -> Tensor:
        rate, s_rate = self.cfg.coarse.frame_rate, self.cfg.semantic.token_rate
        total = math.ceil(seconds * rate)
        windows = plan_windows(total, self.cfg.coarse.window_frames, self._prompt_units(rate))
        names = [s.name for s in self.cfg.coarse.streams]
        out = torch.zeros(1, self.cfg.coarse.levels, total, dtype=torch.long)
        steps_total, done = total * self.cfg.coarse.levels, 0
        for a, pe, b in windows:
            t0, t1 = a / rate, b / rate
            sa = int(math.floor(t0 * s_rate + 1e-6))
            sb = min(semantic.shape[1], max(sa + 1, int(math.ceil(t1 * s_rate - 1e-6))))
            codes = self.coarse.generate(
                semantic[:, sa:sb], b - pe, features=self._window_features(feats, names, t0, t1),
                prompt_codes=out[:, :, a:pe] if pe > a else None, generator=gen,
                progress=_offset(progress, done, steps_total),
            )
            out[:, :, pe:b] = codes
            done += (b - pe) * self.cfg.coarse.levels
        return out

    def _prompt_units(self, rate: float) -> int:
        return int(round(self.cfg.generation.prompt_seconds * rate))

    def decode(self, codes: Tensor, progress: Callable[[int, int], None] | None = None) -> Tensor:
        """Codec decode of ``codes [B, N_q, T_a]`` -> ``[B, T_a * hop]`` in chunks with context on both sides,
        so memory stays flat with length."""
        g = self.cfg.generation
        rate = self.cfg.codec.frame_rate
        chunk = max(1, int(round(g.decode_chunk_seconds * rate)))
        margin = int(round(g.decode_margin_seconds * rate))
        hop = self.codec.hop_length
        total = codes.shape[-1]
        pieces = []
        for a in range(0, total, chunk):
            b = min(total, a + chunk)
            lo, hi = max(0, a - margin), min(total, b + margin)
            wav = self.codec.decode(codes[..., lo:hi])
            pieces.append(wav[..., (a - lo) * hop: (b - lo) * hop])
            if progress is not None:
                progress(b, total)
        return torch.cat(pieces, -1)

    def check_seconds(self, seconds: float | None, duration: float) -> float:
        """The length to generate: ``seconds`` (at most the configured maximum) or the video's length."""
        limit = self.cfg.generation.max_seconds
        if seconds is None:
            seconds = duration
            if seconds > limit:
                raise UserError(f"The video lasts {duration:g} s; this model writes at most {limit:g} s per call "
                                "(pass --seconds to score its start).")
        elif not math.isfinite(seconds) or seconds <= 0:
            raise UserError(f"--seconds must be a positive number, got {seconds}.")
        elif seconds > limit:
            raise UserError(f"--seconds {seconds:g} is more than this model's limit of {limit:g} s.")
        elif seconds > duration + SECONDS_SLACK:
            raise UserError(f"--seconds {seconds:g} is longer than the video ({duration:.2f} s); leave it out to "
                            "score the whole video.")
        if seconds < 1.0 / self.cfg.codec.frame_rate:
            raise UserError(f"The video is too short ({duration:.3f} s) to write a soundtrack for.")
        return float(seconds)


def plan_windows(total: int, window: int, prompt: int) -> list[tuple[int, int, int]]:
    """Cover ``total`` units with windows of ``window`` units, each after the first prompted with the last
    ``prompt`` units of the one before. Returns ``(start, new_from, end)``: units ``[start, new_from)`` are
    the prompt, ``[new_from, end)`` are generated."""
    if total <= 0:
        return []
    prompt = min(prompt, window - 1)
    out = [(0, 0, min(window, total))]
    while out[-1][2] < total:
        end = out[-1][2]
        start = end - prompt
        out.append((start, end, min(start + window, total)))
    return out


def _offset(progress: Callable[[int, int], None] | None, base: int, total: int):
    if progress is None:
        return None
    return lambda done, _n: progress(base + done, total)


def read_model_config(root: Path) -> dict[str, Any]:
    file = root / CONFIG_FILE
    if not file.is_file():
        raise UserError(f"{root} is not a v2meow model directory (no {CONFIG_FILE}).")
    if file.stat().st_size > MAX_CONFIG_BYTES:
        raise UserError(f"{file} is {file.stat().st_size:,} bytes, far more than a model config; it is damaged or "
                        "not a v2meow model.")
    try:
        meta = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):  # ValueError: bad UTF-8 or JSON; RecursionError: absurd nesting
        raise UserError(f"{file} is not valid JSON.") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise UserError(f"{file} is not a v2meow model config.")
    if meta.get("format_version") != FORMAT_VERSION:
        raise UserError(f"{root} uses model format version {meta.get('format_version')}; this v2meow reads "
                        f"version {FORMAT_VERSION}.")
    if not isinstance(meta.get("config"), dict) or not isinstance(meta.get("parts"), dict):
        raise UserError(f"{file} lacks its config or parts.")
    return meta


def check_weight_files(root: Path, meta: dict[str, Any]) -> int:
    """Check every part's weight file before the model is built; return how many values the files hold.

    Each file must be a ``.safetensors`` file inside ``root`` whose SHA-256 is the one ``config.json`` records (so
    a damaged file is caught even where it still parses) and whose header, read without loading a tensor, parses.
    """
    held = 0
    for name, entry in meta["parts"].items():
        if not isinstance(entry, dict):
            raise UserError(f"Model {root} has a malformed entry for part {name!r} in its {CONFIG_FILE}.")
        file = root / str(entry.get("file", ""))
        if file.suffix != ".safetensors":
            raise UserError(f"Model {root} names {entry.get('file')!r} as the weights of {name!r}; v2meow reads "
                            "weights only from .safetensors files.")
        if not file.is_file() or file.parent.resolve() != root.resolve():
            raise UserError(f"Model {root} is missing its weight file for {name!r} ({entry.get('file')}).")
        if isinstance(entry.get("sha256"), str) and _sha256(file) != entry["sha256"]:
            raise UserError(f"Weight file {file} is corrupt: its SHA-256 differs from the one {CONFIG_FILE} records.")
        try:
            with safe_open(str(file), framework="pt") as f:
                held += sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())
        except (SafetensorError, OSError, ValueError) as e:
            raise UserError(f"Weight file {file} is corrupt or unreadable ({e.__class__.__name__}).") from None
    return held


_FACTORIES = frozenset({torch.empty, torch.zeros, torch.ones, torch.full, torch.rand, torch.randn, torch.empty_strided})


class AllocationGuard(TorchFunctionMode):
    """While active, refuses any new tensor that would take the values requested so far past ``limit``, before it
    is allocated: building a model from a ``config.json`` that asks for far more than its weight files hold (sizes
    each in range, together absurd) fails in one sentence instead of exhausting memory."""

    def __init__(self, limit: int, root: Path, held: int):
        super().__init__()
        self.limit, self.root, self.held, self.requested = limit, root, held, 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _FACTORIES:
            size = kwargs.get("size", args[0] if len(args) == 1 or func in (torch.full, torch.empty_strided) else args)
            try:
                self.requested += math.prod(int(n) for n in (size if isinstance(size, (tuple, list)) else (size,)))
            except (TypeError, ValueError):
                pass  # not a size this guard understands: the call itself will say what is wrong
            if self.requested > self.limit:
                raise UserError(f"Model {self.root}'s {CONFIG_FILE} asks for far larger tensors than its weight files "
                                f"hold ({self.held:,} values); it is damaged or not meant for this v2meow.")
        return func(*args, **kwargs)


def load_state(module: nn.Module, state: dict[str, Tensor], file: Path) -> None:
    """Strictly load ``state`` into ``module``, casting dtypes; mismatches are the user's corrupt file."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    if missing or extra:
        what = f"missing {missing[:3]}" if missing else f"unexpected {extra[:3]}"
        raise UserError(f"Weight file {file} does not match the model's config ({what}).")
    for k, v in own.items():
        if v.shape != state[k].shape and v.numel() > 0:
            raise UserError(f"Weight file {file} does not match the model's config ({k}: {tuple(state[k].shape)} "
                            f"instead of {tuple(v.shape)}).")
        if v.is_floating_point() != state[k].is_floating_point() or state[k].is_complex():
            # float16/bfloat16/float32 cast into each other (fp16 exports); integers never pass for floats
            raise UserError(f"Weight file {file} does not match the model's config ({k}: {state[k].dtype} "
                            f"instead of {v.dtype}).")
        if v.is_floating_point() and not torch.isfinite(state[k].float()).all():
            raise UserError(f"Weight file {file} holds non-finite values in {k}.")
    module.load_state_dict({k: state[k].to(own[k].dtype) for k in own}, strict=True)


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
