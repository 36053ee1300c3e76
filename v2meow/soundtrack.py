"""A video's new soundtrack written to a file: the one path that ``v2meow generate`` and ``v2meow serve`` take.

:func:`plan_output` checks where the result goes before anything is loaded; :func:`write_soundtrack` generates
with a loaded model and writes the soundtrack (``.wav``/``.flac``) or the video with it (``.mp4``), plus the
``--plot`` picture. Every file appears atomically: on any error nothing half-written is left behind.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from v2meow.errors import UserError

if TYPE_CHECKING:
    from v2meow.pipeline import ProgressCallback, Soundtrack, V2Meow

AUDIO_EXTENSIONS = (".wav", ".flac")
VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov")


def shipped_model() -> str | None:
    """The directory of the model that ships inside the package (``v2meow/assets/embedded``); None in a build
    without one."""
    from importlib import resources

    root = resources.files("v2meow") / "assets" / "embedded"
    return str(root) if (root / "config.json").is_file() else None


def model_path(name: str) -> str:
    """``embedded`` means the model that ships inside the package (``v2meow/assets/embedded``)."""
    if name == "embedded" and not os.path.exists(name):
        root = shipped_model()
        if root is None:
            raise UserError("This v2meow build ships no embedded model yet; pass --model debug (random weights, "
                            "for trying the tool) or --model DIR with a trained model directory.")
        return root
    return name


def check_output(path: str) -> str:
    """The output's extension (lower case) once ``path`` is a file v2meow may write."""
    ext = Path(path).suffix.lower()
    if ext not in AUDIO_EXTENSIONS + VIDEO_EXTENSIONS:
        raise UserError(f"Output {path} must end in one of {', '.join(AUDIO_EXTENSIONS + VIDEO_EXTENSIONS)}.")
    parent = Path(path).parent
    if not parent.is_dir():
        raise UserError(f"The output folder {parent} does not exist.")
    if Path(path).is_dir():
        raise UserError(f"Output {path} is a folder; give a file name.")
    return ext


def plan_output(video: str, output: str, plot: bool = False) -> str | None:
    """Check ``output`` (and, with ``plot``, the picture beside it) before any work; the picture's path or None."""
    check_output(output)
    if os.path.abspath(output) == os.path.abspath(video):
        raise UserError("The output file must not be the input video.")
    if not plot:
        return None
    plot_path = str(Path(output).with_suffix(".png"))
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        raise UserError("--plot needs matplotlib, which is not installed; install it with "
                        "`pip install matplotlib` or leave --plot out.")
    if os.path.abspath(plot_path) == os.path.abspath(video) or Path(plot_path).is_dir():
        raise UserError(f"--plot would write {plot_path}, which is the input video or a folder.")
    return plot_path


def write_soundtrack(
    model: V2Meow,
    video: str,
    output: str,
    *,
    prompt: str | None = None,
    seconds: float | None = None,
    seed: int | None = None,
    guidance: float | None = None,
    start: float = 0.0,
    candidates: int | None = None,
    loudness: float | None = None,
    limit_db: float | None = None,
    plot_path: str | None = None,
    progress: ProgressCallback | None = None,
    tempo: float | None = None,
    lock_tempo: bool | None = None,
    fit_pulse: bool | None = None,
    drum_redraws: int | None = None,
) -> Soundtrack:
    """Generate a soundtrack for ``video`` and write ``output`` (and ``plot_path``); returns the kept soundtrack.

    An ``.mp4`` output is ``video`` with its video stream copied and the music as AAC, silent before ``start``.
    """
    ext = check_output(output)
    track = model.generate(video, prompt=prompt, seconds=seconds, seed=seed, guidance=guidance, progress=progress,
                           start=start, candidates=candidates, score=True if plot_path else None,
                           loudness=loudness, limit_db=limit_db, tempo=tempo,
                           lock_tempo=lock_tempo, fit_pulse=fit_pulse, drum_redraws=drum_redraws)
    picture = None
    if plot_path is not None:
        from v2meow.metrics.alignment import render_plot

        assert track.visual is not None
        picture = render_plot(track.wav, track.sample_rate, track.scores[track.chosen], track.visual,
                              start=track.start, title=f"{Path(video).name} (seed {track.seed}): ")
    if ext in AUDIO_EXTENSIONS:
        from v2meow.io.audio import save_audio

        save_audio(output, track.wav, track.sample_rate)
    else:
        import numpy as np

        from v2meow.io.video import mux_audio

        # the music sits at the stretch it was written for: silence before start
        lead = np.zeros(int(round(track.start * track.sample_rate)), dtype=np.float32)
        mux_audio(video, np.concatenate([lead, track.wav]), track.sample_rate, output)
    if picture is not None:
        from v2meow.metrics.alignment import write_bytes_atomic

        write_bytes_atomic(plot_path, picture)
    return track
