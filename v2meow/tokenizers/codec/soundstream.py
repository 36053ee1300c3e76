"""The project's own acoustic codec: SoundStream with two interchangeable bodies behind one class.

- ``body="conv"``: the SoundStream paper's sample-rate network. Strided 1-D convolutions (strides 2·4·5·8 = 320,
  so 50 frames/s at 16 kHz) with residual units of dilations 1, 3, 9 and ELU; a mirrored transposed-conv decoder.
  Good on GPUs, slow to train on a CPU (DESIGN.md measurements).
- ``body="frame"``: a frame-rate network (Vocos-like). STFT frames in, ConvNeXt 1-D blocks at 50 Hz, RVQ,
  ConvNeXt blocks, and a head predicting log-magnitude and phase (as a unit vector) per frame, turned back into
  audio by an inverse STFT with the same hop. About 5x cheaper per step on a CPU.

Both go through the same :class:`ResidualVQ`. No training loop here: a trainer calls :meth:`SoundStream.loss`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from v2meow.configbase import Config, check
from v2meow.tokenizers.codec.base import AcousticCodec, config_hash, weights_fingerprint
from v2meow.tokenizers.codec.layers import ChannelNorm, ConvNeXtBlock, ResidualUnit, SameConv1d, TrimConvTranspose1d
from v2meow.tokenizers.codec.losses import MultiScaleMelLoss, MultiScaleSTFTLoss
from v2meow.tokenizers.codec.rvq import ResidualVQ, RVQConfig
from v2meow.tokenizers.codec.spectral import (  # noqa: F401  (importable from here as before)
    frame_level,
    frequency_deviation_loss,
    istft_same,
    phase_advance,
    phase_from_frequency,
    phase_from_gradient,
    stft_same,
)

__all__ = ["SoundStreamConfig", "SoundStream", "stft_same", "istft_same"]

LEVEL_ESTIMATES = ("mean_log", "log_rms")
BODIES = ("conv", "frame")
PHASE_HEADS = ("unit", "frequency")
# the decoder's phase head only (the first two kept by every frequency head, the others only when not 0)
HEAD_FIELDS = ("phase_head", "freq_weight", "freq_below_hz", "freq_hidden", "freq_reset_db")


@dataclass
class SoundStreamConfig(Config):
    """SoundStream codec. ``hop_length`` is ``prod(strides)`` (conv) or ``frame_hop`` (frame) and must equal
    ``sample_rate / frame_rate``."""

    sample_rate: int = 16000
    frame_rate: float = 50.0
    body: str = "conv"  # "conv" | "frame"
    num_levels: int = 8
    codebook_size: int = 1024
    latent_dim: int = 128
    causal: bool = False  # causal convolutions (streaming); the frame body's STFT window still looks ahead
    # conv body
    channels: int = 32  # doubled after each stride: 32 → 64 → 128 → 256 → 512
    strides: tuple[int, ...] = (2, 4, 5, 8)
    dilations: tuple[int, ...] = (1, 3, 9)
    kernel_size: int = 7
    # frame body. A window of four hops: the summed Hann window and squared window are then flat, so decoded
    # frames that are not an exact STFT still overlap-add without a ripple at the frame rate (1024 / 320, 3.2
    # hops, modulates everything decoded at 50 Hz by a few percent; tests/tokenizers/test_codec.py).
    n_fft: int = 1280
    frame_hop: int = 320
    width: int = 256
    blocks: int = 4  # ConvNeXt blocks in the decoder (and in the encoder unless encoder_blocks is set)
    encoder_blocks: int = -1  # ConvNeXt blocks in the encoder; -1: the same as blocks
    # Level path (frame body): the encoder's network sees each frame's spectrum with its level (mean log
    # magnitude) taken out, and the level enters the latent along one learnt direction, read back by the decoder
    # and added to its log magnitudes. A gain then moves only that direction, so the codec is level-linear by
    # construction, and its normalisation layers cannot squash loud and soft music together (without it, a
    # codec measured 5-7 dB less gain at -12 than at -36 dBFS, bench.codec). Off for codecs trained before.
    level_path: bool = False
    # How the level path measures a frame's level (a gain g adds log g under both): "mean_log", the mean log
    # magnitude over all bins (codecs trained before), which the nearly empty bins near Nyquist dominate: audio
    # resampled from 44.1 or 48 kHz, whose top band the resampler empties, measured 8-14 dB low and decoded that
    # much quieter and noisier; "log_rms", the log of the frame's RMS magnitude, set by the bins that hold the energy.
    level_estimate: str = "mean_log"
    # Phase advance (frame body): phases are coded relative to each bin's own advance from frame to frame
    # (2 pi k hop / n_fft at frame k), as a phase vocoder reads them. Without it a decoder that cannot recover
    # a frame's exact phase from the codes falls back to the same phase in every frame, and frames that repeat
    # every hop overlap-add into a 50 Hz comb (bench.codec measured 290 times the input's power at 50 Hz);
    # with it the same fallback gives steady tones at the bins' frequencies. Off for codecs trained before.
    phase_advance: bool = False
    # Phase head (frame body): "unit", each frame's phase as a unit vector (relative to the bin's advance with
    # phase_advance); a decoder that cannot rotate it from frame to frame renders every steady partial at its bin's
    # centre, on a grid of sample_rate / n_fft (12.5 Hz: bench.codec's tone table measured no power on the
    # partials of an A4, and bass notes moved by up to two semitones). "frequency" adds a head that predicts each
    # bin's instantaneous frequency (its deviation from the bin's advance, radians per hop) and integrates the phase
    # from frame to frame with every bin locked to its nearest spectral peak; the unit head then only sets the
    # first frame. Trained by freq_weight times the magnitude-weighted cosine distance between the predicted and the
    # input's observed phase advance, beside the reconstruction losses. freq_below_hz > 0 keeps the integrated phase
    # (and the head, and its loss) to the bins below that frequency, the unit head's phase above it. freq_hidden > 0
    # gives the head a hidden layer of that width (kernel 3 over frames) instead of one linear map. freq_reset_db > 0:
    # where a bin's magnitude rises by more than that from one frame to the next (an attack), its phase restarts
    # from the unit head's instead of carrying on (decoding only; the head's weights do not depend on it).
    phase_head: str = "unit"
    freq_weight: float = 1.0
    freq_below_hz: float = 0.0
    freq_hidden: int = 0
    freq_reset_db: float = 0.0
    # quantiser training (see RVQConfig)
    ema: bool = True
    ema_decay: float = 0.99
    kmeans_init: bool = True
    dead_code_threshold: float = 1.0
    quantizer_dropout: float = 0.5
    # loss weights used by SoundStream.loss
    commitment_weight: float = 1.0
    stft_weight: float = 1.0
    mel_weight: float = 1.0
    # frame body: L1 between the decoder's log magnitudes and the input's in the same frames, so the magnitudes
    # stand on their own (decodable with a non-learned phase) rather than only together with the learnt phase
    frame_mag_weight: float = 0.0

    @property
    def hop_length(self) -> int:
        return math.prod(self.strides) if self.body == "conv" else self.frame_hop

    def to_dict(self) -> dict[str, Any]:
        # A codec with the level path, phase advance and frame-magnitude loss off writes (and hashes) the dict it
        # had before those fields existed, so the identity of codecs trained then, and of every token file they
        # made, stays the same.
        out = super().to_dict()
        for name in ("level_path", "phase_advance", "frame_mag_weight"):
            if not out[name]:
                del out[name]
        if out["phase_head"] == "unit":
            for name in HEAD_FIELDS:
                del out[name]
        for name in HEAD_FIELDS[2:]:
            if not out.get(name, 1):
                del out[name]
        if out["level_estimate"] == "mean_log":
            del out["level_estimate"]
        return out

    def validate(self) -> None:
        check(self.body in BODIES, f"SoundStream body must be one of {', '.join(BODIES)}, got {self.body!r}.")
        check(self.phase_head in PHASE_HEADS,
              f"SoundStream phase_head must be one of {', '.join(PHASE_HEADS)}, got {self.phase_head!r}.")
        check(self.phase_head == "unit" or (self.body == "frame" and self.phase_advance),
              "SoundStream phase_head 'frequency' needs the frame body with phase_advance.")
        for name in HEAD_FIELDS[1:]:
            check(getattr(self, name) >= 0, f"SoundStream {name} must be >= 0, got {getattr(self, name)}.")
        check(self.level_estimate in LEVEL_ESTIMATES,
              f"SoundStream level_estimate must be one of {', '.join(LEVEL_ESTIMATES)}, got {self.level_estimate!r}.")
        check(self.sample_rate > 0 and self.frame_rate > 0, "SoundStream sample_rate and frame_rate must be > 0.")
        check(self.num_levels >= 1, f"SoundStream num_levels must be >= 1, got {self.num_levels}.")
        check(self.codebook_size >= 2, f"SoundStream codebook_size must be >= 2, got {self.codebook_size}.")
        check(self.latent_dim >= 1, f"SoundStream latent_dim must be >= 1, got {self.latent_dim}.")
        if self.body == "conv":
            check(len(self.strides) >= 1 and all(s >= 1 for s in self.strides), "SoundStream strides must be >= 1.")
            check(self.channels >= 1, f"SoundStream channels must be >= 1, got {self.channels}.")
            check(all(d >= 1 for d in self.dilations), "SoundStream dilations must be >= 1.")
            check(self.kernel_size % 2 == 1, f"SoundStream kernel_size must be odd, got {self.kernel_size}.")
        else:
            check(self.frame_hop >= 1, f"SoundStream frame_hop must be >= 1, got {self.frame_hop}.")
            check(
                self.n_fft >= self.frame_hop and (self.n_fft - self.frame_hop) % 2 == 0,
                f"SoundStream n_fft ({self.n_fft}) must be >= frame_hop ({self.frame_hop}) and differ from it "
                "by an even number.",
            )
            check(self.width >= 1 and self.blocks >= 0, "SoundStream width must be >= 1 and blocks >= 0.")
            check(self.encoder_blocks >= -1, "SoundStream encoder_blocks must be >= 0 (or -1: as blocks).")
        check(
            abs(self.sample_rate / self.hop_length - self.frame_rate) < 1e-6,
            f"SoundStream hop length {self.hop_length} gives {self.sample_rate / self.hop_length:g} frames/s at "
            f"{self.sample_rate} Hz, but frame_rate is {self.frame_rate:g}.",
        )
        for name in ("commitment_weight", "stft_weight", "mel_weight"):
            check(getattr(self, name) >= 0, f"SoundStream {name} must be >= 0.")
        self.rvq_config()  # validates the quantiser fields

    def rvq_config(self) -> RVQConfig:
        return RVQConfig(
            num_levels=self.num_levels,
            codebook_size=self.codebook_size,
            dim=self.latent_dim,
            ema=self.ema,
            decay=self.ema_decay,
            kmeans_init=self.kmeans_init,
            dead_code_threshold=self.dead_code_threshold,
            quantizer_dropout=self.quantizer_dropout,
        )

    @classmethod
    def debug(cls, body: str = "conv") -> SoundStreamConfig:
        """Tiny preset for tests: milliseconds per call on a CPU."""
        return cls(
            body=body,
            num_levels=4,
            codebook_size=64,
            latent_dim=16,
            channels=4,
            dilations=(1, 3),
            n_fft=640,
            width=32,
            blocks=2,
            dead_code_threshold=0.1,
        )


# ---- the two bodies ----------------------------------------------------------------------------------


class _ConvEncoder(nn.Module):
    """``wav [B, T]`` → latent ``[B, D, T / hop]``."""

    def __init__(self, c: SoundStreamConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = [SameConv1d(1, c.channels, c.kernel_size, causal=c.causal)]
        ch = c.channels
        for s in c.strides:
            layers += [ResidualUnit(ch, d, c.kernel_size, c.causal) for d in c.dilations]
            layers += [nn.ELU(), SameConv1d(ch, 2 * ch, 2 * s, stride=s, causal=c.causal)]
            ch *= 2
        layers += [nn.ELU(), SameConv1d(ch, c.latent_dim, 3, causal=c.causal)]
        self.net = nn.Sequential(*layers)

    def forward(self, wav: Tensor) -> Tensor:
        return self.net(wav[:, None, :])


class _ConvDecoder(nn.Module):
    """Latent ``[B, D, T_a]`` → ``wav [B, T_a * hop]``."""

    def __init__(self, c: SoundStreamConfig) -> None:
        super().__init__()
        ch = c.channels * 2 ** len(c.strides)
        layers: list[nn.Module] = [SameConv1d(c.latent_dim, ch, c.kernel_size, causal=c.causal)]
        for s in reversed(c.strides):
            layers += [nn.ELU(), TrimConvTranspose1d(ch, ch // 2, s, c.causal)]
            ch //= 2
            layers += [ResidualUnit(ch, d, c.kernel_size, c.causal) for d in c.dilations]
        layers += [nn.ELU(), SameConv1d(ch, 1, c.kernel_size, causal=c.causal)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)[:, 0]


def _unit(v: Tensor) -> Tensor:
    return v / v.norm().clamp_min(1e-8)


def _level_direction(c: SoundStreamConfig) -> nn.Parameter:
    """A learnt latent direction for the level (starts as a random unit vector)."""
    g = torch.Generator().manual_seed(0)
    v = torch.randn(c.latent_dim, generator=g)
    return nn.Parameter(v / v.norm())


class _FrameEncoder(nn.Module):
    """``wav [B, T_a * hop]`` → latent ``[B, D, T_a]`` from log-magnitude and compressed complex STFT frames."""

    def __init__(self, c: SoundStreamConfig) -> None:
        super().__init__()
        self.n_fft, self.hop = c.n_fft, c.frame_hop
        self.register_buffer("window", torch.hann_window(c.n_fft), persistent=False)
        bins = c.n_fft // 2 + 1
        self.proj = nn.Conv1d(3 * bins, c.width, 1)
        self.norm_in = ChannelNorm(c.width)
        blocks = c.blocks if c.encoder_blocks < 0 else c.encoder_blocks
        scale = 1.0 / max(blocks, 1)
        self.blocks = nn.Sequential(*(ConvNeXtBlock(c.width, c.causal, scale) for _ in range(blocks)))
        self.norm_out = ChannelNorm(c.width)
        self.out = nn.Conv1d(c.width, c.latent_dim, 1)
        self.level = _level_direction(c) if c.level_path else None
        self.level_estimate = c.level_estimate
        self.phase_advance = c.phase_advance

    def forward(self, wav: Tensor) -> Tensor:
        spec = stft_same(wav, self.n_fft, self.hop, self.window)  # [B, F, T_a]
        if self.phase_advance:  # each bin's phase relative to its own advance: steady tones become constant frames
            spec = spec * phase_advance(spec.shape[1], spec.shape[2], self.n_fft, self.hop, spec.device).conj()
        mag = spec.abs().clamp_min(1e-5)
        log_mag = mag.log()
        # Magnitude compressed to the power 0.3 keeps the phase usable without letting loud bins dominate.
        compressed = spec * mag.pow(-0.7)
        if self.level is not None:
            level = frame_level(mag, self.level_estimate)  # [B, 1, T_a]: a gain g adds log g
            log_mag = log_mag - level
            compressed = compressed * torch.exp(-0.3 * level)
        feats = torch.cat([log_mag, compressed.real, compressed.imag], dim=1)  # [B, 3F, T_a]
        x = self.norm_in(self.proj(feats))
        latent = self.out(self.norm_out(self.blocks(x)))
        if self.level is not None:
            latent = latent + _unit(self.level)[None, :, None] * level
        return latent


class _FrameDecoder(nn.Module):
    """Latent ``[B, D, T_a]`` → ``wav [B, T_a * hop]`` through a magnitude + phase head and inverse STFT."""

    def __init__(self, c: SoundStreamConfig) -> None:
        super().__init__()
        self.n_fft, self.hop = c.n_fft, c.frame_hop
        self.bins = c.n_fft // 2 + 1
        self.register_buffer("window", torch.hann_window(c.n_fft), persistent=False)
        self.proj = SameConv1d(c.latent_dim, c.width, 7, causal=c.causal)
        self.norm_in = ChannelNorm(c.width)
        scale = 1.0 / max(c.blocks, 1)
        self.blocks = nn.Sequential(*(ConvNeXtBlock(c.width, c.causal, scale) for _ in range(c.blocks)))
        self.norm_out = ChannelNorm(c.width)
        self.head = nn.Conv1d(c.width, 3 * self.bins, 1)
        self.level = _level_direction(c) if c.level_path else None
        self.phase_advance = c.phase_advance
        # Bin phases turn with a period of n_fft / gcd(n_fft, hop) frames (4 here). A learnt embedding of the
        # frame's place in that cycle, added to every frame, lets the network turn the bins beside a peak as the
        # peak's frequency (not their own) demands; it starts at zero, so it changes nothing until trained.
        self.cycle = c.n_fft // math.gcd(c.n_fft, c.frame_hop)
        self.clock = nn.Parameter(torch.zeros(self.cycle, c.width)) if c.phase_advance else None
        # Frequency head: each bin's deviation from its own advance per hop; zero at first (bin-centre advance)
        self.freq, self.reset_db = None, c.freq_reset_db
        if c.phase_head == "frequency":
            below = math.ceil(c.freq_below_hz * c.n_fft / c.sample_rate) if c.freq_below_hz > 0 else self.bins
            last = nn.Conv1d(c.freq_hidden or c.width, min(below, self.bins), 1)
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
            self.freq = nn.Sequential(SameConv1d(c.width, c.freq_hidden, 3, causal=c.causal), nn.GELU(), last
                                      ) if c.freq_hidden else last
        # A Hann-windowed frame of a full-scale signal has magnitude at most n_fft / 2: never predict more.
        self.max_log_mag = math.log(c.n_fft / 2)

    def spectrum(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Latent ``[B, D, T_a]`` → (magnitude, phase as a complex unit number), each ``[B, F, T_a]``."""
        mag, phase, _ = self.spectrum_parts(z)
        return mag, phase

    def spectrum_parts(self, z: Tensor, start: tuple[int, Tensor] | None = None
                       ) -> tuple[Tensor, Tensor, Tensor | None]:
        """:meth:`spectrum` and, with the frequency head, each bin's predicted deviation from its own advance per
        hop ``[B, F, T_a]`` (radians; None without that head). ``start`` (frequency head): ``(j, angles [B, F])``,
        the phases frame ``j`` continues from (an earlier window's at the same frame); frames before ``j`` are
        integrated from frame 0 as without it."""
        level = None
        if self.level is not None:  # the level read back along the learnt direction; the network sees the rest
            u = _unit(self.level)
            level = torch.einsum("d,bdt->bt", u, z)[:, None]  # [B, 1, T_a]
            z = z - u[None, :, None] * level
        x = self.norm_in(self.proj(z))
        if self.clock is not None:
            x = x + self.clock[torch.arange(x.shape[-1], device=x.device) % self.cycle].T[None].to(x.dtype)
        x = self.norm_out(self.blocks(x))
        log_mag, re, im = self.head(x).float().split(self.bins, dim=1)  # each [B, F, T_a]
        if level is not None:
            log_mag = log_mag + level.float()
        mag = log_mag.clamp(max=self.max_log_mag).exp()
        # Phase as a unit vector: no wrap-around discontinuity for the network to learn.
        norm = (re.square() + im.square() + 1e-8).sqrt()
        phase = torch.complex(re / norm, im / norm)
        if self.phase_advance:
            phase = phase * phase_advance(self.bins, phase.shape[2], self.n_fft, self.hop, phase.device)
        if self.freq is None:
            return mag, phase, None
        deviation = math.pi * torch.tanh(self.freq(x).float())
        # The deviation learns from its own loss (freq_weight) only: through a phase integrated over many frames
        # the reconstruction losses' gradients are large and erratic.
        n = deviation.shape[1]  # the bins it covers, from 0 Hz up
        start = None if start is None else (start[0], start[1][:, :n])
        low = phase_from_frequency(mag[:, :n], deviation.detach(), phase[:, :n], self.n_fft, self.hop, start,
                                   reset_db=self.reset_db)
        return mag, torch.cat([low, phase[:, n:]], 1), deviation

    def waveform(self, mag: Tensor, phase: Tensor) -> Tensor:
        """Magnitudes and unit phases ``[B, F, T_a]`` → ``wav [B, T_a * hop]`` (inverse STFT)."""
        return istft_same(mag * phase, self.n_fft, self.hop, self.window)

    def forward(self, z: Tensor) -> Tensor:
        return self.waveform(*self.spectrum(z))


