"""Two ways to call an ONNX Runtime session: plain ``session.run`` and I/O binding with buffers that persist.

With a GPU provider, ``session.run`` copies the input to the device, allocates the output there, copies it
back and frees both, on every call. :class:`BoundRunner` instead keeps one input and one output ``OrtValue``
on the device for the current input shape and reuses them between calls: the input is refreshed in place
(``update_inplace``, one host-to-device copy) and only the output comes back to the host. On the CPU the same
code path binds numpy buffers owned by the runner, so ONNX Runtime writes its output straight into them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgeseg.runtime.providers import import_onnxruntime


class SessionRunner:
    """Calls ``session.run`` for one input and one output; returns a new array per call."""

    def __init__(self, session: Any, input_name: str, output_name: str) -> None:
        self.session = session
        self.input_name = input_name
        self.output_name = output_name

    def __call__(self, tensor: np.ndarray) -> np.ndarray:
        """Run the model on ``tensor`` and return its output."""
        return self.session.run([self.output_name], {self.input_name: tensor})[0]


class BoundRunner:
    """Runs a session through I/O binding, reusing device buffers while the input shape stays the same.

    ``device`` is "cuda" (buffers in GPU memory, the output copied back per call) or "cpu" (numpy buffers
    bound directly). The output's shape is learnt from the first call at a new input shape, by letting ONNX
    Runtime allocate it; later calls at that shape write into the same buffer. The array returned on the CPU
    is that buffer: it stays valid until the next call, so callers copy what they keep.
    """

    def __init__(
        self, session: Any, input_name: str, output_name: str, device: str = "cuda", device_id: int = 0
    ) -> None:
        if device not in ("cpu", "cuda"):
            raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
        self.session = session
        self.input_name = input_name
        self.output_name = output_name
        self.device = device
        self.device_id = device_id
        self._ort = import_onnxruntime()
        self._binding = session.io_binding()
        self._key: tuple[tuple[int, ...], np.dtype] | None = None
        self._input: Any = None
        self._output: Any = None
        self._host_output: np.ndarray | None = None

    def __call__(self, tensor: np.ndarray) -> np.ndarray:
        """Run the model on ``tensor`` (a host array) and return the output as a host array."""
        if self.device == "cpu":
            return self._run_cpu(tensor)
        return self._run_device(tensor)

    def _run_cpu(self, tensor: np.ndarray) -> np.ndarray:
        tensor = np.ascontiguousarray(tensor)
        self._binding.bind_cpu_input(self.input_name, tensor)
        if (tensor.shape, tensor.dtype) != self._key:
            self._binding.bind_output(self.output_name, "cpu")
            self.session.run_with_iobinding(self._binding)
            first = self._binding.get_outputs()[0].numpy()
            self._host_output = np.empty_like(first)
            self._output = self._ort.OrtValue.ortvalue_from_numpy(self._host_output)
            self._binding.bind_ortvalue_output(self.output_name, self._output)
            self._key = (tensor.shape, tensor.dtype)
            np.copyto(self._host_output, first)
            return self._host_output
        self.session.run_with_iobinding(self._binding)
        assert self._host_output is not None
        return self._host_output

    def _run_device(self, tensor: np.ndarray) -> np.ndarray:
        ortvalue = self._ort.OrtValue
        tensor = np.ascontiguousarray(tensor)
        if (tensor.shape, tensor.dtype) != self._key:
            self._input = ortvalue.ortvalue_from_numpy(tensor, self.device, self.device_id)
            self._binding.bind_ortvalue_input(self.input_name, self._input)
            self._binding.bind_output(self.output_name, self.device, self.device_id)
            self.session.run_with_iobinding(self._binding)
            self._output = self._binding.get_outputs()[0]
            self._binding.bind_ortvalue_output(self.output_name, self._output)
            self._key = (tensor.shape, tensor.dtype)
        else:
            self._input.update_inplace(tensor)
            self.session.run_with_iobinding(self._binding)
        return self._output.numpy()

    def rerun(self) -> None:
        """Run again on the input already bound, leaving the output in its buffer (device-resident on GPU).

        For timing the network alone, as a benchmark does for engines that keep tensors on the device.
        """
        if self._key is None:
            raise RuntimeError("rerun() needs one call with an input first")
        self.session.run_with_iobinding(self._binding)
