"""Joint augmentation keeps image and mask aligned; pixels without a source become ignore, not background."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from edgeseg.data import AugmentConfig, BatchAugment, fit_to_crop

OFF = dict(color_prob=0.0, scale_prob=0.0, hflip_prob=0.0, rotation_prob=0.0, affine_prob=0.0)
LEVELS = torch.arange(1, 9, dtype=torch.float32) / 9.0  # image value of class c; 0 is reserved for padding


def _blocks(n: int = 4, size: int = 64, block: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Masks of random class blocks, and images whose pixel value encodes the class (grey LEVELS[c])."""
    g = torch.Generator().manual_seed(0)
    coarse = torch.randint(0, 8, (n, size // block, size // block), generator=g)
    masks = coarse.repeat_interleave(block, 1).repeat_interleave(block, 2)
    masks[:, :2, :] = 255  # an ignore band must stay ignore
    images = torch.where(masks == 255, 0.5, LEVELS[masks.clamp(max=7)]).unsqueeze(1).repeat(1, 3, 1, 1)
    return images, masks


def _decode(images: torch.Tensor) -> torch.Tensor:
    """Class from pixel value: nearest level, -1 for (near-)black padding."""
    grey = images.mean(1)
    cls = (grey[..., None] - LEVELS).abs().argmin(-1)
    return torch.where(grey < LEVELS[0] / 2, -1, cls)


def _check_aligned(cfg: AugmentConfig, expect_padding: bool) -> None:
    torch.manual_seed(1)
    images, masks = _blocks()
    out_images, out_masks = BatchAugment(cfg)(images, masks)
    assert out_images.shape == images.shape and out_masks.shape == masks.shape
    assert out_masks.dtype == torch.int64
    assert not torch.equal(out_masks, masks)  # something happened
    assert set(out_masks.unique().tolist()) <= set(range(8)) | {255}  # nearest: no blended labels
    decoded = _decode(out_images)
    labelled = (out_masks != 255) & (decoded >= 0)
    agreement = (decoded[labelled] == out_masks[labelled]).float().mean().item()
    assert agreement > 0.85, agreement  # disagreement only where bilinear blends two blocks
    as_float = out_masks.float()[:, None]
    uniform = (F.max_pool2d(as_float, 3, 1, 1) == -F.max_pool2d(-as_float, 3, 1, 1))[:, 0]
    interior = labelled & uniform  # away from block edges the pixel value must name the mask's class
    assert interior.float().mean().item() > 0.1
    assert (decoded[interior] == out_masks[interior]).float().mean().item() > 0.99
    padding = decoded == -1
    assert bool(padding.any()) == expect_padding
    if expect_padding:
        # pixels with no source are ignore, never background
        assert (out_masks[padding] == 255).float().mean().item() > 0.97
        assert (out_masks[padding] == 0).float().mean().item() < 0.03


@pytest.mark.parametrize(
    "name, cfg, padding",
    [
        ("scale", AugmentConfig(**{**OFF, "scale_prob": 1.0, "scale": (0.5, 0.7)}), True),
        ("zoom-in", AugmentConfig(**{**OFF, "scale_prob": 1.0, "scale": (1.5, 2.0)}), False),
        ("rotation", AugmentConfig(**{**OFF, "rotation_prob": 1.0, "rotation": 40.0}), True),
        (
            "affine",
            AugmentConfig(
                **{
                    **OFF,
                    "affine_prob": 1.0,
                    "affine_shear": 20.0,
                    "affine_translate": 0.2,
                    "affine_scale": (0.7, 1.2),
                }
            ),
            True,
        ),
        (
            "all",
            AugmentConfig(
                **{**OFF, "scale_prob": 1.0, "hflip_prob": 0.5, "rotation_prob": 1.0, "rotation": 30}
            ),
            True,
        ),
    ],
)
def test_geometric_augmentations_keep_image_and_mask_aligned(
    name: str, cfg: AugmentConfig, padding: bool
) -> None:
    _check_aligned(cfg, padding)


def test_flip_mirrors_image_and_mask_exactly() -> None:
    images, masks = _blocks()
    out_images, out_masks = BatchAugment(AugmentConfig(**{**OFF, "hflip_prob": 1.0}))(images, masks)
    assert torch.equal(out_masks, masks.flip(-1))
    assert torch.allclose(out_images, images.flip(-1))


def test_colour_jitter_changes_only_the_image() -> None:
    torch.manual_seed(0)
    images = torch.rand(4, 3, 32, 32)
    masks = torch.randint(0, 8, (4, 32, 32))
    cfg = AugmentConfig(**{**OFF, "color_prob": 1.0, "brightness": 0.5, "hue": 0.2, "saturation": 0.5})
    out_images, out_masks = BatchAugment(cfg)(images, masks)
    assert torch.equal(out_masks, masks)
    assert not torch.allclose(out_images, images)
    assert float(out_images.min()) >= 0.0 and float(out_images.max()) <= 1.0


def test_disabled_augmentation_passes_the_batch_through() -> None:
    images, masks = _blocks()
    for cfg in (AugmentConfig(**OFF), AugmentConfig(enabled=False)):
        out_images, out_masks = BatchAugment(cfg)(images, masks)
        assert out_images is images and out_masks is masks
    with pytest.raises(ValueError, match="N×H×W"):
        BatchAugment(AugmentConfig())(images, masks[:, None])


def test_fit_to_crop_pads_with_ignore_and_keeps_alignment() -> None:
    rng = np.random.default_rng(0)
    mask = np.repeat(np.repeat(rng.integers(0, 8, (5, 7)), 12, 0), 12, 1)  # 60×84 in 12-pixel blocks
    image = np.repeat((LEVELS.numpy()[mask] * 255).round().astype(np.uint8)[..., None], 3, 2)
    out_image, out_mask = fit_to_crop(image, mask, 96, rng, ignore_index=255)
    assert out_image.shape == (96, 96, 3) and out_mask.shape == (96, 96)
    pad = out_mask == 255
    assert pad.sum() == 96 * 96 - 60 * 84  # the whole image is inside, the rest is padding
    assert (out_image[pad] == 0).all()
    rows, cols = np.nonzero(~pad)
    y, x = rows.min(), cols.min()
    assert np.array_equal(out_mask[y : y + 60, x : x + 84], mask)
    assert np.array_equal(out_image[y : y + 60, x : x + 84], image)

    crop_image, crop_mask = fit_to_crop(image, mask, 20, rng)  # smaller than the image: a plain window
    windows = [
        (y, x)
        for y in range(60 - 20 + 1)
        for x in range(84 - 20 + 1)
        if np.array_equal(mask[y : y + 20, x : x + 20], crop_mask)
        and np.array_equal(image[y : y + 20, x : x + 20], crop_image)
    ]
    assert windows

    for _ in range(5):  # rescaled: bilinear image, nearest mask, still aligned away from block edges
        scaled_image, scaled_mask = fit_to_crop(image, mask, 48, rng, scale_range=(0.5, 2.0))
        decoded = _decode(torch.from_numpy(scaled_image).permute(2, 0, 1)[None].float() / 255)[0]
        as_float = torch.from_numpy(scaled_mask).float()[None, None]
        uniform = (F.max_pool2d(as_float, 7, 1, 3) == -F.max_pool2d(-as_float, 7, 1, 3))[0, 0]
        interior = uniform & (torch.from_numpy(scaled_mask) != 255)
        interior[:3], interior[-3:], interior[:, :3], interior[:, -3:] = False, False, False, False  # blends
        assert interior.any()
        assert torch.equal(decoded[interior], torch.from_numpy(scaled_mask)[interior])

    same_image, same_mask = fit_to_crop(image[:20, :20], mask[:20, :20], 20, rng)
    assert np.array_equal(same_image, image[:20, :20]) and np.array_equal(same_mask, mask[:20, :20])
