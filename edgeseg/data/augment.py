"""Joint image+mask augmentation: per-sample fitting to a crop on the CPU, batch augmentation on the device.

``fit_to_crop`` runs in the data loader on each sample (optionally resize, random scale, then a random crop
padded where the image is smaller), so images of any size can be batched. :class:`BatchAugment` runs on
the training device on whole batches with kornia's ``AugmentationSequential``: colour jitter on the images
only, then random scale-and-crop, horizontal flip, rotation and affine warps applied to image and mask
together. Masks are resampled with nearest interpolation, and every pixel that comes from outside the
source image becomes ``ignore_index`` — never background.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from edgeseg.data.config import AugmentConfig
from edgeseg.runtime.metadata import IGNORE_INDEX


def resize_pair(
    image: np.ndarray, mask: np.ndarray, height: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """Resize image (bilinear) and mask (nearest) to ``height`` × ``width``."""
    if image.shape[:2] == (height, width):
        return image, mask
    out_image = np.asarray(Image.fromarray(image).resize((width, height), Image.BILINEAR))
    out_mask = Image.fromarray(mask.astype(np.int32)).resize((width, height), Image.NEAREST)
    return out_image, np.asarray(out_mask).astype(np.int64)


def resize_short_side(image: np.ndarray, mask: np.ndarray, short_side: int) -> tuple[np.ndarray, np.ndarray]:
    """Resize the pair so that the image's shorter side is ``short_side`` pixels, keeping the aspect ratio."""
    height, width = image.shape[:2]
    factor = short_side / min(height, width)
    return resize_pair(image, mask, max(1, round(height * factor)), max(1, round(width * factor)))


def fit_to_crop(
    image: np.ndarray,
    mask: np.ndarray,
    crop_size: int,
    rng: np.random.Generator,
    ignore_index: int = IGNORE_INDEX,
    scale_range: tuple[float, float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A random ``crop_size`` square of the pair, after an optional rescale by a factor in ``scale_range``.

    Where the (scaled) image is smaller than the crop, it is placed at a random offset on a canvas of
    zeros, and the mask's canvas is ``ignore_index``. A pair already of the crop's size and not rescaled is
    returned unchanged.
    """
    if scale_range is not None and scale_range != (1.0, 1.0):
        factor = rng.uniform(*scale_range)
        height, width = image.shape[:2]
        image, mask = resize_pair(image, mask, max(1, round(height * factor)), max(1, round(width * factor)))
    height, width = image.shape[:2]
    if (height, width) == (crop_size, crop_size):
        return image, mask
    oy = int(rng.integers(min(0, height - crop_size), max(0, height - crop_size) + 1))
    ox = int(rng.integers(min(0, width - crop_size), max(0, width - crop_size) + 1))
    out_image = np.zeros((crop_size, crop_size, 3), dtype=np.uint8)
    out_mask = np.full((crop_size, crop_size), ignore_index, dtype=np.int64)
    sy, sx = max(oy, 0), max(ox, 0)  # source window start
    dy, dx = max(-oy, 0), max(-ox, 0)  # destination start
    h, w = min(height - sy, crop_size - dy), min(width - sx, crop_size - dx)
    out_image[dy : dy + h, dx : dx + w] = image[sy : sy + h, sx : sx + w]
    out_mask[dy : dy + h, dx : dx + w] = mask[sy : sy + h, sx : sx + w]
    return out_image, out_mask


class BatchAugment(torch.nn.Module):
    """Augment a batch of images and masks together on their device, as ``cfg`` says.

    ``forward(images float N×3×H×W in [0, 1], masks int64 N×H×W) -> (images, masks)`` of the same shapes.
    Randomness comes from torch's global generator (kornia has no explicit generator), so seed it, and save
    and restore its state for exact resumption. With nothing enabled, the batch passes through unchanged.
    """

    def __init__(self, cfg: AugmentConfig | None = None, ignore_index: int = IGNORE_INDEX) -> None:
        super().__init__()
        import kornia.augmentation as K

        cfg = cfg or AugmentConfig()
        self.ignore_index = ignore_index
        steps: list[torch.nn.Module] = []
        if cfg.enabled:
            jitter = (cfg.brightness, cfg.contrast, cfg.saturation, cfg.hue)
            if cfg.color_prob > 0 and any(v > 0 for v in jitter):
                steps.append(K.ColorJitter(*jitter, p=cfg.color_prob))
            if cfg.scale_prob > 0 and cfg.scale != (1.0, 1.0):
                # Zoom about a random point at a fixed output size: a crop when zooming in, padding when out.
                reach = min(0.5, max(cfg.scale[1] - 1.0, 1.0 - cfg.scale[0]) / 2)
                steps.append(
                    K.RandomAffine(degrees=0.0, translate=(reach, reach), scale=cfg.scale, p=cfg.scale_prob)
                )
            if cfg.hflip_prob > 0:
                steps.append(K.RandomHorizontalFlip(p=cfg.hflip_prob))
            if cfg.rotation_prob > 0 and cfg.rotation > 0:
                steps.append(K.RandomRotation(degrees=cfg.rotation, p=cfg.rotation_prob))
            warps = cfg.affine_scale != (1.0, 1.0) or cfg.affine_shear > 0 or cfg.affine_translate > 0
            if cfg.affine_prob > 0 and warps:
                steps.append(
                    K.RandomAffine(
                        degrees=0.0,
                        translate=(cfg.affine_translate, cfg.affine_translate)
                        if cfg.affine_translate
                        else None,
                        scale=cfg.affine_scale if cfg.affine_scale != (1.0, 1.0) else None,
                        shear=cfg.affine_shear if cfg.affine_shear else None,
                        p=cfg.affine_prob,
                    )
                )
        self.steps = K.AugmentationSequential(*steps, data_keys=["input", "mask"]) if steps else None

    def forward(self, images: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return augmented copies of ``images`` (N×3×H×W float) and ``masks`` (N×H×W int64)."""
        if images.ndim != 4 or masks.ndim != 3 or images.shape[0] != masks.shape[0]:
            raise ValueError(
                f"expected images N×3×H×W and masks N×H×W, got {tuple(images.shape)}, {tuple(masks.shape)}"
            )
        if images.shape[-2:] != masks.shape[-2:]:
            raise ValueError(f"images are {tuple(images.shape[-2:])} but masks are {tuple(masks.shape[-2:])}")
        if self.steps is None:
            return images, masks
        # Shift labels by one so that the warps' zero padding marks pixels that had no source.
        shifted = (masks + 1).to(torch.float32).unsqueeze(1)
        out_images, out_shifted = self.steps(images, shifted)
        out = out_shifted.squeeze(1).round().long()
        out_masks = torch.where(out == 0, torch.full_like(out, self.ignore_index), out - 1)
        return out_images.clamp(0.0, 1.0), out_masks
