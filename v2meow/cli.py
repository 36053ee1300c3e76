"""The ``v2meow`` command line. Each subcommand parses its options and calls one plain function.

Errors a user can cause end as one sentence on stderr and exit status 2; nothing half-written is left.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

from v2meow.errors import UserError
from v2meow.soundtrack import AUDIO_EXTENSIONS, VIDEO_EXTENSIONS  # noqa: F401  (re-exported)
from v2meow.soundtrack import check_output as _check_output
from v2meow.soundtrack import model_path as _model_path

EXIT_USAGE = 2


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _utf8_text(text: str) -> str:
    """Text from the command line: bytes the locale could not decode arrive as lone surrogates; refuse them."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise argparse.ArgumentTypeError("the text is not valid UTF-8 (check the terminal's encoding)") from None
    return text


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer seed, got {text!r}") from None
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"the seed must be in 0..2^63-1, got {value}")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on bad usage already; keep its message to one line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        # "v2meow: error: ..." for subcommands too: every error the tool reports starts the same way, as a sentence
        self.exit(EXIT_USAGE, f"{self.prog.split()[0]}: error: {message.rstrip('.')}.\n")


def _command(sub: argparse._SubParsersAction, name: str, help: str, source: str, source_help: str,
             output_help: str) -> argparse.ArgumentParser:
    """A subcommand that reads ``source`` (its positional argument) and writes ``-o/--output`` (required)."""
    p = sub.add_parser(name, help=help)
    p.add_argument(source, help=source_help)
    p.add_argument("-o", "--output", required=True, help=output_help)
    return p


