"""The machine a figure was measured on, in one place: every benchmark script and the pipeline report print
and record it with their figures.

What decides CPU figures here: the CPU model, the instruction sets ONNX Runtime's kernels pick between
(AVX2; AVX-512; 8-bit dot products from AVX-512 VNNI, AVX-VNNI or AMX, which make INT8 several times faster
than without), the threads used, and the ONNX Runtime and PyTorch versions. Reading it imports neither torch
nor (when it is not installed) ONNX Runtime.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgeseg.runtime.providers import ORT_DISTRIBUTIONS

INSTRUCTION_SETS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")
INT8_DOT_PRODUCT = ("avx512_vnni", "avx_vnni", "amx_int8")


@dataclass(frozen=True)
class MachineInfo:
    """CPU and library versions behind a measurement (``instruction_sets`` None where they cannot be read)."""

    cpu: str
    instruction_sets: tuple[str, ...] | None
    logical_cpus: int | None
    threads: int | None
    onnxruntime: str | None
    torch: str | None
    python: str
    platform: str

    @property
    def int8_dot_product(self) -> bool | None:
        """Whether the CPU has 8-bit dot-product instructions (VNNI or AMX); None when unknown."""
        if self.instruction_sets is None:
            return None
        return any(flag in self.instruction_sets for flag in INT8_DOT_PRODUCT)

    def describe(self) -> str:
        """One line to print under figures, e.g. ``AMD EPYC (avx2, avx512f, avx512_vnni, avx_vnni), 2 threads
        of 2 logical CPUs, ONNX Runtime 1.32.0, PyTorch 2.13.0, Linux x86_64``."""
        sets = (
            "instruction sets unknown"
            if self.instruction_sets is None
            else (", ".join(self.instruction_sets) or "none of " + "/".join(INSTRUCTION_SETS))
        )
        threads = f"{self.threads} thread{'s' if self.threads != 1 else ''} of " if self.threads else ""
        libs = [f"ONNX Runtime {self.onnxruntime or 'not installed'}"]
        if self.torch:
            libs.append(f"PyTorch {self.torch}")
        return (
            f"{self.cpu} ({sets}), {threads}{self.logical_cpus or '?'} logical CPUs, {', '.join(libs)}, "
            f"{self.platform}"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, with ``int8_dot_product`` and the one-line description."""
        out = asdict(self)
        out["instruction_sets"] = None if self.instruction_sets is None else list(self.instruction_sets)
        out["int8_dot_product"] = self.int8_dot_product
        out["description"] = self.describe()
        return out


def machine_info(threads: int | None = None) -> MachineInfo:
    """This machine; ``threads`` is how many threads the figures it goes with used (None: not stated)."""
    cpu, flags = _cpu_model_and_flags()
    return MachineInfo(
        cpu=cpu,
        instruction_sets=None if flags is None else tuple(f for f in INSTRUCTION_SETS if f in flags),
        logical_cpus=usable_cpus(),
        threads=threads,
        onnxruntime=_version(*ORT_DISTRIBUTIONS),
        torch=_version("torch"),
        python=platform.python_version(),
        platform=f"{platform.system()} {platform.machine()}",
    )


def _cpu_model_and_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> tuple[str, set[str] | None]:
    """The CPU's model name and flags from Linux's ``/proc/cpuinfo``; elsewhere the platform's, no flags."""
    try:
        lines = cpuinfo.read_text().splitlines()
    except OSError:
        return platform.processor() or platform.machine() or "unknown CPU", None
    fields = {}
    for line in lines:
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    cpu = fields.get("model name") or platform.processor() or platform.machine() or "unknown CPU"
    flags = fields.get("flags")
    return cpu, None if flags is None else set(flags.split())


def usable_cpus() -> int | None:
    """CPUs this process may run on (its affinity where the OS has one, else all)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count()


def _version(*distributions: str) -> str | None:
    """The installed version of the first of ``distributions`` found, without importing it."""
    for name in distributions:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None
