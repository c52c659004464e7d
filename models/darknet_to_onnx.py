"""Convert a Darknet YOLO network (.cfg + .weights) to ONNX with numpy and onnx only.

Supported layers: `convolutional` (optional batch norm, `leaky` or `linear`), `maxpool`, `route`
(concatenation, and YOLOv4's channel groups: `groups`/`group_id` keep one slice of the channels),
`upsample` (nearest), and the heads: a YOLOv2 `region` ends the graph with the raw
1×(num·(5+classes))×H×W map as the single output `output`; each YOLOv3/v4 `yolo` layer adds its raw
input map as an output `yolo0`, `yolo1`, … Decoding (sigmoid, anchors, `scale_x_y`) is left to the
detector, which reads the anchors, masks and scale from the model's manifest.

Batch norm is folded into the convolution exactly as Darknet computes it at inference:
`y = scale · (x − mean) / (sqrt(var) + 1e-6) + bias`. Every step is float32, so the output file is
byte-for-byte reproducible for a given onnx version (the manifest pins the sha256 of the result).
A network with `yolo` heads gets a free input height and width (multiples of 32), so one file
serves 416×416, 608×608 or a camera's 16:9 shape; a `region` network keeps the cfg's fixed size.

    python models/darknet_to_onnx.py NAME net.cfg net.weights out.onnx
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 13
IR_VERSION = 8


def parse_cfg(text: str) -> list[dict[str, str]]:
    """Sections of a Darknet cfg in order, each a dict with its `type`."""
    sections: list[dict[str, str]] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            sections.append({"type": line.strip("[]")})
        elif "=" in line:
            key, value = line.split("=", 1)
            sections[-1][key.strip()] = value.strip()
    return sections


def convert(cfg_text: str, weights: bytes, name: str) -> onnx.ModelProto:
    sections = parse_cfg(cfg_text)
    net = sections[0]
    height, width, channels = int(net["height"]), int(net["width"]), int(net["channels"])
    dynamic = any(sec["type"] == "yolo" for sec in sections)
    major, minor, _revision = np.frombuffer(weights[:12], dtype="<i4")
    offset = 12 + (8 if major * 10 + minor >= 2 else 4)  # the "seen" counter grew to 64 bits in 0.2

    def take(count: int) -> np.ndarray:
        nonlocal offset
        out = np.frombuffer(weights, dtype="<f4", count=count, offset=offset).astype(np.float32)
        offset += 4 * count
        return out

    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    heads: list[tuple[str, int, int]] = []  # (tensor, channels, stride) of each yolo head
    # per layer index: (tensor name, channels, stride relative to the input)
    layers: list[tuple[str, int, int]] = []
    current, c, stride_total = "input", channels, 1
    size_h, size_w = height, width
    for index, sec in enumerate(sections[1:]):
        kind = sec["type"]
        out = f"l{index}_{kind}"
        if kind == "convolutional":
            filters, size = int(sec["filters"]), int(sec["size"])
            stride, pad = int(sec.get("stride", 1)), size // 2 if int(sec.get("pad", 0)) else 0
            bias = take(filters)
            if int(sec.get("batch_normalize", 0)):
                scale, mean, var = take(filters), take(filters), take(filters)
                kernel = take(filters * c * size * size).reshape(filters, c, size, size)
                factor = (scale / (np.sqrt(var) + np.float32(1e-6))).astype(np.float32)
                kernel = (kernel * factor[:, None, None, None]).astype(np.float32)
                bias = (bias - mean * factor).astype(np.float32)
            else:
                kernel = take(filters * c * size * size).reshape(filters, c, size, size)
            inits += [numpy_helper.from_array(kernel, f"{out}_w"), numpy_helper.from_array(bias, f"{out}_b")]
            conv_out = out if sec.get("activation") == "linear" else f"{out}_pre"
            nodes.append(
                helper.make_node(
                    "Conv",
                    [current, f"{out}_w", f"{out}_b"],
                    [conv_out],
                    kernel_shape=[size, size],
                    strides=[stride, stride],
                    pads=[pad, pad, pad, pad],
                )
            )
            if sec.get("activation") == "leaky":
                nodes.append(helper.make_node("LeakyRelu", [conv_out], [out], alpha=0.1))
            elif sec.get("activation") != "linear":
                raise ValueError(f"layer {index}: activation {sec.get('activation')!r} is not supported")
            c = filters
            stride_total *= stride
            size_h, size_w = (size_h + 2 * pad - size) // stride + 1, (size_w + 2 * pad - size) // stride + 1
        elif kind == "maxpool":
            size, stride = int(sec["size"]), int(sec["stride"])
            # Darknet pads a stride-1 pool on the bottom/right so the map keeps its size.
            extra = size - 1 if stride == 1 else 0
            nodes.append(
                helper.make_node(
                    "MaxPool",
                    [current],
                    [out],
                    kernel_shape=[size, size],
                    strides=[stride, stride],
                    pads=[0, 0, extra, extra],
                )
            )
            stride_total *= stride
            size_h, size_w = (size_h + extra - size) // stride + 1, (size_w + extra - size) // stride + 1
        elif kind == "route":
            refs = [int(v) for v in sec["layers"].split(",")]
            picked = [layers[r if r >= 0 else index + r] for r in refs]
            groups, group_id = int(sec.get("groups", 1)), int(sec.get("group_id", 0))
            if groups > 1:
                if len(picked) != 1:
                    raise ValueError(f"layer {index}: a grouped route takes one layer")
                tensor, cin, stride_total = picked[0]
                c = cin // groups
                bounds = f"{out}_bounds"
                inits += [
                    numpy_helper.from_array(np.array([group_id * c], dtype=np.int64), f"{bounds}_start"),
                    numpy_helper.from_array(np.array([(group_id + 1) * c], dtype=np.int64), f"{bounds}_end"),
                    numpy_helper.from_array(np.array([1], dtype=np.int64), f"{bounds}_axis"),
                ]
                nodes.append(
                    helper.make_node(
                        "Slice", [tensor, f"{bounds}_start", f"{bounds}_end", f"{bounds}_axis"], [out]
                    )
                )
            elif len(picked) == 1:
                out, c, stride_total = picked[0]
            else:
                nodes.append(helper.make_node("Concat", [p[0] for p in picked], [out], axis=1))
                c, stride_total = sum(p[1] for p in picked), picked[0][2]
            size_h, size_w = height // stride_total, width // stride_total
        elif kind == "upsample":
            factor = int(sec.get("stride", 2))
            scales = f"{out}_scales"
            inits.append(numpy_helper.from_array(np.array([1, 1, factor, factor], dtype=np.float32), scales))
            # Darknet copies input pixel (y // s, x // s): nearest with asymmetric coordinates, floor.
            nodes.append(
                helper.make_node(
                    "Resize",
                    [current, "", scales],
                    [out],
                    mode="nearest",
                    coordinate_transformation_mode="asymmetric",
                    nearest_mode="floor",
                )
            )
            stride_total //= factor
            size_h, size_w = size_h * factor, size_w * factor
        elif kind == "yolo":
            heads.append((current, c, stride_total))
            out = current  # a head passes its input on unchanged (a later route may refer to it)
        elif kind == "region":
            break
        else:
            raise ValueError(f"layer {index}: [{kind}] is not supported")
        layers.append((out, c, stride_total))
        current = out
    if offset != len(weights):
        raise ValueError(f"weights file has {len(weights) - offset} bytes left over: cfg and weights differ")
    if dynamic:
        inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, channels, "height", "width"])]
        outputs = []
        for i, (tensor, cout, stride) in enumerate(heads):
            nodes.append(helper.make_node("Identity", [tensor], [f"yolo{i}"]))
            outputs.append(
                helper.make_tensor_value_info(
                    f"yolo{i}", TensorProto.FLOAT, [1, cout, f"height/{stride}", f"width/{stride}"]
                )
            )
    else:
        nodes.append(helper.make_node("Identity", [current], ["output"]))
        inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, channels, height, width])]
        outputs = [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, c, size_h, size_w])]
    graph = helper.make_graph(nodes, name, inputs, outputs, inits)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="lintel-darknet"
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def main(argv: list[str]) -> int:
    name = argv[1]
    cfg, weights, out = (Path(a) for a in argv[2:5])
    model = convert(cfg.read_text(), weights.read_bytes(), name)
    out.write_bytes(model.SerializeToString())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
