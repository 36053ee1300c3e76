"""Token files: the semantic and acoustic tokens of one piece of audio, with what is needed to decode them.

A token file is a safetensors file (no pickle) with two integer tensors, ``semantic [T_s]`` and
``acoustic [N_q, T_a]``, and string metadata: the format, the sample rate and length of the audio, where it came
from, and the identities of both tokenizers (as JSON). Decoding refuses tokens whose codec identity differs from
the decoding codec's (:meth:`AcousticCodec.check_codes`), so tokens of one codec are never played through another.

:func:`tokenize` and :func:`detokenize` are what ``v2meow tokenize`` and ``v2meow detokenize`` run.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from v2meow.errors import UserError
from v2meow.io.atomic import publish
from v2meow.io.audio import AUDIO_EXTENSIONS
from v2meow.io.probe import VIDEO_EXTENSIONS

__all__ = ["FORMAT", "TokenFile", "save_tokens", "load_tokens", "tokenize", "detokenize", "TOKEN_SUFFIX"]

FORMAT = "v2meow-tokens/1"
TOKEN_SUFFIX = ".tokens.safetensors"
MEDIA_EXTENSIONS = AUDIO_EXTENSIONS + VIDEO_EXTENSIONS


@dataclass
class TokenFile:
    """The tokens of one piece of audio: ``semantic [T_s]`` and ``acoustic [N_q, T_a]`` (long)."""

    semantic: Tensor
    acoustic: Tensor
    sample_rate: int
    num_samples: int
    semantic_identity: dict[str, Any]
    codec_identity: dict[str, Any]
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return self.num_samples / self.sample_rate


def _int_tensor(t: Tensor) -> Tensor:
    t = t.detach().cpu()
    small = t.numel() == 0 or (int(t.min()) >= -(2**15) and int(t.max()) < 2**15)
    return t.to(torch.int16 if small else torch.int32).contiguous()


def save_tokens(path: str | os.PathLike, tokens: TokenFile) -> Path:
    """Write ``tokens`` to ``path`` atomically (int16 when the ids fit, else int32)."""
    from safetensors.torch import save_file

    if tokens.semantic.dim() != 1 or tokens.acoustic.dim() != 2:
        raise ValueError(f"need semantic [T_s] and acoustic [N_q, T_a], got {tuple(tokens.semantic.shape)} and "
                         f"{tuple(tokens.acoustic.shape)}.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "format": FORMAT,
        "sample_rate": str(int(tokens.sample_rate)),
        "num_samples": str(int(tokens.num_samples)),
        "source": tokens.source,
        "semantic_identity": json.dumps(tokens.semantic_identity, sort_keys=True),
        "codec_identity": json.dumps(tokens.codec_identity, sort_keys=True),
        "extra": json.dumps(tokens.extra, sort_keys=True),
    }
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        save_file({"semantic": _int_tensor(tokens.semantic), "acoustic": _int_tensor(tokens.acoustic)}, tmp,
                  metadata=meta)
        publish(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_tokens(path: str | os.PathLike) -> TokenFile:
    """Read a token file written by :func:`save_tokens`; a missing or foreign file is the user's error."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise UserError(f"The token file {path} does not exist.")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != FORMAT:
                raise UserError(f"{path} is not a v2meow token file (format {meta.get('format')!r}).")
            semantic, acoustic = f.get_tensor("semantic").long(), f.get_tensor("acoustic").long()
        return TokenFile(
            semantic=semantic,
            acoustic=acoustic,
            sample_rate=int(meta["sample_rate"]),
            num_samples=int(meta["num_samples"]),
            semantic_identity=json.loads(meta["semantic_identity"]),
            codec_identity=json.loads(meta["codec_identity"]),
            source=meta.get("source", ""),
            extra=json.loads(meta.get("extra", "{}")),
        )
    except UserError:
        raise
    except (SafetensorError, OSError, ValueError, KeyError) as e:
        raise UserError(f"{path} is not a readable v2meow token file ({e.__class__.__name__}).") from None


