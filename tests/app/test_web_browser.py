"""`v2meow serve` end to end: the real command in a subprocess, driven in a real headless Chromium (Debian's).

Needs ``apt-get install -y chromium``, ``pip install playwright`` (never ``playwright install``: the browser is
the system one) and Gradio. Skips when one is missing, except under ``V2MEOW_REQUIRE_BROWSER=1`` (CI), where it fails.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
import urllib.request

import av
import pytest
from browser import missing, require_browser
from media import make_video

require_browser()
try:
    import gradio  # noqa: F401
except ImportError:
    missing("gradio is missing (pip install 'v2meow[app]')")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    port = free_port()
    env = dict(os.environ, OMP_NUM_THREADS="1", GRADIO_TEMP_DIR=str(root / "gradio"), PYTHONUNBUFFERED="1")
    log = open(root / "serve.log", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "v2meow.cli", "serve", "--model", "debug", "--port", str(port),
                             "--max-video-seconds", "2", "--max-upload-mb", "0.035", "--max-queue", "4"],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            log.seek(0)
            pytest.fail(f"v2meow serve did not start (exit {proc.poll()}):\n{log.read()[-3000:]}")
        time.sleep(0.3)
    yield url
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()




def test_upload_generate_and_play_in_the_browser(server, browser, tmp_path):
    big_video = make_video(tmp_path / "big.mp4", seconds=1.0, fps=10, size=(64, 48), pattern="noise")  # 43 kB
    long_video = make_video(tmp_path / "long.mp4", seconds=3.0, fps=10, size=(64, 48), pattern="flash")
    video = make_video(tmp_path / "holiday.mp4", seconds=1.5, fps=10, size=(64, 48), pattern="flash", audio=True)
    assert os.path.getsize(big_video) > 0.035 * 2**20 > os.path.getsize(video)
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(20_000)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server)
    page.wait_for_selector("#v2meow-generate")

    # an upload over the size limit: Gradio refuses it with one sentence in the page
    page.set_input_files("#v2meow-video input[type=file]", big_video)
    page.get_by_text('File(s) exceed the maximum allowed size of 35.8 Kb: "big.mp4"').wait_for()
    assert page.locator("#v2meow-video video").count() == 0

    # a video over the duration limit: one sentence in the page, and no result
    page.set_input_files("#v2meow-video input[type=file]", long_video)
    page.wait_for_selector("#v2meow-video video")
    page.click("#v2meow-generate")
    page.get_by_text("The video is 3.0 s long; this server takes videos up to 2 s.").wait_for()
    assert page.locator("#v2meow-result video").count() == 0

    # a good one: progress, then the scored video plays in the page, with its soundtrack
    page.locator("#v2meow-video button[aria-label='Clear']").click()
    page.set_input_files("#v2meow-video input[type=file]", video)
    page.wait_for_selector("#v2meow-video video")
    page.fill("#v2meow-prompt textarea", "warm acoustic guitar")
    page.click("#v2meow-generate")
    page.wait_for_selector("#v2meow-result video[src]", timeout=60_000)
    status = page.inner_text("#v2meow-status")
    assert status.startswith("1.5 s of music for holiday.mp4, seed "), status
    page.wait_for_function("document.querySelector('#v2meow-result video').readyState >= 2")
    assert page.eval_on_selector("#v2meow-result video", "v => v.duration") == pytest.approx(1.5, abs=0.1)
    page.eval_on_selector("#v2meow-result video", "v => { v.currentTime = 0; return v.play(); }")
    page.wait_for_function("(() => { const v = document.querySelector('#v2meow-result video');"
                           " return !v.paused && v.currentTime > 0.2 && v.webkitAudioDecodedByteCount > 0; })()")

    # the file the page plays and the download both have the new soundtrack
    src = page.eval_on_selector("#v2meow-result video", "v => v.currentSrc")
    href = page.eval_on_selector("#v2meow-download a", "a => a.href")
    assert href.split("?")[0].endswith("holiday_scored.mp4")
    for link in (src, href):
        body = page.request.get(link).body()
        with av.open(io.BytesIO(body)) as c:
            assert len(c.streams.video) == 1
            assert [s.codec_context.name for s in c.streams.audio] == ["aac"]
            assert sum(f.samples for f in c.decode(audio=0)) > 16000  # over a second of music
    assert errors == []
    context.close()
