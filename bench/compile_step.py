"""Would ``torch.compile`` make stage 2's decoder step faster on this CPU? The shipped model's one-query step, 3 ways.

- v2meow's step (the anchor): :class:`~v2meow.modules.transformer.Decoder` with its KV cache, the keys sliced to
  the positions written so far;
- the same arithmetic with static shapes, as a compiler wants them: the whole preallocated cache every step, the
  keys not yet written masked out, the position a tensor (so one compiled graph serves every step);
- that static step through ``torch.compile`` (Inductor, ``fullgraph``), its compile time reported apart.

The three are alternated in one process on the same inputs, and their last logits are checked to agree.

    python -m bench.compile_step [--steps 500] [--batch 4] [--repeats 3] [--threads 2]

Not in ``make bench``'s run of every module (compiling takes half a minute): run it by name.
"""

from __future__ import annotations

import argparse
import math
import time

import torch
import torch.nn.functional as F

RUN_BY_NAME_ONLY = True


def static_step(dec, head, steps: int):
    """A one-query step of ``dec`` + ``head`` over whole caches of ``steps`` positions: ``fn(x [B, 1, W], pos (long
    tensor), ks, vs, cross_k, cross_v, cross_mask [B, H, 1, S], self_bias [H, 2 * steps]) -> logits [B, V]``; it
    writes the step's keys and values into ``ks, vs`` at ``pos``."""
    heads = dec.cfg.heads
    hd = dec.cfg.width // heads
    scale = 1.0 / math.sqrt(hd)

    def fn(x, pos, ks, vs, cross_k, cross_v, cross_mask, self_bias):
        b = x.shape[0]
        keys = torch.arange(steps, device=x.device)
        row = self_bias.index_select(1, (steps - 1 - pos) + keys)  # [H, steps]: the bias of each key's distance
        mask = row.masked_fill(keys > pos, float("-inf"))[None, :, None, :]
        for i, layer in enumerate(dec.layers):
            h = layer.norm1(x)
            k, v = layer.self_attn.kv(h).view(b, 1, 2, heads, hd).permute(2, 0, 3, 1, 4)
            ks[i].index_copy_(2, pos.view(1), k)
            vs[i].index_copy_(2, pos.view(1), v)
            q = layer.self_attn.q(h).view(b, 1, heads, hd).transpose(1, 2)
            y = F.scaled_dot_product_attention(q, ks[i], vs[i], attn_mask=mask, scale=scale)
            x = x + layer.self_attn.o(y.transpose(1, 2).reshape(b, 1, -1))
            q = layer.cross_attn.q(layer.norm_x(x)).view(b, 1, heads, hd).transpose(1, 2)
            y = F.scaled_dot_product_attention(q, cross_k[i], cross_v[i], attn_mask=cross_mask, scale=scale)
            x = x + layer.cross_attn.o(y.transpose(1, 2).reshape(b, 1, -1))
            x = x + layer.ff(layer.norm2(x))
        return head(dec.norm(x)[:, -1])

    return fn


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    from v2meow.pipeline import V2Meow
    from v2meow.soundtrack import model_path

    torch.manual_seed(0)
    lm = V2Meow.from_pretrained(model_path("embedded")).coarse.lm
    dec, head, b, n = lm.decoder, lm.head, args.batch, args.steps
    memory = torch.randn(b, 171, dec.cfg.width)  # 10 s of the shipped streams: 10 + 60 + 100 rows + the joint
    mem_pos = torch.arange(171)[None].repeat(b, 1)
    xs = torch.randn(n, b, 1, dec.cfg.width)
    query = (torch.arange(n) * 10) // 50  # the beat clock's 10 rows a second for 50 steps a second
    with torch.inference_mode():
        cross = dec.cross_time_mask(query, mem_pos, torch.float32).contiguous()  # [B, H, steps, S]
        cache = dec.new_cache(b, n, memory, None, mem_pos)
        self_bias = torch.cat([cache.self_bias, torch.zeros_like(cache.self_bias)], 1)  # keys past pos: masked
        crosses = [cross[:, :, i: i + 1].contiguous() for i in range(n)]
        positions = [torch.tensor(i) for i in range(n)]
    step = static_step(dec, head, n)
    compiled = torch.compile(step, dynamic=False, fullgraph=True)

    def run_v2meow():
        c = dec.new_cache(b, n, memory, None, mem_pos)
        for i in range(n):
            out = head(dec(xs[i], cache=c, input_pos=i, time_mask=crosses[i])[:, -1])
        return out

    def runner(fn):
        def run():
            ks = [torch.zeros_like(c.k) for c in cache.layers]
            vs = [torch.zeros_like(c.v) for c in cache.layers]
            ck, cv = zip(*cache.cross)
            for i in range(n):
                out = fn(xs[i], positions[i], ks, vs, ck, cv, crosses[i], self_bias)
            return out
        return run

    ways = {"v2meow's step (anchor)": run_v2meow, "static shapes": runner(step), "static, compiled": runner(compiled)}
    with torch.inference_mode():
        t = time.perf_counter()
        first = ways["static, compiled"]()
        compile_s = time.perf_counter() - t
        outs = {name: fn() for name, fn in ways.items()}  # warm-up
        times = {name: [] for name in ways}
        for _ in range(args.repeats):
            for name, fn in ways.items():
                t = time.perf_counter()
                outs[name] = fn()
                times[name].append(time.perf_counter() - t)
    ref = outs["v2meow's step (anchor)"]
    scale = ref.abs().max().item()
    anchor = min(times["v2meow's step (anchor)"])
    print(f"stage 2 of the shipped model, {n} one-query steps, batch {b}, {args.threads} thread(s); best of "
          f"{args.repeats} alternated runs; compiling took {compile_s:.1f} s (the first call)")
    print("| decoder step | µs a step | × v2meow's step | largest logit difference / largest logit |")
    print("|---|---|---|---|")
    for name, ts in times.items():
        diff = (outs[name] - ref).abs().max().item() / scale
        print(f"| {name} | {min(ts) / n * 1e6:.0f} | {min(ts) / anchor:.2f} | {diff:.1e} |")
    assert torch.allclose(first, outs["static, compiled"], atol=1e-4 * scale)


if __name__ == "__main__":
    main()
