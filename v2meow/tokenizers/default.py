"""The tokenizers that ship with v2meow (the embedded preset's codec and semantic tokenizer), and their format.

A tokenizer directory holds:

- ``tokenizers.json``: format, both configs, both identities (checked on loading), the codec's coarse/fine
  split, how they were trained and a summary of the training music's sources and licences;
- ``codec.safetensors``: the SoundStream weights in float16, without the quantiser's EMA statistics
  (``embed_sum``, ``cluster_size``: training state, like optimiser moments); loading puts back their neutral
  values (usage 1, sum = code), which :func:`canonical_codec` also applies before an export is fingerprinted;
- ``semantic_encoder.safetensors`` (float16) and ``semantic_kmeans.safetensors`` (float16 centroids, with the
  ``fitted_on`` identity of the encoder weights and layer in the file's metadata).

Everything is loaded to float32. The semantic k-means was fitted on the float16-rounded encoder (see
:mod:`v2meow.train.tokenizers`), so its ``fitted_on`` record matches the loaded encoder exactly.
The package's own copy lives in ``v2meow/assets/tokenizers/``; :func:`load_tokenizers` without a path reads it.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from v2meow.errors import UserError
from v2meow.modeldir import sha256_file, staged_dir
from v2meow.tokenizers.codec.soundstream import SoundStream, SoundStreamConfig
from v2meow.tokenizers.kmeans import KMeans
from v2meow.tokenizers.semantic import SemanticEncoder, SemanticEncoderConfig, SemanticTokenizer

__all__ = [
    "FORMAT",
    "Tokenizers",
    "default_tokenizers_dir",
    "load_tokenizers",
    "save_tokenizers",
    "canonical_codec",
    "codec_state_for_shipping",
    "load_codec_state",
    "windowed_semantic_tokens",
    "load_fad_semantic",
    "save_fad_reference",
]

FORMAT = "v2meow-tokenizers"
FORMAT_VERSION = 1
INFO_FILE = "tokenizers.json"
CODEC_FILE = "codec.safetensors"
ENCODER_FILE = "semantic_encoder.safetensors"
KMEANS_FILE = "semantic_kmeans.safetensors"
# Quantiser statistics that only training updates; not shipped.
TRAINING_ONLY = ("quantizer.embed_sum", "quantizer.cluster_size")


def default_tokenizers_dir() -> Path:
    """Where the package keeps its shipped tokenizers (``v2meow/assets/tokenizers``)."""
    return Path(__file__).resolve().parents[1] / "assets" / "tokenizers"


# ---- codec state ------------------------------------------------------------------------------------------


def codec_state_for_shipping(codec: SoundStream, dtype: torch.dtype = torch.float16) -> dict[str, Tensor]:
    """The codec's state dict without training-only statistics, floats cast to ``dtype``."""
    return {k: (v.to(dtype) if v.is_floating_point() else v).detach().cpu().contiguous().clone()
            for k, v in codec.state_dict().items() if k not in TRAINING_ONLY}


def load_codec_state(codec: SoundStream, state: dict[str, Tensor], where: str = "codec weights") -> SoundStream:
    """Load a shipped state (float16, no EMA statistics) into ``codec`` as float32, neutral statistics put back."""
    own = codec.state_dict()
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    embed = state.get("quantizer.embed")
    if embed is not None:
        state.setdefault("quantizer.cluster_size", torch.ones(embed.shape[:2]))
        state.setdefault("quantizer.embed_sum", embed.clone())
    missing, extra = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or extra:
        what = f"missing {missing[:3]}" if missing else f"unexpected {extra[:3]}"
        raise UserError(f"The {where} do not match the codec's config ({what}).")
    for k, v in own.items():
        if v.shape != state[k].shape:
            raise UserError(f"The {where} do not match the codec's config ({k}: {tuple(state[k].shape)} "
                            f"instead of {tuple(v.shape)}).")
        if v.is_floating_point() and not torch.isfinite(state[k]).all():
            raise UserError(f"The {where} hold non-finite values in {k}.")
    codec.load_state_dict(state)
    return codec


def canonical_codec(codec: SoundStream) -> SoundStream:
    """A float32 copy of ``codec`` exactly as it is after shipping and loading (float16 weights, neutral EMA)."""
    out = SoundStream(SoundStreamConfig.from_dict(codec.config.to_dict()))
    return load_codec_state(out, codec_state_for_shipping(codec)).eval()


# ---- the pair -----------------------------------------------------------------------------------------------


