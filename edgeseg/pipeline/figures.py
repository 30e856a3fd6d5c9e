"""The report's PNG figures (matplotlib, Agg backend): training curves, mIoU against latency, sample grid.

Each function takes plain data (records, numbers, paths) and writes one PNG atomically; none trains or
times anything.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.fileio import atomic_path

COLORS = {"teacher": "#1f77b4", "student": "#ff7f0e", "distilled": "#2ca02c", "int8": "#9467bd"}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | os.PathLike) -> None:
    plt = _pyplot()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def _label_loss_key(runs: Mapping[str, Sequence[Mapping[str, Any]]]) -> str:
    """``loss_ce`` when every run logged it (the label loss alone, comparable between plain and KD runs)."""
    records = [r for history in runs.values() for r in history]
    return "loss_ce" if records and all("loss_ce" in r for r in records) else "loss"


def training_curves(
    runs: Mapping[str, Sequence[Mapping[str, Any]]], labels: Mapping[str, str], path: str | os.PathLike
) -> None:
    """Validation mIoU and training label loss per epoch, one line per run (``runs``: key → epoch records)."""
    plt = _pyplot()
    fig, (ax_miou, ax_loss) = plt.subplots(1, 2, figsize=(11, 4.2))
    loss_key = _label_loss_key(runs)
    for key, records in runs.items():
        color = COLORS.get(key)
        evaluated = [r for r in records if r.get("miou") is not None]
        if evaluated:
            ax_miou.plot(
                [r["epoch"] for r in evaluated],
                [100 * r["miou"] for r in evaluated],
                "o-",
                color=color,
                label=labels.get(key, key),
                markersize=4,
            )
        losses = [r for r in records if r.get(loss_key) is not None]
        if losses:
            ax_loss.plot(
                [r["epoch"] for r in losses],
                [r[loss_key] for r in losses],
                "-",
                color=color,
                label=labels.get(key, key),
            )
    from matplotlib.ticker import MaxNLocator

    ax_miou.set(xlabel="epoch", ylabel="validation mIoU (%)", title="Validation mIoU")
    loss_name = "cross-entropy on labels" if loss_key == "loss_ce" else "total loss"
    ax_loss.set(xlabel="epoch", ylabel=loss_name, title=f"Training loss ({loss_name})")
    for ax in (ax_miou, ax_loss):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=9)
    if loss_key == "loss_ce":
        ax_loss.text(
            0.99,
            0.97,
            "KD terms of the distilled run not included",
            transform=ax_loss.transAxes,
            ha="right",
            va="top",
            fontsize=8,
            color="0.4",
        )
    fig.tight_layout()
    _save(fig, path)


@dataclass
class ParetoPoint:
    """One model in the accuracy/latency plane."""

    key: str
    label: str
    latency_ms: float
    miou: float
    gflops: float


def pareto_front(points: Sequence[ParetoPoint]) -> list[ParetoPoint]:
    """The points no other point beats on both latency (lower) and mIoU (higher), fastest first."""
    front = [
        p
        for p in points
        if not any(
            q.latency_ms <= p.latency_ms
            and q.miou >= p.miou
            and (q.latency_ms, q.miou) != (p.latency_ms, p.miou)
            for q in points
        )
    ]
    return sorted(front, key=lambda p: p.latency_ms)


def miou_vs_latency(points: Sequence[ParetoPoint], subtitle: str, path: str | os.PathLike) -> None:
    """Scatter of mIoU against p50 latency, each point labelled, the Pareto front drawn as a step line."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5.2))
    front = pareto_front(points)
    if len(front) > 1:
        ax.step(
            [p.latency_ms for p in front],
            [100 * p.miou for p in front],
            where="post",
            color="0.6",
            linestyle="--",
            linewidth=1,
            label="Pareto front",
            zorder=1,
        )
    for p in points:
        ax.scatter(
            p.latency_ms,
            100 * p.miou,
            s=90,
            color=COLORS.get(p.key, "0.3"),
            zorder=3,
            edgecolor="black",
            linewidth=0.6,
            label=p.label,
        )
    latencies = [p.latency_ms for p in points]
    if latencies and max(latencies) / max(min(latencies), 1e-9) > 8:
        ax.set_xscale("log")
    _pad_limits(ax, points)
    ax.set_xlabel("ONNX Runtime latency, p50 (ms, lower is better)")
    ax.set_ylabel("validation mIoU (%)")
    ax.set_title("Accuracy against latency\n" + subtitle, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower right")
    _place_labels(fig, ax, points)
    _save(fig, path)


def _place_labels(fig: Any, ax: Any, points: Sequence[ParetoPoint]) -> None:
    """Label every point, trying offsets around it until the label overlaps no other label or point.

    The chosen label gets a thin leader line to its point, so that a label placed away from its point (to
    stay clear of a neighbour) is still read against the right one.
    """
    fig.tight_layout()
    renderer = fig.canvas.get_renderer()
    from matplotlib.text import Text
    from matplotlib.transforms import Bbox

    centres = [ax.transData.transform((p.latency_ms, 100 * p.miou)) for p in points]
    radius = 8 * fig.dpi / 72
    markers = [Bbox.from_extents(x - radius, y - radius, x + radius, y + radius) for x, y in centres]
    frame = ax.get_window_extent(renderer)
    taken: list[Any] = []
    offsets = [
        (9, 4, "left", "bottom"),
        (9, -4, "left", "top"),
        (-9, 4, "right", "bottom"),
        (-9, -4, "right", "top"),
        (9, 22, "left", "bottom"),
        (9, -22, "left", "top"),
        (-9, 22, "right", "bottom"),
        (-9, -22, "right", "top"),
        (0, 40, "center", "bottom"),
        (0, -40, "center", "top"),
    ]

    def annotate(p: ParetoPoint, text: str, offset: tuple[int, int, str, str], leader: bool) -> Any:
        dx, dy, ha, va = offset
        return ax.annotate(
            text,
            (p.latency_ms, 100 * p.miou),
            textcoords="offset points",
            xytext=(dx, dy),
            ha=ha,
            va=va,
            fontsize=8,
            zorder=4,
            bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": COLORS.get(p.key, "0.5"), "lw": 0.8},
            arrowprops={"arrowstyle": "-", "color": "0.45", "lw": 0.7, "shrinkA": 0, "shrinkB": 6}
            if leader
            else None,
        )

    def text_extent(note: Any) -> Any:
        """The label's box alone (an annotation's own extent includes its leader line)."""
        note.update_positions(renderer)
        return Text.get_window_extent(note, renderer)

    def overlap(a: Any, b: Any) -> float:
        w = min(a.x1, b.x1) - max(a.x0, b.x0)
        h = min(a.y1, b.y1) - max(a.y0, b.y0)
        return max(w, 0.0) * max(h, 0.0)

    pad = 2.5 * fig.dpi / 72  # the rounded frame around the text
    order = sorted(range(len(points)), key=lambda i: (points[i].latency_ms, -points[i].miou))
    for i in order:
        p = points[i]
        text = f"{p.label}\n{100 * p.miou:.1f} % · {p.latency_ms:.2f} ms · {p.gflops:.3g} GFLOPs"
        others = [*taken, *(m for j, m in enumerate(markers) if j != i)]
        best: tuple[float, int] | None = None  # (covered area, offset index); crowded: the least covered
        for k, offset in enumerate(offsets):
            note = annotate(p, text, offset, leader=False)
            box = text_extent(note).padded(pad)
            note.remove()
            outside = box.width * box.height - overlap(box, frame)
            covered = sum(overlap(box, other) for other in others) + 10 * outside
            if best is None or covered < best[0]:
                best = (covered, k)
            if covered == 0:
                break
        assert best is not None
        taken.append(text_extent(annotate(p, text, offsets[best[1]], leader=True)).padded(pad))


def _pad_limits(ax: Any, points: Sequence[ParetoPoint]) -> None:
    """Room around the points for their labels."""
    if not points:
        return
    xs = [p.latency_ms for p in points]
    ys = [100 * p.miou for p in points]
    if ax.get_xscale() == "log":
        ax.set_xlim(min(xs) / 2.5, max(xs) * 3)
    else:
        span = max(max(xs) - min(xs), max(xs) * 0.3, 1e-3)
        ax.set_xlim(max(0.0, min(xs) - 0.6 * span), max(xs) + 0.8 * span)
    yspan = max(max(ys) - min(ys), 4.0)
    ax.set_ylim(min(ys) - 0.45 * yspan, max(ys) + 0.45 * yspan)


def sample_grid(
    images: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    predictions: Mapping[str, Sequence[np.ndarray]],
    labels: Mapping[str, str],
    classes: Sequence[str],
    palette: Sequence[Sequence[int]],
    ignore_index: int,
    path: str | os.PathLike,
) -> None:
    """Rows of validation images: the image, its ground truth, then each model's prediction over it.

    ``predictions``: model key → one label map per image. Masks are drawn over a grey version of the image,
    so that class colours stand out from the image's own; each prediction is captioned with its pixel
    accuracy on that image; a legend names the class colours (ignored pixels in white).
    """
    from edgeseg.runtime import overlay

    plt = _pyplot()
    pal = [list(map(int, c)) for c in palette]
    columns = ["image", "ground truth", *[labels.get(k, k) for k in predictions]]
    rows = len(images)
    legend_rows = -(-(len(classes) + 1) // 5)
    legend_h = 0.25 * legend_rows + 0.2
    cell = 2.3
    height = cell * rows + 0.35 + legend_h
    fig, axes = plt.subplots(rows, len(columns), figsize=(cell * len(columns), height), squeeze=False)
    for r, (image, mask) in enumerate(zip(images, masks, strict=True)):
        grey = np.repeat(np.asarray(image, np.float32).mean(axis=2, keepdims=True), 3, axis=2).astype(
            np.uint8
        )
        valid = mask != ignore_index
        truth = overlay(grey, np.where(valid, mask, 0).astype(np.int64), pal, alpha=0.7)
        truth[~valid] = 255
        cells: list[tuple[np.ndarray, str]] = [(np.asarray(image), ""), (truth, "")]
        for key in predictions:
            pred = np.asarray(predictions[key][r]).astype(np.int64)
            acc = float((pred[valid] == mask[valid]).mean()) if valid.any() else float("nan")
            cells.append((overlay(grey, pred, pal, alpha=0.7), f"pixel acc. {100 * acc:.1f} %"))
        for c, (picture, caption) in enumerate(cells):
            ax = axes[r][c]
            ax.imshow(picture, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(columns[c], fontsize=10)
            if caption:
                ax.text(
                    0.03,
                    0.03,
                    caption,
                    transform=ax.transAxes,
                    fontsize=8,
                    ha="left",
                    va="bottom",
                    bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.85},
                )
    handles = [plt.Rectangle((0, 0), 1, 1, color=np.asarray(pal[i]) / 255.0) for i in range(len(classes))]
    handles.append(plt.Rectangle((0, 0), 1, 1, facecolor="white", edgecolor="0.5"))
    fig.legend(
        handles,
        [*classes, "ignored"],
        loc="lower center",
        ncol=5,
        fontsize=8,
        frameon=False,
        bbox_to_anchor=(0.5, 0.0),
    )
    fig.subplots_adjust(
        left=0.005, right=0.995, bottom=legend_h / height, top=1 - 0.35 / height, wspace=0.03, hspace=0.03
    )
    _save(fig, path)


def figure_paths(folder: Path) -> dict[str, Path]:
    """Where the three figures go."""
    return {
        "curves": folder / "training_curves.png",
        "pareto": folder / "miou_vs_latency.png",
        "samples": folder / "samples.png",
    }
