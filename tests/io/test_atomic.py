import os
import stat

import numpy as np

from v2meow.io.atomic import publish
from v2meow.io.audio import save_audio


def _umask():
    m = os.umask(0)
    os.umask(m)
    return m


def test_outputs_get_ordinary_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        out = tmp_path / "a.wav"
        save_audio(out, np.zeros(1600, np.float32), 16000)
        assert stat.S_IMODE(out.stat().st_mode) == 0o644  # not the 0600 of a private temporary file
        d = tmp_path / ".tmpdir"
        d.mkdir(mode=0o700)
        publish(d, tmp_path / "model")
        assert stat.S_IMODE((tmp_path / "model").stat().st_mode) == 0o755
    finally:
        os.umask(old)
    assert _umask() == old
