"""Graph simplification: onnxsim, falling back to onnxslim when onnxsim is missing or fails.

Dynamic models are simplified as they are (no input shapes fixed), so the result keeps its symbolic
batch/height/width. The caller checks and validates the simplified graph again.
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx

# onnxsim records its own bookkeeping in metadata_props; the exported file keeps only edgeseg's keys.
_TOOL_PROP_PREFIXES = ("onnxsim.", "onnxslim.")


@dataclass
class SimplifyResult:
    """The simplified model, the tool that made it and the node counts before and after."""

    model: onnx.ModelProto
    tool: str
    nodes_before: int
    nodes_after: int
    note: str = ""


def count_nodes(model: onnx.ModelProto) -> int:
    """Nodes of the main graph."""
    return len(model.graph.node)


def _strip_tool_props(model: onnx.ModelProto) -> None:
    keep = [p for p in model.metadata_props if not p.key.startswith(_TOOL_PROP_PREFIXES)]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)


def _with_onnxsim(model: onnx.ModelProto) -> onnx.ModelProto:
    import onnxsim

    simplified, ok = onnxsim.simplify(model, check_n=0)
    if not ok:
        raise RuntimeError("onnxsim reported that the simplified model could not be checked")
    return simplified


def _with_onnxslim(model: onnx.ModelProto) -> onnx.ModelProto:
    import onnxslim

    return onnxslim.slim(model)


def simplify_model(model: onnx.ModelProto) -> SimplifyResult:
    """Simplify with onnxsim, else onnxslim; raise RuntimeError when neither works.

    The input model is not modified. ``note`` says why a fallback happened.
    """
    before = count_nodes(model)
    failures: list[str] = []
    for tool, fn in (("onnxsim", _with_onnxsim), ("onnxslim", _with_onnxslim)):
        try:
            simplified = fn(_copy(model))
        except ImportError:
            failures.append(f"{tool} is not installed")
            continue
        except Exception as err:  # any failure inside a simplifier means: try the next one
            failures.append(f"{tool} failed: {type(err).__name__}: {str(err).strip()[:200]}")
            continue
        _strip_tool_props(simplified)
        return SimplifyResult(simplified, tool, before, count_nodes(simplified), "; ".join(failures))
    raise RuntimeError("graph simplification failed: " + "; ".join(failures) + " (try --no-simplify)")


def _copy(model: onnx.ModelProto) -> onnx.ModelProto:
    clone = onnx.ModelProto()
    clone.CopyFrom(model)
    return clone
