"""Real images for low-precision conversion: calibration feeds and the mIoU / agreement checks of the gates.

Images go through the model's own preprocessing (``mean``/``std`` from its metadata, its input layout,
padding to its stride when the graph does not pad) via :func:`edgeseg.export.feeds.image_feed`. A model with
dynamic height and width is calibrated at one fixed size, the one the data gives (the dataset's fixed size,
else its first calibration image's); other images are resized to it. Validation runs every image at its
own size, as deployment does.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from onnxruntime.quantization import CalibrationDataReader

from edgeseg.errors import InputError
from edgeseg.export.feeds import Feed, fixed_dims, image_feed, random_feeds
from edgeseg.metrics import confusion_matrix, metrics_from_confusion
from edgeseg.runtime.metadata import ModelMetadata
from edgeseg.runtime.model_io import output_fits, read_model_io
from edgeseg.runtime.ops import upsample_argmax


def open_dataset(data: str | os.PathLike | Any, split: str, settings: dict[str, Any] | None = None) -> Any:
    """The ``split`` of ``data``: a dataset object (``__len__``, ``__getitem__`` giving (image, mask)) is used
    as is, a root (``"synthetic"`` or a folder) goes to ``build_dataset`` with ``settings`` (the model's
    data settings from its metadata; the defaults when empty), as ``edgeseg eval`` reads it."""
    if hasattr(data, "__getitem__") and hasattr(data, "__len__") and not isinstance(data, (str, bytes)):
        dataset = data
    else:
        from edgeseg.config import data_settings
        from edgeseg.data import build_dataset

        root = os.fspath(data)
        dataset = build_dataset(root, split, data_settings((), settings or None, root=root))
    if len(dataset) == 0:
        raise InputError(f"the {split!r} split of {describe_data(data)} has no images")
    return dataset


def describe_data(data: str | os.PathLike | Any) -> str:
    """A short name for a data source, for reports and messages."""
    if isinstance(data, (str, os.PathLike)):
        return os.fspath(data)
    root, split = getattr(data, "root", None), getattr(data, "split", None)
    return f"{root}:{split}" if root is not None else type(data).__name__


@dataclass
class Fp32Model:
    """An FP32 ONNX model opened for conversion: its proto, metadata, CPU session and class count."""

    proto: Any
    meta: ModelMetadata
    session: Any
    num_classes: int


def open_fp32(path: str | os.PathLike, verb: str) -> Fp32Model:
    """Load the FP32 model at ``path``; InputError for a file already converted (``verb``: what the caller
    does, for the message) or one that does not say how many classes it predicts."""
    from edgeseg.export.info import load_onnx
    from edgeseg.export.metadata import read_metadata

    proto = load_onnx(path)
    meta = read_metadata(proto)
    if meta.precision != "fp32":
        raise InputError(f"{path} is already {meta.precision}; {verb} the FP32 model")
    session = make_session(path)
    num_classes = read_model_io(session, os.fspath(path)).num_classes
    if num_classes is None:
        raise InputError(f"{os.fspath(path)}: the model does not say how many classes it predicts")
    return Fp32Model(proto, meta, session, num_classes)


def check_classes(dataset: Any, model_classes: int, what: str) -> None:
    """Refuse a dataset whose number of classes differs from the model's."""
    data_classes = getattr(dataset, "num_classes", None)
    if model_classes and data_classes and model_classes != data_classes:
        raise InputError(
            f"{what} has {data_classes} classes but the model predicts {model_classes}; "
            "pass data labelled like the model's training data"
        )


def spread_indices(length: int, count: int) -> list[int]:
    """``count`` indices spread evenly over ``range(length)`` (all of them when ``count >= length``)."""
    if count >= length:
        return list(range(length))
    return [int(i) for i in np.linspace(0, length - 1, count).round().astype(int)]


