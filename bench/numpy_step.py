"""Would a decoder step written in plain numpy be faster than v2meow's torch decoder? Stage 2 of the shipped model.

A start without torch would save its import (1.8-2.1 s of every `v2meow generate` on this machine), but only if the
step loop that follows is not slower. This bench runs one-query decoder steps of the shipped stage 2 (its weights,
its sizes: 3 layers of width 192, a 2048-way head, cross-attention over the video memory) both ways on the same
inputs: the torch :class:`~v2meow.modules.transformer.Decoder` with its KV cache, and the same arithmetic in numpy
(matrix products through numpy's BLAS, attention by batched ``matmul``). The two outputs are checked to agree; the
anchor is the torch step, alternated with the numpy step in the same process.

    python -m bench.numpy_step [--steps 500] [--batch 4] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from scipy.special import erf


def layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    m = x.mean(-1, keepdims=True)
    v = ((x - m) ** 2).mean(-1, keepdims=True)
    return (x - m) / np.sqrt(v + eps) * w + b


def gelu(x: np.ndarray) -> np.ndarray:
    """The exact (erf) GELU that torch's ``F.gelu`` computes."""
    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


class NumpyDecoder:
    """The decoder's one-query step in numpy, with its own preallocated self-attention cache."""

    def __init__(self, decoder, head, batch: int, max_len: int, memory: torch.Tensor):
        sd = {k: v.detach().float().numpy() for k, v in decoder.state_dict().items()}
        self.h = decoder.cfg.heads
        self.d = decoder.cfg.width // self.h
        self.layers = []
        for i, layer in enumerate(decoder.layers):
            p = {k[len(f"layers.{i}."):]: v for k, v in sd.items() if k.startswith(f"layers.{i}.")}
            with torch.inference_mode():
                ck, cv = layer.cross_attn.project_kv(memory)
            self.layers.append({
                **{k: p[k] for k in ("norm1.weight", "norm1.bias", "norm_x.weight", "norm_x.bias", "norm2.weight",
                                     "norm2.bias", "ff.up.bias", "ff.down.bias")},
                "q": p["self_attn.q.weight"].T.copy(), "kv": p["self_attn.kv.weight"].T.copy(),
                "o": p["self_attn.o.weight"].T.copy(), "cq": p["cross_attn.q.weight"].T.copy(),
                "co": p["cross_attn.o.weight"].T.copy(), "up": p["ff.up.weight"].T.copy(),
                "down": p["ff.down.weight"].T.copy(),
                "ck": ck.float().numpy(), "cv": cv.float().numpy(),
                "k": np.zeros((batch, self.h, max_len, self.d), np.float32),
                "v": np.zeros((batch, self.h, max_len, self.d), np.float32),
            })
        self.norm = (sd["norm.weight"], sd["norm.bias"])
        self.head = head.weight.detach().float().numpy().T.copy()
        self.scale = 1.0 / np.sqrt(self.d)

    def attend(self, q: np.ndarray, k: np.ndarray, v: np.ndarray, bias: np.ndarray) -> np.ndarray:
        """``q [B, H, d]``, ``k, v [B, H, T, d]``, ``bias [B|1, H, T]`` -> ``[B, H * d]``."""
        s = (q[:, :, None, :] @ k.transpose(0, 1, 3, 2))[:, :, 0] * self.scale + bias
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        return (s[:, :, None, :] @ v)[:, :, 0].reshape(q.shape[0], -1)

    def step(self, x: np.ndarray, pos: int, self_bias: np.ndarray, cross_bias: np.ndarray) -> np.ndarray:
        """``x [B, W]`` at position ``pos``; ``self_bias [H, pos + 1]``, ``cross_bias [B, H, S]`` -> logits."""
        b, h, d = x.shape[0], self.h, self.d
        for p in self.layers:
            y = layer_norm(x, p["norm1.weight"], p["norm1.bias"])
            kv = y @ p["kv"]
            p["k"][:, :, pos] = kv[:, : h * d].reshape(b, h, d)
            p["v"][:, :, pos] = kv[:, h * d:].reshape(b, h, d)
            q = (y @ p["q"]).reshape(b, h, d)
            x = x + self.attend(q, p["k"][:, :, : pos + 1], p["v"][:, :, : pos + 1], self_bias[None]) @ p["o"]
            q = (layer_norm(x, p["norm_x.weight"], p["norm_x.bias"]) @ p["cq"]).reshape(b, h, d)
            x = x + self.attend(q, p["ck"], p["cv"], cross_bias) @ p["co"]
            y = layer_norm(x, p["norm2.weight"], p["norm2.bias"])
            x = x + gelu(y @ p["up"] + p["ff.up.bias"]) @ p["down"] + p["ff.down.bias"]
        return layer_norm(x, *self.norm) @ self.head