def _placement(p: argparse.ArgumentParser) -> None:
    """``--device`` and ``--precision``: where a command's stages and codec run (V2Meow.place)."""
    p.add_argument("--device", default="cpu",
                   help="where the stages and the codec run: cpu (the default), cuda, cuda:1")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                   help="what the stages compute in (default: fp32; bf16 halves their memory)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="v2meow", description="Write a music soundtrack for a video (V2Meow).")
    p.add_argument("--version", action="version", version=_version())
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    g = _command(sub, "generate", "write a soundtrack for a video", "video", "input video file",
                 "output .wav/.flac (the soundtrack) or .mp4 (the video with its new soundtrack)")
    g.add_argument("--prompt", type=_utf8_text, default=None,
                   help='text that steers the style, e.g. "warm acoustic guitar"')
    g.add_argument("--model", default="embedded", help="model directory or preset name (default: embedded)")
    g.add_argument("--seed", type=_seed, default=None, help="random seed: the same seed gives the same music")
    g.add_argument("--seconds", type=_finite_float, default=None,
                   help="length to write (default: the video's length, or the rest of it after --start)")
    g.add_argument("--start", type=_finite_float, default=0.0,
                   help="score the stretch of the video from this many seconds in (default: 0)")
    g.add_argument("--candidates", type=int, default=None,
                   help="generate N soundtracks in one batch and keep the one whose onsets best meet the video's "
                        "visual beats (+ its similarity to --prompt); candidate i uses seed SEED+i "
                        "(default: the model's own)")
    g.add_argument("--tempo", type=_finite_float, default=None, metavar="BPM",
                   help="the music's tempo, 30-300 BPM: the stages read a steady pulse at that tempo instead of the "
                        "picture's own rhythm (default: the tempo --prompt names, as in \"... at 120 BPM\", else "
                        "the picture's)")
    g.add_argument("--lock-tempo", action=argparse.BooleanOptionalAction, default=None,
                   help="where the picture moves on one steady pulse from start to end (a bouncing ball, a dancer's "
                        "steps), lock the music's tempo onto it as --tempo would (default: the model's; the "
                        "embedded model does not: the music follows the beat but grows noisier and quieter)")
    g.add_argument("--fit-pulse", action=argparse.BooleanOptionalAction, default=None,
                   help="where the picture moves on one steady pulse from start to end (or --tempo names one), "
                        "time-warp the music's beats onto it, the pitch kept, when its tempo is near (default: the "
                        "model's; the embedded model does, within 15 %%)")
    g.add_argument("--drum-redraws", type=int, default=None, metavar="N",
                   help="where stage 1 writes a drum loop playing alone (a habit the shipped stages learnt from "
                        "their training renders), draw that stretch again, up to N times: in 2-minute soundtracks "
                        "3 took it from 16 %% of the time to 1 %%, but short clips then sit a little further from "
                        "real music (docs/long-videos.md; default: the model's, 0 = off)")
    g.add_argument("--plot", action="store_true",
                   help="also write OUTPUT's stem + .png: the music's spectrogram with its onsets and beats above "
                        "the video's motion curve and visual beats, titled with the alignment score")
    g.add_argument("--guidance", type=_finite_float, default=None,
                   help="classifier-free guidance scale for the prompt (default: the model's; 1 = off)")
    g.add_argument("--loudness", type=_finite_float, default=None,
                   help="the music's integrated loudness in LUFS, by one gain that never passes -1 dBFS "
                        "(default: the model's, -16; 0 keeps the level the model makes)")
    g.add_argument("--limit", type=_finite_float, default=None, metavar="DB",
                   help="let a look-ahead limiter take up to DB dB off a few sharp peaks that would stop the gain "
                        "short of --loudness (default: the model's, 0 = off; 6 brings most soundtracks to it)")
    _placement(g)
    g.add_argument("--quiet", action="store_true", help="no progress bar")

    i = sub.add_parser("info", help="show a model directory's parts and sizes")
    i.add_argument("model", help="model directory or preset name")

    e = _command(sub, "extract", "turn a folder of music videos into training shards",
                 "videos", "folder of videos (searched recursively)", "shard folder (created; a rerun resumes)")
    e.add_argument("--model", required=True, help="model directory or preset whose encoders and tokenizers to use")
    e.add_argument("--shard-size", type=int, default=32, help="videos per shard")
    e.add_argument("--workers", type=int, default=1, help="processes")
    e.add_argument("--shard-index", type=int, default=None, help="this machine's index (default: torchrun RANK)")
    e.add_argument("--num-shards", type=int, default=None, help="machines in all (default: torchrun WORLD_SIZE)")
    e.add_argument("--val-fraction", type=_finite_float, default=0.1,
                   help="share of videos held out (a synth-data video whose music's sources.json says "
                        "whether it is held out follows that flag)")
    e.add_argument("--seed", type=_seed, default=0, help="fixes the train/validation split")
    e.add_argument("--quiet", action="store_true")

    t = sub.add_parser("train", help="train a stage on shards, or a tokenizer / the joint model on music")
    t.add_argument("stage", choices=["semantic", "coarse", "fine", "codec", "semantic-tokenizer", "joint"])
    t.add_argument("--shards", default=None, help="shard folder from `v2meow extract` (the three stages)")
    t.add_argument("--data", default=None, help="folder of music (codec, semantic-tokenizer, joint)")
    t.add_argument("--config", default=None,
                   help="training YAML, or a preset name (default: debug for stages, embedded otherwise)")
    t.add_argument("-o", "--run", required=True, help="run folder: checkpoints and logs; an existing run resumes")
    t.add_argument("--model", default=None, help="model config (preset or directory); default: the shards' model")
    t.add_argument("--max-steps", type=int, default=None)
    t.add_argument("--minutes", type=_finite_float, default=None,
                   help="the stages and the codec: stop after about this long, with a checkpoint; run again to "
                        "continue on the same schedule")
    t.add_argument("--init-from", default=None,
                   help="a model directory whose weights of the stage a new run starts from (the three stages); "
                        "for the codec, a codec run or a tokenizer directory")
    t.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    t.add_argument("--quiet", action="store_true")

    tk = _command(sub, "tokenize", "semantic and acoustic tokens of audio files (shipped tokenizers)",
                  "audio", "an audio file or a folder of them", "a .safetensors file (one input) or a folder")
    tk.add_argument("--tokenizers", default=None, help="tokenizer directory (default: the shipped ones)")
    tk.add_argument("--quiet", action="store_true")
    dt = _command(sub, "detokenize", "decode a token file back to audio",
                  "tokens", "a token file from `v2meow tokenize`", "output .wav/.flac")
    dt.add_argument("--tokenizers", default=None, help="tokenizer directory (default: the shipped ones)")
    dt.add_argument("--levels", type=int, default=None, help="decode only the first N codec levels")

    v = sub.add_parser("evaluate", help="generate for videos and score with the paper's metrics")
    v.add_argument("--model", default="embedded", help="model directory or preset name (default: embedded)")
    v.add_argument("--videos", required=True, help="folder of videos with their music (the references)")
    v.add_argument("-o", "--output", required=True, help="report folder: report.json, report.md, plots/, audio/")
    v.add_argument("--prompts", default=None, help="JSON file mapping video file names to prompts")
    v.add_argument("--seconds", type=_finite_float, default=10.0, help="length scored per video")
    v.add_argument("--generations", type=int, default=1, help="samples per video (Table 2 of the paper: 5)")
    v.add_argument("--segments", default="2,6,10", help="beat-alignment segment lengths in seconds")
    v.add_argument("--max-videos", type=int, default=None)
    v.add_argument("--seed", type=_seed, default=0)
    v.add_argument("--guidance", type=_finite_float, default=None,
                   help="classifier-free guidance scale for the prompt (default: the model's; 1 = off)")
    v.add_argument("--candidates", type=int, default=None,
                   help="score each video's best of N soundtracks by its beats, as generate --candidates N "
                        "(default: the model's)")
    v.add_argument("--fad-backend", default="semantic", choices=["semantic", "codec", "vggish"],
                   help="FAD embedding (default: the shipped semantic encoder); the codec encoder's is reported too")
    v.add_argument("--vggish-weights", default=None, help="VGGish weights (safetensors) for --fad-backend vggish")
    v.add_argument("--joint", default=None,
                   help="score MCC and KLD with this joint model (a `train joint` run or export, or 'embedded') "
                        "instead of the model's own: pin it to compare models that ship different joint models")
    _placement(v)
    v.add_argument("--quiet", action="store_true")

    sd = _command(sub, "synth-data", "render paired videos from music (for tests, demos and training)",
                  "music", "folder of music files (searched recursively)",
                  "folder for the videos (+ a .json sidecar each)")
    sd.add_argument("--seconds", type=_finite_float, default=None, help="at most this much of each track")
    sd.add_argument("--size", default="256x144", help="WxH")
    sd.add_argument("--fps", type=int, default=24)
    sd.add_argument("--seed", type=_seed, default=0)
    sd.add_argument("--workers", type=int, default=1)
    sd.add_argument("--license", default=None, help="licence to record for tracks that carry none")
    sd.add_argument("--world", default=None, help="force one visual world")
    sd.add_argument("--quiet", action="store_true")

    from v2meow.app import web  # standard library only until it serves

    sv = sub.add_parser("serve", help="serve the web page: upload a video, get it back with a soundtrack (Gradio)")
    sv.add_argument("--model", default="embedded", help="model directory or preset name (default: embedded)")
    sv.add_argument("--host", default=web.DEFAULT_HOST,
                    help="address to listen on (default: %(default)s; 0.0.0.0: every interface)")
    sv.add_argument("--port", type=int, default=web.DEFAULT_PORT, help="port (default: %(default)s)")
    sv.add_argument("--max-queue", type=int, default=web.DEFAULT_MAX_QUEUE,
                    help="requests that may wait; one more is told the queue is full (default: %(default)s)")
    sv.add_argument("--concurrency", type=int, default=web.DEFAULT_CONCURRENCY,
                    help="generations that run at once (default: %(default)s)")
    sv.add_argument("--max-upload-mb", type=_finite_float, default=web.DEFAULT_MAX_UPLOAD_MB,
                    help="largest video upload in MB (default: %(default)g)")
    sv.add_argument("--max-video-seconds", type=_finite_float, default=web.DEFAULT_MAX_VIDEO_SECONDS,
                    help="longest video in seconds (default: %(default)g)")
    _placement(sv)

    st = sub.add_parser("study", help="listening study: serve the rating page, export win rates")
    st_sub = st.add_subparsers(dest="study_command", required=True, parser_class=_Parser)
    ss = st_sub.add_parser("serve", help="serve a study folder's rating page")
    ss.add_argument("study", help="study folder (study.json and its media)")
    ss.add_argument("--db", required=True, help="SQLite file for the ratings (created)")
    ss.add_argument("--host", default="127.0.0.1")
    ss.add_argument("--port", type=int, default=8000)
    se = st_sub.add_parser("export", help="win rates with 95%% confidence intervals")
    se.add_argument("study", help="study folder")
    se.add_argument("--db", required=True, help="SQLite file with the ratings")
    se.add_argument("-o", "--output", required=True, help="results JSON")

    x = sub.add_parser("export", help="make a model directory from training runs")
    x.add_argument("--base", required=True, help="model directory (or preset) with the codec and tokenizers")
    x.add_argument("--semantic", default=None, help="run folder of stage 1")
    x.add_argument("--coarse", default=None, help="run folder of stage 2")
    x.add_argument("--fine", default=None, help="run folder of stage 3")
    x.add_argument("-o", "--output", required=True, help="model directory to write")
    x.add_argument("--ema", action="store_true", help="export the EMA weights where a run kept them")
    x.add_argument("--fp16", action="store_true", help="store weights in float16")
    return p


