"""Entry points behind ``v2meow train`` and ``v2meow export``."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from v2meow.config import V2MeowConfig, load_preset, load_yaml, preset_file, preset_names, stream_mismatches
from v2meow.data.shards import read_manifest
from v2meow.errors import ConfigError, UserError
from v2meow.train.checkpoint import latest_checkpoint, load_checkpoint
from v2meow.train.loop import STAGES, TrainConfig, Trainer, init_distributed


def load_train_config(spec: str) -> TrainConfig:
    """A training YAML file, or the name of a preset that ships a ``train.yaml``."""
    path = preset_file(spec, "train.yaml") if not os.path.exists(spec) else Path(spec)
    if path is None:
        raise UserError(f"Training config {spec} is neither a file nor a preset with a train.yaml "
                        f"({', '.join(preset_names())}).")
    return TrainConfig.from_dict(load_yaml(path), where=str(path))


def model_config_for(shards: str, model: str | None) -> V2MeowConfig:
    """The model config to train: the one the shards were extracted with, or ``model`` (a preset or directory)."""
    info = read_manifest(shards).get("info", {})
    if model is None:
        if "model_config" not in info:
            raise UserError(f"The shards in {shards} do not record their model; pass --model.")
        cfg = V2MeowConfig.from_dict(info["model_config"], where=f"{shards} manifest")
    elif os.path.isdir(model):
        from v2meow.modeldir import read_model_config

        cfg = V2MeowConfig.from_dict(read_model_config(Path(model))["config"], where=model)
    else:
        cfg = load_preset(model)
    check_shards_fit(cfg, info)
    return cfg


def check_shards_fit(cfg: V2MeowConfig, info: dict[str, Any]) -> None:
    """The stages must read what the shards hold: the same encoders (dims, rates), vocabularies and codec."""
    ids = info.get("identities")
    if not ids:
        return
    enc = {e["name"]: e for e in ids.get("encoders", [])}
    problems = []
    for stage, s, got in stream_mismatches(cfg, {name: (e.get("dim"), e.get("rate")) for name, e in enc.items()}):
        if got is None:
            problems.append(f"{stage} reads {s.name!r} features, which the shards do not hold")
        else:
            problems.append(f"{stage} reads {s.name!r} as dim {s.dim} at {s.rate}/s but the shards hold dim "
                            f"{got[0]} at {got[1]}/s")
    for e in cfg.encoders:  # streams left to be resolved must exist too
        if not cfg.semantic.streams and e.name not in enc:
            problems.append(f"the model's encoder {e.name!r} has no features in the shards")
    sem = ids.get("semantic_tokenizer", {})
    if sem and sem.get("vocab_size") != cfg.semantic.vocab_size:
        problems.append(f"the shards' semantic tokens have {sem.get('vocab_size')} ids, stage 1 writes "
                        f"{cfg.semantic.vocab_size}")
    codec = ids.get("codec", {})
    if codec and (codec.get("num_levels"), codec.get("codebook_size")) != (cfg.codec.num_levels,
                                                                           cfg.codec.codebook_size):
        problems.append(f"the shards' acoustic codes have {codec.get('num_levels')} levels of "
                        f"{codec.get('codebook_size')}, the model expects {cfg.codec.num_levels} of "
                        f"{cfg.codec.codebook_size}")
    if problems:
        raise ConfigError("The model does not fit these shards: " + "; ".join(problems) + ".")


# The backends whose output each stage learns from: tokens and features of other backends must never be mixed in.
STAGE_BACKENDS = {"semantic": ("encoders", "semantic_tokenizer"), "coarse": ("encoders", "semantic_tokenizer", "codec"),
                  "fine": ("codec",)}


def check_identities(stage: str, own: dict[str, Any], data: dict[str, Any] | None, subject: str) -> None:
    """Refuse (one sentence) training data of ``stage`` made by other backends than a model's own.

    ``own`` and ``data`` are :func:`v2meow.data.extract.backend_identities` of the model and of what made the data;
    ``subject`` starts the sentence, e.g. ``"the shards in S hold"``.
    """
    from v2meow.tokenizers.codec.base import compare_identities

    for role in STAGE_BACKENDS[stage]:
        if not data or role not in data or role not in own:
            continue
        if role == "encoders":
            made = {e.get("name"): e for e in data[role]}
            for e in own[role]:
                if e.get("name") in made:
                    compare_identities(e, made[e["name"]], f"{subject} {e['name']!r} features made with")
        else:
            what = {"codec": "acoustic", "semantic_tokenizer": "semantic"}[role]
            compare_identities(own[role], data[role], f"{subject} {what} tokens made with")


def resolve_model_streams(cfg: V2MeowConfig) -> V2MeowConfig:
    from v2meow.config import resolve_streams
    from v2meow.features.registry import build_encoder

    if cfg.semantic.streams and (cfg.coarse.variant != "encdec" or cfg.coarse.streams):
        return cfg  # already resolved (e.g. the config recorded in a shard manifest)
    # only the encoders' dims and rates are needed: never load pretrained weights for that
    resolve_streams(cfg, [build_encoder(e, load_weights=False) for e in cfg.encoders])
    return cfg


def train(stage: str, shards: str, config: str | TrainConfig, run_dir: str, model: str | None = None,
          max_steps: int | None = None, device: str | None = None, progress: bool = True,
          seconds: float | None = None, init_from: str | None = None) -> dict[str, float]:
    """Train ``stage`` on ``shards`` in ``run_dir`` (an existing run resumes). ``init_from`` (a model directory)
    starts a new run from that model's weights of the stage instead of random ones; it must have the run's
    stage config."""
    if stage not in STAGES:
        raise UserError(f"Unknown stage {stage!r}; choose one of {', '.join(STAGES)}.")
    cfg = config if isinstance(config, TrainConfig) else load_train_config(config)
    if max_steps is not None:
        cfg = cfg.replace(max_steps=max_steps)
    model_cfg = resolve_model_streams(model_config_for(shards, model))
    identities = read_manifest(shards).get("info", {}).get("identities")
    if model is not None and os.path.isdir(model):
        from v2meow.data.extract import backend_identities
        from v2meow.pipeline import V2Meow

        check_identities(stage, backend_identities(V2Meow.from_pretrained(model)), identities,
                         f"the shards in {shards} hold")
    init_distributed()
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(stage, shards, model_cfg, cfg, run, device=device)
    if init_from is not None and latest_checkpoint(run) is None:
        fresh = warm_start(trainer, init_from)
        if fresh and trainer.rank == 0:
            print(f"{run}: started from {init_from}; drawn fresh: {', '.join(fresh)}", file=sys.stderr)
    if trainer.rank == 0:
        (run / "run.json").write_text(json.dumps({"stage": stage, "shards": str(shards), "train_config": cfg.to_dict(),
                                                  "model_config": model_cfg.to_dict(), "identities": identities},
                                                 indent=1))
    return trainer.fit(progress=progress, seconds=seconds)


# The stage config fields that only size a token table: a run whose semantic tokenizer has another vocabulary can
# start from a model's stage all the same, with those tables drawn fresh (3-8% of the embedded stages' weights).
VOCAB_FIELDS = {"semantic": ("vocab_size",), "coarse": ("semantic_vocab",)}


def warm_start(trainer: Trainer, model_dir: str) -> list[str]:
    """Put ``model_dir``'s weights of the trainer's stage in place (and in its EMA) before step 0; returns the names
    of the weights left as initialised.

    The run's stage may add step streams (``coarse.step_streams``) to the source's: their projection starts at
    zero, so the stage starts where the source's stood. It may also read or write another semantic vocabulary
    (:data:`VOCAB_FIELDS`): the token tables whose size that changes start fresh, every other weight is taken."""
    from v2meow.pipeline import V2Meow

    stage = trainer.stage_name
    src = V2Meow.from_pretrained(model_dir)
    part = getattr(src, stage)
    mine = getattr(trainer.model_cfg, stage).to_dict()
    theirs = None if part is None else part.cfg.to_dict()
    grows = theirs is not None and not theirs.get("step_streams") and bool(mine.get("step_streams"))
    if grows:
        theirs = {**theirs, "step_streams": mine["step_streams"]}
    resized = theirs is not None and any(theirs[k] != mine[k] for k in VOCAB_FIELDS.get(stage, ()))
    if resized:
        theirs = {**theirs, **{k: mine[k] for k in VOCAB_FIELDS[stage]}}
    if theirs != mine:
        raise UserError(f"{model_dir}'s {stage} stage is not the one this run trains; it cannot start from it.")
    own = {k: v.shape for k, v in trainer.stage.state_dict().items()}
    weights = {k: v.float() for k, v in part.state_dict().items()}
    missing = [k for k in own if k not in weights]
    reshaped = [k for k in own if k in weights and weights[k].shape != own[k]]
    if set(weights) - set(own) or any(not (grows and k.startswith("lm.step_proj.")) for k in missing) or \
            (reshaped and not resized):
        raise UserError(f"{model_dir}'s {stage} weights do not fit this run's stage.")
    trainer.stage.load_state_dict({k: v for k, v in weights.items() if k not in reshaped}, strict=False)
    fresh = sorted(missing + reshaped)
    trainer.reset_ema()
    return fresh


def export(base: str, out: str, runs: dict[str, str | None], ema: bool = False, fp16: bool = False) -> Path:
    """A model directory: ``base`` (codec, tokenizers, encoders) with the stages' weights from training runs."""
    import torch

    from v2meow.data.extract import backend_identities
    from v2meow.modeldir import load_state
    from v2meow.pipeline import V2Meow

    model = V2Meow.from_pretrained(base)
    own = backend_identities(model)
    used = 0
    for stage, run in runs.items():
        if run is None:
            continue
        ck_path = latest_checkpoint(run)
        if ck_path is None:
            raise UserError(f"Run {run} has no checkpoint yet.")
        ck = load_checkpoint(ck_path, weights_only=True)
        st = ck["state"]
        if st.get("stage") != stage:
            raise UserError(f"Run {run} trained stage {st.get('stage')!r}, not {stage!r}.")
        try:
            made_by = json.loads((Path(run) / "run.json").read_text()).get("identities")
        except (OSError, ValueError, AttributeError):
            made_by = None  # a run from before identities were recorded
        check_identities(stage, own, made_by, f"run {run} was trained on")
        run_cfg = V2MeowConfig.from_dict(st["model_config"])
        if getattr(run_cfg, stage).to_dict() != getattr(model.cfg, stage).to_dict():
            # the run may have used other stage sizes than the base: take the run's stage config
            setattr(model.cfg, stage, getattr(run_cfg, stage))
            from v2meow.config import check_fit
            from v2meow.train.loop import build_stage

            check_fit(model.cfg, model.encoders)
            setattr(model, stage, build_stage(stage, model.cfg))
        weights = ck["ema"] if (ema and ck["ema"] is not None) else ck["model"]
        load_state(getattr(model, stage), weights, ck_path / "model.safetensors")
        used += 1
    if used == 0:
        raise UserError("Name at least one training run (--semantic, --coarse or --fine) to export.")
    return model.save_pretrained(out, dtype=torch.float16 if fp16 else None)
