"""The distillation objective that the training loop (``edgeseg.train.fit``) minimises at every step.

It is an :class:`~edgeseg.train.loop.Objective`: called with the (wrapped) student and the augmented, mixed,
normalized batch, it runs the frozen teacher on exactly that batch under ``no_grad`` and returns

    total = w_ce·label_loss + w_kd·pixel_KD + w_cwd·CWD + w_relation·relation_KD
            + w_feature·mean_pairs(feature_KD)

with each computed term in the parts dict (``ce``/``dice`` from the label loss, ``kd``, ``cwd``,
``relation``, ``feature``), which the loop logs as ``loss_<name>``. Terms whose weight is 0 are not computed.
The teacher terms' weights are scaled by ``distill.teacher_until``/``teacher_decay`` at the batch's
``progress``; where the scale is 0 the teacher does not run.
Pixels of unlabelled images (:data:`edgeseg.distill.unlabelled.UNLABELLED`) count for the distillation terms,
not for the label loss. Teacher and student may have different output strides: logits are both at the input
size (an ONNX teacher resizes its own), feature maps are resized to the teacher's.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgeseg.distill.adapters import FeatureAdapters
from edgeseg.distill.config import DistillConfig
from edgeseg.distill.losses import (
    channelwise_kd_loss,
    feature_kd_loss,
    pixel_kd_loss,
    relation_kd_loss,
    valid_pixels,
)
from edgeseg.distill.teacher import freeze
from edgeseg.distill.unlabelled import for_label_loss
from edgeseg.errors import InputError
from edgeseg.runtime.metadata import IGNORE_INDEX
from edgeseg.train.losses import LossTerm, label_loss


class DistillObjective(nn.Module):
    """Label loss plus pixel-wise KD, channel-wise KD, relation KD and feature KD against a frozen teacher.

    ``teacher`` is frozen here (eval mode, no gradients) and stays in eval mode whatever mode the objective is
    put in. ``label_terms`` is the trainer's label loss (``SupervisedObjective.terms``); ``adapters`` (needed
    when ``cfg.weights.feature > 0``) must also be handed to the loop as an extra module so that it trains and
    is saved in the resumable state. The teacher is a submodule only so that moving the objective to a device
    moves it too; it has no trainable parameter.
    """

    def __init__(
        self,
        teacher: nn.Module,
        cfg: DistillConfig,
        label_terms: list[LossTerm],
        *,
        adapters: FeatureAdapters | None = None,
        ignore_index: int = IGNORE_INDEX,
    ) -> None:
        super().__init__()
        if cfg.weights.feature > 0 and adapters is None:
            raise ValueError("feature distillation needs FeatureAdapters for distill.feature_pairs")
        if cfg.weights.feature > 0 and not hasattr(teacher, "forward_features"):
            raise InputError(
                "distill.weights.feature > 0 needs a PyTorch teacher with feature maps; this teacher "
                f"({type(teacher).__name__}) gives logits only (set distill.weights.feature=0)"
            )
        self.teacher = freeze(teacher)
        self.cfg = cfg
        self.label_terms = label_terms
        self.adapters = adapters
        self.ignore_index = ignore_index

    def train(self, mode: bool = True) -> DistillObjective:
        """Set the mode of the adapters; the teacher always stays in eval mode."""
        super().train(mode)
        self.teacher.eval()
        return self

    def forward(self, model: nn.Module, batch: Any) -> tuple[Tensor, dict[str, Tensor]]:
        """``(total, parts)`` for one mixed batch (``images``, ``target_a``, ``target_b``, ``lam``).

        ``model(x)`` must return logits and ``model(x, features=True)`` ``(logits, features)`` (the loop's
        ``FeatureForward``, possibly inside DistributedDataParallel).
        """
        w = self.cfg.weights
        images = batch.images
        scale = self.cfg.teacher_scale(batch.progress)
        use_teacher = w.uses_teacher and scale > 0
        use_features = use_teacher and w.feature > 0
        if use_features:
            logits, feats = model(images, features=True)
        else:
            logits, feats = model(images), {}
        parts: dict[str, Tensor] = {}
        total = logits.new_zeros((), dtype=torch.float32)
        if w.ce > 0:
            labelled = dataclasses.replace(
                batch,
                target_a=for_label_loss(batch.target_a, self.ignore_index),
                target_b=for_label_loss(batch.target_b, self.ignore_index),
            )
            label_total, label_parts = label_loss(self.label_terms, logits, labelled)
            parts.update(label_parts)
            total = total + w.ce * label_total
        if not use_teacher:
            return total, parts

        self.teacher.eval()
        with torch.no_grad():
            if use_features:
                t_logits, t_feats = self.teacher.forward_features(images)
            else:
                t_logits, t_feats = self.teacher(images), {}
        valid = valid_pixels(batch.target_a, batch.target_b, batch.lam, self.ignore_index)
        valid_full = valid
        if self.cfg.logit_stride > 1:
            logits, t_logits, valid = pool_logits(logits, t_logits, valid, self.cfg.logit_stride)
        if w.kd > 0:
            parts["kd"] = pixel_kd_loss(logits, t_logits, self.cfg.kd_tau, valid)
            total = total + scale * w.kd * parts["kd"]
        if w.cwd > 0:
            parts["cwd"] = channelwise_kd_loss(logits, t_logits, self.cfg.cwd_tau, valid)
            total = total + scale * w.cwd * parts["cwd"]
        if w.relation > 0:
            parts["relation"] = relation_kd_loss(logits, t_logits, self.cfg.relation_tau, valid)
            total = total + scale * w.relation * parts["relation"]
        if use_features and self.adapters is not None:
            mapped = self.adapters(feats)
            strides = getattr(self.teacher, "feature_strides", {})
            terms = [
                feature_kd_loss(
                    mapped[s_name],
                    t_feats[t_name],
                    _padded_valid(valid_full, t_feats[t_name], strides.get(t_name)),
                )
                for s_name, t_name in self.adapters.pairs.items()
            ]
            parts["feature"] = torch.stack(terms).mean()
            total = total + scale * w.feature * parts["feature"]
        return total, parts


def pool_logits(
    student: Tensor, teacher: Tensor, valid: Tensor, stride: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Both N×C×H×W logit maps average-pooled over ``stride``×``stride`` windows (the last partial window
    included), and the N×H×W valid mask pooled so that a window is valid only when all its pixels are."""
    student = F.avg_pool2d(student, stride, stride, ceil_mode=True)
    teacher = F.avg_pool2d(teacher, stride, stride, ceil_mode=True)
    invalid = F.max_pool2d((~valid).float().unsqueeze(1), stride, stride, ceil_mode=True)
    return student, teacher, invalid.squeeze(1) < 0.5


def _padded_valid(valid: Tensor, feature: Tensor, stride: int | None) -> Tensor:
    """The valid mask laid over ``feature``'s grid: feature maps cover the input padded to a multiple of the
    model's stride, so the mask is padded (invalid) to ``feature size × stride`` before being resized."""
    if not stride:
        return valid
    height, width = feature.shape[-2] * stride, feature.shape[-1] * stride
    pad_h, pad_w = height - valid.shape[-2], width - valid.shape[-1]
    if pad_h < 0 or pad_w < 0:
        return valid
    return F.pad(valid, (0, pad_w, 0, pad_h), value=False)