def _version() -> str:
    from v2meow import __version__

    return f"v2meow {__version__}"


def cmd_generate(args: argparse.Namespace) -> int:
    from v2meow.io.video import probe
    from v2meow.pipeline import V2Meow
    from v2meow.soundtrack import plan_output, write_soundtrack

    plot_path = plan_output(args.video, args.output, plot=args.plot)
    info = probe(args.video)  # fail fast on a bad video, before loading a model
    from v2meow.features.tempo import check_tempo, prompt_tempo

    check_tempo(args.tempo) if args.tempo is not None else prompt_tempo(args.prompt)  # and on a bad tempo
    from v2meow.device import resolve_placement

    device, _ = resolve_placement(args.device, args.precision)  # and on a device this machine lacks
    model = V2Meow.from_pretrained(_model_path(args.model)).place(device, args.precision)
    from v2meow.progress import stage_weights

    bar = _ProgressBar(enabled=not args.quiet, weights=stage_weights(model.cfg))
    try:
        track = write_soundtrack(model, args.video, args.output, prompt=args.prompt, seconds=args.seconds,
                                 seed=args.seed, guidance=args.guidance, start=args.start,
                                 candidates=args.candidates, loudness=args.loudness, limit_db=args.limit,
                                 plot_path=plot_path, tempo=args.tempo, lock_tempo=args.lock_tempo,
                                 fit_pulse=args.fit_pulse, drum_redraws=args.drum_redraws, progress=bar)
    finally:
        bar.close()
    if len(track.scores) > 1:
        _print_candidates(track, quiet=args.quiet)
    note = (f"; {args.video} is damaged and only its first {info.duration:.2f} s of {info.stated_duration:.2f} s "
            "could be read" if info.damaged else "")
    where = f" from {track.start:g} s" if track.start > 0 else ""
    if track.pulses and not args.quiet:
        t0 = track.start
        at = "" if track.tempo is not None else " " + ", ".join(
            f"from {t0 + p.start:.1f} s to {t0 + p.end:.1f} s ({p.bpm:.0f} BPM)" for p in track.pulses)
        bpm = f", {track.tempo:.0f} BPM" if track.tempo is not None else ""
        print(f"the picture moves on a steady pulse{at}: the music's tempo is locked to it{bpm} "
              "(--no-lock-tempo lets it go)", file=sys.stderr)
    if track.fits and not args.quiet:
        first, t0 = track.fits[0], track.start
        whole = len(track.fits) == 1 and first.start == 0 and first.end >= track.seconds
        how = "; ".join(("" if whole else f"from {t0 + f.start:.1f} s to {t0 + f.end:.1f} s, ") +
                        f"{f.tempo:.0f} -> {f.tempo * f.rate:.0f} BPM, {f.beats} beats" for f in track.fits)
        onto = "the named tempo's pulse" if track.tempo_source == "tempo" else "the picture's steady pulse"
        print(f"the music's beats are warped onto {onto} ({how}; --no-fit-pulse leaves them as made)", file=sys.stderr)
    if track.remade and not args.quiet:
        print(f"no candidate made to the picture's own rhythm reached {track.tempo:.0f} BPM: they were made again on "
              "a pulse at that tempo", file=sys.stderr)
    pic = f" and {plot_path}" if plot_path is not None else ""
    print(f"wrote {args.output}{pic} ({track.seconds:.2f} s of music{where}{note})", file=sys.stderr)
    return 0