# ---- the codec ------------------------------------------------------------------------------------------


class SoundStream(AcousticCodec):
    """SoundStream codec: ``wav [B, T]`` ↔ codes ``[B, N_q, ceil(T / hop)]`` at ``frame_rate`` frames/s."""

    NAME = "v2meow-soundstream"
    VERSION = "1"

    def __init__(self, config: SoundStreamConfig | None = None) -> None:
        super().__init__()
        self.config = config or SoundStreamConfig()
        c = self.config
        if c.body == "conv":
            self.encoder: nn.Module = _ConvEncoder(c)
            self.decoder: nn.Module = _ConvDecoder(c)
        else:
            self.encoder = _FrameEncoder(c)
            self.decoder = _FrameDecoder(c)
        self.quantizer = ResidualVQ(c.rvq_config())
        self.stft_loss = MultiScaleSTFTLoss()
        self.mel_loss = MultiScaleMelLoss(c.sample_rate)

    @classmethod
    def debug(cls, body: str = "conv") -> SoundStream:
        """A tiny randomly initialised codec for tests (see :meth:`SoundStreamConfig.debug`)."""
        return cls(SoundStreamConfig.debug(body))

    @property
    def frame_cycle(self) -> int:
        # With phase advance, phases are coded relative to frame 0 of each call and turn with a period of
        # n_fft / gcd(n_fft, hop) frames (4): a window must start on that period to code as the whole signal does.
        return self.decoder.cycle if self.config.body == "frame" and self.config.phase_advance else 1

    def with_levels(self, n: int) -> SoundStream:
        """A copy keeping only the first ``n`` RVQ levels: it codes exactly as this codec does with ``n_levels=n``.

        Quantiser dropout trains the first levels to stand alone, so a codec can ship fewer levels than it was
        trained with when measurement shows the rest add nothing (fewer levels, faster generation).
        """
        if not 1 <= n <= self.num_levels:
            raise ValueError(f"n must be in [1, {self.num_levels}], got {n}.")
        out = SoundStream(self.config.replace(num_levels=n))
        state = {k: (v[:n] if k.startswith("quantizer.") else v) for k, v in self.state_dict().items()}
        out.load_state_dict(state)
        return out.train(self.training)

    # ---- AcousticCodec properties -------------------------------------------------------------------------

    def identity(self) -> dict[str, Any]:
        return {
            "name": self.NAME,
            "version": self.VERSION,
            "body": self.config.body,
            "sample_rate": self.sample_rate,
            "frame_rate": self.frame_rate,
            "hop_length": self.hop_length,
            "num_levels": self.num_levels,
            "codebook_size": self.codebook_size,
            # the phase head's fields change how the decoder renders the codes, not the codes: codes stamped before
            # a frequency head was trained on a frozen codec (``train_parts: frequency``) stay this codec's
            "config_hash": config_hash({k: v for k, v in self.config.to_dict().items() if k not in HEAD_FIELDS}),
            "weights": weights_fingerprint(self),
            # the weights that decide the codes and what each code stands for: a decoder trained on with them
            # frozen (``train_parts: decoder``) reads the same codes, so codes stamped before stay decodable
            "codes": weights_fingerprint(nn.ModuleDict({"encoder": self.encoder, "quantizer": self.quantizer})),
        }

    # ---- coding ---------------------------------------------------------------------------------------------

    def _encode_padded(self, wav: Tensor, n_levels: int | None) -> Tensor:
        return self.quantizer.encode(self.encoder(wav), n_levels)

    def decode(self, codes: Tensor) -> Tensor:
        """Codes ``[B, n, T_a]`` (first ``n <= num_levels`` levels) → ``wav [B, T_a * hop]``."""
        return self.decoder(self.quantizer.decode(codes))

    def decode_window(self, codes: Tensor, first: int, keep_from: int, carry: Any = None) -> tuple[Tensor, Any]:
        """:meth:`AcousticCodec.decode_window`. With the frequency head the phase is integrated over time, so a
        window continues the one before: from the first frame that shapes its kept output (``keep_from`` less the
        frames a window overlaps), its phases start from the earlier window's at that frame. The carry is
        ``(first, angles [B, F, T_a])``."""
        if self.config.body != "frame" or self.config.phase_head == "unit":
            return self.decode(codes), None
        dec = self.decoder
        j = max(0, keep_from - first - math.ceil((dec.n_fft - dec.hop) / 2 / dec.hop))
        start = None
        if carry is not None and j > 0:
            c_first, c_angles = carry
            if 0 <= first + j - c_first < c_angles.shape[-1]:
                start = (j, c_angles[..., first + j - c_first])
        mag, phase, _ = dec.spectrum_parts(self.quantizer.decode(codes), start=start)
        return dec.waveform(mag, phase), (first, torch.angle(phase))

    @torch.no_grad()
    def decode_magnitudes(self, codes: Tensor, iters: int = 32, start: str = "learned") -> Tensor:
        """Frame body only: the decoder's magnitudes with a phase found by Griffin-Lim (``iters`` iterations,
        starting from the decoder's own phase, or with ``start="gradient"`` from :func:`phase_from_gradient`)
        instead of the learned one: ``wav [B, T_a * hop]``. A reference for how much the learned phase costs or
        saves; :meth:`decode` is the codec."""
        if self.config.body != "frame":
            raise ValueError("decode_magnitudes needs the frame body (it predicts STFT magnitudes).")
        if start not in ("learned", "gradient"):
            raise ValueError(f"start must be 'learned' or 'gradient', got {start!r}.")
        dec = self.decoder
        mag, phase = dec.spectrum(self.quantizer.decode(codes))
        if start == "gradient":
            phase = phase_from_gradient(mag, dec.n_fft, dec.hop)
        for _ in range(iters):
            rebuilt = stft_same(dec.waveform(mag, phase), dec.n_fft, dec.hop, dec.window)
            phase = rebuilt / rebuilt.abs().clamp_min(1e-8)
        return dec.waveform(mag, phase)

    def forward(self, wav: Tensor, n_levels: int | None = None) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """Training pass: ``wav [B, T]`` → (recon ``[B, T]``, codes ``[B, n, T_a]``, quantiser losses).

        In training mode ``n_levels=None`` lets the quantiser drop levels (quantiser dropout).
        """
        if wav.dim() != 2 or wav.shape[-1] == 0:
            raise ValueError(f"wav must be a non-empty [B, T], got shape {tuple(wav.shape)}.")
        padded = self.pad_to_hop(wav)
        latent = self.encoder(padded)  # [B, D, T_a]
        quantized, codes, losses = self.quantizer(latent, n_levels)
        return self.decode_for_training(quantized, padded, losses)[:, : wav.shape[-1]], codes, losses

    def decode_for_training(self, quantized: Tensor, padded: Tensor, losses: dict[str, Tensor]) -> Tensor:
        """Decode ``quantized [B, D, T_a]`` for the input ``padded [B, T_a * hop]`` it came from, adding the frame
        body's own terms to ``losses`` (in place): ``frame_mag`` when weighed, ``freq`` with the frequency head."""
        if self.config.body != "frame" or (self.config.frame_mag_weight <= 0 and self.config.phase_head == "unit"):
            return self.decoder(quantized)
        dec = self.decoder
        mag, phase, deviation = dec.spectrum_parts(quantized)
        target = stft_same(padded, dec.n_fft, dec.hop, dec.window)
        if self.config.frame_mag_weight > 0:
            losses["frame_mag"] = (mag.clamp_min(1e-5).log() - target.abs().clamp_min(1e-5).log()).abs().mean()
        if deviation is not None:
            losses["freq"] = frequency_deviation_loss(deviation, target[:, : deviation.shape[1]], dec.n_fft, dec.hop)
        return dec.waveform(mag, phase)

    def loss(self, wav: Tensor, n_levels: int | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        """Training objective for ``wav [B, T]``: weighted multi-scale STFT + mel + commitment (+ codebook).

        Returns (total, parts) with detached parts for logging.
        """
        recon, _, q_losses = self(wav, n_levels)
        total, parts = self.reconstruction_loss(recon, wav, q_losses)
        return total, {k: v.detach() for k, v in parts.items()}

    def reconstruction_loss(self, recon: Tensor, wav: Tensor, q_losses: dict[str, Tensor]
                            ) -> tuple[Tensor, dict[str, Tensor]]:
        """The weighted sum of the reconstruction terms (multi-scale STFT, mel, frame magnitudes when on) and the
        quantiser's losses from :meth:`forward`: (total, parts), parts not detached."""
        c = self.config
        parts = {
            "stft": self.stft_loss(recon, wav),
            "mel": self.mel_loss(recon, wav),
            "commitment": q_losses["commitment"],
            "codebook": q_losses["codebook"],
        }
        total = (
            c.stft_weight * parts["stft"]
            + c.mel_weight * parts["mel"]
            + c.commitment_weight * parts["commitment"]
            + parts["codebook"]
        )
        if "frame_mag" in q_losses:
            parts["frame_mag"] = q_losses["frame_mag"]
            total = total + c.frame_mag_weight * parts["frame_mag"]
        if "freq" in q_losses:
            parts["freq"] = q_losses["freq"]
            total = total + c.freq_weight * parts["freq"]
        return total, parts
