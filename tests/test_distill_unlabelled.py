"""Distillation on unlabelled images (``distill.unlabelled``): the stream, the objective, a run end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from edgeseg.checkpoint import load_checkpoint, make_checkpoint, save_checkpoint
from edgeseg.config import Recipe
from edgeseg.data.config import DataConfig
from edgeseg.data.loader import normalize
from edgeseg.data.mix import MixedBatch
from edgeseg.data.synthetic import SYNTHETIC_CLASSES, SYNTHETIC_PALETTE, SyntheticSegDataset
from edgeseg.distill import SECTIONS, distill
from edgeseg.distill.config import DistillConfig, LossWeights
from edgeseg.distill.objective import DistillObjective
from edgeseg.distill.unlabelled import SYNTHETIC_SPLIT, UNLABELLED, UnlabelledImages
from edgeseg.errors import InputError
from edgeseg.models import create
from edgeseg.train.losses import build_loss
from edgeseg.train.objective import FeatureForward

IGNORE = 255
SYNTH = DataConfig(root="synthetic", synthetic_size=32, crop_size=32, batch_size=4, synthetic_train=8)


def test_synthetic_stream_is_a_function_of_step_and_draws_scenes_of_its_own_split() -> None:
    stream = UnlabelledImages("synthetic", 16, 3, SYNTH, seed=0)
    images, masks = stream(7)
    assert images.shape == (3, 3, 32, 32) and images.dtype == torch.float32
    assert masks.shape == (3, 32, 32) and masks.dtype == torch.int64
    assert 0.0 <= images.min() and images.max() <= 1.0
    assert bool((masks == UNLABELLED).all())  # 32-px scenes fill a 32-px crop: no padding
    again, _ = stream(7)
    assert torch.equal(images, again)
    assert not torch.equal(images, stream(8)[0]) and not torch.equal(images, stream(7, rank=1)[0])
    assert not torch.equal(images, UnlabelledImages("synthetic", 16, 3, SYNTH, seed=1)(7)[0])
    scenes = SyntheticSegDataset(SYNTHETIC_SPLIT, 16, 32)
    train = SyntheticSegDataset("train", 16, 32)
    pool = [torch.from_numpy(scenes[i][0]).permute(2, 0, 1).float() / 255 for i in range(16)]
    assert any(torch.allclose(images[0], p) for p in pool)  # drawn from the unlabelled split ...
    assert not any(np.array_equal(scenes[i][0], train[i][0]) for i in range(16))  # ... not the training one
    assert "16 synthetic scenes, 3 per step" in stream.describe()


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "unlabelled"
    (folder / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(folder / "a_small.png")
    Image.fromarray(rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)).save(folder / "sub" / "b_large.jpg")
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_folder_stream_fits_each_image_to_the_crop_and_marks_padding_ignored(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    data = DataConfig(root=str(tmp_path / "data"), crop_size=32, batch_size=4)
    stream = UnlabelledImages(str(folder), 0, 6, data, seed=0)
    assert [p.name for p in stream.files] == ["a_small.png", "b_large.jpg"]  # recursive, by suffix
    images, masks = stream(0)
    assert images.shape == (6, 3, 32, 32)
    assert set(masks.unique().tolist()) <= {UNLABELLED, IGNORE}
    per_sample = (masks == UNLABELLED).flatten(1).sum(1).tolist()
    assert set(per_sample) <= {20 * 24, 32 * 32} and len(set(per_sample)) == 2  # small padded, large cropped
    only_first = UnlabelledImages(str(folder), 1, 4, data, seed=0)
    assert only_first.files == stream.files[:1]
    assert bool(((only_first(3)[1] == UNLABELLED).flatten(1).sum(1) == 20 * 24).all())


def test_bad_sources_and_settings_are_named(tmp_path: Path) -> None:
    data = DataConfig(root=str(tmp_path), crop_size=32)
    with pytest.raises(InputError, match="nowhere.*not a folder"):
        UnlabelledImages(str(tmp_path / "nowhere"), 0, 4, data, seed=0)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no images found in .*empty"):
        UnlabelledImages(str(tmp_path / "empty"), 0, 4, data, seed=0)
    with pytest.raises(InputError, match="synthetic.*data.root"):
        UnlabelledImages("synthetic", 0, 4, data, seed=0)
    with pytest.raises(InputError, match="only serve the distillation terms"):
        DistillConfig(teacher="t.pt", unlabelled="synthetic", weights=LossWeights(ce=1.0, kd=0.0))
    for key in ("unlabelled_batch", "unlabelled_count"):
        with pytest.raises(InputError, match=f"distill.{key}"):
            DistillConfig(teacher="t.pt", unlabelled="synthetic", **{key: -1})


def _models() -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    teacher = create("unet", num_classes=3, base_channels=8, depth=2)
    student = create("unet_ds", num_classes=3, width_mult=0.25, depth=2).eval()  # no batch statistics
    return teacher, student


def _objective(teacher: torch.nn.Module, weights: LossWeights) -> DistillObjective:
    cfg = DistillConfig(teacher="unused.pt", weights=weights, kd_tau=2.0)
    return DistillObjective(teacher, cfg, build_loss("ce"), ignore_index=IGNORE)


def test_label_loss_skips_unlabelled_pixels_and_distillation_uses_them() -> None:
    teacher, student = _models()
    g = torch.Generator().manual_seed(0)
    images = torch.randn(4, 3, 32, 32, generator=g)
    images[2:] *= 4  # the unlabelled samples unlike the labelled ones, so that their KD differs
    labels = torch.randint(0, 3, (4, 32, 32), generator=g)
    labels[:, :3] = IGNORE
    mixed = labels.clone()
    mixed[2:] = torch.where(labels[2:] == IGNORE, IGNORE, UNLABELLED)  # samples 2, 3: unlabelled images
    forward = FeatureForward(student)

    def batch(x: torch.Tensor, y: torch.Tensor) -> MixedBatch:
        return MixedBatch(x, y, y, 1.0)

    ce = _objective(teacher, LossWeights(ce=1.0, kd=0.0))
    with torch.no_grad():
        on_labelled = ce(forward, batch(images[:2], labels[:2]))[0]
        assert ce(forward, batch(images, mixed))[0].item() == pytest.approx(on_labelled.item(), rel=1e-6)
        assert ce(forward, batch(images, labels))[0].item() != pytest.approx(on_labelled.item(), rel=1e-3)
        kd = _objective(teacher, LossWeights(ce=0.0, kd=1.0))
        # every pixel that is not ignore_index counts for KD, labelled or not
        assert kd(forward, batch(images, mixed))[0].item() == pytest.approx(
            kd(forward, batch(images, labels))[0].item(), rel=1e-6
        )
        assert kd(forward, batch(images, mixed))[0].item() != pytest.approx(
            kd(forward, batch(images[:2], labels[:2]))[0].item(), rel=1e-3
        )


TINY = {
    "model": {"name": "unet_ds", "kwargs": {"width_mult": 0.25, "depth": 2}},
    "data": {
        "root": "synthetic", "crop_size": 32, "batch_size": 4, "synthetic_train": 8, "synthetic_val": 4,
        "synthetic_size": 32,
    },
    "augment": {"cutmix_prob": 0.5, "mixup_prob": 0.5},
    "optim": {"lr": 0.01},
    "train": {"epochs": 2, "device": "cpu"},
    "distill": {
        "teacher": "",
        "weights": {"ce": 1.0, "kd": 1.0, "cwd": 0.5, "feature": 1.0},
        "feature_pairs": {"decoder": "decoder"},
        "unlabelled": "synthetic",
        "unlabelled_batch": 2,
        "unlabelled_count": 5,
    },
}  # fmt: skip


def _teacher_checkpoint(tmp_path: Path) -> Path:
    """A small U-Net teacher for the synthetic classes, saved as an edgeseg checkpoint."""
    torch.manual_seed(0)
    teacher = create("unet", num_classes=len(SYNTHETIC_CLASSES), base_channels=8, depth=2)
    path = tmp_path / "teacher.pt"
    save_checkpoint(make_checkpoint(teacher, classes=SYNTHETIC_CLASSES, palette=SYNTHETIC_PALETTE), path)
    return path


def test_a_run_with_unlabelled_images_logs_them_and_resumes_exactly(tmp_path: Path) -> None:
    teacher_path = _teacher_checkpoint(tmp_path)
    raw = json.loads(json.dumps(TINY))
    raw["distill"]["teacher"] = str(teacher_path)
    recipe = Recipe.from_dict(raw, sections=SECTIONS)
    lines: list[str] = []
    distill(recipe, tmp_path / "straight", progress=False, log=lines.append)
    assert "unlabelled: 5 synthetic scenes, 2 per step" in lines
    split = tmp_path / "split"
    quiet = {"progress": False, "log": lambda message: None}
    distill(recipe, split, stop_after_steps=1, **quiet)  # interrupted inside epoch 1 (2 steps per epoch)
    distill(recipe, split, resume=True, **quiet)
    a = load_checkpoint(tmp_path / "straight" / "last.pt")["state_dict"]
    b = load_checkpoint(split / "last.pt")["state_dict"]
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in a)

    without = json.loads(json.dumps(raw))
    del without["distill"]["unlabelled"]
    distill(Recipe.from_dict(without, sections=SECTIONS), tmp_path / "without", **quiet)
    c = load_checkpoint(tmp_path / "without" / "last.pt")["state_dict"]
    assert not all(torch.equal(a[k], c[k]) for k in a)  # the unlabelled images changed the training


def test_pseudo_mode_settings_are_checked() -> None:
    with pytest.raises(InputError, match="unlabelled_mode: expected one of.*'soft'"):
        DistillConfig(teacher="t.pt", unlabelled="synthetic", unlabelled_mode="soft")
    with pytest.raises(InputError, match="unlabelled_mode=pseudo.*distill.unlabelled, which is not set"):
        DistillConfig(teacher="t.pt", unlabelled_mode="pseudo")
    with pytest.raises(InputError, match="unlabelled_batch=4 applies to unlabelled_mode=kd"):
        DistillConfig(teacher="t.pt", unlabelled="synthetic", unlabelled_mode="pseudo", unlabelled_batch=4)
    with pytest.raises(InputError, match="pseudo_threshold=0.9 applies to unlabelled_mode=pseudo, not kd"):
        DistillConfig(teacher="t.pt", unlabelled="synthetic", pseudo_threshold=0.9)
    for bad in (1.0, -0.1, "high", True):
        with pytest.raises(InputError, match="distill.pseudo_threshold: expected a probability in"):
            DistillConfig(
                teacher="t.pt", unlabelled="synthetic", unlabelled_mode="pseudo", pseudo_threshold=bad
            )
    # labels only: the teacher labels the images and no teacher term is needed
    DistillConfig(
        teacher="t.pt", unlabelled="synthetic", unlabelled_mode="pseudo", weights=LossWeights(kd=0.0)
    )


def test_pseudo_labels_are_the_teachers_argmax_on_each_whole_image(tmp_path: Path) -> None:
    from edgeseg.data.datasets import JoinedDataset
    from edgeseg.distill.unlabelled import PseudoLabelled

    folder = _folder(tmp_path)  # a 20×24 and a 48×40 image: two sizes, so two teacher batches
    data = DataConfig(root=str(tmp_path / "data"), crop_size=32, batch_size=4, resize=30)
    torch.manual_seed(0)
    teacher = torch.nn.Conv2d(3, 3, 1)  # any module giving class scores; a per-pixel one varies its labels
    mean, std = [0.4, 0.5, 0.6], [0.2, 0.25, 0.3]
    lines: list[str] = []
    classes, palette = ["a", "b", "c"], [[0, 0, 0], [1, 1, 1], [2, 2, 2]]
    source = UnlabelledImages(str(folder), 0, 4, data, seed=0)

    def labelled(threshold: float = 0.0) -> PseudoLabelled:
        return PseudoLabelled(
            source,
            teacher,
            classes=classes,
            palette=palette,
            mean=mean,
            std=std,
            ignore_index=IGNORE,
            threshold=threshold,
            log=lines.append,
        )

    def teacher_scores(image: np.ndarray) -> torch.Tensor:
        """The teacher's class scores on ``image`` (H×W×3 uint8), 1×C×H×W."""
        x = normalize(torch.from_numpy(image.copy()).permute(2, 0, 1)[None].float() / 255, mean, std)
        with torch.no_grad():
            return teacher(x)

    pseudo = labelled()
    assert len(pseudo) == 2 and pseudo.fixed_size is None
    assert lines[0].startswith("pseudo labels: 2 images labelled by the teacher in")
    for index, shape in enumerate([(30, 36), (36, 30)]):  # shorter side resized to data.resize=30
        image, mask = pseudo[index]
        assert image.shape == (*shape, 3) and mask.shape == shape and mask.dtype == np.int64
        assert np.array_equal(mask, teacher_scores(image).argmax(1)[0].numpy())
    assert len(np.unique(pseudo[1][1])) > 1  # the labels are not constant, so the check above means something

    # with a confidence threshold, pixels where the teacher's top softmax probability is below it are ignored
    lines.clear()
    confident = labelled(threshold=0.5)
    kept = total = 0
    for index in range(2):
        image, mask = confident[index]
        probability, label = teacher_scores(image).softmax(1).max(1)
        low = probability[0].numpy() < 0.5
        assert np.array_equal(mask, np.where(low, IGNORE, label[0].numpy()))
        kept, total = kept + int((~low).sum()), total + low.size
    assert 0 < kept < total  # some pixels on each side of the threshold
    assert confident.kept_share() == pytest.approx(kept / total)
    assert f"{kept / total:.1%} of their pixels at confidence >= 0.5, the rest ignored" in lines[0]

    labelled = SyntheticSegDataset("train", 3, 32)
    same = PseudoLabelled(
        source,
        torch.nn.Conv2d(3, len(SYNTHETIC_CLASSES), 1),
        classes=SYNTHETIC_CLASSES,
        palette=SYNTHETIC_PALETTE,
        mean=mean,
        std=std,
        ignore_index=IGNORE,
    )
    joined = JoinedDataset(labelled, same)
    assert len(joined) == 5 and joined.fixed_size is None and joined.classes == labelled.classes
    assert np.array_equal(joined[1][1], labelled[1][1]) and np.array_equal(joined[4][1], same[1][1])
    assert np.array_equal(joined[-1][0], same[1][0])
    with pytest.raises(InputError, match="the 3 classes of 2 images from .* differ from the 8 of"):
        JoinedDataset(labelled, pseudo)


