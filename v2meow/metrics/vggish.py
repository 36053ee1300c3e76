"""VGGish for FAD: the reference log-mel front end and the network, with user-supplied weights.

Front end (AudioSet ``mel_features`` / ``vggish_input``, reproduced here): 16 kHz mono; STFT magnitude
with a 25 ms periodic Hann window (400 samples), 10 ms hop (160), FFT size 512, frames taken without
padding; 64 mel bands from 125 to 7500 Hz on the HTK mel scale with the DC bin excluded; log(mel + 0.01);
then non-overlapping 0.96 s examples of 96 frames × 64 bands.

Google's FAD front end (``audioset_model.AudioSetModel.extract_features``) differs from plain
``vggish_input`` in two ways that change the number: the clip is first divided by max(0.1, max(x)), and
it is cut into 1 s windows every ``step_size`` samples (8000 by default in ``create_embeddings_main``),
each giving one 96-frame example. :func:`fad_examples` reproduces that; :func:`vggish_examples`
reproduces ``waveform_to_examples``.

The network (:class:`VGGish`) is the public VGGish architecture. Its weights are never downloaded:
the user converts them once to safetensors and passes the path (key names follow the common PyTorch
port's layout, ``features.{0,3,6,8,11,13}.*`` and ``embeddings.{0,2,4}.*``). FAD uses the 128-d
embedding before PCA and quantisation.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
import torch
from torch import nn

from v2meow.errors import UserError
from v2meow.metrics.base import mono_audio
from v2meow.metrics.fad import AudioEmbedder

SAMPLE_RATE = 16000
STFT_WINDOW_SECONDS = 0.025
STFT_HOP_SECONDS = 0.010
NUM_MEL_BINS = 64
MEL_MIN_HZ = 125.0
MEL_MAX_HZ = 7500.0
LOG_OFFSET = 0.01
EXAMPLE_SECONDS = 0.96  # window and hop of the examples
EXAMPLE_FRAMES = int(round(EXAMPLE_SECONDS / STFT_HOP_SECONDS))  # 96
FAD_STEP_SIZE = 8000  # Google FAD: samples between the starts of its 1 s windows

_MEL_BREAK_HZ = 700.0
_MEL_HIGH_Q = 1127.0


def hertz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """HTK mel scale: 1127 · ln(1 + f / 700)."""
    return _MEL_HIGH_Q * np.log(1.0 + np.asarray(hz, dtype=np.float64) / _MEL_BREAK_HZ)


def mel_matrix(
    num_mel_bins: int = NUM_MEL_BINS,
    num_spectrogram_bins: int = 257,
    sample_rate: int = SAMPLE_RATE,
    lower_hz: float = MEL_MIN_HZ,
    upper_hz: float = MEL_MAX_HZ,
) -> np.ndarray:
    """Triangular mel weights ``[num_spectrogram_bins, num_mel_bins]``: ``mel = magnitudes @ W``.

    Bands are triangles that are linear on the mel scale, with ``num_mel_bins + 2`` evenly spaced mel edges
    from ``lower_hz`` to ``upper_hz``; the DC bin gets no weight (as in HTK).
    """
    if not 0.0 <= lower_hz < upper_hz <= sample_rate / 2.0:
        raise UserError(f"Mel band edges must satisfy 0 <= {lower_hz} < {upper_hz} <= {sample_rate / 2}.")
    bins_mel = hertz_to_mel(np.linspace(0.0, sample_rate / 2.0, num_spectrogram_bins))
    edges = np.linspace(hertz_to_mel(lower_hz), hertz_to_mel(upper_hz), num_mel_bins + 2)
    weights = np.empty((num_spectrogram_bins, num_mel_bins))
    for i in range(num_mel_bins):
        lower, center, upper = edges[i : i + 3]
        rising = (bins_mel - lower) / (center - lower)
        falling = (upper - bins_mel) / (upper - center)
        weights[:, i] = np.maximum(0.0, np.minimum(rising, falling))
    weights[0, :] = 0.0
    return weights


def frame(x: np.ndarray, window: int, hop: int) -> np.ndarray:
    """Frames ``[num_frames, window, ...]`` of ``x [N, ...]`` starting every ``hop``; no padding, so
    ``num_frames = 1 + (N − window) // hop`` (0 when N < window)."""
    n = x.shape[0]
    num = 0 if n < window else 1 + (n - window) // hop
    if num == 0:
        return np.zeros((0, window) + x.shape[1:], dtype=x.dtype)
    idx = np.arange(window)[None, :] + hop * np.arange(num)[:, None]
    return x[idx]


