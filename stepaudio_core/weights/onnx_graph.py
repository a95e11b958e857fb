"""Weights out of a torch-exported ONNX graph, found through the nodes that use them.

Exported initializer names are unreliable (folded conv+BN weights become ``onnx::Conv_4372``,
linear weights anonymous MatMul inputs, small constants inlined as Constant nodes or
deduplicated behind Identity nodes), while node names are the torch module scopes. So a reader
looks a node up by scope and resolves its inputs to stored tensors here. Only the ``onnx``
package reads the file; nothing runs through onnxruntime.

A converted file is cached beside it as safetensors (``convert_cache``), with the network's sizes
as metadata, and then loaded strictly into the network built at those sizes.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import onnx
import torch
from google.protobuf.message import DecodeError
from onnx import helper, numpy_helper
from torch import nn

from ..errors import ModelFileError
from .checkpoint import check_model_file, load_strict
from .convert_cache import cached_conversion

M = TypeVar("M", bound=nn.Module)


class OnnxGraph:
    """The nodes and stored tensors of one exported file; every error names the file and what to do."""

    def __init__(self, path: Path, what: str, fix: str):
        self.path, self.what, self.fix = path, what, fix
        try:
            model = onnx.load(str(path))
        except (DecodeError, OSError, ValueError, RuntimeError) as e:
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ModelFileError(
                f"{what} at {path} is truncated or corrupt ({reason}). Delete it and download it again."
            ) from None
        graph = model.graph
        self.nodes = {n.name: n for n in graph.node}
        self.producers = {out: n for n in graph.node for out in n.output}
        self.initializers = {t.name: t for t in graph.initializer}
        self.inputs = [i for i in graph.input if i.name not in self.initializers]

    def error(self, problem: str) -> ModelFileError:
        return ModelFileError(f"{self.what} at {self.path}: {problem}. {self.fix}")

    def node(self, name: str, op: str) -> onnx.NodeProto:
        node = self.nodes.get(name)
        if node is None or node.op_type != op:
            raise self.error(f"the graph has no {op} node named '{name}'")
        return node

    @staticmethod
    def attributes(node: onnx.NodeProto) -> dict:
        return {a.name: helper.get_attribute_value(a) for a in node.attribute}

    def stored(self, name: str) -> onnx.TensorProto | None:
        """The tensor behind a node input if it is a constant (initializer, Constant, Identity of one)."""
        if name in self.initializers:
            return self.initializers[name]
        producer = self.producers.get(name)
        if producer is not None and producer.op_type == "Identity":
            return self.stored(producer.input[0])
        if producer is not None and producer.op_type == "Constant" and [a.name for a in producer.attribute] == ["value"]:
            return producer.attribute[0].t
        return None

    def value(self, name: str) -> torch.Tensor:
        """The stored floating-point tensor behind a node input, as float32."""
        tensor = self.stored(name)
        if tensor is None:
            raise self.error(f"input '{name}' is not a stored tensor")
        try:
            array = numpy_helper.to_array(tensor)
        except (ValueError, TypeError) as e:
            raise self.error(f"tensor '{name}' cannot be read ({e})") from None
        if not np.issubdtype(array.dtype, np.floating):
            raise self.error(f"tensor '{name}' holds {array.dtype}, not floating-point weights")
        return torch.from_numpy(np.array(array, dtype=np.float32))

    def weight_of(self, node_name: str, op: str) -> torch.Tensor:
        """The single stored input of a node (the weight of a MatMul, the bias of an Add)."""
        stored = [i for i in self.node(node_name, op).input if self.stored(i) is not None]
        if len(stored) != 1:
            raise self.error(f"node '{node_name}' has {len(stored)} stored inputs, expected 1")
        return self.value(stored[0])


D = TypeVar("D")


def load_converted(
    path: str | os.PathLike,
    what: str,
    converter: str,
    dims_type: type[D],
    read: Callable[[Path], tuple[D, dict[str, torch.Tensor]]],
    build: Callable[[D], M],
) -> M:
    """Read ``path`` with ``read`` (sizes + state dict) once, cache it, and load it strictly into ``build(sizes)``.

    ``converter`` names the conversion in the cache key: change it when ``read``'s output changes.
    """
    path = check_model_file(path, what)

    def convert():
        dims, state = read(path)
        return state, {"dims": json.dumps(dataclasses.asdict(dims))}

    state, meta = cached_conversion(path, converter, convert)
    # JSON has no tuples: sizes such as CAM++'s block_layers come back as lists
    dims = dims_type(**{k: tuple(v) if isinstance(v, list) else v for k, v in json.loads(meta["dims"]).items()})
    model = build(dims)
    load_strict(model, state, path, what)
    return model.eval()