def test_a_pseudo_labelled_run_trains_on_the_joined_set_without_teacher_terms(tmp_path: Path) -> None:
    teacher_path = _teacher_checkpoint(tmp_path)
    raw = json.loads(json.dumps(TINY))
    raw["distill"].update(
        teacher=str(teacher_path),
        weights={"ce": 1.0, "kd": 0.0, "cwd": 0.0, "feature": 0.0},
        unlabelled_mode="pseudo",
        unlabelled_batch=0,
        unlabelled_count=5,
        pseudo_threshold=0.05,  # the recipe's threshold reaches the labelling
    )
    raw["train"]["epochs"] = 1
    lines: list[str] = []
    distill(Recipe.from_dict(raw, sections=SECTIONS), tmp_path / "run", progress=False, log=lines.append)
    labelling = [line for line in lines if line.startswith("pseudo labels: 5 images labelled by the teacher")]
    assert labelling and "of their pixels at confidence >= 0.05, the rest ignored" in labelling[0]
    joined = [line for line in lines if line.startswith("training set:")]
    assert joined and "8 images" in joined[0] and "5 synthetic scenes labelled by the teacher" in joined[0]
    steps = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    epoch = [e for e in steps if e["event"] == "epoch"][-1]
    assert epoch["step"] == 13 // 4  # 8 labelled + 5 teacher-labelled images in batches of 4


def test_the_student_alone_gets_the_steps_of_a_pseudo_labelled_run() -> None:
    from edgeseg.distill.run import alone_epochs

    raw = json.loads(json.dumps(TINY))
    raw["distill"]["teacher"] = "t.pt"
    raw["train"]["epochs"] = 3
    assert alone_epochs(Recipe.from_dict(raw, sections=SECTIONS)) == 3  # kd mode: the same epochs
    raw["distill"].update(unlabelled_mode="pseudo", unlabelled_batch=0, unlabelled_count=12)
    # 8 labelled + 12 teacher-labelled images in batches of 4: 5 steps an epoch, against 2 alone
    assert alone_epochs(Recipe.from_dict(raw, sections=SECTIONS)) == 8  # 15 steps at 2 an epoch, rounded
