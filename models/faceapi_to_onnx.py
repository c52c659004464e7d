"""Convert face-api.js's port of dlib's ResNet-29 face descriptor to ONNX with numpy and onnx only.

Source: `model/face_recognition_model.bin` and its `-weights_manifest.json` from the npm package
`@vladmandic/face-api` (TF.js weights, uint8-quantised: value = q · scale + min). The network is
dlib's `dlib_face_recognition_resnet_model_v1` (public domain): 150×150 RGB in, 128 numbers out;
two faces are the same person when the Euclidean distance of their descriptors is small (~0.4-0.6).

The graph follows face-api.js's forward pass exactly:
- every convolution is followed by a per-channel scale layer `y · w + b`, folded here into the
  convolution's weights and bias (same result, one op);
- `same` padding for 3×3 stride-1 convolutions, `valid` for the strided ones and the pools;
- a down-sampling residual adds the 2×2 average-pooled input, its channels zero-padded to the
  output's; when the strided convolution's output is one pixel smaller than the pooled input
  (8 → 3 vs 4), the output is zero-padded at the bottom and right first, as face-api.js does.
Normalisation ((pixel − mean RGB) / 255) is left to the caller and written in the manifest.

    python models/faceapi_to_onnx.py manifest.json model.bin out.onnx
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 13
IR_VERSION = 8
SIZE = 150

# (prefix, kind): kind is "down" (first strided conv), "res" (identity shortcut) or "res_down"
BLOCKS = [
    ("conv32_down", "down"),
    ("conv32_1", "res"),
    ("conv32_2", "res"),
    ("conv32_3", "res"),
    ("conv64_down", "res_down"),
    ("conv64_1", "res"),
    ("conv64_2", "res"),
    ("conv64_3", "res"),
    ("conv128_down", "res_down"),
    ("conv128_1", "res"),
    ("conv128_2", "res"),
    ("conv256_down", "res_down"),
    ("conv256_1", "res"),
    ("conv256_2", "res"),
    ("conv256_down_out", "res_down"),
]


def dequantise(manifest: list[dict], data: bytes) -> dict[str, np.ndarray]:
    """Every weight of a TF.js weights manifest as float32, by name."""
    weights: dict[str, np.ndarray] = {}
    offset = 0
    for group in manifest:
        for spec in group["weights"]:
            count = int(np.prod(spec["shape"])) if spec["shape"] else 1
            quant = spec.get("quantization")
            if quant is None:
                raw = np.frombuffer(data, np.float32, count, offset)
                offset += 4 * count
            elif quant["dtype"] == "uint8":
                q = np.frombuffer(data, np.uint8, count, offset).astype(np.float64)
                raw = (q * quant["scale"] + quant["min"]).astype(np.float32)
                offset += count
            else:
                raise ValueError(f"{spec['name']}: quantisation {quant['dtype']} is not supported")
            weights[spec["name"]] = raw.reshape(spec["shape"])
    if offset != len(data):
        raise ValueError(f"the weights file has {len(data)} bytes, the manifest describes {offset}")
    return weights


def convert(manifest_json: str, data: bytes, name: str) -> onnx.ModelProto:
    w = dequantise(json.loads(manifest_json), data)
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    counter = iter(range(10_000))

    def const(values: np.ndarray, label: str) -> str:
        tensor_name = f"{label}_{next(counter)}"
        inits.append(numpy_helper.from_array(values, tensor_name))
        return tensor_name

    def node(op: str, inputs: list[str], **attrs: object) -> str:
        out = f"{op.lower()}_{next(counter)}"
        nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def conv(x: str, prefix: str, stride: int, relu: bool) -> str:
        filters = w[f"{prefix}/conv/filters"]  # kh, kw, in, out
        scale, shift = w[f"{prefix}/scale/weights"], w[f"{prefix}/scale/biases"]
        kernel = (filters * scale).transpose(3, 2, 0, 1).astype(np.float32)
        bias = (w[f"{prefix}/conv/bias"] * scale + shift).astype(np.float32)
        k = kernel.shape[-1]
        pad = [k // 2] * 4 if stride == 1 else [0, 0, 0, 0]
        y = node(
            "Conv",
            [x, const(kernel, prefix.replace("/", "_") + "_w"), const(bias, prefix.replace("/", "_") + "_b")],
            kernel_shape=[k, k],
            strides=[stride, stride],
            pads=pad,
        )
        return node("Relu", [y]) if relu else y

    x = "input"
    size = SIZE
    channels = 3
    for prefix, kind in BLOCKS:
        if kind == "down":
            x = conv(x, prefix, 2, True)
            size = (size - 7) // 2 + 1
            x = node("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2])
            size = (size - 3) // 2 + 1
            channels = w[f"{prefix}/conv/filters"].shape[3]
        elif kind == "res":
            y = conv(x, f"{prefix}/conv1", 1, True)
            y = conv(y, f"{prefix}/conv2", 1, False)
            x = node("Relu", [node("Add", [y, x])])
        else:
            y = conv(x, f"{prefix}/conv1", 2, True)
            y = conv(y, f"{prefix}/conv2", 1, False)
            out_size = (size - 3) // 2 + 1
            pooled_size = size // 2
            if out_size != pooled_size:  # face-api.js pads the convolution's output, bottom/right
                pads = np.array([0, 0, 0, 0, 0, 0, pooled_size - out_size, pooled_size - out_size], np.int64)
                y = node("Pad", [y, const(pads, "pad_hw")])
            pooled = node("AveragePool", [x], kernel_shape=[2, 2], strides=[2, 2])
            out_channels = w[f"{prefix}/conv2/conv/filters"].shape[3]
            if out_channels != channels:  # zero channels appended to the shortcut
                pads = np.array([0, 0, 0, 0, 0, out_channels - channels, 0, 0], np.int64)
                pooled = node("Pad", [pooled, const(pads, "pad_c")])
            x = node("Relu", [node("Add", [pooled, y])])
            size, channels = pooled_size, out_channels
    pooled = node("ReduceMean", [x], axes=[2, 3], keepdims=0)
    fc = w["fc"].astype(np.float32)
    nodes.append(helper.make_node("MatMul", [pooled, const(fc, "fc")], ["descriptor"]))
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("descriptor", TensorProto.FLOAT, [1, fc.shape[1]])],
        inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="lintel-faceapi"
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    model = convert(Path(argv[1]).read_text(), Path(argv[2]).read_bytes(), Path(argv[3]).stem)
    Path(argv[3]).write_bytes(model.SerializeToString())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
