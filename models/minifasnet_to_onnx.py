"""Convert the two MiniFASNet presentation-attack models (Silent-Face-Anti-Spoofing) to ONNX.

    python models/minifasnet_to_onnx.py REPO_GIT_DIR [--out models/pad]

Offline, once, by a maintainer: needs PyTorch (`pip install torch`; NOT a dependency of Lintel)
and a clone of the authors' repository (minivision-ai/Silent-Face-Anti-Spoofing, Apache-2.0,
commit b6d5f04ad78778917853b25c778acef6d5626d15). The ONNX results are committed under
models/pad/ with the licence beside them and pinned in models/minifasnet-*.toml.

The network is rebuilt here from the shapes in each checkpoint (no channel tables copied): a
MobileFaceNet-like stack of 1×1 expand → depthwise 3×3 → 1×1 project blocks, some with a
squeeze-and-excitation gate, a 5×5 depthwise "global" convolution, a 128-wide embedding with batch
norm and a 3-way classifier. The exported graph ends in a softmax: its output is (1, 3)
probabilities; class 1 is a real face, 0 and 2 are the two attack classes the authors trained.
Input: (1, 3, 80, 80) float32, BGR, 0-255, no normalisation (the authors feed OpenCV's pixels as
they are). Each export is checked against the PyTorch model on random and structured inputs
(largest difference printed; the build stops above 1e-4).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import re
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np

# (checkpoint in the authors' repository, our ONNX file name, crop scale around the detector box)
MODELS = [
    ("resources/anti_spoof_models/2.7_80x80_MiniFASNetV2.pth", "minifasnet-v2-2.7.onnx", 2.7),
    ("resources/anti_spoof_models/4_0_0_80x80_MiniFASNetV1SE.pth", "minifasnet-v1se-4.0.onnx", 4.0),
]
STAGES = ["conv1", "conv2_dw", "conv_23", "conv_3", "conv_34", "conv_4", "conv_45", "conv_5", "conv_6_sep"]


def build(state: dict):  # -> torch.nn.Module
    import torch
    from torch import nn

    def conv_bn(prefix: str, stride: int, act: bool) -> nn.Module:
        """conv (no bias) → batch norm → PReLU (when the checkpoint has one)."""
        w = state[f"{prefix}.conv.weight"]
        out_c, in_per_group, k, _ = w.shape
        groups = out_c if in_per_group == 1 and out_c > 1 else 1
        in_c = in_per_group * groups
        pad = k // 2 if k == 3 else 0
        m = nn.Module()
        m.conv = nn.Conv2d(in_c, out_c, k, stride, pad, groups=groups, bias=False)
        m.bn = nn.BatchNorm2d(out_c)
        if act and f"{prefix}.prelu.weight" in state:
            m.prelu = nn.PReLU(out_c)
        return m

    def run_conv_bn(m: nn.Module, x):
        x = m.bn(m.conv(x))
        return m.prelu(x) if hasattr(m, "prelu") else x

    class SqueezeExcite(nn.Module):
        def __init__(self, prefix: str) -> None:
            super().__init__()
            hidden, channels = state[f"{prefix}.fc1.weight"].shape[:2]
            self.fc1 = nn.Conv2d(channels, hidden, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(hidden)
            self.fc2 = nn.Conv2d(hidden, channels, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(channels)

        def forward(self, x):
            g = x.mean(dim=(2, 3), keepdim=True)
            g = torch.relu(self.bn1(self.fc1(g)))
            return x * torch.sigmoid(self.bn2(self.fc2(g)))

    class Block(nn.Module):
        """expand 1×1 → depthwise 3×3 (stride) → project 1×1 (+ SE gate, + shortcut)."""

        def __init__(self, prefix: str, stride: int, residual: bool) -> None:
            super().__init__()
            self.residual = residual
            self.conv = conv_bn(f"{prefix}.conv", 1, True)
            self.conv_dw = conv_bn(f"{prefix}.conv_dw", stride, True)
            self.project = conv_bn(f"{prefix}.project", 1, False)
            if f"{prefix}.se_module.fc1.weight" in state:
                self.se_module = SqueezeExcite(f"{prefix}.se_module")

        def forward(self, x):
            y = run_conv_bn(self.project, run_conv_bn(self.conv_dw, run_conv_bn(self.conv, x)))
            if hasattr(self, "se_module"):
                y = self.se_module(y)
            return x + y if self.residual else y

    class Stack(nn.Module):
        def __init__(self, prefix: str) -> None:
            super().__init__()
            count = 1 + max(
                int(m.group(1)) for k in state if (m := re.match(rf"{prefix}\.model\.(\d+)\.", k))
            )
            self.model = nn.Sequential(*(Block(f"{prefix}.model.{i}", 1, True) for i in range(count)))

        def forward(self, x):
            return self.model(x)

    class MiniFASNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = conv_bn("conv1", 2, True)
            self.conv2_dw = conv_bn("conv2_dw", 1, True)
            for name in ("conv_23", "conv_34", "conv_45"):
                setattr(self, name, Block(name, 2, False))
            for name in ("conv_3", "conv_4", "conv_5"):
                setattr(self, name, Stack(name))
            self.conv_6_sep = conv_bn("conv_6_sep", 1, True)
            self.conv_6_dw = conv_bn("conv_6_dw", 1, False)
            emb, flat = state["linear.weight"].shape
            self.linear = nn.Linear(flat, emb, bias=False)
            self.bn = nn.BatchNorm1d(emb)
            self.prob = nn.Linear(emb, state["prob.weight"].shape[0], bias=False)

        def forward(self, x):
            x = run_conv_bn(self.conv1, x)
            x = run_conv_bn(self.conv2_dw, x)
            for name in STAGES[2:-1]:
                x = getattr(self, name)(x)
            x = run_conv_bn(self.conv_6_dw, run_conv_bn(self.conv_6_sep, x))
            x = self.prob(self.bn(self.linear(x.flatten(1))))
            return torch.softmax(x, dim=1)

    model = MiniFASNet()
    model.load_state_dict(state, strict=True)  # every tensor used, none missing: the shapes agree
    return model.eval()


def load_checkpoint(git_dir: Path, member: str) -> tuple[dict, str]:
    import torch

    data = subprocess.run(
        ["git", "--git-dir", str(git_dir), "show", f"HEAD:{member}"], check=True, capture_output=True
    ).stdout
    raw = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    state = OrderedDict((k.removeprefix("module."), v) for k, v in raw.items())
    return state, hashlib.sha256(data).hexdigest()


def export(model, path: Path) -> float:
    """Write the ONNX file; the largest difference from PyTorch's output over test inputs."""
    import onnxruntime as ort
    import torch

    dummy = torch.zeros(1, 3, 80, 80)
    torch.onnx.export(
        model, (dummy,), str(path), input_names=["input"], output_names=["probabilities"],
        opset_version=13, dynamo=False, do_constant_folding=True,
    )  # fmt: skip
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(7)
    probes = [rng.uniform(0, 255, (1, 3, 80, 80)).astype(np.float32) for _ in range(4)]
    ramp = np.linspace(0, 255, 80, dtype=np.float32)
    probes.append(np.broadcast_to(ramp[None, None, None, :], (1, 3, 80, 80)).copy())
    worst = 0.0
    for x in probes:
        with torch.no_grad():
            expected = model(torch.from_numpy(x)).numpy()
        (got,) = session.run(None, {"input": x})
        worst = max(worst, float(np.abs(got - expected).max()))
    return worst


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("git_dir", type=Path, help="git directory of the authors' repository")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "pad")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for member, name, scale in MODELS:
        state, digest = load_checkpoint(args.git_dir, member)
        model = build(state)
        target = args.out / name
        worst = export(model, target)
        onnx_digest = hashlib.sha256(target.read_bytes()).hexdigest()
        print(f"{member} (sha256 {digest}) → {target} scale {scale} sha256 {onnx_digest} max |Δ| {worst:.2e}")
        if worst > 1e-4:
            raise SystemExit(f"{name}: ONNX output differs from PyTorch by {worst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
