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
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn


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


@dataclass
class InheritReport:
    """Which student tensors came from the teacher: copied whole, selected, or left as initialised."""

    copied: list[str] = field(default_factory=list)
    selected: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line with the counts (and the first tensors kept at initialisation, if any)."""
        kept = f" ({', '.join(self.kept[:3])}{', ...' if len(self.kept) > 3 else ''})" if self.kept else ""
        return (
            f"student initialised from the teacher by weight selection: {len(self.selected)} tensors "
            f"selected, {len(self.copied)} copied whole, {len(self.kept)} kept at initialisation{kept}"
        )


def inherit_weights(student: nn.Module, teacher: nn.Module) -> InheritReport:
    """Fill ``student``'s parameters and buffers from ``teacher`` by weight selection (in place).

    Raises ``ValueError`` when no tensor at all can be taken over: the two are different architectures.
    """
    teacher_state = teacher.state_dict()
    own = student.state_dict()
    report = InheritReport()
    new_state = {}
    for name, value in own.items():
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
    if not report.selected and not report.copied:
        raise ValueError(
            "no tensor of the teacher fits the student: weight selection needs a narrower copy "
            "of the teacher's architecture"
        )
    student.load_state_dict({k: v.to(own[k].dtype) for k, v in new_state.items()}, strict=False)
    return report
