"""`[inference]`: the one ONNX engine and the model catalog every camera lane shares.

[inference]
threads = 1                                  # onnxruntime intra-op threads for every model
# model_dir = "/opt/lintel/models/onnx"      # built ONNX files (default: the checkout's models/onnx)
# manifest_dir = "/etc/lintel/models"        # your own model manifests (a drop-in detector)

The fire lanes' detector (`[vision]`) and the face models (`[faces]`) are chosen by name from
this catalog; until 0.1.0 these keys lived in `[vision]` (still read there, with a warning).
"""

from __future__ import annotations

from pydantic import Field

from gateway.core.config_base import StrictModel


class InferenceSection(StrictModel):
    threads: int = Field(
        1, ge=1, le=8, description="onnxruntime intra-op threads (1 leaves cores for the rest)."
    )
    model_dir: str | None = Field(
        None, description="Where built ONNX files are (default: the checkout's models/onnx)."
    )
    manifest_dir: str | None = Field(
        None, description="Folder of your own model manifests (a drop-in detector)."
    )
