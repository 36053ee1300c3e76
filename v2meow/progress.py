"""One fraction over a whole generation, for one progress bar with the time left across every stage.

:meth:`v2meow.pipeline.V2Meow.generate` reports ``(stage, done, total)`` for each stage in :data:`STAGES` order.
:class:`JobProgress` turns those reports into the fraction of the whole job done, weighting each stage by its
estimated cost per second of music (:func:`stage_weights`: decoder steps times a per-step cost from the stage's
depth and width, measured on CPUs), so a bar's rate -- and its estimate of the time left -- holds across stages.
The fraction never goes back and is 1.0 once the last stage is done.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from v2meow.config import V2MeowConfig

STAGES = ("features", "semantic", "coarse", "fine", "decode")  # the order V2Meow.generate reports them in
# Reported once, (0, 1), where the candidates are made a second time (a named tempo none of them reached): the
# stages then report again from "semantic"; a progress display starts over.
AGAIN = "again"
STAGE_WORDS = {"features": "reading the video", "semantic": "semantic tokens", "coarse": "coarse acoustic tokens",
               "fine": "fine acoustic tokens", "decode": "decoding the waveform",
               AGAIN: "none at the named tempo: making them again on its pulse"}
# Estimated cost per second of music, in the same unit as a decoder step's (below): the visual encoders read
# every frame; the codec decodes in chunks. Measured on 2 CPU cores with the debug and embedded presets.
FEATURES_COST = 20.0
DECODE_COST = 10.0
CROSS_ATTENTION = 1.5  # an encoder-decoder stage's step against a decoder-only one's of the same size


def step_cost(layers: int, width: int, cross: bool) -> float:
    """One decoder step's cost: per layer, a fixed overhead plus a part growing with width squared (on 2 CPU
    cores, 4 x 256 took 2.6 ms a step, 6 x 384 7.1 ms, 12 x 1024 46 ms)."""
    return 0.55 * layers * (1.0 + (width / 420.0) ** 2) * (CROSS_ATTENTION if cross else 1.0)


def stage_weights(cfg: V2MeowConfig) -> dict[str, float]:
    """Each stage's estimated cost per second of music (every stage's length grows with the music's)."""
    s, c, f = cfg.semantic, cfg.coarse, cfg.fine

    def per_step(t, cross: bool) -> float:
        return step_cost(t.decoder_layers, t.width, cross)

    return {
        "features": FEATURES_COST,
        "semantic": s.token_rate * per_step(s.transformer, True),
        "coarse": c.frame_rate * (c.levels if c.layout == "flat" else 1)  # delay: every level in one step
        * per_step(c.transformer, c.transformer.encoder_layers > 0),
        "fine": f.frame_rate * f.fine_levels * per_step(f.transformer, False),
        "decode": DECODE_COST,
    }


class JobProgress:
    """``(stage, done, total)`` reports -> the fraction of the whole job done, in ``[0, 1]``, never going back but
    at :data:`AGAIN`, where the job starts over from nothing done.

    Stages are taken in :data:`STAGES` order; a stage not in ``weights`` counts nothing. Calling it returns
    the fraction; :attr:`stage` is the stage last reported."""

    def __init__(self, weights: dict[str, float]):
        self.order = [s for s in STAGES if weights.get(s, 0.0) > 0]
        total = sum(weights[s] for s in self.order) or 1.0
        self.share = {s: weights[s] / total for s in self.order}
        self.before, acc = {}, 0.0
        for s in self.order:
            self.before[s] = acc
            acc += self.share[s]
        self.fraction = 0.0
        self.stage: str | None = None

    def __call__(self, stage: str, done: int, total: int) -> float:
        self.stage = stage
        if stage == AGAIN:
            self.fraction = 0.0
        elif stage in self.share:
            within = min(max(done / total, 0.0), 1.0) if total > 0 else 1.0
            f = self.before[stage] + self.share[stage] * within
            if stage == self.order[-1] and within >= 1.0:
                f = 1.0
            self.fraction = max(self.fraction, min(f, 1.0))
        return self.fraction

