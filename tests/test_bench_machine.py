"""machine_info: the CPU, its instruction sets, threads and library versions behind every published figure."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

from edgeseg.bench import machine
from edgeseg.bench.machine import MachineInfo, machine_info

CPUINFO = """processor\t: 0
model name\t: Example CPU 9000
flags\t\t: fpu sse2 avx2 fma avx512f avx512bw avx512_vnni
processor\t: 1
model name\t: Example CPU 9000
flags\t\t: fpu sse2 avx2 fma avx512f avx512bw avx512_vnni
"""


def test_cpu_model_and_instruction_sets_come_from_cpuinfo(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(CPUINFO)
    cpu, flags = machine._cpu_model_and_flags(cpuinfo)
    assert cpu == "Example CPU 9000" and {"avx2", "avx512_vnni"} <= flags and "amx_int8" not in flags
    assert machine._cpu_model_and_flags(tmp_path / "missing")[1] is None


def test_description_names_cpu_sets_threads_and_versions() -> None:
    info = MachineInfo("Example CPU 9000", ("avx2",), 8, 4, "1.32.0", None, "3.11.7", "Linux x86_64")
    line = info.describe()
    assert line.startswith("Example CPU 9000 (avx2), 4 threads of 8 logical CPUs, ONNX Runtime 1.32.0")
    assert "PyTorch" not in line and info.int8_dot_product is False
    vnni = MachineInfo("X", ("avx2", "avx512f", "avx512_vnni"), 2, None, None, "2.13.0", "3.11", "Linux")
    assert vnni.int8_dot_product is True and "ONNX Runtime not installed" in vnni.describe()
    assert "PyTorch 2.13.0" in vnni.describe() and "threads of" not in vnni.describe()
    assert MachineInfo("X", None, 2, 1, "1", None, "3", "Darwin").int8_dot_product is None


def test_this_machine_is_read_without_importing_torch() -> None:
    code = (
        "import sys\nfrom edgeseg.bench import machine\nmachine.machine_info()\nprint('torch' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert done.stdout.strip() == "False", done.stderr
    info = machine_info(threads=1)
    assert info.onnxruntime == importlib.metadata.version("onnxruntime")
    assert info.threads == 1 and info.logical_cpus and info.logical_cpus >= 1
    record = info.to_dict()
    assert record["description"] == info.describe() and set(record["instruction_sets"] or []) <= set(
        machine.INSTRUCTION_SETS
    )