def _print_candidates(track, quiet: bool) -> None:
    """Each candidate's score (unless ``quiet``), then the one kept and the seed that makes it alone."""
    if not quiet:
        for c in track.scores:
            text = f" + text {c.text:.3f}" if c.text is not None else ""
            if c.noise is not None:  # the penalty times its noise score
                text += f" - noise {c.beat + (c.text or 0.0) - c.total:.3f}"
            print(f"candidate {c.index} (seed {c.seed}): beat alignment {c.beat:.3f}{text} = score {c.total:.3f}",
                  file=sys.stderr)
    kept = track.scores[track.chosen]
    why = ""
    if kept.tempo is not None and kept.total < max(c.total for c in track.scores):
        why = f", its tempo {kept.tempo:.0f} BPM on the picture's pulse"  # tempo_pick kept it over a higher score
    print(f"kept candidate {kept.index} (seed {kept.seed}, score {kept.total:.3f}{why}); --seed {kept.seed} "
          "--candidates 1 makes it alone", file=sys.stderr)


def cmd_info(args: argparse.Namespace) -> int:
    from v2meow.modeldir import CONFIG_FILE, read_model_config
    from v2meow.pipeline import V2Meow

    path = Path(_model_path(args.model))
    if path.is_dir():
        meta = read_model_config(path)
        cfg = meta["config"]
        print(f"model {path} (format {meta['format']} v{meta['format_version']}, "
              f"written by v2meow {meta.get('v2meow_version', '?')}, preset {cfg.get('name', '?')})")
        total = 0
        for name, e in meta["parts"].items():
            total += int(e.get("bytes", 0))
            print(f"  {name:<18} {e.get('parameters', 0):>12,} params  {_size(int(e.get('bytes', 0))):>9}  "
                  f"{e.get('file')}")
        print(f"  {'total':<18} {'':>12}         {_size(total):>9}  (+ {CONFIG_FILE})")
        if meta.get("base"):
            print(f"  and the parts the package ships for {meta['base']!r} (codec, semantic tokenizer, joint model)")
        return 0
    model = V2Meow.from_pretrained(str(path))
    print(f"preset {args.model} (random weights, not a trained model)")
    for name, module in model.parts().items():
        n = sum(p.numel() for p in module.state_dict().values())
        print(f"  {name:<18} {n:>12,} params")
    return 0


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


