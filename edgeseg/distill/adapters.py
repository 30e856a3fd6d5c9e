"""1×1-convolution adapters that map student feature maps to the teacher's channel counts for feature KD.

They train with the student (they join the optimizer and the resumable state) but are not part of the
student: the saved and exported student never contains them.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn

from edgeseg.errors import InputError


class FeatureAdapters(nn.Module):
    """One 1×1 conv (with bias) per feature pair ``student_name → teacher_name``.

    ``pairs`` maps student feature names to teacher feature names; ``student_channels`` and
    ``teacher_channels`` are the models' ``feature_channels``. Unknown names raise :class:`InputError`
    listing the names each model offers.
    """

    def __init__(
        self,
        pairs: Mapping[str, str],
        student_channels: Mapping[str, int],
        teacher_channels: Mapping[str, int],
    ) -> None:
        super().__init__()
        for s_name, t_name in pairs.items():
            if s_name not in student_channels:
                raise InputError(
                    f"distill.feature_pairs: the student has no feature {s_name!r} "
                    f"(it offers {sorted(student_channels)})"
                )
            if t_name not in teacher_channels:
                raise InputError(
                    f"distill.feature_pairs: the teacher has no feature {t_name!r} "
                    f"(it offers {sorted(teacher_channels)})"
                )
        self.pairs = dict(pairs)
        # ModuleDict keys may not contain dots; feature names are plain identifiers in the model zoo.
        self.convs = nn.ModuleDict(
            {
                s_name: nn.Conv2d(student_channels[s_name], teacher_channels[t_name], kernel_size=1)
                for s_name, t_name in self.pairs.items()
            }
        )

    def forward(self, student_features: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Map each paired student feature to the teacher's channels; keys are the student names."""
        return {name: conv(student_features[name]) for name, conv in self.convs.items()}
