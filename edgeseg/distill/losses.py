"""Knowledge-distillation losses for segmentation, as pure functions of student and teacher tensors.

Every loss is zero when the student equals the teacher and positive otherwise, takes an optional boolean
``valid`` mask (N×H×W, True where a pixel counts) so that ignore pixels contribute nothing, and keeps the
gradient of the student's side only: the teacher's tensors are detached here as well as produced under
``torch.no_grad`` by the objective.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from edgeseg.runtime.metadata import IGNORE_INDEX


def valid_pixels(
    target_a: Tensor,
    target_b: Tensor | None = None,
    lam: Tensor | float = 1.0,
    ignore_index: int = IGNORE_INDEX,
) -> Tensor:
    """Boolean N×H×W mask of the pixels a distillation loss may use.

    Without a second target (no MixUp) a pixel is valid where ``target_a`` is not ``ignore_index``. With MixUp
    (loss ``lam·CE(target_a) + (1−lam)·CE(target_b)``) a pixel is valid where every target that carries weight
    is valid: both when ``0 < lam < 1``, only ``target_a`` when ``lam == 1``, only ``target_b`` when
    ``lam == 0``. ``lam`` may be a scalar or one value per sample.
    """
    valid_a = target_a != ignore_index
    if target_b is None:
        return valid_a
    valid_b = target_b != ignore_index
    lam_t = torch.as_tensor(lam, dtype=torch.float32, device=target_a.device).reshape(-1, 1, 1)
    uses_a = lam_t > 0
    uses_b = lam_t < 1
    return (valid_a | ~uses_a) & (valid_b | ~uses_b)


def _check_pair(student: Tensor, teacher: Tensor, what: str) -> None:
    if student.shape != teacher.shape:
        raise ValueError(f"{what}: student {tuple(student.shape)} and teacher {tuple(teacher.shape)} differ")


def pixel_kd_loss(
    student_logits: Tensor, teacher_logits: Tensor, tau: float = 1.0, valid: Tensor | None = None
) -> Tensor:
    """Pixel-wise KD: ``KL(softmax(t/τ) ‖ softmax(s/τ)) · τ²`` averaged over the valid pixels.

    Logits are N×C×H×W (same shape); the KL sums over classes at each pixel. No valid pixel → 0 (still
    connected to the student's graph so that a backward pass works).
    """
    _check_pair(student_logits, teacher_logits, "pixel KD")
    log_p_s = F.log_softmax(student_logits.float() / tau, dim=1)
    log_p_t = F.log_softmax(teacher_logits.detach().float() / tau, dim=1)
    kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=1)  # N×H×W
    if valid is None:
        return kl.mean() * tau**2
    weight = valid.to(kl.dtype)
    return (kl * weight).sum() / weight.sum().clamp_min(1.0) * tau**2


def channelwise_kd_loss(
    student_logits: Tensor, teacher_logits: Tensor, tau: float = 1.0, valid: Tensor | None = None
) -> Tensor:
    """Channel-wise distillation (CWD): per channel, a softmax over the H×W positions with temperature τ;
    ``KL(teacher ‖ student) · τ²`` of those spatial distributions, averaged over channels and batch.

    Invalid pixels are removed from both distributions (they get probability zero), so they do not contribute.
    """
    _check_pair(student_logits, teacher_logits, "channel-wise KD")
    n, c = student_logits.shape[:2]
    s = student_logits.float().reshape(n, c, -1) / tau
    t = teacher_logits.detach().float().reshape(n, c, -1) / tau
    if valid is not None:
        keep = valid.reshape(n, 1, -1).expand(n, c, -1)
        s = s.masked_fill(~keep, float("-inf"))
        t = t.masked_fill(~keep, float("-inf"))
    log_p_s = F.log_softmax(s, dim=2)
    log_p_t = F.log_softmax(t, dim=2)
    diff = log_p_t - log_p_s
    if valid is not None:
        # -inf − -inf is NaN at removed positions: those positions carry zero teacher mass, so zero them.
        diff = diff.masked_fill(~keep, 0.0)
        has_pixel = keep.any(dim=2)  # N×C: a sample with no valid pixel contributes nothing
        kl = (log_p_t.exp().nan_to_num(0.0) * diff).sum(dim=2)
        return (kl * has_pixel).sum() / has_pixel.sum().clamp_min(1) * tau**2
    kl = (log_p_t.exp() * diff).sum(dim=2)  # N×C
    return kl.mean() * tau**2


def _pearson(a: Tensor, b: Tensor, dim: int, eps: float = 1e-12) -> Tensor:
    """Pearson correlation of ``a`` and ``b`` along ``dim`` (a constant vector correlates 0 with anything)."""
    a = a - a.mean(dim=dim, keepdim=True)
    b = b - b.mean(dim=dim, keepdim=True)
    # sqrt(|a|²·|b|²) rather than |a|·|b|: exactly 1 when a == b; the clamp keeps the gradient finite at 0
    norms = (a.pow(2).sum(dim=dim) * b.pow(2).sum(dim=dim)).clamp_min(eps * eps).sqrt()
    return (a * b).sum(dim=dim) / norms


def relation_kd_loss(
    student_logits: Tensor, teacher_logits: Tensor, tau: float = 1.0, valid: Tensor | None = None
) -> Tensor:
    """Relation distillation after DIST (Huang et al., 2022): the student matches the teacher's class
    probabilities up to a linear map rather than exactly.

    With ``p = softmax(logits/τ)`` over classes: the inter-class term is ``1 − Pearson`` of the student's and
    teacher's probability vectors at each valid pixel (averaged over pixels); the intra-class term is
    ``1 − Pearson`` of each class's probability over all valid pixels of the batch (averaged over classes).
    Returns ``τ² · (inter + intra)``: zero when the student equals the teacher, positive otherwise (a pixel
    whose probabilities are exactly uniform has no correlation and counts as a full mismatch).
    """
    _check_pair(student_logits, teacher_logits, "relation KD")
    c = student_logits.shape[1]
    p_s = F.softmax(student_logits.float() / tau, dim=1).movedim(1, -1).reshape(-1, c)  # pixels×C
    p_t = F.softmax(teacher_logits.detach().float() / tau, dim=1).movedim(1, -1).reshape(-1, c)
    if valid is not None:
        keep = valid.reshape(-1)
        p_s, p_t = p_s[keep], p_t[keep]
    if p_s.shape[0] < 2:  # no pixel (or one): nothing to correlate; stay connected to the graph
        return student_logits.sum() * 0.0
    inter = 1.0 - _pearson(p_s, p_t, dim=1).mean()
    intra = 1.0 - _pearson(p_s, p_t, dim=0).mean()
    return (inter + intra) * tau**2


def normalize_feature(feature: Tensor) -> Tensor:
    """L2-normalise each pixel's feature vector over channels (so feature KD ignores the maps' scale)."""
    return F.normalize(feature.float(), p=2, dim=1, eps=1e-6)


def feature_kd_loss(student_feature: Tensor, teacher_feature: Tensor, valid: Tensor | None = None) -> Tensor:
    """Feature distillation: squared L2 distance of the per-pixel normalised maps, averaged over pixels.

    ``student_feature`` is the student's map already mapped by its adapter to the teacher's channels; it is
    resized (bilinear) to the teacher map's H×W here. ``valid`` (N×H×W at any size) is resized with nearest
    sampling to the teacher map. Per pixel the value lies in [0, 4].
    """
    if student_feature.shape[:2] != teacher_feature.shape[:2]:
        raise ValueError(
            f"feature KD: student {tuple(student_feature.shape)} needs an adapter to the teacher's "
            f"{tuple(teacher_feature.shape)} channels"
        )
    size = teacher_feature.shape[-2:]
    if student_feature.shape[-2:] != size:
        student_feature = F.interpolate(student_feature, size=size, mode="bilinear", align_corners=False)
    s = normalize_feature(student_feature)
    t = normalize_feature(teacher_feature.detach())
    dist = (s - t).pow(2).sum(dim=1)  # N×h×w
    if valid is None:
        return dist.mean()
    weight = F.interpolate(valid[:, None].float(), size=size, mode="nearest")[:, 0]
    return (dist * weight).sum() / weight.sum().clamp_min(1.0)
