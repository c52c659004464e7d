"""Rebuild an ONNX model whose weights are also listed as graph inputs (old exporters did this).

onnxruntime treats such a weight as overridable, so it cannot fold constants or fuse batch norm
into the convolutions: SFace 2021dec ran ~2× slower and held its weights twice. The graph is
otherwise left alone (same nodes, same initializers, same opset), so outputs are unchanged; the
serialisation is deterministic, so the result is pinned by sha256 like any other built model.

    python models/onnx_inputs.py in.onnx out.onnx
"""

from __future__ import annotations

import sys

import onnx


def strip(data: bytes) -> onnx.ModelProto:
    model = onnx.load_from_string(data)
    weights = {init.name for init in model.graph.initializer}
    keep = [i for i in model.graph.input if i.name not in weights]
    del model.graph.input[:]
    model.graph.input.extend(keep)
    onnx.checker.check_model(model)
    return model


if __name__ == "__main__":
    with open(sys.argv[1], "rb") as f:
        built = strip(f.read())
    onnx.save(built, sys.argv[2])
