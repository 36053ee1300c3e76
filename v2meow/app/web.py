"""``v2meow serve``: a Gradio page where a creator uploads a video and gets it back with a new soundtrack.

The page takes a video, an optional prompt and the settings of ``v2meow generate`` (seconds, start, seed,
guidance, candidates), shows progress while the model works, then plays the scored video in the page and
offers it for download. Generation takes the same path as the command line
(:func:`v2meow.soundtrack.write_soundtrack`) with one model loaded at start and shared by every request.

Several users at once go through Gradio's queue: at most ``concurrency`` generations run together and at most
``max_queue`` wait; past that the page says the queue is full. Uploads over ``max_upload_mb`` and videos longer
than ``max_video_seconds`` are refused with one sentence in the page, as is any generation that fails; a failed
request leaves no file behind. :class:`WebScorer` is the request logic without Gradio; :func:`build_app` wraps it
in the page.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from v2meow.errors import UserError

if TYPE_CHECKING:
    from v2meow.pipeline import V2Meow

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
DEFAULT_MAX_QUEUE = 16  # requests waiting; one more is told the queue is full
DEFAULT_CONCURRENCY = 1  # generations at once (each uses every core torch is given)
DEFAULT_MAX_UPLOAD_MB = 200.0
DEFAULT_MAX_VIDEO_SECONDS = 120.0
MB = 2**20  # bytes in the MB of --max-upload-mb (as Gradio counts them)
MAX_PAGE_CANDIDATES = 4  # best-of-N on a shared server: N generations' work per request
MAX_GUIDANCE = 10.0
KEEP_RESULTS_S = 3600  # finished results stay downloadable this long
DRUM_REDRAWS = 3  # "Fewer drum loops": generate --drum-redraws 3, as measured (docs/long-videos.md, "Drums alone")
GRADIO_MISSING = ("`v2meow serve` needs Gradio, which is not installed; install it with "
                  "`pip install 'v2meow[app]'` (or `pip install gradio`).")

Progress = Callable[[float, str], None]  # (fraction done in [0, 1], what is happening)


@dataclass(frozen=True)
class Limits:
    """What one request may ask of the server."""

    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB
    max_video_seconds: float = DEFAULT_MAX_VIDEO_SECONDS
    max_candidates: int = MAX_PAGE_CANDIDATES

    def __post_init__(self) -> None:
        if not (math.isfinite(self.max_upload_mb) and self.max_upload_mb > 0):
            raise UserError(f"--max-upload-mb must be a positive number, got {self.max_upload_mb}.")
        if not (math.isfinite(self.max_video_seconds) and self.max_video_seconds > 0):
            raise UserError(f"--max-video-seconds must be a positive number, got {self.max_video_seconds}.")


@dataclass(frozen=True)
class Result:
    path: str  # the video with its new soundtrack
    message: str  # one line for the page: what was made, with the seed that makes it again


class WebScorer:
    """One request of the page: check it against the limits, generate, write ``<name>_scored.mp4``.

    Results go to a folder per request under ``workdir``; a request that fails removes its folder, and
    folders older than :data:`KEEP_RESULTS_S` are removed as new requests arrive. Safe to call from several
    threads: the model's generation keeps no state between calls.
    """

    def __init__(self, model: V2Meow, limits: Limits | None = None, workdir: str | os.PathLike | None = None):
        self.model = model
        self.limits = limits or Limits()
        self.workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="v2meow-serve-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def __call__(self, video: str | None, prompt: str | None = None, seconds: float | None = None,
                 start: float | None = None, seed: float | None = None, guidance: float | None = None,
                 candidates: float | None = None, progress: Progress | None = None,
                 fewer_drum_loops: bool = False) -> Result:
        from v2meow.io.video import probe
        from v2meow.soundtrack import write_soundtrack

        report = progress or (lambda fraction, what: None)
        if not video:
            raise UserError("Upload a video first.")
        name = Path(video).name
        try:
            size_mb = os.path.getsize(video) / MB
        except OSError:
            raise UserError("The uploaded video could not be read; upload it again.") from None
        if size_mb > self.limits.max_upload_mb:
            raise UserError(f"The video is {size_mb:.1f} MB; this server takes uploads up to "
                            f"{self.limits.max_upload_mb:g} MB.")
        options = self._options(prompt, seconds, start, seed, guidance, candidates, fewer_drum_loops)
        report(0.0, "reading the video")
        try:
            info = probe(video)
        except UserError as e:
            raise UserError(str(e).replace(video, name)) from None
        if info.duration > self.limits.max_video_seconds:
            raise UserError(f"The video is {info.duration:.1f} s long; this server takes videos up to "
                            f"{self.limits.max_video_seconds:g} s.")
        self._prune()
        folder = Path(tempfile.mkdtemp(prefix="req-", dir=self.workdir))
        out = folder / f"{_safe_stem(name)}_scored.mp4"
        try:
            track = write_soundtrack(self.model, video, str(out), progress=_stage_progress(report, self.model),
                                     **options)
        except UserError as e:
            shutil.rmtree(folder, ignore_errors=True)
            raise UserError(str(e).replace(video, name).replace(str(out), out.name)) from None
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        report(1.0, "done")
        where = f" from {track.start:g} s" if track.start > 0 else ""
        kept = (f", the best of {len(track.scores)} (beat alignment {track.scores[track.chosen].beat:.2f})"
                if len(track.scores) > 1 else "")
        pulse = "" if track.tempo is None else (
            f", its tempo locked to the picture's steady pulse ({track.tempo:.0f} BPM)"
            if track.tempo_source == "steady pulse" else f", at {track.tempo:.0f} BPM")
        return Result(str(out), f"{track.seconds:.1f} s of music{where} for {name}, seed {track.seed}{kept}{pulse}.")

    def _options(self, prompt, seconds, start, seed, guidance, candidates, fewer_drum_loops=False) -> dict[str, Any]:
        prompt = (prompt or "").strip() or None
        seconds = None if seconds in (None, 0) else float(seconds)
        if seconds is not None and not (math.isfinite(seconds) and seconds > 0):
            raise UserError(f"Seconds must be a positive number (0 or empty for the whole video), got {seconds:g}.")
        start = 0.0 if start is None else float(start)
        if not (math.isfinite(start) and start >= 0):
            raise UserError(f"Start must be 0 or more seconds, got {start:g}.")
        if seed is not None:
            if not (float(seed).is_integer() and 0 <= seed < 2**63):
                raise UserError(f"The seed must be a whole number from 0 to 2^63-1, got {seed:g}.")
            seed = int(seed)
        guidance = self.model.cfg.generation.prompt_guidance if guidance is None else float(guidance)
        if not (math.isfinite(guidance) and 0 < guidance <= MAX_GUIDANCE):
            raise UserError(f"Guidance must be in (0, {MAX_GUIDANCE:g}], got {guidance:g}.")
        candidates = self.model.cfg.generation.candidates if candidates is None else candidates
        if not (float(candidates).is_integer() and 1 <= candidates <= self.limits.max_candidates):
            raise UserError(f"Candidates must be a whole number from 1 to {self.limits.max_candidates}, "
                            f"got {candidates:g}.")
        if fewer_drum_loops and not self.model.cfg.generation.drum_tokens:
            raise UserError("This model cannot tell a drum loop playing alone from music; leave "
                            "'Fewer drum loops' off.")
        return {"prompt": prompt, "seconds": seconds, "start": start, "seed": seed, "guidance": guidance,
                "candidates": int(candidates), "drum_redraws": DRUM_REDRAWS if fewer_drum_loops else None}

    def _prune(self) -> None:
        """Remove the folders of results older than :data:`KEEP_RESULTS_S`."""
        cutoff = time.time() - KEEP_RESULTS_S
        with self._lock:
            for folder in self.workdir.glob("req-*"):
                try:
                    if folder.stat().st_mtime < cutoff:
                        shutil.rmtree(folder, ignore_errors=True)
                except OSError:
                    pass

    def close(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)


def _safe_stem(name: str) -> str:
    stem = re.sub(r"[^\w.-]+", "_", Path(name).stem).strip("._")[:80]
    return stem or "video"


def _stage_progress(report: Progress, model: V2Meow, every_s: float = 0.2) -> Callable[[str, int, int], None]:
    """The pipeline's (stage, done, total) as one fraction of the whole job (:mod:`v2meow.progress`, every stage
    weighted by its estimated cost), passed on at most every ``every_s`` and whenever a stage ends."""
    from v2meow.progress import AGAIN, STAGE_WORDS, JobProgress, stage_weights

    job = JobProgress(stage_weights(model.cfg))
    last = [0.0]

    def callback(stage: str, done: int, total: int) -> None:
        fraction = job(stage, done, total)  # at AGAIN (the candidates made again) it starts over: shown at once
        now = time.monotonic()
        if now - last[0] < every_s and done < total and stage != AGAIN:
            return
        last[0] = now
        report(fraction, f"{STAGE_WORDS.get(stage, stage)}: {done}/{total}" if stage not in ("features", AGAIN)
               else STAGE_WORDS[stage])

    return callback


def import_gradio() -> Any:
    """The ``gradio`` module, with its analytics off; :class:`UserError` when it is not installed."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    try:
        import gradio
    except ImportError:
        raise UserError(GRADIO_MISSING) from None
    return gradio


