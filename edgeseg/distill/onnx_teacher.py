"""A teacher that is an ONNX file: an edgeseg export, or a segmentation model exported by any other tool.

It runs in ONNX Runtime (provider chosen by ``edgeseg.runtime``'s rules) on exactly the student's augmented
batch. That batch arrives normalized with the student's statistics, so it is brought back to RGB in [0, 1]
and normalized again with the teacher's own (from the file's edgeseg metadata, or from the recipe's
``distill.teacher_mean``/``teacher_std``); a file that normalizes inside its graph gets uint8 NHWC RGB. Its
class scores (N×C×h×w at the input size or lower, or a coarse edgeseg export's) are resized to the input
size, which is the size of the student's logits. It gives logits only: feature distillation needs a PyTorch
teacher.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgeseg.distill.config import ONNX_SUFFIX
from edgeseg.errors import InputError
from edgeseg.runtime.model_io import ModelIO, read_model_io
from edgeseg.runtime.providers import create_session


def is_onnx(path: str | os.PathLike) -> bool:
    """Whether ``distill.teacher`` names an ONNX file (by its suffix)."""
    return str(path).lower().endswith(ONNX_SUFFIX)


class OnnxTeacher(nn.Module):
    """A frozen teacher running in ONNX Runtime, called like a model with the student's normalized batch.

    Open it with :meth:`open`, then :meth:`check` it against the student's classes and normalization (as
    :class:`~edgeseg.distill.teacher.CheckpointTeacher`); calling it returns float32 class scores at the
    batch's height and width, on the batch's device. It has no parameters and never trains.
    """

    def __init__(
        self,
        path: Path,
        session: Any,
        io: ModelIO,
        *,
        provider: str,
        mean: Sequence[float] | None,
        std: Sequence[float] | None,
        num_classes: int | None,
    ) -> None:
        super().__init__()
        self.path, self.session, self.io, self.provider = path, session, io, provider
        self.mean, self.std = mean, std
        self.num_classes = num_classes
        self.student_mean: list[float] | None = None
        self.student_std: list[float] | None = None

    @classmethod
    def open(
        cls,
        path: str | os.PathLike,
        *,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        num_classes: int | None = None,
        provider: str = "auto",
    ) -> OnnxTeacher:
        """Open ``path`` in ONNX Runtime; ``mean``/``std``/``num_classes`` (the recipe's ``teacher_*`` keys)
        complete or override what the file says. Raises :class:`InputError` naming the file when it is
        missing or unreadable, returns labels instead of scores, or has no normalization to use."""
        p = Path(path)
        if not p.is_file():
            raise InputError(f"teacher ONNX file not found: {p} (set distill.teacher)")
        session, choice = create_session(str(p), provider, threads=torch.get_num_threads())
        io = read_model_io(session, str(p))
        if io.labels_output:
            raise InputError(
                f"teacher {p} returns class labels (argmax); distillation needs its class scores (export it "
                "with logits)"
            )
        props = dict(session.get_modelmeta().custom_metadata_map)
        if not io.graph_preprocess:
            mean = list(mean) if mean else (io.metadata.mean if "mean" in props else None)
            std = list(std) if std else (io.metadata.std if "std" in props else None)
            if mean is None or std is None:
                raise InputError(
                    f"teacher {p} carries no edgeseg normalization; set distill.teacher_mean and "
                    "distill.teacher_std to the statistics it was trained with (e.g. ImageNet's)"
                )
        if num_classes and io.num_classes and num_classes != io.num_classes:
            raise InputError(
                f"distill.teacher_num_classes is {num_classes}, but teacher {p} gives "
                f"{io.num_classes} classes"
            )
        return cls(
            p, session, io, provider=choice, mean=mean, std=std, num_classes=num_classes or io.num_classes
        )

    def describe(self) -> str:
        name = self.io.metadata.model_name or "ONNX model"
        norm = "normalized in its graph" if self.io.graph_preprocess else f"mean {self.mean}, std {self.std}"
        return f"{name} from {self.path} (ONNX Runtime, {self.provider}; {norm})"

    def check(self, *, classes: Sequence[str], mean: Sequence[float], std: Sequence[float]) -> OnnxTeacher:
        """Check the teacher's classes against the data's ``classes`` and remember the student's
        normalization ``mean``/``std`` (to undo it); return the frozen teacher."""
        named = list(self.io.metadata.classes)
        if named and named != list(classes):
            raise InputError(
                f"teacher {self.path} was trained on {len(named)} classes {named}, but the data has "
                f"{len(classes)} classes {list(classes)}"
            )
        if self.num_classes is not None and self.num_classes != len(classes):
            raise InputError(
                f"teacher {self.path} gives {self.num_classes} classes, but the data has {len(classes)}"
            )
        self.num_classes = len(classes)
        self.student_mean, self.student_std = list(mean), list(std)
        return self.eval()

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        """Class scores (float32, N×C×H×W) for the student's normalized batch ``x`` (N×3×H×W)."""
        if self.student_mean is None or self.student_std is None:
            raise RuntimeError("OnnxTeacher.check() must be called before the teacher is run")
        n, _, height, width = x.shape
        static = self.io.metadata.static_size
        if static is not None and tuple(static) != (height, width):
            raise InputError(
                f"teacher {self.path} takes a fixed {static[0]}x{static[1]} input, but the student's "
                f"batch is {height}x{width} (export the teacher with a dynamic size, or set data.crop_size)"
            )
        rgb = _unnormalize(x.detach().float(), self.student_mean, self.student_std)
        feed = self._teacher_input(rgb)
        if self.io.fixed_batch == 1 and n > 1:
            outs = [self._run(feed[i : i + 1]) for i in range(n)]
            scores = np.concatenate(outs)
        elif self.io.fixed_batch not in (None, n):
            raise InputError(
                f"teacher {self.path} takes batches of {self.io.fixed_batch} images, the student's has {n}"
            )
        else:
            scores = self._run(feed)
        scores_t = torch.from_numpy(np.ascontiguousarray(scores)).float()
        return self._to_input_size(scores_t, n, height, width).to(x.device)

    def _teacher_input(self, rgb: Tensor) -> np.ndarray:
        if self.io.graph_preprocess:
            u8 = rgb.mul(255.0).round_().clamp_(0, 255).to(torch.uint8)
            return u8.permute(0, 2, 3, 1).contiguous().cpu().numpy()
        mean = torch.tensor(self.mean, dtype=torch.float32, device=rgb.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32, device=rgb.device).view(1, -1, 1, 1)
        t = (rgb - mean) / std
        if self.io.metadata.input_layout == "NHWC":
            t = t.permute(0, 2, 3, 1)
        return t.contiguous().cpu().numpy().astype(self.io.input_dtype, copy=False)

    def _run(self, feed: np.ndarray) -> np.ndarray:
        (out,) = self.session.run([self.io.output_name], {self.io.input_name: feed})
        return out

    def _to_input_size(self, scores: Tensor, n: int, height: int, width: int) -> Tensor:
        """Check the scores' shape and bring them to ``height``×``width`` (bilinear)."""
        if scores.ndim != 4 or scores.shape[0] != n:
            raise InputError(
                f"teacher {self.path} returned shape {tuple(scores.shape)} for a batch of {n}; expected "
                f"class scores {n}xCxHxW"
            )
        if scores.shape[1] != self.num_classes:
            raise InputError(
                f"teacher {self.path} returned {scores.shape[1]} classes, but the data has {self.num_classes}"
            )
        factor = self.io.metadata.upsample
        if factor > 1:  # a coarse edgeseg export: logits of the input padded to the stride, at 1/factor
            scores = F.interpolate(scores, scale_factor=factor, mode="bilinear", align_corners=False)
            scores = scores[..., :height, :width]
        h, w = scores.shape[-2:]
        if h > height or w > width:
            raise InputError(
                f"teacher {self.path} returned {h}x{w} scores for a {height}x{width} input; expected "
                "the input size or a lower one"
            )
        if (h, w) != (height, width):
            scores = F.interpolate(scores, size=(height, width), mode="bilinear", align_corners=False)
        if self.io.metadata.output == "softmax":  # log-probabilities are logits up to a per-pixel constant
            scores = scores.clamp_min(1e-12).log()
        return scores


def _unnormalize(x: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """RGB in [0, 1] from a batch normalized as ``(rgb - mean) / std``."""
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return x * s + m
