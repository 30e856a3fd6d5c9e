"""DataConfig and AugmentConfig: defaults are valid, YAML lists become tuples, bad values name their key."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from edgeseg.data import AugmentConfig, DataConfig
from edgeseg.errors import InputError


def test_defaults_and_lists_from_yaml() -> None:
    data, aug = DataConfig(), AugmentConfig(scale=[0.75, 1.5], affine_scale=[1, 1])
    assert data.root == "synthetic" and data.ignore_index == 255 and data.num_classes is None
    assert aug.scale == (0.75, 1.5) and aug.affine_scale == (1.0, 1.0)
    assert dataclasses.asdict(aug)["scale"] == (0.75, 1.5)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: DataConfig(batch_size=0), r"data\.batch_size: expected an integer >= 1, got 0"),
        (lambda: DataConfig(crop_size="big"), r"data\.crop_size: .*'big'"),
        (lambda: DataConfig(num_classes=0), r"data\.num_classes: expected an integer >= 1 or null"),
        (lambda: DataConfig(synthetic_size=16), r"data\.synthetic_size: expected an integer >= 32"),
        (
            lambda: DataConfig(split_ratio=1.5),
            r"data\.split_ratio: expected a number in \[0.0, 1.0\], got 1.5",
        ),
        (lambda: DataConfig(ignore_index=300), r"data\.ignore_index: .*300"),
        (lambda: DataConfig(root=""), r"data\.root"),
        (lambda: AugmentConfig(hflip_prob=2), r"augment\.hflip_prob: .*got 2"),
        (lambda: AugmentConfig(hue=0.7), r"augment\.hue: expected a number in \[0.0, 0.5\]"),
        (lambda: AugmentConfig(scale=[2.0, 1.0]), r"augment\.scale: expected .*low <= high.*\[2.0, 1.0\]"),
        (lambda: AugmentConfig(scale=1.5), r"augment\.scale: expected two numbers"),
        (lambda: AugmentConfig(mixup_alpha=0), r"augment\.mixup_alpha"),
        (lambda: AugmentConfig(rotation=True), r"augment\.rotation"),
    ],
)
def test_bad_values_name_the_key(make: Callable[[], object], message: str) -> None:
    with pytest.raises(InputError, match=message):
        make()