class _ProgressBar:
    """One tqdm bar over the whole generation (every stage, weighted by its estimated cost), with the time left;
    its description names the stage at work."""

    def __init__(self, enabled: bool, weights: dict[str, float]):
        from v2meow.progress import JobProgress

        self.enabled = enabled and sys.stderr is not None
        self.job = JobProgress(weights)
        self.bar = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        from v2meow.progress import AGAIN, STAGE_WORDS

        if stage == AGAIN:  # the candidates are made again: a new bar for the second pass (the job starts over)
            self.close()
        fraction = self.job(stage, done, total)
        desc = STAGE_WORDS.get(stage, stage)
        if self.bar is None:
            self.bar = tqdm(total=100, desc=desc, unit="%", leave=True, file=sys.stderr, dynamic_ncols=True,
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]")
        if self.bar.desc != desc:
            self.bar.set_description_str(desc)  # shown at once: a short stage is named even between refreshes
        self.bar.update(100 * fraction - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def cmd_extract(args: argparse.Namespace) -> int:
    from v2meow.data.extract import extract

    index = args.shard_index if args.shard_index is not None else int(os.environ.get("RANK", 0))
    count = args.num_shards if args.num_shards is not None else int(os.environ.get("WORLD_SIZE", 1))
    m = extract(args.videos, args.output, _model_path(args.model), shard_size=args.shard_size,
                workers=args.workers, shard_index=index, num_shards=count, val_fraction=args.val_fraction,
                seed=args.seed, progress=not args.quiet)
    for line in m.get("skipped", []):
        print(f"skipped {line}", file=sys.stderr)
    splits = [c["split"] for c in m["clips"]]
    print(f"{args.output}: {len(m['shards'])} shards, {splits.count('train')} training and "
          f"{splits.count('validation')} validation clips", file=sys.stderr)
    return 0


MUSIC_TRAINERS = {"codec": ("v2meow.train.tokenizers", "train_codec"),
                  "semantic-tokenizer": ("v2meow.train.tokenizers", "train_semantic_tokenizer"),
                  "joint": ("v2meow.train.joint", "train_joint")}


def cmd_train(args: argparse.Namespace) -> int:
    if args.device is not None:  # a device this machine lacks is said before anything is loaded
        from v2meow.device import resolve_device

        resolve_device(args.device)
    if args.stage in MUSIC_TRAINERS:
        import importlib

        if not args.data:
            raise UserError(f"train {args.stage} needs --data MUSIC_DIR.")
        extra = {}
        if args.stage == "codec":
            if args.minutes is not None and args.minutes <= 0:
                raise UserError(f"--minutes must be > 0, got {args.minutes:g}.")
            if args.init_from is not None and not os.path.isdir(args.init_from):
                raise UserError(f"--init-from {args.init_from} is not a codec run or a tokenizer folder.")
            extra = {"seconds": None if args.minutes is None else 60.0 * args.minutes, "init_from": args.init_from}
        elif args.minutes is not None:
            raise UserError(f"--minutes bounds the stages' and the codec's training; train {args.stage} takes "
                            "--max-steps.")
        elif args.init_from is not None:
            raise UserError(f"--init-from starts the stages or the codec from trained weights; train {args.stage} "
                            "cannot.")
        module, name = MUSIC_TRAINERS[args.stage]
        fn = getattr(importlib.import_module(module), name)
        last = fn(args.data, args.config or "embedded", args.run, max_steps=args.max_steps, device=args.device,
                  progress=not args.quiet, **extra)
    else:
        from v2meow.train.run import train

        if not args.shards:
            raise UserError(f"train {args.stage} needs --shards SHARD_DIR (from `v2meow extract`).")
        if args.minutes is not None and args.minutes <= 0:
            raise UserError(f"--minutes must be > 0, got {args.minutes:g}.")
        last = train(args.stage, args.shards, args.config or "debug", args.run, model=args.model,
                     max_steps=args.max_steps, device=args.device, progress=not args.quiet,
                     seconds=None if args.minutes is None else 60.0 * args.minutes, init_from=args.init_from)
    shown = {k: round(v, 4) if isinstance(v, float) else v for k, v in last.items()}
    print(f"{args.run}: {shown}", file=sys.stderr)
    return 0


def cmd_tokenize(args: argparse.Namespace) -> int:
    from v2meow.tokenizers.tokenfile import tokenize

    written = tokenize(args.audio, args.output, tokenizers=args.tokenizers, progress=not args.quiet)
    print(f"wrote {len(written)} token file(s) to {args.output}", file=sys.stderr)
    return 0


def cmd_detokenize(args: argparse.Namespace) -> int:
    from v2meow.tokenizers.tokenfile import detokenize

    _check_output(args.output)
    if Path(args.output).suffix.lower() not in AUDIO_EXTENSIONS:
        raise UserError(f"Output {args.output} must be a .wav or .flac file.")
    out = detokenize(args.tokens, args.output, tokenizers=args.tokenizers, levels=args.levels)
    print(f"wrote {out}", file=sys.stderr)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    import json

    from v2meow.metrics.evaluate import EvalOptions, evaluate

    prompts = {}
    if args.prompts:
        try:
            prompts = json.loads(Path(args.prompts).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            raise UserError(f"--prompts {args.prompts} is not a readable JSON file.") from None
        if not isinstance(prompts, dict) or not all(isinstance(v, str) for v in prompts.values()):
            raise UserError("--prompts must map video file names to prompt strings.")
    try:
        segments = tuple(float(s) for s in args.segments.split(","))
    except ValueError:
        raise UserError(f"--segments must be numbers separated by commas, got {args.segments!r}.") from None
    if not segments or any(not (0 < s <= 600) for s in segments):
        raise UserError("--segments must be lengths in (0, 600] seconds.")
    opts = EvalOptions(seconds=args.seconds, generations=args.generations, segments=segments, seed=args.seed,
                       max_videos=args.max_videos, guidance=args.guidance, candidates=args.candidates,
                       fad_backend=args.fad_backend, vggish_weights=args.vggish_weights, prompts=prompts,
                       joint=args.joint, device=args.device, precision=args.precision)
    evaluate(_model_path(args.model), args.videos, args.output, opts, progress=not args.quiet)
    print(f"wrote {args.output}/report.md and report.json", file=sys.stderr)
    return 0


def cmd_synth_data(args: argparse.Namespace) -> int:
    from v2meow.data.synth import synth_data

    try:
        w, h = (int(x) for x in args.size.lower().split("x"))
    except ValueError:
        raise UserError(f"--size must look like 256x144, got {args.size!r}.") from None
    results = synth_data(args.music, args.output, seconds=args.seconds, size=(w, h), fps=args.fps, seed=args.seed,
                         workers=args.workers, progress=not args.quiet, license=args.license, world=args.world)
    failed = [r for r in results if r.get("status") == "failed"]
    for r in failed:
        print(f"failed {r.get('source', {}).get('relative', r.get('video'))}: {r.get('error')}", file=sys.stderr)
    done = sum(r.get("status") == "rendered" for r in results)
    print(f"{args.output}: {done} rendered, {sum(r.get('status') == 'skipped' for r in results)} already there, "
          f"{len(failed)} failed", file=sys.stderr)
    return 1 if failed else 0


def cmd_serve(args: argparse.Namespace) -> int:
    from v2meow.app.web import Limits, import_gradio, serve

    import_gradio()  # a missing Gradio is said before anything is loaded
    limits = Limits(max_upload_mb=args.max_upload_mb, max_video_seconds=args.max_video_seconds)
    serve(_model_path(args.model), host=args.host, port=args.port, max_queue=args.max_queue,
          concurrency=args.concurrency, limits=limits, device=args.device, precision=args.precision)
    return 0


def cmd_study(args: argparse.Namespace) -> int:
    from v2meow.app.study import export_study, serve_study

    if args.study_command == "serve":
        serve_study(args.study, args.db, host=args.host, port=args.port)
        return 0
    result = export_study(args.study, args.db, args.output)
    print(result["markdown"])
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from v2meow.train.run import export

    out = export(_model_path(args.base), args.output,
                 {"semantic": args.semantic, "coarse": args.coarse, "fine": args.fine}, ema=args.ema, fp16=args.fp16)
    print(f"wrote model directory {out}", file=sys.stderr)
    return 0


COMMANDS = {"generate": cmd_generate, "info": cmd_info, "extract": cmd_extract, "train": cmd_train,
            "export": cmd_export, "evaluate": cmd_evaluate, "study": cmd_study, "serve": cmd_serve,
            "synth-data": cmd_synth_data, "tokenize": cmd_tokenize, "detokenize": cmd_detokenize}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, or a usage error (already printed)
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    try:
        return COMMANDS[args.command](args)
    except UserError as e:
        print(f"v2meow: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("v2meow: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