def resize_image(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of a uint8 H×W×3 image (no-op at the same size)."""
    if image.shape[:2] == (height, width):
        return image
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((width, height), Image.BILINEAR))


def calibration_size(dataset: Any, first_index: int) -> tuple[int, int]:
    """The fixed size dynamic models are calibrated at: the dataset's fixed size, else its first image's."""
    fixed = getattr(dataset, "fixed_size", None)
    if fixed:
        return int(fixed[0]), int(fixed[1])
    image, _ = dataset[first_index]
    return int(image.shape[0]), int(image.shape[1])


class ImageCalibrationReader(CalibrationDataReader):
    """ONNX Runtime calibration reader over dataset images, made on demand (one image per batch).

    Supports ``set_range`` so that ONNX Runtime can calibrate in chunks (``CalibStridedMinMax``) and hold
    only one chunk's activations at a time.
    """

    def __init__(
        self,
        dataset: Any,
        indices: Sequence[int],
        meta: ModelMetadata,
        input_name: str,
        input_shape: Sequence[object],
        size: tuple[int, int],
    ) -> None:
        self.dataset = dataset
        self.indices = list(indices)
        self.meta = meta
        self.input_name = input_name
        self.input_shape = list(input_shape)
        self.size = size
        self._range = (0, len(self.indices))
        self._iter: Iterator[dict[str, np.ndarray]] | None = None

    def __len__(self) -> int:
        return len(self.indices)

    def feed(self, position: int) -> np.ndarray:
        """The model input for the ``position``-th calibration image."""
        index = self.indices[position]
        image, mask = self.dataset[index]
        image = resize_image(np.asarray(image), *self.size)
        mask = np.zeros(image.shape[:2], np.int64)
        return image_feed(image, mask, self.meta, self.input_shape, f"calibration image {index}").array

    def _generate(self) -> Iterator[dict[str, np.ndarray]]:
        start, end = self._range
        for position in range(start, end):
            yield {self.input_name: self.feed(position)}

    def get_next(self) -> dict[str, np.ndarray] | None:
        """The next input dict, or None at the end of the current range."""
        if self._iter is None:
            self._iter = self._generate()
        return next(self._iter, None)

    def rewind(self) -> None:
        """Start again from the first image of the current range."""
        self._iter = None

    def set_range(self, start_index: int, end_index: int) -> None:
        """Restrict reading to positions ``[start_index, end_index)`` and rewind."""
        self._range = (start_index, min(end_index, len(self.indices)))
        self._iter = None

    def subset(self, count: int) -> ImageCalibrationReader:
        """A reader over ``count`` of these images, spread evenly."""
        picked = [self.indices[i] for i in spread_indices(len(self.indices), count)]
        return ImageCalibrationReader(
            self.dataset, picked, self.meta, self.input_name, self.input_shape, self.size
        )


def make_session(path: str | os.PathLike, threads: int | None = None) -> Any:
    """A quiet CPU ``InferenceSession`` for checks (optimizations on, as in deployment)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(os.fspath(path), options, providers=["CPUExecutionProvider"])


def output_labels(
    output: np.ndarray, kind: str, crop: tuple[int, int] | None = None, upsample: int = 1
) -> np.ndarray:
    """N×H×W labels from a model output (logits/softmax: argmax over channels; a coarse export's logits:
    argmax of their upsampling by ``upsample``), cropped to ``crop``."""
    if kind == "argmax":
        labels = output
    elif upsample > 1:
        labels = np.stack([upsample_argmax(o, upsample) for o in np.asarray(output)])
    else:
        labels = np.asarray(output).argmax(axis=1)
    if crop is not None:
        labels = labels[:, : crop[0], : crop[1]]
    return labels


@dataclass
class Agreement:
    """Argmax agreement (fraction of pixels) between two models, and mIoU of both when masks exist."""

    agreement: float
    pixels: int
    miou_reference: float | None
    miou_candidate: float | None

    @property
    def drop(self) -> float | None:
        """mIoU lost by the candidate, in points (None without masks)."""
        if self.miou_reference is None or self.miou_candidate is None:
            return None
        return 100.0 * (self.miou_reference - self.miou_candidate)


def val_feeds(dataset: Any, meta: ModelMetadata, input_shape: Sequence[object], count: int) -> Iterator[Feed]:
    """Model inputs for ``count`` validation images spread over ``dataset``, each at its own size."""
    for index in spread_indices(len(dataset), count):
        image, mask = dataset[index]
        yield image_feed(np.asarray(image), np.asarray(mask), meta, input_shape, f"validation image {index}")


def compare_models(
    reference: Any,
    candidate: Any,
    feeds: Iterator[Feed] | Sequence[Feed],
    meta: ModelMetadata,
    num_classes: int,
    reference_cache: dict[str, np.ndarray] | None = None,
    progress: Callable[[str], None] | None = None,
) -> Agreement:
    """Run two sessions on the same feeds; argmax agreement and (with masks) the mIoU of each.

    ``reference_cache`` (feed name → labels) spares re-running the reference model on later calls.
    """
    input_name = candidate.get_inputs()[0].name
    same = total = 0
    cm_ref = np.zeros((num_classes, num_classes), np.int64)
    cm_cand = np.zeros_like(cm_ref)
    have_masks = True
    for feed in feeds:
        if reference_cache is not None and feed.name in reference_cache:
            ref = reference_cache[feed.name]
        else:
            out = reference.run(None, {input_name: feed.array})[0]
            ref = output_labels(out, meta.output, feed.crop, meta.upsample)
            if reference_cache is not None:
                reference_cache[feed.name] = ref
        out = candidate.run(None, {input_name: feed.array})[0]
        got = output_labels(out, meta.output, feed.crop, meta.upsample)
        same += int((ref == got).sum())
        total += ref.size
        if feed.masks is None:
            have_masks = False
            continue
        cm_ref += confusion_matrix(ref, feed.masks, num_classes, meta.ignore_index)
        cm_cand += confusion_matrix(got, feed.masks, num_classes, meta.ignore_index)
    if total == 0:
        raise InputError("no images to compare the models on")
    if not have_masks:
        return Agreement(same / total, total, None, None)
    miou_ref, miou_cand = metrics_from_confusion(cm_ref).miou, metrics_from_confusion(cm_cand).miou
    return Agreement(same / total, total, miou_ref, miou_cand)


def other_size_feeds(meta: ModelMetadata, input_shape: Sequence[object], size: tuple[int, int]) -> list[Feed]:
    """Random inputs at sizes other than the calibration size (odd and non-square) for a dynamic model."""
    dims = fixed_dims(input_shape)
    height, width = size
    sizes = [(1, height + 13, width + 7), (1, max(32, height // 2 + 3), width + 16)]
    if dims[0] is None:
        sizes.append((2, height, width))
    return random_feeds(meta, input_shape, sizes=sizes, seed=1)


def check_sizes(session: Any, meta: ModelMetadata, size: tuple[int, int]) -> list[str]:
    """Run ``session`` at other sizes; return the sizes it ran at (raises if the output shape is wrong)."""
    from edgeseg.errors import EdgesegError

    node = session.get_inputs()[0]
    ran = []
    for feed in other_size_feeds(meta, node.shape, size):
        try:
            out = session.run(None, {node.name: feed.array})[0]
        except Exception as err:  # onnxruntime raises its own exception types
            first = (str(err).splitlines() or [type(err).__name__])[0]
            raise EdgesegError(f"the converted model fails on {feed.name}: {first}") from err
        spatial = feed.array.shape[1:3] if meta.input_layout == "NHWC" else feed.array.shape[2:4]
        got = out.shape[1:3] if meta.output == "argmax" else out.shape[2:4]
        if not output_fits(got, spatial, meta) or out.shape[0] != feed.array.shape[0]:
            raise EdgesegError(f"the converted model gives an output of shape {out.shape} for {feed.name}")
        ran.append(feed.name.removeprefix("random "))
    return ran
