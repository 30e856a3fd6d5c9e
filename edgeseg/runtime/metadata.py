"""The ONNX ``metadata_props`` that edgeseg writes into every exported model, and their parser.

Torch-free: the runtime reads these to know how to feed and read a model. All values are strings;
structured ones are JSON. Keys:

``edgeseg_version``     version of edgeseg that wrote the file
``model_name``          registry name (or the class name for a foreign module)
``model_args``          JSON dict of the model's constructor arguments
``classes``             JSON list of class names
``palette``             JSON list of [r, g, b]
``mean``, ``std``       JSON lists: normalization of RGB scaled to [0, 1]
``input_layout``        "NCHW" (float input) or "NHWC" (uint8 input with in-graph preprocessing)
``color_order``         "RGB"
``input_dtype``         "float32" or "uint8"
``preprocess``          "none" (caller normalizes) or "graph" (raw uint8 RGB goes in)
``stride``              int: the model pads H and W to a multiple of this internally
``pads_internally``     "true" when the graph itself pads any size to ``stride`` and crops back
``static_size``         "" for dynamic H/W, else "HxW"
``output``              "logits", "softmax" or "argmax"
``upsample``            int: 1, or the factor of the final bilinear upsampling that a "coarse" export leaves
                        to the runtime (its logits are at 1/factor of the padded input's size)
``ignore_index``        int: the label value that marks unlabelled pixels in masks
``data``                JSON dict: the data settings (the recipe's ``data`` section) the model was trained and
                        evaluated with; ``edgeseg eval`` reads them ({} for files from other tools)
``opset``               int
``precision``           "fp32", "fp16" or "int8"
``exported_at``         ISO-8601 UTC time
``checkpoint_sha256``   SHA-256 of the source checkpoint ("" for a module exported from memory)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from edgeseg.sizes import parse_hw

JSON_KEYS = ("model_args", "classes", "palette", "mean", "std", "data")
INT_KEYS = ("stride", "ignore_index", "opset", "upsample")

# The library's defaults for what a model expects: ImageNet's normalization of RGB in [0, 1], and the label
# value of unlabelled pixels. Recipes, checkpoints, exports and the runtime all refer to these.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IGNORE_INDEX = 255


@dataclass
class ModelMetadata:
    """Parsed edgeseg metadata, with defaults for files exported by other tools."""

    edgeseg_version: str = ""
    model_name: str = ""
    model_args: dict[str, Any] = field(default_factory=dict)
    classes: list[str] = field(default_factory=list)
    palette: list[list[int]] = field(default_factory=list)
    mean: list[float] = field(default_factory=lambda: list(IMAGENET_MEAN))
    std: list[float] = field(default_factory=lambda: list(IMAGENET_STD))
    input_layout: str = "NCHW"
    color_order: str = "RGB"
    input_dtype: str = "float32"
    preprocess: str = "none"
    stride: int = 32
    pads_internally: bool = True
    static_size: tuple[int, int] | None = None
    output: str = "logits"
    upsample: int = 1
    ignore_index: int = IGNORE_INDEX
    data: dict[str, Any] = field(default_factory=dict)
    opset: int = 0
    precision: str = "fp32"
    exported_at: str = ""
    checkpoint_sha256: str = ""

    def to_props(self) -> dict[str, str]:
        """Serialize to the string dict stored in ``metadata_props``."""
        out: dict[str, str] = {}
        for key, value in self.__dict__.items():
            if key in JSON_KEYS:
                out[key] = json.dumps(value)
            elif key == "static_size":
                out[key] = "" if value is None else f"{value[0]}x{value[1]}"
            elif key == "pads_internally":
                out[key] = "true" if value else "false"
            else:
                out[key] = str(value)
        return out

    @classmethod
    def from_props(cls, props: dict[str, str]) -> ModelMetadata:
        """Parse ``metadata_props`` (unknown keys ignored, missing ones defaulted)."""
        meta = cls()
        for key, raw in props.items():
            if key not in meta.__dict__:
                continue
            if key in JSON_KEYS:
                value: Any = json.loads(raw)
            elif key in INT_KEYS:
                value = int(raw)
            elif key == "static_size":
                value = parse_hw(raw, "static_size") if raw else None
            elif key == "pads_internally":
                value = raw.lower() == "true"
            else:
                value = raw
            setattr(meta, key, value)
        return meta
