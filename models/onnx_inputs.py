"""Two small, output-preserving rewrites of an ONNX model's declared inputs (`strip`, `free_size`).

`strip`: weights that an old exporter also listed as graph inputs are dropped from the inputs.
onnxruntime treats such a weight as overridable, so it cannot fold constants or fuse batch norm
into the convolutions: SFace 2021dec ran ~2× slower and held its weights twice.

`free_size`: a fully convolutional model declared with a fixed input height and width (YuNet:
640×640) gets symbolic ones, and its outputs' anchor counts with them (the exporter's recorded
shapes of intermediate values, hints only, go), so a 16:9 door frame goes in
as 640×384 instead of a padded square: ~40 % less work and activation memory. Its reshapes already
use -1 and its upsampling fixed scales, so nothing else depends on the size.

Either way the graph is otherwise left alone (same nodes, same initializers, same opset), so
outputs are unchanged; the serialisation is deterministic, so the result is pinned by sha256 like
any other built model.

    python models/onnx_inputs.py [--free-size] in.onnx out.onnx
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


def free_size(data: bytes) -> onnx.ModelProto:
    """Input dims 2 and 3 named `height` and `width`; every output's dim 1 (anchors) named too."""
    model = onnx.load_from_string(data)
    (image,) = model.graph.input
    dims = image.type.tensor_type.shape.dim
    if len(dims) != 4:
        raise ValueError(f"free_size: input {image.name} has {len(dims)} dims, expected NCHW")
    for dim, name in ((dims[2], "height"), (dims[3], "width")):
        dim.Clear()
        dim.dim_param = name
    for output in model.graph.output:
        anchors = output.type.tensor_type.shape.dim[1]
        anchors.Clear()
        anchors.dim_param = f"{output.name}_anchors"
    # the exporter's shapes of intermediate values are those of 640×640: onnxruntime infers its own
    del model.graph.value_info[:]
    onnx.checker.check_model(model)
    return model


if __name__ == "__main__":
    free = sys.argv[1] == "--free-size"
    source, target = sys.argv[2:] if free else sys.argv[1:]
    with open(source, "rb") as f:
        built = (free_size if free else strip)(f.read())
    onnx.save(built, target)