def compare(steps: int, batch: int, repeats: int) -> dict:
    from v2meow.pipeline import V2Meow
    from v2meow.soundtrack import model_path

    torch.manual_seed(0)
    lm = V2Meow.from_pretrained(model_path("embedded")).coarse.lm
    dec, head = lm.decoder, lm.head
    memory = torch.randn(batch, 171, dec.cfg.width)  # 10 s of the shipped streams: 10 + 60 + 100 rows + the joint
    mem_pos = torch.arange(171)[None].repeat(batch, 1)
    xs = torch.randn(steps, batch, 1, dec.cfg.width)
    query = (torch.arange(steps) * 10) // 50  # the beat clock's 10 rows a second for 50 steps a second
    with torch.inference_mode():
        cache = dec.new_cache(batch, steps, memory, None, mem_pos)
        n = cache.self_bias.shape[1]
        self_rows = [cache.self_bias[:, n - 1 - pos:].float().numpy() for pos in range(steps)]
        cross = dec.cross_time_mask(query, mem_pos, torch.float32)  # [B, H, steps, S]
    cross_rows = [cross[:, :, pos].numpy() for pos in range(steps)]
    xs_np = xs[:, :, 0].numpy()

    def run_torch() -> tuple[float, np.ndarray]:
        with torch.inference_mode():
            c = dec.new_cache(batch, steps, memory, None, mem_pos)
            t = time.perf_counter()
            for pos in range(steps):
                out = head(dec(xs[pos], cache=c, input_pos=pos, time_mask=cross[:, :, pos: pos + 1])[:, -1])
            return time.perf_counter() - t, out.float().numpy()

    def run_numpy() -> tuple[float, np.ndarray]:
        nd = NumpyDecoder(dec, head, batch, steps, memory)
        t = time.perf_counter()
        for pos in range(steps):
            out = nd.step(xs_np[pos], pos, self_rows[pos], cross_rows[pos])
        return time.perf_counter() - t, out

    run_torch(), run_numpy()  # warm-up
    t_torch, t_numpy, diff = [], [], 0.0
    for _ in range(repeats):
        a, out_t = run_torch()
        b, out_n = run_numpy()
        t_torch.append(a)
        t_numpy.append(b)
        diff = max(diff, float(np.abs(out_t - out_n).max() / max(np.abs(out_t).max(), 1e-9)))
    return {"steps": steps, "batch": batch, "torch_us": 1e6 * min(t_torch) / steps,
            "numpy_us": 1e6 * min(t_numpy) / steps, "relative_difference": diff}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(args.threads):  # numpy's BLAS on as many threads as torch
        r = compare(args.steps, args.batch, args.repeats)
    print(f"stage 2 of the shipped model, {r['steps']} one-query steps, batch {r['batch']}, {args.threads} thread(s)")
    print("| decoder step | µs a step (best of the repeats) | × the torch step |")
    print("|---|---|---|")
    print(f"| torch (anchor) | {r['torch_us']:.0f} | 1.00 |")
    print(f"| numpy | {r['numpy_us']:.0f} | {r['numpy_us'] / r['torch_us']:.2f} |")
    print(f"largest difference of the last logits, relative to their largest: {r['relative_difference']:.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
