"""The RTSP test server (`rtsp_server.py`, run by Debian's Python for GStreamer) as a child process."""

from __future__ import annotations

import os
import signal
import subprocess

from tests.support.process import ROOT


class RtspServer:
    """rtsp://127.0.0.1:<port>/cam serving a test pattern in `codec` (h264 or mjpeg); port 0 takes a
    free one (the port the server printed is `port`)."""

    def __init__(self, codec: str = "h264", port: int = 0) -> None:
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", str(ROOT / "tests/support/rtsp_server.py"), codec, str(port)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.startswith("PORT "), line
        self.port = int(line.split()[1])

    def stop(self) -> None:
        """Killed, also when a test froze it (SIGSTOP): it is woken first so the kill is reaped."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.kill()
        self.proc.wait(10)
