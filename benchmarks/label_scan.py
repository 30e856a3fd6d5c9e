"""Benchmark: how long the label scan before training takes (``SegDataset.check_labels``).

Training reads every mask once before the first step, so a label value >= the class count stops the run at
once with the file and the value, instead of mid-epoch. This writes a generic ``images/`` + ``masks/``
folder of ``--images`` PNG pairs (``--size`` pixels square, ``--classes`` classes; kept in ``--root`` when
given, else in a temporary folder), then times building the train and val datasets (file headers) and
scanning their masks, ``--repeat`` times, and prints the medians with the machine they were measured on.

    python benchmarks/label_scan.py                                  # 10,000 masks of 64x64
    python benchmarks/label_scan.py --images 1000 --size 512
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from edgeseg.bench.machine import machine_info


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=10_000, help="image/mask pairs in the folder")
    p.add_argument("--size", type=int, default=64, help="side of the square images and masks")
    p.add_argument("--classes", type=int, default=5, help="class count (masks use 0..classes-1 and 255)")
    p.add_argument("--repeat", type=int, default=3, help="timed repetitions (median reported)")
    p.add_argument("--root", type=Path, help="folder to write (or reuse, when it holds the pairs already)")
    return p.parse_args(argv)


def write_folder(root: Path, images: int, size: int, classes: int) -> None:
    """``images`` PNG pairs under ``root/images`` and ``root/masks``: bands of classes, an ignored corner."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 255, size, dtype=np.uint8)
    picture = np.stack(np.broadcast_arrays(ramp[:, None], ramp[None, :], 128), axis=-1).astype(np.uint8)
    for i in range(images):
        if (root / "masks" / f"{i:06d}.png").is_file():
            continue
        mask = np.zeros((size, size), np.uint8)
        for band in range(1, classes):
            mask[rng.integers(0, size) :, :] = band
        mask[: size // 8, : size // 8] = 255
        Image.fromarray(picture).save(root / "images" / f"{i:06d}.png")
        Image.fromarray(mask).save(root / "masks" / f"{i:06d}.png")


def time_scan(root: Path, classes: int) -> tuple[float, float, int]:
    """Seconds to build both splits (headers), seconds to scan their masks, masks scanned."""
    from edgeseg.data import DataConfig, build_dataset

    cfg = DataConfig(root=str(root), num_classes=classes)
    start = time.perf_counter()
    splits = [build_dataset(root, split, cfg) for split in ("train", "val")]
    built = time.perf_counter()
    for dataset in splits:
        dataset.check_labels()
    return built - start, time.perf_counter() - built, sum(len(d) for d in splits)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    machine = machine_info(threads=1)
    print(f"machine: {machine.describe()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="edgeseg-labelscan-") as tmp:
        root = args.root or Path(tmp)
        start = time.perf_counter()
        write_folder(root, args.images, args.size, args.classes)
        print(f"folder {root}: {args.images} pairs of {args.size}x{args.size} PNGs "
              f"(written in {time.perf_counter() - start:.1f} s)", flush=True)  # fmt: skip
        runs = [time_scan(root, args.classes) for _ in range(args.repeat)]
    build = statistics.median(r[0] for r in runs)
    scan = statistics.median(r[1] for r in runs)
    masks = runs[0][2]
    given = argv if argv is not None else sys.argv[1:]
    result = {
        "images": args.images, "size": args.size, "masks_scanned": masks,
        "build_seconds": round(build, 3), "scan_seconds": round(scan, 3),
        "scan_ms_per_mask": round(1000 * scan / masks, 4), "repeat": args.repeat,
        "machine": machine.to_dict(),
        "command": shlex.join(["python", "benchmarks/label_scan.py", *given]),
    }  # fmt: skip
    print(f"build both splits (file headers): {build:.2f} s; label scan of {masks} masks: {scan:.2f} s "
          f"({1000 * scan / masks:.3f} ms per mask), median of {args.repeat}")  # fmt: skip
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
