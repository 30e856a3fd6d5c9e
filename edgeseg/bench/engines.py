"""What the benchmark runs: ONNX files through ONNX Runtime, edgeseg checkpoints through PyTorch eager.

Both engines are timed on the network alone: the input batch is prepared once (normalized, or raw uint8 for
models with in-graph preprocessing), outside the timed call. On the CPU, ONNX Runtime gets a numpy array and
returns one, as ``session.run`` does; on a GPU, the input stays on the device (I/O binding for ONNX Runtime,
a CUDA tensor for PyTorch) and so does the output, with a synchronisation before the clock stops.
Pre- and post-processing costs are what ``benchmarks/runtime_overhead.py`` measures. One exception keeps
the comparison fair: a coarse export (``edgeseg export --coarse``) stops before the final upsampling that
the other graphs and PyTorch include, so its timed call also takes the runtime's labels at full resolution
(``upsample_argmax``) — on the CPU; on a GPU its output stays on the device and is timed as is.

PyTorch is imported only for checkpoints, so benchmarking ONNX files needs no torch.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.bench.timing import BenchCase, BenchConfig, Runnable
from edgeseg.errors import InputError
from edgeseg.runtime.model_io import inspect_model
from edgeseg.runtime.providers import PROVIDER_CHOICES, import_onnxruntime, resolve_provider

SEED = 0


@dataclass
class ModelSpec:
    """A model to benchmark: its display name, engine, file, and what limits its configurations."""

    name: str
    engine: str  # "onnxruntime" or "torch"
    path: Path
    precision: str = "fp32"
    static_size: tuple[int, int] | None = None
    fixed_batch: int | None = None
    checkpoint: dict[str, Any] | None = field(default=None, repr=False)


def _random_image(height: int, width: int) -> np.ndarray:
    return np.random.default_rng(SEED).integers(0, 256, (height, width, 3), dtype=np.uint8)


def onnx_spec(path: Path, name: str) -> ModelSpec:
    """Describe an ONNX file from its metadata (precision, static size, fixed batch)."""
    io = inspect_model(str(path))
    return ModelSpec(
        name=name,
        engine="onnxruntime",
        path=path,
        precision=io.metadata.precision or "fp32",
        static_size=io.metadata.static_size,
        fixed_batch=io.fixed_batch,
    )


def checkpoint_spec(path: Path, name: str) -> ModelSpec:
    """Describe an edgeseg checkpoint (loaded once; each configuration rebuilds its own model from it)."""
    from edgeseg.checkpoint import load_checkpoint

    return ModelSpec(name=name, engine="torch", path=path, checkpoint=load_checkpoint(path))


def export_for_bench(spec: ModelSpec, folder: Path) -> ModelSpec:
    """Export a checkpoint into ``folder`` and describe the ONNX file under the same display name.

    Uses ``edgeseg.export`` (``to_onnx`` with default settings) without the parity gate: only speed is at
    stake here, and the gate is what ``edgeseg export`` is for.
    """
    from edgeseg.export import export_checkpoint

    target = folder / f"{spec.path.stem}.onnx"
    export_checkpoint(spec.path, target, validate=False, force=True)
    return onnx_spec(target, spec.name)


def load_specs(models: Sequence[str | os.PathLike]) -> list[ModelSpec]:
    """Specs for the MODEL arguments: ``.onnx`` files for ONNX Runtime, anything else as a checkpoint."""
    paths = [Path(m) for m in models]
    for path in paths:
        if not path.is_file():
            raise InputError(f"model not found: {path}")
    stems = [p.stem for p in paths]
    specs = []
    for path in paths:
        name = path.stem if stems.count(path.stem) == 1 else str(path)
        specs.append(onnx_spec(path, name) if path.suffix.lower() == ".onnx" else checkpoint_spec(path, name))
    return specs


def with_exports(specs: Sequence[ModelSpec], folder: Path) -> list[ModelSpec]:
    """The specs with, after each checkpoint, its ONNX export (see :func:`export_for_bench`)."""
    result = []
    for spec in specs:
        result.append(spec)
        if spec.engine == "torch":
            result.append(export_for_bench(spec, folder))
    return result


def onnx_case(spec: ModelSpec, config: BenchConfig) -> BenchCase:
    """A case timing ``spec``'s session on a prepared batch (``Segmenter.prepare``) with ONNX Runtime."""

    def setup() -> Runnable:
        from edgeseg.runtime import Segmenter

        segmenter = Segmenter(spec.path, provider=config.provider, threads=config.threads)
        batch = segmenter.prepare([_random_image(config.height, config.width)] * config.batch)
        if segmenter.provider == "cpu" and segmenter.upsample > 1:
            from edgeseg.runtime.ops import Scratch, upsample_argmax

            scratch = Scratch()

            def labels() -> None:
                for scores in segmenter.run(batch, copy=False):
                    upsample_argmax(scores, segmenter.upsample, scratch)

            return Runnable(call=labels)
        if segmenter.provider == "cpu":
            return Runnable(call=lambda: segmenter.run(batch, copy=False))
        segmenter.run(batch, copy=False)  # binds device buffers; later calls reuse them without copies
        return Runnable(call=segmenter.runner.rerun)

    return BenchCase(config=config, setup=setup)


