"""Which ONNX Runtime build is installed, which execution provider to use, and sessions that keep their word.

ONNX Runtime falls back to the CPU without an error when a GPU provider cannot start (a missing CUDA or cuDNN
library only prints a warning). A model that silently runs ten times slower than asked is worse than an
error, so :func:`create_session` compares the providers the session really uses with the ones asked for.

Package scheme: ``pip install edgeseg[cpu]`` installs ``onnxruntime``, ``edgeseg[gpu]`` installs
``onnxruntime-gpu``. The two builds ship the same ``onnxruntime`` module and must never be installed together:
switching to the GPU build means uninstalling ``onnxruntime`` first (``GPU_SWITCH`` says how).
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from edgeseg.errors import EdgesegError, InputError

PROVIDER_NAMES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}
PROVIDER_CHOICES = ("auto", *PROVIDER_NAMES)
ORT_DISTRIBUTIONS = ("onnxruntime", "onnxruntime-gpu", "onnxruntime-directml", "onnxruntime-openvino")
INSTALL_HINT = (
    'install exactly one ONNX Runtime build, never both: onnxruntime (`pip install -e ".[cpu]"` in a clone, '
    '`pip install "edgeseg[cpu]"` from an index) or onnxruntime-gpu (`.[gpu]`, `edgeseg[gpu]`)'
)
# Both builds install the same `onnxruntime` module: the GPU build must replace the CPU one, not join it.
GPU_SWITCH = (
    "CUDA and TensorRT need the onnxruntime-gpu build instead of onnxruntime (uninstall that first, as both "
    'ship the same module): `pip uninstall -y onnxruntime && pip install -e ".[gpu]"` in a clone of edgeseg '
    '(`pip install "edgeseg[gpu]"` after the uninstall when installed from an index), with CUDA and cuDNN '
    "libraries that match that build"
)


class ProviderUnavailable(InputError):
    """The requested execution provider is not offered by the installed ONNX Runtime, or failed to start."""


def import_onnxruntime() -> ModuleType:
    """Import ``onnxruntime``, or raise an error that names the extras that install it."""
    try:
        import onnxruntime
    except ImportError as err:
        raise EdgesegError(f"onnxruntime is not importable ({err}); {INSTALL_HINT}") from err
    return onnxruntime


@dataclass(frozen=True)
class OrtBuild:
    """The installed ONNX Runtime: distribution name(s), version, and the providers it offers."""

    packages: tuple[str, ...]
    version: str
    providers: tuple[str, ...]
    device: str

    @property
    def package(self) -> str:
        """The distribution that provides ``onnxruntime`` ("onnxruntime", "onnxruntime-gpu", ...)."""
        return self.packages[0] if self.packages else "unknown"

    @property
    def conflicting(self) -> bool:
        """True when several ONNX Runtime builds are installed at once (they overwrite each other's files)."""
        return len(self.packages) > 1

    def describe(self) -> str:
        """One line for logs and ``--version``-style output."""
        line = f"{self.package} {self.version} (providers: {', '.join(self.providers)})"
        if self.conflicting:
            line += f"; WARNING: several builds installed ({', '.join(self.packages)}); {INSTALL_HINT}"
        return line


def ort_build_info() -> OrtBuild:
    """Report the installed ONNX Runtime build: onnxruntime or onnxruntime-gpu, version, providers."""
    ort = import_onnxruntime()
    packages = []
    for dist in ORT_DISTRIBUTIONS:
        try:
            importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
        packages.append(dist)
    return OrtBuild(
        packages=tuple(packages),
        version=ort.__version__,
        providers=tuple(ort.get_available_providers()),
        device=ort.get_device(),
    )


def resolve_provider(provider: str, available: list[str] | tuple[str, ...]) -> str:
    """Turn ``auto|cpu|cuda|tensorrt`` into a concrete choice, refusing one the build does not offer.

    ``auto`` picks ``cuda`` when ONNX Runtime offers the CUDA provider, else ``cpu``; TensorRT is never chosen
    automatically because building its engines takes minutes.
    """
    key = provider.lower()
    if key not in PROVIDER_CHOICES:
        raise InputError(f"unknown provider {provider!r}; choose one of {', '.join(PROVIDER_CHOICES)}")
    if key == "auto":
        return "cuda" if PROVIDER_NAMES["cuda"] in available else "cpu"
    if PROVIDER_NAMES[key] not in available:
        raise ProviderUnavailable(
            f"provider {key!r} was requested but the installed ONNX Runtime offers only "
            f"{', '.join(available)}; {GPU_SWITCH}"
        )
    return key


def provider_chain(choice: str) -> list[str]:
    """The provider list given to ONNX Runtime for a choice (GPU ones keep the CPU for unsupported nodes)."""
    if choice == "tensorrt":
        return [PROVIDER_NAMES["tensorrt"], PROVIDER_NAMES["cuda"], PROVIDER_NAMES["cpu"]]
    if choice == "cuda":
        return [PROVIDER_NAMES["cuda"], PROVIDER_NAMES["cpu"]]
    return [PROVIDER_NAMES["cpu"]]


def session_options(threads: int | None, spin_wait: bool = False) -> Any:
    """Session options: ``threads`` intra-op threads (None: ONNX Runtime's default), quiet logs.

    ``spin_wait=False`` stops idle intra-op threads from busy-waiting for work. ONNX Runtime spins by
    default, and the spinning threads keep the cores busy after ``run`` returns, which is exactly when the
    runtime normalizes the next image or takes the argmax of this one; measured on a loaded 2-core machine,
    spinning made that post-processing twice as slow and the runs themselves slower too.
    """
    ort = import_onnxruntime()
    options = ort.SessionOptions()
    if threads is not None:
        if threads < 1:
            raise InputError(f"threads must be >= 1, got {threads}")
        options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin_wait else "0")
    options.log_severity_level = 3
    return options


def create_session(
    path: str, provider: str = "auto", threads: int | None = None, spin_wait: bool = False
) -> tuple[Any, str]:
    """Open an ``InferenceSession`` on ``provider`` and return it with the choice that is really in use.

    Raises :class:`ProviderUnavailable` when an explicitly requested GPU provider is missing or did not start
    (checked on the created session, since ONNX Runtime falls back to the CPU silently). With ``auto``, a CUDA
    provider that fails to start leaves a working CPU session and the returned choice says ``cpu``.
    """
    ort = import_onnxruntime()
    available = ort.get_available_providers()
    choice = resolve_provider(provider, available)
    try:
        session = ort.InferenceSession(
            path, session_options(threads, spin_wait), providers=provider_chain(choice)
        )
    except Exception as err:  # ORT raises its own exception types for unreadable or invalid models
        raise InputError(f"{path}: ONNX Runtime cannot load this model: {err}") from err
    in_use = session.get_providers()
    if PROVIDER_NAMES[choice] in in_use:
        return session, choice
    if provider.lower() == "auto":
        return session, "cpu"
    raise ProviderUnavailable(
        f"provider {choice!r} was requested and ONNX Runtime offers it, but the session started on "
        f"{', '.join(in_use)} instead (the GPU libraries failed to load; check the CUDA/cuDNN installation)"
    )
