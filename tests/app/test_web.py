"""`v2meow serve`'s request logic (:class:`WebScorer`) and its Gradio handler, without a browser."""

from __future__ import annotations

import os

import av
import pytest
from media import make_text_file, make_video

from v2meow.app.web import GRADIO_MISSING, Limits, WebScorer, build_app, make_handler
from v2meow.cli import main
from v2meow.errors import UserError
from v2meow.pipeline import V2Meow

pytestmark = pytest.mark.usefixtures("one_torch_thread")
gr = pytest.importorskip("gradio")


@pytest.fixture(scope="module")
def model():
    return V2Meow.from_preset("debug", seed=0)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("v") / "my clip!.mp4", seconds=1.5, fps=10, size=(48, 32),
                      pattern="flash", audio=True)


@pytest.fixture
def scorer(model, tmp_path):
    s = WebScorer(model, Limits(max_upload_mb=5, max_video_seconds=2.0), workdir=tmp_path / "work")
    yield s
    s.close()


def files_in(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_handler_writes_the_scored_video_and_reports_progress(scorer, video):
    seen = []
    handler = make_handler(scorer)
    path, download, message = handler(video, "  ", 1.0, 0, 3, 1.0, 2,
                                      progress=lambda fraction, desc=None: seen.append((fraction, desc)))
    assert path == download and os.path.basename(path) == "my_clip_scored.mp4"
    assert os.path.dirname(os.path.dirname(path)) == str(scorer.workdir)
    with av.open(path) as c:
        assert len(c.streams.video) == 1 and c.streams.audio[0].codec_context.name == "aac"
    assert message.startswith("1.0 s of music for my clip!.mp4, seed ") and "the best of 2" in message
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0
    assert seen[0][1] == "reading the video" and any("semantic tokens" in (d or "") for _, d in seen)
    # the kept candidate's seed makes it again alone
    seed = int(message.split("seed ")[1].split(",")[0])
    again = scorer(video, None, 1.0, 0, seed, 1.0, 1)
    assert again.message.startswith(f"1.0 s of music for my clip!.mp4, seed {seed}.")
    named = scorer(video, "calm strings at 96 BPM", 1.0, 0, seed, 1.0, 1)  # the status line names the tempo set
    assert named.message == f"1.0 s of music for my clip!.mp4, seed {seed}, at 96 BPM."


@pytest.mark.parametrize("case, expected", [
    ("no video", "Upload a video first."),
    ("too long", "The video is 3.0 s long; this server takes videos up to 2 s."),
    ("too big", "The video is 0.0 MB; this server takes uploads up to 1e-06 MB."),
    ("not a video", "is not a"),
    ("bad seconds", "Seconds must be a positive number"),
    ("too many seconds", "Seconds 1e+06 is more than this model's limit of"),
    ("bad seed", "The seed must be a whole number"),
    ("bad candidates", "Candidates must be a whole number from 1 to 4, got 5."),
    ("past the end", "Start 10 is at or past the end of the video (1.50 s)."),
])
def test_limits_and_bad_requests_are_one_sentence_and_leave_no_file(case, expected, model, video, tmp_path):
    limits = Limits(max_upload_mb=1e-6 if case == "too big" else 5, max_video_seconds=2.0)
    scorer = WebScorer(model, limits, workdir=tmp_path / "work")
    args = {"video": video, "prompt": None, "seconds": 1.0, "start": 0, "seed": 0, "guidance": 1.0, "candidates": 1}
    if case == "no video":
        args["video"] = None
    elif case == "too long":
        args["video"] = make_video(tmp_path / "long.mp4", seconds=3.0, fps=10, size=(48, 32), pattern="flash")
    elif case == "not a video":
        args["video"] = str(tmp_path / "notes.mp4")
        make_text_file(args["video"])
    elif case == "bad seconds":
        args["seconds"] = -1
    elif case == "too many seconds":
        args["seconds"] = 1e6
    elif case == "bad seed":
        args["seed"] = 1.5
    elif case == "bad candidates":
        args["candidates"] = 5
    elif case == "past the end":
        args["start"] = 10
    with pytest.raises(gr.Error) as e:
        make_handler(scorer)(*args.values(), progress=lambda *a, **k: None)
    message = e.value.message
    assert expected in message and message.endswith(".") and "\n" not in message
    assert str(tmp_path) not in message  # the upload's name only, never the server's paths
    assert files_in(scorer.workdir) == []


def test_a_failing_generation_says_why_and_leaves_no_file(scorer, video, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("out of memory\nat layer 3")

    monkeypatch.setattr(scorer.model, "generate", broken)
    with pytest.raises(gr.Error) as e:
        make_handler(scorer)(video, None, 1.0, 0, 0, 1.0, 1, progress=lambda *a, **k: None)
    assert e.value.message == ("The generation failed (RuntimeError: out of memory at layer 3); the server's log has "
                               "the details.")
    assert files_in(scorer.workdir) == []


def test_the_page_has_a_bounded_queue(scorer):
    demo = build_app(scorer, max_queue=3, concurrency=2)
    assert demo._queue.max_size == 3
    assert demo.fns[0].concurrency_limit == 2
    with pytest.raises(UserError):
        build_app(scorer, max_queue=0)


def test_serve_without_gradio_says_so_and_exits_2(monkeypatch, capsys):
    import builtins

    real_import = builtins.__import__

    def no_gradio(name, *args, **kwargs):
        if name == "gradio" or name.startswith("gradio."):
            raise ImportError("No module named 'gradio'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_gradio)
    assert main(["serve", "--model", "debug"]) == 2
    assert capsys.readouterr().err == f"v2meow: error: {GRADIO_MISSING}\n"


@pytest.mark.parametrize("flag, value", [("--max-upload-mb", "0"), ("--max-video-seconds", "-1")])
def test_serve_refuses_bad_limits(flag, value, capsys):
    assert main(["serve", "--model", "debug", flag, value]) == 2
    assert flag in capsys.readouterr().err


def test_the_progress_starts_over_when_the_candidates_are_made_again(model):
    from v2meow.app.web import _stage_progress
    from v2meow.progress import AGAIN, STAGE_WORDS

    seen = []
    callback = _stage_progress(lambda fraction, text: seen.append((fraction, text)), model, every_s=0.0)
    passes = [("features", 1, 1), ("semantic", 2, 2), ("coarse", 2, 2), ("decode", 1, 1)]
    for call in passes:
        callback(*call)
    assert seen[-1][0] == 1.0
    callback(AGAIN, 0, 1)
    assert seen[-1] == (0.0, STAGE_WORDS[AGAIN])
    callback("semantic", 1, 2)
    assert 0.0 < seen[-1][0] < 0.5 and seen[-1][1] == "semantic tokens: 1/2"


def test_fewer_drum_loops_asks_for_the_redraws_and_only_a_model_that_names_drum_tokens_offers_it(video, tmp_path,
                                                                                               monkeypatch):
    from v2meow.app import web

    model = V2Meow.from_preset("debug", seed=0)
    scorer = WebScorer(model, Limits(max_upload_mb=5, max_video_seconds=2.0), workdir=tmp_path / "work")
    handler = make_handler(scorer)
    with pytest.raises(gr.Error, match="cannot tell a drum loop"):  # the debug model names none
        handler(video, None, 1.0, 0, 0, 1.0, 1, True, progress=lambda *a, **k: None)
    assert not _drums_box(build_app(scorer)).visible
    model.cfg.generation.drum_tokens = (1, 2, 3)
    assert _drums_box(build_app(scorer)).visible
    seen = []
    real = V2Meow.generate
    monkeypatch.setattr(model, "generate", lambda *a, **kw: seen.append(kw["drum_redraws"]) or real(model, *a, **kw))
    for on in (False, True):
        handler(video, None, 1.0, 0, 0, 1.0, 1, on, progress=lambda *a, **k: None)
    assert seen == [None, web.DRUM_REDRAWS]
    scorer.close()


def _drums_box(demo):
    return next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "v2meow-drums")