def make_handler(scorer: WebScorer) -> Callable[..., tuple[str, str, str]]:
    """The page's event handler: the scored video (to play and to download) and a status line, or ``gr.Error``."""
    gr = import_gradio()

    def score_video(video, prompt, seconds, start, seed, guidance, candidates, fewer_drum_loops=False,
                    progress=gr.Progress()):
        try:
            result = scorer(video, prompt, seconds, start, seed, guidance, candidates,
                            progress=lambda fraction, what: progress(fraction, desc=what),
                            fewer_drum_loops=bool(fewer_drum_loops))
        except UserError as e:
            raise gr.Error(for_page(str(e)), print_exception=False) from None
        except Exception as e:  # a bug or a resource problem: the user gets one sentence, the log the traceback
            traceback.print_exc(file=sys.stderr)
            raise gr.Error(f"The generation failed ({type(e).__name__}: {_short(e)}); the server's log has the "
                           "details.", print_exception=False) from None
        return result.path, result.path, result.message

    return score_video


def for_page(message: str) -> str:
    """A command-line message in the page's words: ``--start 10 is past ...`` → ``Start 10 is past ...``."""
    def word(m: re.Match) -> str:
        name = m.group(1).replace("-", " ")
        return name.capitalize() if m.start() == 0 else name

    return re.sub(r"--(start|seconds|seed|guidance|candidates|prompt)\b", word, message)


