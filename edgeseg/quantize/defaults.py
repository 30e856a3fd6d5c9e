"""Defaults of the INT8 and FP16 accuracy gates, declared once: the API, ``edgeseg quantize``/``export``
and the pipeline's ``quantize`` section all refer to these."""

from __future__ import annotations

CALIB_SIZE = 64
"""Calibration images, spread over the calibration data's train split."""
VAL_SIZE = 200
"""At most this many validation images measure the mIoU drop (INT8 and FP16)."""
MAX_DROP = 1.0
"""Largest mIoU loss allowed, in points (0-100 scale)."""
METHOD = "minmax"
"""INT8 calibration method: minmax, entropy or percentile."""
MAX_FLOAT_NODES = 12
"""Most quantization-sensitive nodes the INT8 gate may keep in float."""
MIN_AGREEMENT = 0.995
"""FP16: least argmax agreement with the FP32 model (fraction of pixels)."""
