"""Segmenting files: find images in paths and folders, plan where masks go, write palette PNGs and overlays.

This is what ``edgeseg predict`` does, as a library: :func:`plan_outputs` checks everything up front (inputs
exist, no two inputs map to one output, nothing is overwritten without ``force``), then :func:`segment_files`
writes each mask atomically and keeps going past images it cannot read, reporting them at the end.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from edgeseg.errors import EdgesegError, InputError
from edgeseg.runtime.image import IMAGE_SUFFIXES, load_rgb, mask_image, overlay, save_png
from edgeseg.runtime.legend import with_legend
from edgeseg.runtime.segmenter import Segmenter

OVERLAY_SUFFIX = "_overlay"


@dataclass(frozen=True)
class FileJob:
    """One input image and the files it produces."""

    source: Path
    mask: Path
    overlay: Path | None


@dataclass
class FilesReport:
    """What :func:`segment_files` wrote and which inputs failed (path → reason)."""

    written: list[Path] = field(default_factory=list)
    failed: dict[Path, str] = field(default_factory=dict)


def images_in(folder: Path, skip: Path | None = None) -> list[Path]:
    """The image files under ``folder`` (recursively, by suffix, sorted), none of them inside ``skip``."""
    found = []
    for path in sorted(folder.rglob("*")):
        if not (path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES):
            continue
        if skip is None or skip not in path.resolve().parents:
            found.append(path)
    return found


def plan_outputs(
    inputs: Sequence[str | os.PathLike], out_dir: str | os.PathLike, overlays: bool, force: bool
) -> list[FileJob]:
    """Map input files and folders to output paths in ``out_dir``.

    A file gives ``<stem>.png``; a folder's images (recursively, by suffix) keep their relative path. Files
    inside ``out_dir`` are never taken as inputs. Raises :class:`InputError` for a missing input, no images
    at all, two inputs with the same output, or outputs that exist already (unless ``force``).
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"output folder {out} exists and is not a folder")
    out_resolved = out.resolve()
    jobs: list[FileJob] = []
    for item in map(Path, inputs):
        if item.is_dir():
            for image in images_in(item, out_resolved):
                relative = image.relative_to(item).with_suffix("")
                jobs.append(_job(image, out / relative, overlays))
        elif item.is_file():
            jobs.append(_job(item, out / item.stem, overlays))
        else:
            raise InputError(f"input not found: {item}")
    if not jobs:
        suffixes = ", ".join(IMAGE_SUFFIXES)
        raise InputError(f"no images found in {', '.join(map(str, inputs))} (suffixes {suffixes})")
    owners: dict[Path, Path] = {}
    for job in jobs:
        for target in (job.mask, job.overlay):
            if target is None:
                continue
            if target in owners:
                raise InputError(
                    f"{job.source} and {owners[target]} would both be written to {target}; rename one"
                )
            owners[target] = job.source
    if not force:
        existing = [str(t) for t in owners if t.exists()]
        if existing:
            shown = ", ".join(existing[:3]) + (f" and {len(existing) - 3} more" if len(existing) > 3 else "")
            raise InputError(f"{shown} already exist(s); pass --force to overwrite")
    return jobs


def _job(source: Path, stem: Path, overlays: bool) -> FileJob:
    over = stem.with_name(stem.name + OVERLAY_SUFFIX + ".png") if overlays else None
    return FileJob(source=source, mask=stem.with_name(stem.name + ".png"), overlay=over)


def segment_files(
    segmenter: Segmenter,
    jobs: Sequence[FileJob],
    alpha: float = 0.5,
    on_done: Callable[[FileJob, str | None], None] | None = None,
) -> FilesReport:
    """Segment every job's image and write its palette PNG mask (and overlay); continue past failures.

    An overlay is the image with the coloured mask blended over it and a legend of the classes present below.

    ``on_done(job, error)`` is called after each image, ``error`` None on success. Images that cannot be read
    or segmented are listed in the report's ``failed``; nothing is written for them.
    """
    if not 0.0 <= alpha <= 1.0:
        raise InputError(f"alpha must be within [0, 1], got {alpha}")
    report = FilesReport()
    for job in jobs:
        error = None
        try:
            image = load_rgb(job.source)
            labels = segmenter.predict(image)
            save_png(mask_image(labels, segmenter.palette), job.mask)
            report.written.append(job.mask)
            if job.overlay is not None:
                blended = overlay(image, labels, segmenter.palette, alpha)
                picture = with_legend(blended, labels, segmenter.classes, segmenter.palette)
                save_png(Image.fromarray(picture), job.overlay)
                report.written.append(job.overlay)
        except EdgesegError as err:
            error = str(err)
            report.failed[job.source] = error
        if on_done is not None:
            on_done(job, error)
    return report
