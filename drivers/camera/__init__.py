"""Cameras: RTSP, HTTP (MJPEG / MPEG-TS), USB (V4L2) and file streams through OpenCV."""
