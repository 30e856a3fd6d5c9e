"""Datasets, joint image+mask augmentation and CutMix/MixUp.

Typical training use (``data_cfg``/``aug`` are the recipe's ``data:`` and ``augment:`` sections)::

    train_set = build_dataset(data_cfg.root, data_cfg.train_split, data_cfg)  # "synthetic" or a folder
    loader = build_train_loader(train_set, data_cfg, seed=0)  # float [0, 1] N×3×H×W, int64 N×H×W
    augment = BatchAugment(aug, ignore_index=train_set.ignore_index).to(device)
    mix_gen = torch.Generator().manual_seed(0)
    for epoch in range(epochs):
        loader.sampler.set_epoch(epoch)
        for images, masks in loader:
            images, masks = augment(images.to(device), masks.to(device))
            batch = mix_batch(images, masks, mix_gen, aug.cutmix_prob, aug.cutmix_alpha,
                              aug.mixup_prob, aug.mixup_alpha)
            logits = model(normalize(batch.images, mean, std))
            loss = mixed_loss(criterion, logits, batch)
"""

from edgeseg.data.augment import BatchAugment, fit_to_crop, resize_pair, resize_short_side
from edgeseg.data.classes import (
    CITYSCAPES_CLASSES,
    CITYSCAPES_PALETTE,
    VOC_CLASSES,
    cityscapes_id_to_train_id,
    read_classes_file,
    voc_palette,
)
from edgeseg.data.config import SYNTHETIC, AugmentConfig, DataConfig
from edgeseg.data.datasets import FileSegDataset, SegDataset
from edgeseg.data.detect import LAYOUTS, build_dataset, detect_layout
from edgeseg.data.loader import (
    EpochSampler,
    build_loader,
    build_train_loader,
    build_val_loader,
    collate,
    normalize,
    val_batch_size,
)
from edgeseg.data.mix import MixedBatch, cutmix, label_shares, mix_batch, mixed_loss, mixup, soft_targets
from edgeseg.data.synthetic import SYNTHETIC_CLASSES, SYNTHETIC_PALETTE, SyntheticSegDataset, generate_scene

__all__ = [
    "CITYSCAPES_CLASSES",
    "CITYSCAPES_PALETTE",
    "LAYOUTS",
    "SYNTHETIC",
    "SYNTHETIC_CLASSES",
    "SYNTHETIC_PALETTE",
    "VOC_CLASSES",
    "AugmentConfig",
    "BatchAugment",
    "DataConfig",
    "EpochSampler",
    "FileSegDataset",
    "MixedBatch",
    "SegDataset",
    "SyntheticSegDataset",
    "build_dataset",
    "build_loader",
    "build_train_loader",
    "build_val_loader",
    "cityscapes_id_to_train_id",
    "collate",
    "cutmix",
    "detect_layout",
    "fit_to_crop",
    "generate_scene",
    "label_shares",
    "mix_batch",
    "mixed_loss",
    "mixup",
    "normalize",
    "read_classes_file",
    "resize_pair",
    "resize_short_side",
    "soft_targets",
    "val_batch_size",
    "voc_palette",
]
