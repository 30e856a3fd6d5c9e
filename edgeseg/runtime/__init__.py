"""The embeddable runtime: segment images with an exported model using numpy, Pillow and ONNX Runtime only.

Never imports torch, so an application can ship it without PyTorch::

    from edgeseg.runtime import Segmenter
    seg = Segmenter("model.onnx", provider="auto")
    mask = seg.predict("street.jpg")          # H×W uint8 class labels
"""

from edgeseg.runtime.image import (
    ImageTooLarge,
    colorize,
    decode_rgb,
    load_rgb,
    mask_image,
    overlay,
    voc_palette,
)
from edgeseg.runtime.metadata import ModelMetadata
from edgeseg.runtime.providers import OrtBuild, ProviderUnavailable, ort_build_info
from edgeseg.runtime.segmenter import Segmenter

__all__ = [
    "ImageTooLarge",
    "ModelMetadata",
    "OrtBuild",
    "ProviderUnavailable",
    "Segmenter",
    "colorize",
    "decode_rgb",
    "load_rgb",
    "mask_image",
    "ort_build_info",
    "overlay",
    "voc_palette",
]
