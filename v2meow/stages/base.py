"""The token language model all three stages share, with its loss and its generation loop.

A stage predicts *target* tokens (ids ``[0, target_vocab)``). It may read a *prefix* of tokens from
another vocabulary in the decoder (decoder-only stages: semantic → coarse, coarse → fine) and/or an
encoder memory built from conditioning streams (encoder-decoder stages). The decoder input is::

    [prefix ids + target_vocab] [BOS] [target_0 ... target_{n-2}]

and position ``P + i`` (P = prefix length) predicts ``target_i``. Generation prefills prefix, BOS and
an optional prompt of earlier target tokens (continuation across windows), then samples one token per
step with a preallocated KV cache.

With ``tokens_per_step = K > 1`` (a delay layout, :class:`v2meow.tokenizers.patterns.DelayPattern`) every
decoder position is a *step* of K target tokens: its input is the sum of their K embeddings (the BOS step: K
BOS embeddings), and its output predicts all K tokens of the next step at once, each within its own slice of
the vocabulary (``allowed``). Target sequences are then a whole number of steps, flattened step-major.

With ``step_dim > 0`` every decoder position also reads a conditioning vector of its own (``step_in [B, L,
step_dim]``, the row of a time-aligned stream at the time of the step it predicts) through a projection that
starts at zero, so a stage that gains it starts exactly where it stood without it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from v2meow.modules.adaptors import ConditionInput, StreamSpec
from v2meow.modules.transformer import Decoder, Encoder, TransformerConfig
from v2meow.sampling import Generators, SamplingConfig, guide, sample

ProgressFn = Callable[[int, int], None]  # (steps done, steps total)
AllowedFn = Callable[[Tensor], Tensor]  # target positions [L] -> allowed-token mask [L, target_vocab]

EncoderInput = tuple[Tensor, Tensor, Tensor]  # x [B, S, W], positions [B, S], valid [B, S]


class TokenLM(nn.Module):
    """Embedding, optional condition encoder, causal decoder and output head over the target vocabulary."""

    def __init__(
        self,
        cfg: TransformerConfig,
        target_vocab: int,
        prefix_vocab: int = 0,
        streams: list[StreamSpec] | None = None,
        joint_dim: int = 0,
        target_rate: float | None = None,
        tokens_per_step: int = 1,
        step_dim: int = 0,
    ):
        """``target_rate``: target steps per second; with an encoder it places every target step on the
        conditioning clock, for the decoder's time-aligned cross-attention bias. ``step_dim``: the size of the
        per-position conditioning (0: none)."""
        super().__init__()
        if tokens_per_step < 1 or (tokens_per_step > 1 and prefix_vocab):
            raise ValueError("tokens_per_step must be >= 1, and a stage with a prefix takes one token per step.")
        self.cfg = cfg
        self.tokens_per_step = tokens_per_step
        self.target_rate = target_rate
        self.target_vocab = target_vocab
        self.prefix_vocab = prefix_vocab
        self.bos = target_vocab + prefix_vocab
        self.has_encoder = cfg.encoder_layers > 0
        if self.has_encoder:
            self.condition = ConditionInput(list(streams or []), joint_dim, cfg.width)
            self.encoder = Encoder(cfg)
        self.embed = nn.Embedding(target_vocab + prefix_vocab + 1, cfg.width)
        self.decoder = Decoder(cfg, cross=self.has_encoder)
        self.head = nn.Linear(cfg.width, target_vocab, bias=False)
        self.step_proj = None
        if step_dim > 0:
            self.step_proj = nn.Linear(step_dim, cfg.width)
            nn.init.zeros_(self.step_proj.weight)
            nn.init.zeros_(self.step_proj.bias)

    # -- pieces ---------------------------------------------------------------------------------
    def encode(self, enc_in: EncoderInput) -> tuple[Tensor, Tensor]:
        """Run the encoder on ``(x, positions, valid)``; returns ``(memory [B, S, W], valid [B, S])``."""
        x, pos, valid = enc_in
        return self.encoder(x, pos, valid), valid

    def query_positions(self, start: int, length: int, prefix_len: int, device: torch.device) -> Tensor | None:
        """Conditioning-clock positions of decoder inputs ``start .. start+length-1``: input ``P + j`` predicts
        target ``j``, which lies at ``j / target_rate`` seconds (None without an encoder or a target rate)."""
        if not self.has_encoder or not self.target_rate:
            return None
        j = (torch.arange(start, start + length, device=device) - prefix_len).clamp(min=0)
        scale = self.condition.position_rate / self.target_rate
        return torch.floor(j.double() * scale + 1e-9).long()

    def decoder_input(self, prefix: Tensor | None, target: Tensor) -> Tensor:
        """``prefix [B, P]``, ``target [B, n]`` -> ids ``[B, P + 1 + n]`` (BOS between); with K tokens per step
        ids ``[B, 1 + n / K, K]``."""
        b = target.shape[0]
        k = self.tokens_per_step
        if k > 1:
            steps = target.reshape(b, -1, k)
            return torch.cat([torch.full((b, 1, k), self.bos, dtype=torch.long, device=target.device), steps], 1)
        parts = []
        if prefix is not None and prefix.shape[1] > 0:
            parts.append(prefix + self.target_vocab)
        parts.append(torch.full((b, 1), self.bos, dtype=torch.long, device=target.device))
        parts.append(target)
        return torch.cat(parts, 1)

    def embed_ids(self, ids: Tensor, step_in: Tensor | None = None, start: int = 0) -> Tensor:
        """Ids ``[B, L]`` (or ``[B, L, K]``: a step's K embeddings summed) -> ``[B, L, W]``, plus the projected
        rows ``start .. start + L - 1`` of ``step_in`` when the LM reads one."""
        x = self.embed(ids)
        x = x.sum(2) if ids.dim() == 3 else x
        if self.step_proj is not None:
            if step_in is None or step_in.shape[1] < start + x.shape[1]:
                raise ValueError("this LM needs per-step conditioning for every decoder position")
            x = x + self.step_proj(step_in[:, start:start + x.shape[1]].to(x.dtype))
        return x

    # -- training -------------------------------------------------------------------------------
    def loss(
        self,
        target: Tensor,
        target_valid: Tensor | None = None,
        prefix: Tensor | None = None,
        enc_in: EncoderInput | None = None,
        allowed: AllowedFn | None = None,
        step_in: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Next-token cross-entropy over ``target [B, n]``; returns loss, accuracy and the token count."""
        p = 0 if prefix is None else prefix.shape[1]
        k = self.tokens_per_step
        ids = self.decoder_input(prefix, target[:, :-k])
        memory, mem_valid = self.encode(enc_in) if self.has_encoder else (None, None)
        h = self.decoder(self.embed_ids(ids, step_in), memory, mem_valid,
                         memory_pos=enc_in[1] if self.has_encoder else None,
                         query_pos=self.query_positions(0, ids.shape[1], p, ids.device))
        logits = self.head(h[:, p:]).float()  # [B, n / K, V]
        if k > 1:  # a step's output predicts each of the next step's K tokens
            logits = logits.repeat_interleave(k, dim=1)  # [B, n, V]
        if allowed is not None:
            mask = allowed(torch.arange(target.shape[1], device=target.device))
            logits = logits.masked_fill(~mask[None], float("-inf"))
        valid = torch.ones_like(target, dtype=torch.bool) if target_valid is None else target_valid.bool()
        flat_t = target.masked_fill(~valid, -100)
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), flat_t.reshape(-1), ignore_index=-100,
                             reduction="none").view(target.shape)  # 0 where ignored
        n = valid.sum()
        loss = ce.sum() / n.clamp(min=1)
        with torch.no_grad():
            acc = ((logits.argmax(-1) == target) & valid).sum().float() / n.clamp(min=1)
            per_example = ce.sum(1) / valid.sum(1).clamp(min=1)  # each example's mean loss [B]
        return {"loss": loss, "accuracy": acc, "tokens": n, "example_loss": per_example, "token_loss": ce.detach(),
                "token_valid": valid}

    # -- generation -----------------------------------------------------------------------------
    @torch.no_grad()
    def generate(
        self,
        num_tokens: int,
        sampling: SamplingConfig,
        batch: int = 1,
        prefix: Tensor | None = None,
        prompt: Tensor | None = None,
        enc_in: EncoderInput | None = None,
        enc_in_uncond: EncoderInput | None = None,
        guidance: float = 1.0,
        allowed: AllowedFn | None = None,
        generator: Generators | None = None,  # one, or one per batch row (v2meow.sampling.sample)
        progress: ProgressFn | None = None,
        use_cache: bool = True,
        forced: Tensor | None = None,
        step_in: Tensor | None = None,
        step_in_uncond: Tensor | None = None,
    ) -> Tensor:
        """Sample ``num_tokens`` new target tokens -> ``[B, num_tokens]``.

        ``step_in [B, L, step_dim]``: the per-position conditioning of every decoder position (prefix, BOS, prompt
        and new steps), and ``step_in_uncond`` its unconditional rows under guidance (default: zeros).

        ``forced [B, num_tokens]``: where >= 0, the token written (and fed back) instead of the sampled one
        (the sample is still drawn, so every row's generator advances alike); a delay layout's pads and a
        continuation's codes that stand in a new step. With K tokens per step, ``num_tokens`` and the prompt's
        length are whole numbers of steps.

        ``prompt [B, m]``: target tokens already chosen (the tail of the previous window); they are fed,
        not sampled, and target positions count from the prompt's start. With ``guidance != 1`` and an
        unconditional encoder input, logits are ``uncond + guidance * (cond - uncond)``.
        ``use_cache=False`` recomputes the whole sequence every step (a reference for tests).
        """
        device = next(self.parameters()).device
        if prefix is not None:
            batch = prefix.shape[0]
        elif prompt is not None:
            batch = prompt.shape[0]
        elif enc_in is not None:
            batch = enc_in[0].shape[0]
        cfg_on = guidance != 1.0 and enc_in_uncond is not None
        memory = mem_valid = mem_pos = None
        if self.has_encoder:
            if enc_in is None:
                raise ValueError("this stage needs its conditioning inputs")
            memory, mem_valid = self.encode(enc_in)
            mem_pos = enc_in[1]
            if cfg_on:
                m_u, v_u = self.encode(enc_in_uncond)
                memory, mem_valid = torch.cat([memory, m_u]), torch.cat([mem_valid, v_u])
                mem_pos = torch.cat([mem_pos, enc_in_uncond[1]])
        rows = 2 * batch if cfg_on else batch

        k = self.tokens_per_step
        m = 0 if prompt is None else prompt.shape[1]
        if num_tokens % k or m % k:
            raise ValueError(f"with {k} tokens per step, {num_tokens} new and {m} prompt tokens are not whole steps")
        start = torch.zeros(batch, 0, dtype=torch.long, device=device) if prompt is None else prompt.to(device)
        ids = self.decoder_input(prefix.to(device) if prefix is not None else None, start)
        if cfg_on:
            ids = torch.cat([ids, ids])
            if step_in is not None:
                step_in = torch.cat([step_in, torch.zeros_like(step_in) if step_in_uncond is None else step_in_uncond])
        if step_in is not None:
            step_in = step_in.to(device)
        total = ids.shape[1] + num_tokens // k - 1
        cache = self.decoder.new_cache(rows, total, memory, mem_valid, mem_pos) if use_cache else None
        p_len = 0 if prefix is None else prefix.shape[1]
        masks = None if allowed is None else allowed(torch.arange(m, m + num_tokens, device=device))

        out = torch.zeros(batch, num_tokens, dtype=torch.long, device=device)
        forced = None if forced is None else forced.to(device)
        x, pos = ids, 0
        times = _TimeMasks(self, cache, total, p_len, device) if use_cache else None
        for i in range(num_tokens // k):
            if use_cache:
                h = self.decoder(self.embed_ids(x, step_in, pos), cache=cache, input_pos=pos,
                                 query_pos=self.query_positions(pos, x.shape[1], p_len, device),
                                 time_mask=times.at(pos) if x.shape[1] == 1 else None)
                pos += x.shape[1]
            else:
                h = self.decoder(self.embed_ids(x, step_in), memory, mem_valid, memory_pos=mem_pos,
                                 query_pos=self.query_positions(0, x.shape[1], p_len, device))
            logits = self.head(h[:, -1]).float()  # [rows, V]
            if cfg_on:
                logits = guide(logits[:batch], logits[batch:], guidance)
            for j in range(i * k, (i + 1) * k):
                lj = logits if masks is None else logits.masked_fill(~masks[j][None], float("-inf"))
                tok = sample(lj, sampling, generator)  # [B]
                out[:, j] = tok if forced is None else torch.where(forced[:, j] >= 0, forced[:, j], tok)
            step = out[:, i * k : (i + 1) * k]
            if k > 1:
                step = step[:, None, :]  # one position of K tokens
            if cfg_on:
                step = torch.cat([step, step])
            x = step if use_cache else torch.cat([x, step], 1)
            if progress is not None:
                progress((i + 1) * k, num_tokens)
        return out


class _TimeMasks:
    """The cross-attention time bias of one-query decoder steps, computed for ``CHUNK`` positions at a time
    (one bucketing of the memory's positions per chunk instead of one per step)."""

    CHUNK = 64

    def __init__(self, lm: TokenLM, cache, total: int, prefix_len: int, device: torch.device):
        self.lm, self.cache, self.total, self.prefix_len, self.device = lm, cache, total, prefix_len, device
        self.start, self.rows = 0, None
        self.on = (cache is not None and cache.memory_pos is not None and lm.decoder.cross_bias is not None
                   and lm.query_positions(0, 1, prefix_len, device) is not None)

    def at(self, pos: int) -> Tensor | None:
        """The bias of the query at decoder position ``pos``: ``[B, H, 1, S]`` (None: the decoder works it out)."""
        if not self.on:
            return None
        if self.rows is None or pos >= self.start + self.rows.shape[2]:
            self.start = pos
            q = self.lm.query_positions(pos, min(self.CHUNK, self.total - pos), self.prefix_len, self.device)
            rows = self.lm.decoder.cross_time_mask(q, self.cache.memory_pos, self.cache.self_bias.dtype)
            self.rows = rows.contiguous()  # the bias table's [B, H, Lq, S] is a view of [B, Lq, S, H]
        return self.rows[:, :, pos - self.start: pos - self.start + 1]
