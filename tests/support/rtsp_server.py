"""A real RTSP server for the camera tests: GStreamer's gst-rtsp-server serving a test pattern.

Run with Debian's /usr/bin/python3 (python3-gst-1.0, gir1.2-gst-rtsp-server-1.0), not the venv:

    /usr/bin/python3 tests/support/rtsp_server.py [h264|mjpeg] [PORT]

Binds a free port and prints `PORT <n>` on stdout once it listens; the stream is rtsp://127.0.0.1:<n>/cam.
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

PIPELINES = {
    "h264": (
        "( videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=10/1 "
        "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=10 ! rtph264pay name=pay0 pt=96 )"
    ),
    # jpegenc needs planar I420 spelled out, or negotiation fails with a raw RGB test source.
    "mjpeg": (
        "( videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=10/1 "
        "! videoconvert ! video/x-raw,format=I420 ! jpegenc ! rtpjpegpay name=pay0 pt=26 )"
    ),
}


def main() -> None:
    Gst.init(None)
    codec = sys.argv[1] if len(sys.argv) > 1 else "h264"
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(sys.argv[2] if len(sys.argv) > 2 else "0")
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(PIPELINES[codec])
    factory.set_shared(True)
    server.get_mount_points().add_factory("/cam", factory)
    server.attach(None)
    print(f"PORT {server.get_bound_port()}", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
