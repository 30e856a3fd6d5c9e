"""Initialising a student from its teacher by weight selection (Xu et al., "Initializing Models with Larger
Ones", ICLR 2024).

When the student is a narrower copy of the teacher's architecture (the same module names, every tensor no
larger than the teacher's along each dimension, as with ``width_mult``), each student tensor is filled with
the teacher's elements at evenly spaced indices along every dimension. The indices depend only on the
(teacher, student) sizes of a dimension, so the output channels picked for one layer are the input channels
picked for the next, the BatchNorm statistics of a picked channel go with it, and residual additions add the
same channels: the student starts as a coherent sub-network of the teacher instead of from noise.
Distillation then goes on from there. Tensors that cannot be selected (a name the teacher lacks, another
rank, a dimension larger than the teacher's) keep the student's initialisation and are reported.

Where the student has a depthwise-separable layer (:class:`~edgeseg.models.layers.DSConv`) at the place of
a full k×k convolution of the teacher (``unet`` → ``unet_ds``, the DeepLabV3+ head → its separable
version), that convolution is selected to the student's channels and *decomposed*
(:func:`decompose_conv`): for every input channel, the best rank-1 approximation of its n×k² slice (SVD)
gives a depthwise filter and a pointwise column, the closest a depthwise-separable layer comes to the full
convolution. The depthwise BatchNorm gets a bias of ``DW_SHIFT`` so that the activation between the two
convolutions passes most values at the start, and the pointwise BatchNorm takes the teacher's. U-Net's
2×2 transposed-convolution upsampling maps to ``unet_ds``'s upsample-then-1×1 by the mean of its taps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

DW_SHIFT = 2.0  # depthwise BatchNorm bias of a decomposed layer: ReLU(x̂ + 2) ≈ x̂ + 2 for 98 % of N(0, 1)


def spread_indices(teacher_size: int, student_size: int) -> Tensor:
    """``student_size`` evenly spaced indices into ``teacher_size`` elements, starting at 0."""
    if student_size > teacher_size:
        raise ValueError(f"cannot pick {student_size} of {teacher_size} elements")
    return (torch.arange(student_size) * teacher_size) // student_size


def select_tensor(teacher: Tensor, shape: torch.Size) -> Tensor:
    """The sub-tensor of ``teacher`` of the given shape, at evenly spaced indices along every dimension."""
    if teacher.ndim != len(shape):
        raise ValueError(f"rank differs: teacher {tuple(teacher.shape)}, student {tuple(shape)}")
    out = teacher
    for dim, (t, s) in enumerate(zip(teacher.shape, shape, strict=True)):
        if t != s:
            out = out.index_select(dim, spread_indices(t, s))
    return out.clone()


def decompose_conv(weight: Tensor) -> tuple[Tensor, Tensor]:
    """Depthwise (C×1×k×k) and pointwise (n×C×1×1) weights closest to a k×k convolution ``weight`` (n×C×k×k).

    A depthwise-separable pair computes ``pointwise[o, c] · depthwise[c]`` for every output o and input c,
    a rank-1 n×k² matrix per input channel; the best one (least squares) is the leading singular triple of
    ``weight[:, c]``. Depthwise filters come out with unit norm and a non-negative sum, the singular values
    go to the pointwise columns.
    """
    n, c, kh, kw = weight.shape
    per_input = weight.detach().float().permute(1, 0, 2, 3).reshape(c, n, kh * kw)
    u, sv, vh = torch.linalg.svd(per_input, full_matrices=False)
    sign = torch.where(vh[:, 0, :].sum(1) < 0, -1.0, 1.0)
    depthwise = (vh[:, 0, :] * sign[:, None]).reshape(c, 1, kh, kw)
    pointwise = (u[:, :, 0] * (sv[:, 0] * sign)[:, None]).T.reshape(n, c, 1, 1)
    return depthwise, pointwise


@dataclass
class InheritReport:
    """Which student tensors came from the teacher: copied whole, selected, or left as initialised; and
    which depthwise-separable layers were decomposed from a teacher convolution."""

    copied: list[str] = field(default_factory=list)
    selected: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    decomposed: list[str] = field(default_factory=list)

    def summary(self, source: str = "the teacher") -> str:
        """One line with the counts (and the first tensors kept at initialisation, if any)."""
        kept = f" ({', '.join(self.kept[:3])}{', ...' if len(self.kept) > 3 else ''})" if self.kept else ""
        decomposed = (
            f", {len(self.decomposed)} layers decomposed from its convolutions" if self.decomposed else ""
        )
        return (
            f"student initialised from {source} by weight selection: {len(self.selected)} tensors "
            f"selected, {len(self.copied)} copied whole{decomposed}, {len(self.kept)} kept at "
            f"initialisation{kept}"
        )


def _decomposable(student: nn.Module, teacher: nn.Module) -> dict[str, tuple[nn.Module, nn.Module]]:
    """Student DSConv layers at the name of a teacher k×k ConvBNAct that is at least as wide, and student
    1×1 ConvBNAct layers at the name of a teacher's 2×2 transposed convolution (U-Net's upsampling)."""
    from edgeseg.models.layers import ConvBNAct, DSConv

    found = {}
    theirs = dict(teacher.named_modules())
    for name, layer in student.named_modules():
        full = theirs.get(name)
        if (
            isinstance(layer, ConvBNAct)
            and isinstance(full, nn.ConvTranspose2d)
            and layer[0].kernel_size == (1, 1)
            and full.groups == 1
            and full.in_channels >= layer[0].in_channels
            and full.out_channels >= layer[0].out_channels
        ):
            found[name] = (layer, full)
            continue
        if not (isinstance(layer, DSConv) and isinstance(full, ConvBNAct)) or full[0].groups != 1:
            continue
        dw, pw = layer[0][0], layer[1][0]
        conv = full[0]
        if (
            conv.kernel_size == dw.kernel_size
            and conv.out_channels >= pw.out_channels
            and conv.in_channels >= dw.in_channels
        ):
            found[name] = (layer, full)
    return found


def _shifted_bn(state: dict[str, Tensor], prefix: str, bn: nn.Module) -> list[str]:
    """A fresh BatchNorm whose bias ``DW_SHIFT`` lets the following ReLU pass most values."""
    state[f"{prefix}.weight"] = torch.ones_like(bn.weight)
    state[f"{prefix}.bias"] = torch.full_like(bn.bias, DW_SHIFT)
    state[f"{prefix}.running_mean"] = torch.zeros_like(bn.running_mean)
    state[f"{prefix}.running_var"] = torch.ones_like(bn.running_var)
    return [f"{prefix}.{key}" for key in bn.state_dict()]


def _decompose_into(state: dict[str, Tensor], name: str, layer: nn.Module, full: nn.Module) -> list[str]:
    """Fill ``state`` with the decomposed layer ``name``; returns the student keys it set (or left at their
    fresh values on purpose)."""
    if isinstance(full, nn.ConvTranspose2d):
        # upsample-then-1×1 in the student, 2×2 stride-2 transposed convolution in the teacher: each output
        # pixel of the latter applies one of its four taps; the 1×1 takes their mean.
        conv = layer[0]
        taps = full.weight.detach().mean(dim=(2, 3)).T[:, :, None, None]  # out × in × 1 × 1
        state[f"{name}.0.weight"] = select_tensor(taps, conv.weight.shape)
        return [f"{name}.0.weight", *_shifted_bn(state, f"{name}.1", layer[1])]
    dw, pw = layer[0][0], layer[1][0]
    picked = select_tensor(
        full[0].weight.detach(), torch.Size([pw.out_channels, dw.in_channels, *dw.kernel_size])
    )
    depthwise, pointwise = decompose_conv(picked)
    state[f"{name}.0.0.weight"] = depthwise
    state[f"{name}.1.0.weight"] = pointwise
    shifted = _shifted_bn(state, f"{name}.0.1", layer[0][1])
    for key, value in full[1].state_dict().items():  # the teacher's BatchNorm after the convolution
        target = layer[1][1].state_dict()[key]
        state[f"{name}.1.1.{key}"] = (
            value.clone() if value.ndim == 0 else select_tensor(value.detach(), target.shape)
        )
    return [f"{name}.0.0.weight", f"{name}.1.0.weight", *shifted] + [
        f"{name}.1.1.{key}" for key in full[1].state_dict()
    ]


def inherit_weights(student: nn.Module, teacher: nn.Module) -> InheritReport:
    """Fill ``student``'s parameters and buffers from ``teacher`` by weight selection (in place).

    Raises ``ValueError`` when no tensor at all can be taken over: the two are different architectures.
    """
    teacher_state = teacher.state_dict()
    own = student.state_dict()
    report = InheritReport()
    new_state: dict[str, Tensor] = {}
    done: set[str] = set()
    for name, (layer, full) in _decomposable(student, teacher).items():
        done.update(_decompose_into(new_state, name, layer, full))
        report.decomposed.append(name)
    for name, value in own.items():
        if name in done:
            continue
        source = teacher_state.get(name)
        if (
            source is None
            or source.ndim != value.ndim
            or any(t < s for t, s in zip(source.shape, value.shape, strict=True))
        ):
            report.kept.append(name)
            continue
        if source.shape == value.shape:
            new_state[name] = source.detach().clone()
            report.copied.append(name)
        else:
            new_state[name] = select_tensor(source.detach(), value.shape)
            report.selected.append(name)
    if not report.selected and not report.copied and not report.decomposed:
        raise ValueError(
            "no tensor of the teacher fits the student: weight selection needs a narrower copy "
            "of the teacher's architecture"
        )
    student.load_state_dict({k: v.to(own[k].dtype) for k, v in new_state.items()}, strict=False)
    return report