def _short(e: BaseException) -> str:
    text = " ".join(str(e).split()) or "no message"
    return text if len(text) <= 160 else text[:157] + "..."


def build_app(scorer: WebScorer, max_queue: int = DEFAULT_MAX_QUEUE, concurrency: int = DEFAULT_CONCURRENCY) -> Any:
    """The Gradio Blocks page around ``scorer``, with its bounded queue."""
    if max_queue < 1:
        raise UserError(f"--max-queue must be at least 1, got {max_queue}.")
    if concurrency < 1:
        raise UserError(f"--concurrency must be at least 1, got {concurrency}.")
    gr = import_gradio()
    limits = scorer.limits
    with gr.Blocks(title="v2meow", delete_cache=(KEEP_RESULTS_S // 2, KEEP_RESULTS_S)) as demo:
        gr.Markdown("# v2meow\nUpload a video and v2meow writes a music soundtrack that fits what it sees, "
                    "optionally steered by a text prompt. "
                    f"Videos up to {limits.max_video_seconds:g} s and {limits.max_upload_mb:g} MB.")
        with gr.Row():
            with gr.Column():
                video = gr.Video(label="Your video", sources=["upload"], elem_id="v2meow-video")
                prompt = gr.Textbox(label="Prompt (optional; a tempo in BPM sets the music's tempo)",
                                    placeholder="warm acoustic guitar at 96 BPM", max_lines=2, elem_id="v2meow-prompt")
                with gr.Accordion("Settings", open=False):
                    seconds = gr.Number(label="Seconds of music (0: the whole video)", value=0, minimum=0,
                                        elem_id="v2meow-seconds")
                    start = gr.Number(label="Start at (seconds into the video)", value=0, minimum=0,
                                      elem_id="v2meow-start")
                    seed = gr.Number(label="Seed (empty: random)", value=None, precision=0, minimum=0,
                                     elem_id="v2meow-seed")
                    guidance = gr.Slider(1.0, MAX_GUIDANCE, step=0.5,
                                         value=min(MAX_GUIDANCE, scorer.model.cfg.generation.prompt_guidance),
                                         label="Prompt guidance (1: off)", elem_id="v2meow-guidance")
                    candidates = gr.Slider(1, limits.max_candidates, step=1,
                                           value=min(limits.max_candidates, scorer.model.cfg.generation.candidates),
                                           label="Candidates (keep the one that best meets the visual beats)",
                                           elem_id="v2meow-candidates")
                    drums = gr.Checkbox(value=False, visible=bool(scorer.model.cfg.generation.drum_tokens),
                                        label="Fewer drum loops: draw again where the music turns into drums "
                                              "playing alone (for long videos)", elem_id="v2meow-drums")
                button = gr.Button("Write a soundtrack", variant="primary", elem_id="v2meow-generate")
            with gr.Column():
                result = gr.Video(label="With its new soundtrack", interactive=False, elem_id="v2meow-result")
                download = gr.File(label="Download", interactive=False, elem_id="v2meow-download")
                status = gr.Markdown(elem_id="v2meow-status")
        button.click(make_handler(scorer), inputs=[video, prompt, seconds, start, seed, guidance, candidates, drums],
                     outputs=[result, download, status], concurrency_limit=concurrency)
    demo.queue(max_size=max_queue, default_concurrency_limit=concurrency)
    return demo


def serve(model_dir: str, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, max_queue: int = DEFAULT_MAX_QUEUE,
          concurrency: int = DEFAULT_CONCURRENCY, limits: Limits | None = None, device: str | None = "cpu",
          precision: str = "fp32") -> None:
    """Load the model (its stages and codec on ``device`` in ``precision``: :meth:`V2Meow.place`), then serve the
    page until interrupted."""
    import_gradio()  # say it is missing before loading a model
    from v2meow.device import resolve_placement
    from v2meow.pipeline import V2Meow

    limits = limits or Limits()
    if not 0 <= port < 65536:
        raise UserError(f"--port must be in 0..65535, got {port}.")
    where, _ = resolve_placement(device, precision)  # said before the model loads
    model = V2Meow.from_pretrained(model_dir).place(where, precision)
    scorer = WebScorer(model, limits)
    demo = build_app(scorer, max_queue=max_queue, concurrency=concurrency)
    try:
        demo.launch(server_name=host, server_port=port, max_file_size=int(limits.max_upload_mb * MB),
                    show_error=True, ssr_mode=False, mcp_server=False, pwa=False, quiet=False)
    except KeyboardInterrupt:
        pass
    except OSError as e:
        raise UserError(f"Could not serve on {host}:{port}: {_short(e)}.") from None
    finally:
        demo.close()
        scorer.close()
