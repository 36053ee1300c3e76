"""The study's HTTP server (standard library only): the page, its JSON API and the media (:func:`make_server`)."""

from __future__ import annotations

import json
import os
import re
import secrets
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from v2meow.app.study.model import AUDIO_TYPES, QUESTIONS, VIDEO_TYPES, Study, load_study
from v2meow.app.study.store import DuplicateRating, RatingStore
from v2meow.errors import UserError

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
STATIC_FILES = {"/": ("study.html", "text/html; charset=utf-8"),
                "/study.js": ("study.js", "text/javascript; charset=utf-8"),
                "/study.css": ("study.css", "text/css; charset=utf-8")}
COOKIE = "v2meow_rater"
MAX_BODY = 4096  # bytes of a POST body; answers are ~100 bytes
MAX_NAME = 100
_RATER_RE = re.compile(r"^[A-Za-z0-9_-]{22,64}$")
_MEDIA_RE = re.compile(r"^/media/(\d{1,7})/(?:video|(\w{1,20})/(left|right))$")


class StudyServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], study: Study, store: RatingStore, quiet: bool = False):
        self.study, self.store, self.quiet = study, store, quiet
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"

    def server_close(self) -> None:
        super().server_close()
        self.store.close()


class _Handler(BaseHTTPRequestHandler):
    server: StudyServer
    server_version = "v2meow-study"
    protocol_version = "HTTP/1.1"  # keep-alive: browsers fetch media in many range requests
    timeout = 60  # seconds a client may stay silent before its connection is dropped

    def log_message(self, format: str, *args: Any) -> None:
        if not self.server.quiet:
            super().log_message(format, *args)

    # --- helpers

    def _rater(self) -> str | None:
        try:
            morsel = SimpleCookie(self.headers.get("Cookie", "")).get(COOKIE)
        except CookieError:
            return None
        return morsel.value if morsel is not None and _RATER_RE.match(morsel.value) else None

    def _send(self, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, obj: dict, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json", headers)

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": message})

    # --- dispatch

    def do_GET(self) -> None:
        try:
            self._get()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def do_POST(self) -> None:
        try:
            self._post()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _get(self) -> None:
        path = urlsplit(self.path).path
        if path in STATIC_FILES:
            name, ctype = STATIC_FILES[path]
            headers = {}
            if path == "/" and self._rater() is None:
                headers["Set-Cookie"] = _cookie(secrets.token_urlsafe(18))
            self._send(200, (STATIC_DIR / name).read_bytes(), ctype, headers)
        elif path == "/api/next":
            self._next()
        elif path == "/favicon.ico":  # browsers ask for it; there is none
            self._send(204, b"", "image/x-icon")
        elif m := _MEDIA_RE.match(path):
            self._media(int(m.group(1)), m.group(2), m.group(3))
        else:
            self._error(404, "not found")

    def _next(self) -> None:
        headers = {}
        rater = self._rater()
        if rater is None:
            rater = secrets.token_urlsafe(18)
            headers["Set-Cookie"] = _cookie(rater)
        store, study = self.server.store, self.server.study
        task = store.next_task(rater)
        body: dict[str, Any] = {"rated": store.rated_by(rater), "done": task is None}
        if task is not None:
            item, question = task
            i = study.index(item.id)
            text, hint = QUESTIONS[question]
            body["task"] = {"item": item.id, "question": question, "text": text, "hint": hint,
                            "choices": store.allowed_choices(), "video": f"/media/{i}/video",
                            "left": f"/media/{i}/{question}/left", "right": f"/media/{i}/{question}/right"}
        self._json(200, body, headers)

    def _media(self, index: int, question: str | None, side: str | None) -> None:
        study = self.server.study
        if index >= len(study.items):
            return self._error(404, "not found")
        item = study.items[index]
        if question is None:
            path = item.video
        else:
            rater = self._rater()
            if question not in study.questions or rater is None:
                return self._error(404, "not found")
            left, right = self.server.store.sides(rater, item, question)
            path = (left if side == "left" else right).audio
        ctype = VIDEO_TYPES.get(path.suffix.lower()) or AUDIO_TYPES[path.suffix.lower()]
        self._file(path, ctype)

    def _file(self, path: Path, ctype: str) -> None:
        """Send a file listed in study.json, honouring a single ``Range: bytes=a-b`` (media players seek)."""
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            start, end, status = 0, size - 1, 200
            rng = self.headers.get("Range")
            if rng is not None:
                m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip())
                if m is None or m.group(1) == m.group(2) == "":
                    return self._send(416, b"", "text/plain", {"Content-Range": f"bytes */{size}"})
                if m.group(1) == "":  # suffix range: the last N bytes
                    start = max(0, size - int(m.group(2)))
                else:
                    start = int(m.group(1))
                    end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
                if start > end or start >= size:
                    return self._send(416, b"", "text/plain", {"Content-Range": f"bytes */{size}"})
                status = 206
            length = end - start + 1
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(length))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Cache-Control", "private, no-store")  # left/right differ between raters
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.end_headers()
            f.seek(start)
            while length > 0:
                chunk = f.read(min(length, 1 << 16))
                if not chunk:
                    break
                self.wfile.write(chunk)
                length -= len(chunk)

    def _read_json(self) -> dict | None:
        """The request's JSON object, or None after sending the error response."""
        ctype = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype != "application/json":  # also makes cross-site form posts impossible
            self.close_connection = True
            self._error(415, "send application/json")
            return None
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self.close_connection = True
            self._error(411, "Content-Length required")
            return None
        if not 0 <= length <= MAX_BODY:
            self.close_connection = True  # the body is left unread
            self._error(413, f"request body over {MAX_BODY} bytes")
            return None
        try:
            obj = json.loads(self.rfile.read(length))
        except (ValueError, UnicodeDecodeError):
            self._error(400, "the body is not valid JSON")
            return None
        if not isinstance(obj, dict):
            self._error(400, "the body must be a JSON object")
            return None
        return obj

    def _post(self) -> None:
        path = urlsplit(self.path).path
        if path not in ("/api/answer", "/api/rater"):
            self.close_connection = True
            return self._error(404, "not found")
        body = self._read_json()
        if body is None:
            return
        rater = self._rater()
        if rater is None:
            return self._error(403, "no rater id: reload the page (cookies must be enabled)")
        store, study = self.server.store, self.server.study
        if path == "/api/rater":
            name = body.get("name")
            if not isinstance(name, str) or len(name) > MAX_NAME:
                return self._error(400, f"name must be a string of at most {MAX_NAME} characters")
            store.set_name(rater, name.strip())
            return self._json(200, {"ok": True})
        item = study.item(body.get("item")) if isinstance(body.get("item"), str) else None
        question, choice, elapsed = body.get("question"), body.get("choice"), body.get("elapsed_ms")
        if item is None:
            return self._error(400, "unknown item")
        if not isinstance(question, str) or question not in study.questions:
            return self._error(400, "unknown question")
        if not isinstance(choice, str) or choice not in store.allowed_choices():
            return self._error(400, f"choice must be one of {store.allowed_choices()}")
        if not isinstance(elapsed, int) or isinstance(elapsed, bool) or not 0 <= elapsed < 2**31:
            elapsed = None
        try:
            store.record(rater, item, question, choice, elapsed)
        except DuplicateRating as e:
            return self._error(409, str(e))
        self._json(200, {"ok": True, "rated": store.rated_by(rater)})


def _cookie(rater: str) -> str:
    return f"{COOKIE}={rater}; Path=/; Max-Age=31536000; HttpOnly; SameSite=Strict"


def make_server(study_dir: str | os.PathLike[str], db_path: str | os.PathLike[str], host: str = "127.0.0.1",
                port: int = 8000, quiet: bool = False) -> StudyServer:
    """A bound, not yet serving, study server (``port=0``: any free port; see ``.url``)."""
    study = load_study(study_dir)
    store = RatingStore(db_path, study)
    try:
        return StudyServer((host, port), study, store, quiet=quiet)
    except OSError as e:
        store.close()
        raise UserError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None


def serve_study(study_dir: str | os.PathLike[str], db_path: str | os.PathLike[str], host: str = "127.0.0.1",
                port: int = 8000) -> None:
    """Serve the study until interrupted (Ctrl-C). Prints the address first (a line starting ``Serving``)."""
    server = make_server(study_dir, db_path, host, port)
    s = server.study
    print(f"Serving study {s.name!r} at {server.url} ({len(s.items)} pairs × {len(s.questions)} questions, "
          f"{s.ratings_per_pair} ratings each; ratings in {server.store.path}). Ctrl-C stops.", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