def _tokenizers(tokenizers: Any):
    from v2meow.tokenizers.default import Tokenizers, load_tokenizers

    if isinstance(tokenizers, Tokenizers):
        return tokenizers
    return load_tokenizers(tokenizers)


def _inputs(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list[tuple[Path, Path]]:
    """Each input media file with the path its tokens get relative to the output folder."""
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    out: list[tuple[Path, Path]] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in MEDIA_EXTENSIONS)
            if not found:
                raise UserError(f"The folder {p} holds no audio or video files.")
            out += [(f, f.relative_to(p).with_suffix("")) for f in found]
        elif p.is_file():
            out.append((p, Path(p.stem)))
        else:
            raise UserError(f"The input {p} does not exist.")
    return out


def tokenize(paths: str | os.PathLike | Iterable[str | os.PathLike], out: str | os.PathLike,
             tokenizers: Any = None, progress: bool = False) -> list[Path]:
    """Write the semantic and acoustic tokens of audio (or video) files to token files; returns their paths.

    ``paths``: a file, a folder (every audio/video file below it) or a list of them. ``out``: a ``.safetensors``
    file for a single input, otherwise a folder receiving ``<name>.tokens.safetensors`` per input (folder layout
    kept). ``tokenizers``: a :class:`~v2meow.tokenizers.default.Tokenizers`, a tokenizer directory, or None for
    the shipped ones.
    """
    from v2meow.io.audio import load_audio

    tok = _tokenizers(tokenizers)
    inputs = _inputs(paths)
    out = Path(out)
    single = len(inputs) == 1 and out.suffix == ".safetensors"
    if not single and out.suffix == ".safetensors":
        raise UserError(f"{len(inputs)} inputs need an output folder, not the file {out}.")
    ident = tok.identity()
    written = []
    iterator: Iterable = inputs
    if progress:
        from tqdm import tqdm

        iterator = tqdm(inputs, desc="tokenize", unit="file")
    for src, rel in iterator:
        wav = torch.from_numpy(load_audio(src, tok.sample_rate, mono=True))
        if wav.numel() == 0:
            raise UserError(f"{src} holds no audio.")
        tokens = TokenFile(
            semantic=tok.semantic_tokens(wav),
            acoustic=tok.acoustic_codes(wav),
            sample_rate=tok.sample_rate,
            num_samples=int(wav.shape[0]),
            semantic_identity=ident["semantic"],
            codec_identity=ident["codec"],
            source=src.name,
            extra={"coarse_levels": tok.coarse_levels},
        )
        target = out if single else out / rel.parent / (rel.name + TOKEN_SUFFIX)
        written.append(save_tokens(target, tokens))
    return written


def detokenize(token_file: str | os.PathLike, out_wav: str | os.PathLike, tokenizers: Any = None,
               levels: int | None = None) -> Path:
    """Decode a token file's acoustic tokens (its first ``levels`` levels, all by default) to audio at ``out_wav``,
    any peak over -0.1 dBFS limited rather than clipped (:func:`v2meow.io.limiter.under_full_scale`).

    Refuses (IdentityMismatch, a UserError) tokens made by another codec than the decoding one.
    """
    from v2meow.io.audio import save_audio
    from v2meow.io.limiter import under_full_scale

    tok = _tokenizers(tokenizers)
    tokens = load_tokens(token_file)
    codes = tokens.acoustic
    tok.codec.check_codes(codes, tokens.codec_identity)
    if tokens.sample_rate != tok.sample_rate:
        raise UserError(f"{token_file} was made at {tokens.sample_rate} Hz, but this codec runs at "
                        f"{tok.sample_rate} Hz.")
    if levels is not None:
        if not 1 <= levels <= codes.shape[0]:
            raise UserError(f"levels must be in 1..{codes.shape[0]}, got {levels}.")
        codes = codes[:levels]
    wav = tok.decode(codes)[: tokens.num_samples]
    out_wav = Path(out_wav)
    out_wav.parent.mkdir(parents=True, exist_ok=True)
    save_audio(out_wav, under_full_scale(wav.numpy(), tok.sample_rate), tok.sample_rate)
    return out_wav
