"""On-device vision: model catalog, ONNX inference engine, detectors and the fire-lane analytics."""