def torch_case(spec: ModelSpec, config: BenchConfig) -> BenchCase:
    """A case timing the checkpoint's model in PyTorch eager mode (``inference_mode``)."""

    def setup() -> Runnable:
        import torch

        from edgeseg.checkpoint import model_from_checkpoint

        device = torch.device("cuda" if config.provider == "cuda" else "cpu")
        threads = config.threads
        if threads is not None:
            torch.set_num_threads(threads)
        model = model_from_checkpoint(spec.checkpoint or {}).to(device)
        generator = torch.Generator().manual_seed(SEED)
        x = torch.randn(config.batch, 3, config.height, config.width, generator=generator).to(device)
        primer = torch.zeros(1 << 20)

        def before() -> None:
            # Interleaved configurations may use other thread counts; resizing the OpenMP team happens in
            # the next parallel region, so run one here, untimed.
            if threads is not None and torch.get_num_threads() != threads:
                torch.set_num_threads(threads)
                primer.add_(1)

        def call() -> None:
            with torch.inference_mode():
                model(x)
            if device.type == "cuda":
                torch.cuda.synchronize()

        peak = None
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()

            def peak() -> float:
                return torch.cuda.max_memory_allocated() / 2**20

        return Runnable(call=call, before=before, device_peak_mb=peak)

    return BenchCase(config=config, setup=setup)


def check_providers(providers: Sequence[str], engines: set[str]) -> None:
    """Fail before any loading or timing when a requested provider is unusable for an engine in use."""
    for provider in providers:
        if provider not in PROVIDER_CHOICES or provider == "auto":
            raise InputError(f"unknown provider {provider!r}; choose among cpu, cuda, tensorrt")
        if "onnxruntime" in engines:
            resolve_provider(provider, import_onnxruntime().get_available_providers())
        if provider == "cuda" and "torch" in engines:
            import torch

            if not torch.cuda.is_available():
                raise InputError(
                    "provider cuda was requested for a checkpoint but PyTorch sees no CUDA device"
                )


def plan_cases(
    specs: Sequence[ModelSpec],
    sizes: Sequence[tuple[int, int]],
    batches: Sequence[int],
    threads: Sequence[int | None],
    providers: Sequence[str],
) -> tuple[list[BenchCase], list[str]]:
    """Every combination of model × provider × threads × size × batch that the model can run.

    Returns the cases and notes about skipped or adjusted ones: a static model runs at its export size only,
    a fixed batch dimension only at that batch, and TensorRT applies to ONNX Runtime only.
    """
    cases: list[BenchCase] = []
    notes: list[str] = []
    seen: set[BenchConfig] = set()
    for spec in specs:
        for provider in providers:
            if spec.engine == "torch" and provider == "tensorrt":
                notes.append(f"{spec.name}: TensorRT applies to ONNX Runtime only; torch rows skipped")
                continue
            for n_threads in threads:
                for height, width in sizes:
                    if spec.static_size and spec.static_size != (height, width):
                        notes.append(
                            f"{spec.name}: static model, timed at {spec.static_size[0]}x"
                            f"{spec.static_size[1]} instead of {height}x{width}"
                        )
                        height, width = spec.static_size
                    for batch in batches:
                        if spec.fixed_batch and spec.fixed_batch != batch:
                            notes.append(
                                f"{spec.name}: batch fixed to {spec.fixed_batch}; batch {batch} skipped"
                            )
                            continue
                        config = BenchConfig(
                            spec.name, spec.engine, provider, spec.precision, batch, height, width, n_threads
                        )
                        if config in seen:
                            continue
                        seen.add(config)
                        make = onnx_case if spec.engine == "onnxruntime" else torch_case
                        cases.append(make(spec, config))
    return cases, list(dict.fromkeys(notes))


def temporary_folder() -> tempfile.TemporaryDirectory[str]:
    """A temporary folder for exports made during a benchmark run (removed with the object)."""
    return tempfile.TemporaryDirectory(prefix="edgeseg-bench-")