class Tokenizers:
    """The semantic tokenizer and the acoustic codec used together (same sample rate), with chunked helpers.

    Long audio is processed in windows with context on both sides, so memory stays flat with length: the
    encoder's attention is quadratic in length, and a codec decoder needs only a short context.
    """

    def __init__(self, codec: SoundStream, semantic: SemanticTokenizer, info: dict[str, Any] | None = None) -> None:
        if codec.sample_rate != semantic.sample_rate:
            raise UserError(f"The codec runs at {codec.sample_rate} Hz but the semantic tokenizer at "
                            f"{semantic.sample_rate} Hz.")
        self.codec = codec.eval()
        self.semantic = semantic
        self.info = dict(info or {})
        self._identity: dict[str, Any] | None = None

    @property
    def sample_rate(self) -> int:
        return self.codec.sample_rate

    @property
    def coarse_levels(self) -> int:
        return int(self.info.get("coarse_levels", max(1, self.codec.num_levels // 2)))

    def identity(self) -> dict[str, Any]:
        """``{"semantic": ..., "codec": ...}`` (fingerprints are computed once)."""
        if self._identity is None:
            self._identity = {"semantic": self.semantic.identity(), "codec": self.codec.identity()}
        return self._identity

    @torch.no_grad()
    def semantic_tokens(self, wav: Tensor, window_seconds: float = 10.0, context_seconds: float = 2.0) -> Tensor:
        """``wav [T]`` → semantic ids ``[ceil(T / hop)]``, in windows of ``window_seconds`` with context."""
        return windowed_semantic_tokens(self.semantic, wav, window_seconds, context_seconds)

    @torch.no_grad()
    def acoustic_codes(self, wav: Tensor, n_levels: int | None = None, window_seconds: float = 30.0,
                       context_seconds: float = 1.0) -> Tensor:
        """``wav [T]`` → codes ``[n_levels, ceil(T / hop)]`` (all levels by default)."""
        hop, sr = self.codec.hop_length, self.sample_rate
        return _windowed(lambda x: self.codec.encode(x[None], n_levels)[0], wav, hop,
                         _frames(window_seconds, sr, hop), _frames(context_seconds, sr, hop), self.codec.frame_cycle)

    @torch.no_grad()
    def decode(self, codes: Tensor, window_seconds: float = 30.0, context_seconds: float = 1.0) -> Tensor:
        """Codes ``[n, T_a]`` → ``wav [T_a * hop]``, decoded in windows with context."""
        hop = self.codec.hop_length
        win, ctx = _frames(window_seconds, self.sample_rate, hop), _frames(context_seconds, self.sample_rate, hop)
        return self.codec.decode_windows(codes[None], win, ctx)[0]


@torch.no_grad()
def windowed_semantic_tokens(semantic: SemanticTokenizer, wav: Tensor, window_seconds: float = 10.0,
                             context_seconds: float = 2.0) -> Tensor:
    """``wav [T]`` → ids ``[ceil(T / hop)]`` of ``semantic``, in windows of ``window_seconds`` with context."""
    hop, sr = semantic.hop_length, semantic.sample_rate
    return _windowed(lambda x: semantic.tokenize(x[None])[0], wav, hop, _frames(window_seconds, sr, hop),
                     _frames(context_seconds, sr, hop))


def _frames(seconds: float, sample_rate: int, hop: int) -> int:
    return max(1, round(seconds * sample_rate / hop))


def _windowed(fn, wav: Tensor, hop: int, win: int, ctx: int, cycle: int = 1) -> Tensor:
    """Apply a ``[T] → [..., T_frames]`` function in windows of ``win`` frames with ``ctx`` frames of context;
    every call of ``fn`` starts on a multiple of ``cycle`` frames (a codec's :attr:`frame_cycle`)."""
    if wav.dim() != 1 or wav.shape[0] == 0:
        raise UserError(f"Audio must be a non-empty mono signal, got shape {tuple(wav.shape)}.")
    frames = math.ceil(wav.shape[0] / hop)
    wav = torch.nn.functional.pad(wav, (0, frames * hop - wav.shape[0]))
    pieces = []
    for start in range(0, frames, win):
        a, b = max(0, start - ctx) // cycle * cycle, min(frames, start + win + ctx)
        out = fn(wav[a * hop : b * hop])
        pieces.append(out[..., start - a : min(frames, start + win) - a])
    return torch.cat(pieces, dim=-1)


# ---- saving and loading -----------------------------------------------------------------------------------


def save_tokenizers(codec: SoundStream, semantic: SemanticTokenizer, out_dir: str | os.PathLike,
                    training: dict[str, Any] | None = None, sources: dict[str, Any] | None = None,
                    coarse_levels: int | None = None, extra: dict[str, Any] | None = None) -> Path:
    """Write a tokenizer directory (float16 weights, ``tokenizers.json``); replaces ``out_dir`` atomically.

    The identities recorded are those of the tokenizers as loaded back from the written files.
    """
    from safetensors.torch import save_file

    if not isinstance(semantic.encoder, SemanticEncoder):
        raise UserError("Only the project's own semantic encoder can be saved as a shipped tokenizer.")
    coarse = coarse_levels if coarse_levels is not None else max(1, codec.num_levels // 2)
    if not 1 <= coarse <= codec.num_levels:
        raise UserError(f"coarse_levels must be in 1..{codec.num_levels}, got {coarse}.")
    root = Path(out_dir)
    with staged_dir(root) as tmp:
        save_file(codec_state_for_shipping(codec), str(tmp / CODEC_FILE), metadata={"format": f"{FORMAT}/codec"})
        sem = _write_semantic(semantic, tmp, FORMAT)
        info: dict[str, Any] = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "sample_rate": codec.sample_rate,
            "coarse_levels": coarse,
            "fine_levels": codec.num_levels - coarse,
            "codec": {"config": codec.config.to_dict(), "file": CODEC_FILE},
            "semantic": sem,
            "training": training or {},
            "sources": sources or {},
            **(extra or {}),
        }
        (tmp / INFO_FILE).write_text(json.dumps(info, indent=1))
        loaded = load_tokenizers(tmp, check=False)  # fingerprints of exactly what a user will load
        info["identity"] = loaded.identity()
        for name in (CODEC_FILE, ENCODER_FILE, KMEANS_FILE):
            info.setdefault("files", {})[name] = {"bytes": (tmp / name).stat().st_size,
                                                  "sha256": sha256_file(tmp / name)}
        (tmp / INFO_FILE).write_text(json.dumps(info, indent=1))
        umask = os.umask(0)
        os.umask(umask)
        for f in tmp.iterdir():  # safetensors may write private files; a tokenizer directory is for everyone
            os.chmod(f, 0o666 & ~umask)
    _CACHE.pop(str(root.resolve()), None)
    return root


_CACHE: dict[str, tuple[tuple[int, ...], Tokenizers]] = {}


def load_tokenizers(path: str | os.PathLike | None = None, check: bool = True) -> Tokenizers:
    """Load a tokenizer directory (the shipped one when ``path`` is None) to float32, in eval mode.

    With ``check``, the loaded tokenizers' identities must equal those recorded in ``tokenizers.json``.
    The shipped tokenizers are cached per process.
    """
    root = Path(path) if path is not None else default_tokenizers_dir()
    info_file = root / INFO_FILE
    read = _reader(root)
    if not info_file.is_file():
        if path is None:
            raise UserError("This installation of v2meow ships no tokenizers (v2meow/assets/tokenizers is missing); "
                            "train them with `v2meow train codec` and `v2meow train semantic-tokenizer`.")
        raise UserError(f"{root} is not a tokenizer directory (no {INFO_FILE}).")
    key = str(root.resolve())
    stamp = tuple(f.stat().st_mtime_ns for f in sorted(root.iterdir()) if f.is_file())
    if check and key in _CACHE and _CACHE[key][0] == stamp:
        return _CACHE[key][1]
    try:
        info = json.loads(info_file.read_text())
    except ValueError:
        raise UserError(f"{info_file} is not valid JSON.") from None
    if info.get("format") != FORMAT or int(info.get("format_version", 0)) > FORMAT_VERSION:
        raise UserError(f"{root} holds format {info.get('format')!r} version {info.get('format_version')}, "
                        f"not {FORMAT} {FORMAT_VERSION} or older.")

    codec = SoundStream(SoundStreamConfig.from_dict(info["codec"]["config"], where=f"{info_file} codec"))
    load_codec_state(codec, read(info["codec"].get("file", CODEC_FILE)), where=f"weights in {root / CODEC_FILE}")
    semantic = _read_semantic(root, info["semantic"], info_file, read)
    tok = Tokenizers(codec, semantic, info)
    if check and "identity" in info:
        got = tok.identity()
        for part in ("semantic", "codec"):
            recorded = info["identity"].get(part) or {}
            mine = {k: v for k, v in got[part].items() if k != "codes" or "codes" in recorded}  # older records
            if mine != recorded:
                raise UserError(f"The {part} weights in {root} are not the ones its {INFO_FILE} records "
                                "(corrupt or edited files).")
    if check:
        _CACHE[key] = (stamp, tok)
    return tok


def _reader(root: Path):
    """``read(name)``: the tensors of ``root / name``, or one clear sentence when missing or corrupt."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    def read(name: str) -> dict[str, Tensor]:
        file = root / name
        if not file.is_file():
            raise UserError(f"The tokenizer directory {root} is missing {name}.")
        try:
            return load_file(str(file))
        except (SafetensorError, OSError, ValueError) as e:
            raise UserError(f"{file} is corrupt or unreadable ({e.__class__.__name__}).") from None

    return read


def _write_semantic(semantic: SemanticTokenizer, folder: Path, fmt: str) -> dict[str, Any]:
    """Write ``semantic``'s encoder and k-means (float16) into ``folder``; returns the ``semantic`` section that
    :func:`_read_semantic` reads them back by."""
    from safetensors.torch import save_file

    enc_state = {k: v.detach().cpu().half().contiguous() for k, v in semantic.encoder.state_dict().items()}
    save_file(enc_state, str(folder / ENCODER_FILE), metadata={"format": f"{fmt}/semantic-encoder"})
    km_state = {k: v.detach().cpu().half().contiguous() for k, v in semantic.kmeans.state_dict().items()}
    save_file(km_state, str(folder / KMEANS_FILE), metadata=semantic.kmeans.to_metadata())
    return {"encoder_config": semantic.encoder.config.to_dict(), "layer": semantic.layer,
            **({"chroma": semantic.chroma} if semantic.chroma else {}),
            "vocab_size": semantic.vocab_size, "encoder_file": ENCODER_FILE, "kmeans_file": KMEANS_FILE}


def _read_semantic(root: Path, sem: dict[str, Any], info_file: Path, read) -> SemanticTokenizer:
    """The semantic tokenizer a ``semantic`` section of ``info_file`` describes, its files in ``root``."""
    encoder = SemanticEncoder(SemanticEncoderConfig.from_dict(sem["encoder_config"], where=f"{info_file} encoder"))
    enc_state = read(sem.get("encoder_file", ENCODER_FILE))
    try:
        encoder.load_state_dict({k: v.float() for k, v in enc_state.items()})
    except RuntimeError:
        raise UserError(f"{root / ENCODER_FILE} does not match the encoder config in {info_file}.") from None
    kmeans = KMeans.load(root / sem.get("kmeans_file", KMEANS_FILE))
    return SemanticTokenizer(encoder.eval(), kmeans, int(sem["layer"]), chroma=int(sem.get("chroma", 0)))


# ---- the FAD reference encoder --------------------------------------------------------------------------------
# FAD's offline embedding is a semantic encoder's token layer. It is pinned in ``v2meow/assets/fad`` (the encoder
# and k-means the package shipped when the embedded model's gate was first measured), so that a release that ships
# a new semantic tokenizer is still scored on the same embedding as the release before it.

FAD_FORMAT = "v2meow-fad-reference"
FAD_INFO = "fad.json"


def default_fad_dir() -> Path:
    return Path(__file__).resolve().parents[1] / "assets" / "fad"


def save_fad_reference(semantic: SemanticTokenizer, out_dir: str | os.PathLike, note: str = "") -> Path:
    """Write ``semantic``'s encoder and k-means (float16) with ``fad.json`` (config, identity); atomic."""
    root = Path(out_dir)
    with staged_dir(root) as tmp:
        sem = _write_semantic(semantic, tmp, FAD_FORMAT)
        info = {"format": FAD_FORMAT, "format_version": 1, "note": note, "semantic": sem}
        (tmp / FAD_INFO).write_text(json.dumps(info, indent=1))
        info["identity"] = _read_semantic(tmp, sem, tmp / FAD_INFO, _reader(tmp)).identity()
        (tmp / FAD_INFO).write_text(json.dumps(info, indent=1))
        for f in tmp.iterdir():
            os.chmod(f, 0o644)
    return root


def load_fad_semantic(path: str | os.PathLike | None = None) -> SemanticTokenizer:
    """The pinned FAD reference encoder (``v2meow/assets/fad`` when ``path`` is None), checked against the identity
    its ``fad.json`` records."""
    root = Path(path) if path is not None else default_fad_dir()
    info_file = root / FAD_INFO
    if not info_file.is_file():
        raise UserError(f"{root} holds no FAD reference encoder (no {FAD_INFO}).")
    try:
        info = json.loads(info_file.read_text())
    except ValueError:
        raise UserError(f"{info_file} is not valid JSON.") from None
    if info.get("format") != FAD_FORMAT:
        raise UserError(f"{info_file} is not a {FAD_FORMAT} file.")
    semantic = _read_semantic(root, info["semantic"], info_file, _reader(root))
    if semantic.identity() != info.get("identity"):
        raise UserError(f"The FAD reference weights in {root} are not the ones its {FAD_INFO} records.")
    return semantic
