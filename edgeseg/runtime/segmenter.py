"""`Segmenter`: run an exported edgeseg model on images of any size with ONNX Runtime, without PyTorch.

Everything the caller would otherwise have to know comes from the model's metadata: normalization, whether the
graph normalizes by itself (uint8 NHWC input), whether it pads to its stride internally, a fixed export size,
and whether it returns logits, probabilities or labels. The caller passes RGB images and gets label maps (or
scores) of the images' own size.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from edgeseg.errors import EdgesegError, InputError
from edgeseg.runtime.binding import BoundRunner, SessionRunner
from edgeseg.runtime.image import ImageInput, load_rgb, voc_palette
from edgeseg.runtime.model_io import output_fits, read_model_io
from edgeseg.runtime.ops import (
    Scratch,
    argmax_labels,
    channel_vector,
    normalize_into,
    resize_bilinear,
    resize_nearest,
    upsample_argmax,
)
from edgeseg.runtime.providers import create_session
from edgeseg.runtime.tiling import blend_tiles


class Segmenter:
    """A semantic segmentation model loaded from an ONNX file, ready to segment images.

    ``provider``: "auto" (CUDA when ONNX Runtime offers it, else CPU), "cpu", "cuda" or "tensorrt"; an
    explicit GPU provider that is missing or fails to start raises
    :class:`~edgeseg.runtime.providers.ProviderUnavailable`.
    ``threads``: intra-op threads of the session (None: ONNX Runtime's default).
    ``tile_size``: images whose longer side exceeds it are segmented in square tiles of that side overlapping
    by ``tile_overlap`` (a fraction of the tile), their scores blended with a smooth window (None: no tiling).
    ``io_binding``: run through I/O binding with persistent buffers (default: on for GPU providers only).
    ``spin_wait``: let ONNX Runtime's idle threads busy-wait (its own default); off here because spinning
    threads slow down the pre- and post-processing that runs between inferences on the same cores.

    Models with a static export size get the image resized to it (Pillow's bilinear filter) and their output
    resized back: labels with nearest-neighbour sampling, scores bilinearly. Other models get the image as is
    when they pad internally, else padded bottom/right to their stride and the output cropped back. A coarse
    export (logits at the output stride, ``upsample`` in its metadata) gets its labels from
    :func:`~edgeseg.runtime.ops.upsample_argmax`, the argmax of the bilinearly upsampled logits computed
    without upsampling them, and its scores (``logits``) upsampled bilinearly.

    ``provider`` and ``providers`` report what the session really uses; ``runner`` is the callable that runs
    the session (a ``SessionRunner`` or a ``BoundRunner``). A Segmenter reuses its input buffers
    between calls and is therefore not thread-safe: use one per thread.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        provider: str = "auto",
        threads: int | None = None,
        tile_size: int | None = None,
        tile_overlap: float = 0.25,
        io_binding: bool | None = None,
        spin_wait: bool = False,
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(f"model not found: {self.path}")
        if tile_size is not None and tile_size < 16:
            raise InputError(f"tile_size must be at least 16 pixels, got {tile_size}")
        if not 0.0 <= tile_overlap < 0.5:
            raise InputError(f"tile_overlap must be a fraction within [0, 0.5), got {tile_overlap}")
        self.tile_size = tile_size
        self.tile_overlap = tile_overlap
        self.session, self.provider = create_session(str(self.path), provider, threads, spin_wait)
        self.providers: list[str] = list(self.session.get_providers())
        self.io = read_model_io(self.session, str(self.path))
        self.metadata = self.io.metadata
        self.num_classes = self.io.num_classes
        self.classes = list(self.metadata.classes) or [f"class_{i}" for i in range(self.num_classes or 0)]
        wanted = self.num_classes or 256
        palette = [list(c) for c in self.metadata.palette]
        self.palette = palette if len(palette) >= wanted else palette + voc_palette(wanted)[len(palette) :]
        self.label_dtype = np.uint16 if (self.num_classes or 0) > 256 else np.uint8
        try:
            self._mean = channel_vector(self.metadata.mean, "mean")
            self._std = channel_vector(self.metadata.std, "std")
        except ValueError as err:
            raise InputError(f"{self.path}: {err}") from err
        # Raw uint8 pixels padded with the mean colour normalize to ~0, like the model's own zero padding.
        self._pad_pixel = np.rint(np.asarray(self.metadata.mean) * 255).astype(np.uint8)
        self._buffer: np.ndarray | None = None
        self._scratch = Scratch()
        self.upsample = self.metadata.upsample
        use_binding = self.provider != "cpu" if io_binding is None else io_binding
        if use_binding:
            device = "cpu" if self.provider == "cpu" else "cuda"
            self.runner: Any = BoundRunner(self.session, self.io.input_name, self.io.output_name, device)
        else:
            self.runner = SessionRunner(self.session, self.io.input_name, self.io.output_name)
        self.io_binding = use_binding

    def __repr__(self) -> str:
        return f"Segmenter({str(self.path)!r}, provider={self.provider!r}, providers={self.providers})"

    def describe(self) -> str:
        """One line saying which model runs where, for logs and the CLI."""
        meta = self.metadata
        size = (
            "any size" if meta.static_size is None else f"static {meta.static_size[0]}x{meta.static_size[1]}"
        )
        return (
            f"{self.path.name}: {meta.model_name or 'unnamed model'}, {self.num_classes or '?'} classes, "
            f"{meta.precision}, output={meta.output}"
            f"{f' (coarse, upsampled x{meta.upsample} here)' if meta.upsample > 1 else ''}, "
            f"preprocess={meta.preprocess}, {size}; "
            f"provider {self.provider} ({', '.join(self.providers)})"
        )

    # ----------------------------------------------------------------- public API

    def predict(self, image: ImageInput) -> np.ndarray:
        """Segment one image (H×W×3 uint8 RGB array, PIL image or path) into an H×W uint8 label map."""
        img = load_rgb(image)
        if self._tiled(img):
            return self._predict_tiled(img)
        return self._labels([img])[0]

    def predict_batch(self, images: Sequence[ImageInput], batch_size: int | None = None) -> list[np.ndarray]:
        """Segment several images; those of the same size go through the model together.

        ``batch_size`` caps how many run at once (None: a whole group; a model with a fixed batch dimension
        sets its own). Returns one label map per image, in order.
        """
        if batch_size is not None and batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        arrays = [load_rgb(im) for im in images]
        cap = self.io.fixed_batch or batch_size or max(len(arrays), 1)
        results: list[np.ndarray | None] = [None] * len(arrays)
        groups: dict[Any, list[int]] = {}
        for i, arr in enumerate(arrays):
            key = self.size_class(arr)
            if key is None:
                results[i] = self._predict_tiled(arr)
            else:
                groups.setdefault(key, []).append(i)
        for members in groups.values():
            for start in range(0, len(members), cap):
                chunk = members[start : start + cap]
                for i, labels in zip(chunk, self._labels([arrays[i] for i in chunk]), strict=True):
                    results[i] = labels
        return [r for r in results if r is not None]

    def size_class(self, image: np.ndarray) -> tuple[int, int] | str | None:
        """Which images of ``predict_batch`` share one model run with this H×W×3 array.

        Images of the same size class are stacked into one input tensor: "static" for a model with a fixed
        export size (every image is resized to it), else the image's (height, width). None for an image
        segmented alone in tiles.
        """
        if self._tiled(image):
            return None
        return "static" if self.metadata.static_size else (image.shape[0], image.shape[1])

    @property
    def max_batch(self) -> int | None:
        """The model's fixed batch dimension, if its graph has one (None: any batch size)."""
        return self.io.fixed_batch

    def logits(self, image: ImageInput) -> np.ndarray:
        """Scores of one image as a C×H×W float32 array at the image's size.

        These are the model's output: logits, or probabilities for a model exported with a softmax. A model
        that ends in an argmax has no scores to give and raises :class:`EdgesegError`.
        """
        self._require_scores()
        img = load_rgb(image)
        if not self._tiled(img):
            return self._scores([img])[0]
        height, width = img.shape[:2]
        result: np.ndarray | None = None

        def emit(y0: int, band: np.ndarray) -> None:
            nonlocal result
            if result is None:
                result = np.empty((band.shape[0], height, width), dtype=np.float32)
            result[:, y0 : y0 + band.shape[1]] = band

        blend_tiles(height, width, self.tile_size or 0, self._overlap_px(), self._tile_scores(img), emit)
        assert result is not None
        return result

    def prepare(self, images: Sequence[ImageInput]) -> np.ndarray:
        """The model input tensor for images that go through the model together (a new array).

        Applies what ``predict`` applies: normalization (unless the graph does it), padding to the stride or
        resizing to a static size.
        """
        return self._input([load_rgb(im) for im in images]).copy()

    def run(self, tensor: np.ndarray, copy: bool = True) -> np.ndarray:
        """Run the model on a prepared input tensor and return its raw output.

        With ``copy=False`` the array may be a buffer that the next call overwrites (I/O binding).
        """
        out = self._run_model(tensor)
        reused = isinstance(self.runner, BoundRunner) and self.runner.device == "cpu"
        return out.copy() if copy and reused else out

    # ----------------------------------------------------------------- internals

    def _tiled(self, img: np.ndarray) -> bool:
        return self.tile_size is not None and max(img.shape[:2]) > self.tile_size

    def _overlap_px(self) -> int:
        return int(round((self.tile_size or 0) * self.tile_overlap))

    def _require_scores(self) -> None:
        if self.io.labels_output:
            raise EdgesegError(
                f"{self.path.name} was exported with output=argmax and returns labels only; use predict(), "
                "or export without --argmax to get scores"
            )

    def _model_size(self, height: int, width: int) -> tuple[int, int]:
        """The height and width the network is fed for an image of this size."""
        meta = self.metadata
        if meta.static_size is not None:
            return meta.static_size
        if meta.pads_internally or meta.stride <= 1:
            return height, width
        return -(-height // meta.stride) * meta.stride, -(-width // meta.stride) * meta.stride

    def _buffer_for(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        if self._buffer is None or self._buffer.shape != shape or self._buffer.dtype != dtype:
            self._buffer = np.empty(shape, dtype=dtype)
        return self._buffer

    def _input(self, images: list[np.ndarray]) -> np.ndarray:
        """Build the input tensor for images that share a size (or are all resized to the static size)."""
        static = self.metadata.static_size
        if static is not None:
            images = [_resize_image(im, static) for im in images]
        height, width = images[0].shape[:2]
        if any(im.shape[:2] != (height, width) for im in images):
            raise InputError("images batched together must have the same size")
        model_h, model_w = self._model_size(height, width)
        padded = (model_h, model_w) != (height, width)
        count = len(images)
        if self.io.graph_preprocess:
            if count == 1 and not padded:
                return np.ascontiguousarray(images[0])[None]
            buf = self._buffer_for((count, model_h, model_w, 3), np.uint8)
            for i, im in enumerate(images):
                buf[i, :height, :width] = im
            if padded:
                buf[:, height:, :, :] = self._pad_pixel
                buf[:, :height, width:, :] = self._pad_pixel
            return buf
        buf = self._buffer_for((count, 3, model_h, model_w), np.float32)
        for i, im in enumerate(images):
            normalize_into(im, buf[i, :, :height, :width], self._mean, self._std)
        if padded:
            buf[:, :, height:, :] = 0
            buf[:, :, :height, width:] = 0
        if self.io.input_dtype != np.float32:
            return buf.astype(self.io.input_dtype)
        return buf

    def _run_model(self, tensor: np.ndarray) -> np.ndarray:
        try:
            out = self.runner(tensor)
        except Exception as err:  # ORT raises its own types; say which model and which input shape failed
            raise EdgesegError(
                f"{self.path.name}: inference failed on input of shape {tensor.shape}: {err}"
            ) from err
        if self.io.labels_output and out.ndim == 4 and out.shape[1] == 1:
            out = out[:, 0]
        expected = 3 if self.io.labels_output else 4
        spatial = tensor.shape[1:3] if self.io.graph_preprocess else tensor.shape[2:4]
        if out.ndim != expected or not output_fits(out.shape[-2:], spatial, self.metadata):
            raise EdgesegError(
                f"{self.path.name}: output shape {out.shape} does not match input {tensor.shape}; expected "
                f"{'N×H×W labels' if self.io.labels_output else 'N×C×H×W scores'} at the input's size"
                + (f" divided by {self.upsample}" if self.upsample > 1 else "")
            )
        return out

    def _labels(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Label maps at each image's own size for images that go through the model together."""
        out = self._run_model(self._input(images))
        static = self.metadata.static_size
        results = []
        for n, im in enumerate(images):
            height, width = static or im.shape[:2]
            if self.io.labels_output:
                labels = out[n, :height, :width].astype(self.label_dtype, copy=True)
            elif self.upsample > 1:
                full = upsample_argmax(out[n], self.upsample, self._scratch)
                labels = np.array(full[:height, :width])
            else:
                labels = argmax_labels(out[n, :, :height, :width])
            if static:
                labels = resize_nearest(labels, *im.shape[:2])
            results.append(labels)
        return results

    def _scores(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """C×H×W float32 scores at each image's own size (new arrays)."""
        self._require_scores()
        out = self._run_model(self._input(images))
        static = self.metadata.static_size
        results = []
        for n, im in enumerate(images):
            height, width = im.shape[:2]
            scores = out[n]
            if self.upsample > 1:
                model_h, model_w = static or (height, width)
                scores = resize_bilinear(scores, *(d * self.upsample for d in scores.shape[1:]))
                scores = scores[:, :model_h, :model_w]
            if static is not None:
                results.append(resize_bilinear(scores, height, width))
            else:
                results.append(np.array(scores[:, :height, :width], dtype=np.float32))
        return results

    def _tile_scores(self, img: np.ndarray) -> Any:
        return lambda y, x, h, w: self._scores([img[y : y + h, x : x + w]])[0]

    def _predict_tiled(self, img: np.ndarray) -> np.ndarray:
        height, width = img.shape[:2]
        labels = np.empty((height, width), dtype=self.label_dtype)
        if self.io.labels_output:

            def infer(y: int, x: int, h: int, w: int) -> np.ndarray:
                return self._labels([img[y : y + h, x : x + w]])[0]

            def emit(y0: int, band: np.ndarray) -> None:
                labels[y0 : y0 + band.shape[0]] = band

            blend_tiles(height, width, self.tile_size or 0, self._overlap_px(), infer, emit, labels=True)
            return labels

        def emit_scores(y0: int, band: np.ndarray) -> None:
            labels[y0 : y0 + band.shape[1]] = argmax_labels(band)

        blend_tiles(
            height, width, self.tile_size or 0, self._overlap_px(), self._tile_scores(img), emit_scores
        )
        return labels


def _resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an RGB uint8 image to ``size`` (height, width) with Pillow's bilinear filter."""
    if image.shape[:2] == size:
        return image
    resized = Image.fromarray(np.ascontiguousarray(image)).resize((size[1], size[0]), Image.BILINEAR)
    return np.asarray(resized)