def log_mel_spectrogram(wav: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """VGGish log-mel spectrogram ``[frames, 64]`` of mono ``wav [N]`` at ``sample_rate``.

    25 ms periodic Hann window, 10 ms hop, FFT size the next power of two, magnitude (not power),
    64 mel bands 125–7500 Hz, log(mel + 0.01). ``frames = 1 + (N − 400) // 160`` at 16 kHz.
    """
    wav = np.asarray(wav, dtype=np.float64)
    win = int(round(sample_rate * STFT_WINDOW_SECONDS))
    hop = int(round(sample_rate * STFT_HOP_SECONDS))
    n_fft = 2 ** int(math.ceil(math.log(win) / math.log(2.0)))
    # Periodic Hann (not the symmetric one numpy's np.hanning gives).
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi / win * np.arange(win))
    frames = frame(wav, win, hop)  # [F, win]
    magnitude = np.abs(np.fft.rfft(frames * window, n_fft))  # [F, n_fft/2 + 1]
    mel = magnitude @ mel_matrix(NUM_MEL_BINS, n_fft // 2 + 1, sample_rate, MEL_MIN_HZ, MEL_MAX_HZ)
    return np.log(mel + LOG_OFFSET)


def _mono_16k(wav: np.ndarray, sample_rate: int) -> np.ndarray:
    from v2meow.io.audio import resample

    wav = mono_audio(wav, np.float64)
    if sample_rate == SAMPLE_RATE:
        return wav  # keep full precision when no resampling is needed
    return resample(wav, sample_rate, SAMPLE_RATE).astype(np.float64)


def vggish_examples(wav: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """``waveform_to_examples``: log-mel examples ``[K, 96, 64]`` of ``wav`` (``[N]`` or ``[C, N]``).

    Mono by channel mean, resampled to 16 kHz, log-mel, then non-overlapping 96-frame (0.96 s) examples;
    an incomplete last example is dropped.
    """
    log_mel = log_mel_spectrogram(_mono_16k(wav, sample_rate))
    return frame(log_mel, EXAMPLE_FRAMES, EXAMPLE_FRAMES)


def fad_examples(
    wav: np.ndarray, sample_rate: int = SAMPLE_RATE, step_size: int | None = FAD_STEP_SIZE, normalize: bool = True
) -> np.ndarray:
    """Google FAD's VGGish input: one ``[96, 64]`` example per 1 s window; returns ``[K, 96, 64]``.

    Args:
        wav: ``[N]`` or ``[C, N]`` samples at ``sample_rate`` (mixed to mono, resampled to 16 kHz).
        step_size: samples between window starts (8000: half-overlapping windows, the reference default);
            ``None``: consecutive windows (the reference then needs N to be a multiple of 16000; here
            the incomplete last window is dropped).
        normalize: divide by max(0.1, max(x)) first, as the reference does (its max is of the signed
            samples, not of their magnitude).
    """
    x = _mono_16k(wav, sample_rate).astype(np.float64)
    if normalize and x.size:
        x = x / np.maximum(0.1, np.amax(x))
    if step_size is None:
        windows = [x[i : i + SAMPLE_RATE] for i in range(0, x.size - SAMPLE_RATE + 1, SAMPLE_RATE)]
    else:
        if step_size <= 0:
            raise UserError(f"step_size must be positive, got {step_size}.")
        windows = [x[i : i + SAMPLE_RATE] for i in range(0, x.size - SAMPLE_RATE + 1, step_size)]
    examples = [frame(log_mel_spectrogram(w), EXAMPLE_FRAMES, EXAMPLE_FRAMES) for w in windows]
    if not examples:
        return np.zeros((0, EXAMPLE_FRAMES, NUM_MEL_BINS))
    return np.concatenate(examples, axis=0)


class VGGish(nn.Module):
    """The VGGish network: log-mel examples ``[B, 96, 64]`` → embeddings ``[B, dim]`` (128, before PCA).

    conv3×3 64 → pool → conv 128 → pool → conv 256 ×2 → pool → conv 512 ×2 → pool → fc 4096 → fc 4096 →
    fc 128; ReLU after every conv and hidden fc, 2×2 max pooling with stride 2. ``channels``, ``hidden``
    and ``dim`` exist for tiny test configurations; the defaults are the public model.

    Args:
        final_relu: apply a ReLU to the embedding. Early TF-slim VGGish code (and the common PyTorch
            port) did; the current ``vggish_slim`` ends with ``activation_fn=None``, hence the default.
            Report which one was used: it changes FAD values.
    """

    def __init__(
        self,
        channels: tuple[int, int, int, int] = (64, 128, 256, 512),
        hidden: int = 4096,
        dim: int = 128,
        final_relu: bool = False,
    ) -> None:
        super().__init__()
        c1, c2, c3, c4 = channels
        layers: list[nn.Module] = []
        c_in = 1
        # 'M' = 2×2 max pool; the layout keeps the index-based key names of the common PyTorch port.
        for v in (c1, "M", c2, "M", c3, c3, "M", c4, c4, "M"):
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(c_in, int(v), kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                c_in = int(v)
        self.features = nn.Sequential(*layers)
        # Four poolings: 96×64 → 6×4.
        flat = c4 * (EXAMPLE_FRAMES // 16) * (NUM_MEL_BINS // 16)
        head: list[nn.Module] = [
            nn.Linear(flat, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, dim),
        ]
        if final_relu:
            head.append(nn.ReLU(inplace=True))
        self.embeddings = nn.Sequential(*head)
        self.dim = dim
        self.final_relu = final_relu

    def forward(self, examples: torch.Tensor) -> torch.Tensor:
        """``examples [B, 96, 64]`` (log-mel) → ``[B, dim]``."""
        if examples.dim() != 3 or examples.shape[1:] != (EXAMPLE_FRAMES, NUM_MEL_BINS):
            raise UserError(f"VGGish expects log-mel examples [B, 96, 64], got {tuple(examples.shape)}.")
        x = self.features(examples[:, None])  # [B, C, 6, 4]
        # Flatten in TF's NHWC order so weights converted from the TF checkpoint apply unchanged.
        x = x.permute(0, 2, 3, 1).flatten(1)  # [B, 6·4·C]
        return self.embeddings(x)

    @classmethod
    def from_safetensors(cls, path: str | os.PathLike[str], **kwargs: Any) -> VGGish:
        """Build the network and load its weights from a safetensors file (never a pickle).

        Raises:
            UserError: the file is missing or unreadable, or its tensors do not fit the network.
        """
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        path = os.fspath(path)
        if not os.path.isfile(path):
            raise UserError(f"VGGish weights not found: {path}.")
        try:
            state = load_file(path)
        except (SafetensorError, OSError, ValueError) as e:
            raise UserError(f"Cannot read VGGish weights from {path} as safetensors ({e}).") from e
        model = cls(**kwargs)
        expected = model.state_dict()
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        if missing or unexpected:
            raise UserError(f"{path} does not hold VGGish weights: missing {missing[:4]}, unexpected {unexpected[:4]}.")
        for name, tensor in state.items():
            if tuple(tensor.shape) != tuple(expected[name].shape):
                raise UserError(
                    f"{path}: tensor {name} has shape {tuple(tensor.shape)}, expected {tuple(expected[name].shape)}."
                )
        model.load_state_dict(state)
        return model.eval()


class VGGishEmbedder(AudioEmbedder):
    """The FAD backend ``"vggish"``: Google FAD's front end (:func:`fad_examples`) + :class:`VGGish`.

    ``embed(wav [N] at 16 kHz) → [K, 128]``, one row per 1 s window (0.96 s example).
    """

    name = "vggish"
    sample_rate = SAMPLE_RATE

    def __init__(
        self, model: VGGish, step_size: int | None = FAD_STEP_SIZE, normalize: bool = True, batch_size: int = 64
    ) -> None:
        self.model = model.eval()
        self.dim = model.dim
        self.step_size = step_size
        self.normalize = normalize
        self.batch_size = batch_size

    def identity(self) -> dict[str, Any]:
        return {
            **super().identity(),
            "step_size": self.step_size,
            "normalize": self.normalize,
            "final_relu": self.model.final_relu,
        }

    @torch.inference_mode()
    def embed(self, wav: np.ndarray) -> np.ndarray:
        examples = fad_examples(wav, SAMPLE_RATE, self.step_size, self.normalize)  # [K, 96, 64]
        param = next(self.model.parameters())
        out = []
        for i in range(0, examples.shape[0], self.batch_size):
            batch = torch.as_tensor(examples[i : i + self.batch_size], dtype=param.dtype, device=param.device)
            out.append(self.model(batch).double().cpu().numpy())
        if not out:
            return np.zeros((0, self.dim))
        return np.concatenate(out, axis=0)
