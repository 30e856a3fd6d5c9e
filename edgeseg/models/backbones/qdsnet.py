"""QDSNet: a DSNet variant laid out for INT8 on CPUs without 8-bit dot-product instructions (AVX2 only).

Measured with ONNX Runtime's static QDQ INT8 on an AVX2 CPU (one thread, CPU time, stacks of 4 layers):
full 3×3 convolutions with 48–128 channels at strides 4 and 8 run about 1.8–2× faster in INT8 than in
FP32, 1×1 convolutions 1.3–1.7× (wider is better), but depthwise 3×3 convolutions run *slower* in INT8
(0.6–0.8×). So:

- where the maps are large (strides 4 and 8) QDSNet uses full 3×3 convolutions (64 and 128 channels);
- depthwise-separable blocks (:class:`~edgeseg.models.backbones.dsnet.DSBlock`) stay at strides 16 and 32,
  where the wide pointwise convolutions carry the work and a large share of the parameters;
- the stem is a 4×4 stride-4 "patchify" convolution (3 → 32 channels). A per-node profile showed a 3×3
  stride-2 stem on the 3-channel image running about 1.6× slower in INT8 than in FP32; the patchify stem
  has a quarter of the output positions. On the whole network its effect was within the measurement noise
  (1.52–1.56× against 1.45–1.63× with a 16-channel 3×3 stem, random weights).

ReLU only, no squeeze-excitation, every width a multiple of 16. Stage maps ``c2``..``c5``: 64, 128, 256, 384
channels at width 1.0, strides 4, 8, 16, 32; ``output_stride`` 16 or 8 dilates the last stages instead of
striding. ``stem_stride=2`` gives a 3×3 stride-2 stem instead (the c2 row must then stride by 2).
"""

from __future__ import annotations

from edgeseg.models.backbones.dsnet import DSNet

# block kind ("dense" 3×3 ConvBNAct or "separable" DSBlock), output channels, repeats, stride of the first
# block; one row per stage c2..c5. The stem (a 4×4 stride-4 "patchify" convolution by default) already
# brings the map to stride 4, so c2 does not stride.
QDSNET_STAGES: tuple[tuple[str, int, int, int], ...] = (
    ("dense", 64, 1, 1),
    ("dense", 128, 3, 2),
    ("separable", 256, 3, 2),
    ("separable", 384, 2, 2),
)
QDSNET_STEM_CHANNELS = 32
QDSNET_STEM_STRIDE = 4


class QDSNet(DSNet):
    """The QDSNet backbone: :class:`~edgeseg.models.backbones.dsnet.DSNet` with the layout
    :data:`QDSNET_STAGES` and a 4×4 stride-4 stem; ``forward`` returns the stage maps ``c2``..``c5``.

    ``stages``, ``stem_channels`` and ``stem_stride`` override the layout, as for DSNet."""

    STAGES = QDSNET_STAGES
    STEM_CHANNELS = QDSNET_STEM_CHANNELS
    STEM_STRIDE = QDSNET_STEM_STRIDE
