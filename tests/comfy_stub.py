"""A faithful stand-in for the parts of ComfyUI our nodes touch, so node tests run without ComfyUI.

Signatures follow ComfyUI's ``comfy_api/latest/_io.py`` (V3 schema), ``comfy/model_management.py``,
``comfy/utils.py``, ``comfy/model_patcher.py`` and ``folder_paths.py``; behaviour is the subset
that matters to a node pack: schemas that validate, node outputs, progress bars that record
their updates, an interrupt flag, model patchers that load and unload, and model folders.

Where ComfyUI changed behaviour after 0.3.64, the stand-in follows the newer release (0.38), which
is the stricter one for a node pack:
- ``InterruptProcessingException`` derives from ``BaseException`` (Comfy-Org/ComfyUI#13523), so an
  ``except Exception`` in our code cannot pass these tests and then swallow Cancel in ComfyUI.
- The extension's ``on_load`` is awaited before ``get_node_list`` (``load_extension`` below); 0.3.64
  never calls it, which is why the entry point registers the model folder itself.
- Progress updates from custom nodes are throttled (Comfy-Org/ComfyUI#11504): most never reach the
  hook that sends them to the browser and checks for Cancel, so a node must check for Cancel itself.
"""

from __future__ import annotations

import enum
import inspect
import os
import sys
import time
import types
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import torch

# ---------------------------------------------------------------- comfy_api.latest.io


def _prune(d: dict) -> dict:
    return {k: v for k, v in d.items() if v is not None}


class Input:
    def __init__(self, id, display_name=None, optional=False, tooltip=None, lazy=None, extra_dict=None):
        self.id, self.display_name, self.optional, self.tooltip, self.lazy = id, display_name, optional, tooltip, lazy
        self.extra_dict = extra_dict or {}

    def as_dict(self):
        return _prune({"display_name": self.display_name, "optional": self.optional, "tooltip": self.tooltip, "lazy": self.lazy})


class WidgetInput(Input):
    def __init__(self, id, display_name=None, optional=False, tooltip=None, lazy=None, default=None,
                 socketless=None, widget_type=None, force_input=None, extra_dict=None):
        super().__init__(id, display_name, optional, tooltip, lazy, extra_dict)
        self.default, self.socketless, self.widget_type, self.force_input = default, socketless, widget_type, force_input

    def as_dict(self):
        return super().as_dict() | _prune({"default": self.default})


class Output:
    def __init__(self, id=None, display_name=None, tooltip=None, is_output_list=False):
        self.id, self.display_name, self.tooltip, self.is_output_list = id, display_name, tooltip, is_output_list


def _comfytype(io_type: str, input_cls=Input):
    class T:
        pass

    class In(input_cls):
        pass

    class Out(Output):
        pass

    T.io_type, In.io_type, Out.io_type = io_type, io_type, io_type
    T.Input, T.Output = In, Out
    return T


class Boolean:
    io_type = "BOOLEAN"

    class Input(WidgetInput):
        io_type = "BOOLEAN"

        def __init__(self, id, display_name=None, optional=False, tooltip=None, lazy=None, default=None,
                     label_on=None, label_off=None, socketless=None, force_input=None):
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None, force_input)
            self.label_on, self.label_off = label_on, label_off

    class Output(Output):
        io_type = "BOOLEAN"


class Int:
    io_type = "INT"

    class Input(WidgetInput):
        io_type = "INT"

        def __init__(self, id, display_name=None, optional=False, tooltip=None, lazy=None, default=None, min=None,
                     max=None, step=None, control_after_generate=None, display_mode=None, socketless=None,
                     force_input=None):
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None, force_input)
            self.min, self.max, self.step, self.control_after_generate = min, max, step, control_after_generate

    class Output(Output):
        io_type = "INT"


class Float:
    io_type = "FLOAT"

    class Input(WidgetInput):
        io_type = "FLOAT"

        def __init__(self, id, display_name=None, optional=False, tooltip=None, lazy=None, default=None, min=None,
                     max=None, step=None, round=None, display_mode=None, socketless=None, force_input=None):
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None, force_input)
            self.min, self.max, self.step, self.round = min, max, step, round

    class Output(Output):
        io_type = "FLOAT"


class String:
    io_type = "STRING"

    class Input(WidgetInput):
        io_type = "STRING"

        def __init__(self, id, display_name=None, optional=False, tooltip=None, lazy=None, multiline=False,
                     placeholder=None, default=None, dynamic_prompts=None, socketless=None, force_input=None):
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless, None, force_input)
            self.multiline, self.placeholder, self.dynamic_prompts = multiline, placeholder, dynamic_prompts

    class Output(Output):
        io_type = "STRING"


class Combo:
    io_type = "COMBO"

    class Input(WidgetInput):
        io_type = "COMBO"

        def __init__(self, id, options=None, display_name=None, optional=False, tooltip=None, lazy=None,
                     default=None, control_after_generate=None, upload=None, image_folder=None, remote=None,
                     socketless=None):
            if isinstance(options, type) and issubclass(options, enum.Enum):
                options = [v.value for v in options]
            if isinstance(default, enum.Enum):
                default = default.value
            super().__init__(id, display_name, optional, tooltip, lazy, default, socketless)
            self.options, self.control_after_generate = options, control_after_generate

    class Output(Output):
        io_type = "COMBO"


Audio = _comfytype("AUDIO")


def Custom(io_type: str):  # noqa: N802 - ComfyUI's name
    return _comfytype(io_type)


class Hidden(str, enum.Enum):
    unique_id = "UNIQUE_ID"
    prompt = "PROMPT"
    extra_pnginfo = "EXTRA_PNGINFO"
    dynprompt = "DYNPROMPT"


@dataclass
class Schema:
    node_id: str
    display_name: str = None
    category: str = "sd"
    inputs: list = None
    outputs: list = None
    hidden: list = None
    description: str = ""
    search_aliases: list = None
    is_input_list: bool = False
    is_output_node: bool = False
    is_deprecated: bool = False
    is_experimental: bool = False
    is_api_node: bool = False
    not_idempotent: bool = False
    enable_expand: bool = False

    def validate(self):
        ids = [i.id for i in self.inputs or []]
        outs = [o.id for o in self.outputs or [] if o.id is not None]
        issues = []
        if len(set(ids)) != len(ids):
            issues.append(f"duplicate input ids in {self.node_id}: {ids}")
        if len(set(outs)) != len(outs):
            issues.append(f"duplicate output ids in {self.node_id}: {outs}")
        if set(ids) & set(outs):
            issues.append(f"ids used for both inputs and outputs in {self.node_id}")
        if issues:
            raise ValueError("\n".join(issues))


class NodeOutput:
    def __init__(self, *args: Any, ui=None, expand=None, block_execution=None):
        self.args, self.ui, self.expand, self.block_execution = args, ui, expand, block_execution

    @property
    def result(self):
        return self.args if self.args else None

    def __getitem__(self, index):
        return self.args[index]


class _HiddenHolder:
    def __init__(self, unique_id=None, prompt=None, extra_pnginfo=None, dynprompt=None):
        self.unique_id, self.prompt, self.extra_pnginfo, self.dynprompt = unique_id, prompt, extra_pnginfo, dynprompt


class ComfyNode:
    hidden = _HiddenHolder()

    @classmethod
    def define_schema(cls) -> Schema:
        raise NotImplementedError

    @classmethod
    def execute(cls, **kwargs) -> NodeOutput:
        raise NotImplementedError

    @classmethod
    def GET_SCHEMA(cls) -> Schema:  # noqa: N802 - ComfyUI's name
        schema = cls.define_schema()
        schema.validate()
        return schema


class ComfyExtension(ABC):
    async def on_load(self) -> None:  # noqa: B027 - ComfyUI's optional hook, empty by default
        """Called once, before get_node_list."""

    @abstractmethod
    async def get_node_list(self) -> list[type[ComfyNode]]: ...


async def load_extension(module) -> list[type[ComfyNode]]:
    """What ComfyUI's loader (nodes.py, V3 branch) does with a pack module: the entry point (awaited if
    it is a coroutine function), an extension type check, ``on_load`` awaited, then ``get_node_list``,
    whose nodes must each produce a valid schema."""
    entrypoint = module.comfy_entrypoint
    extension = await entrypoint() if inspect.iscoroutinefunction(entrypoint) else entrypoint()
    if not isinstance(extension, ComfyExtension):
        raise TypeError("comfy_entrypoint did not return a ComfyExtension")
    await extension.on_load()
    nodes = await extension.get_node_list()
    if not isinstance(nodes, list):
        raise TypeError("get_node_list did not return a list")
    for node in nodes:
        node.GET_SCHEMA()
    return nodes


# ---------------------------------------------------------------- comfy.*


class InterruptProcessingException(BaseException):
    """BaseException, as in ComfyUI since #13523: ``except Exception`` does not catch Cancel."""


@dataclass
class _State:
    interrupted: bool = False
    progress: list = field(default_factory=list)
    loaded: list = field(default_factory=list)


STATE = _State()


def _model_management_throw():
    """comfy.model_management.throw_exception_if_processing_interrupted: clears the flag, then raises."""
    if STATE.interrupted:
        STATE.interrupted = False
        raise InterruptProcessingException()


def _model_management() -> types.ModuleType:
    mm = types.ModuleType("comfy.model_management")
    mm.InterruptProcessingException = InterruptProcessingException
    mm.get_torch_device = lambda: torch.device("cpu")
    mm.unet_offload_device = lambda: torch.device("cpu")
    mm.intermediate_device = lambda: torch.device("cpu")
    mm.processing_interrupted = lambda: STATE.interrupted

    mm.throw_exception_if_processing_interrupted = _model_management_throw

    def load_models_gpu(models, *args, **kwargs):
        for m in models:
            m.load()
            if m not in STATE.loaded:
                STATE.loaded.append(m)

    def unload_all_models():
        for m in STATE.loaded:
            m.unload()
        STATE.loaded.clear()

    def should_use_bf16(device=None, *args, **kwargs):
        return False

    mm.load_models_gpu = load_models_gpu
    mm.load_model_gpu = lambda m: load_models_gpu([m])
    mm.unload_all_models = unload_all_models
    mm.soft_empty_cache = lambda force=False: None
    mm.should_use_bf16 = should_use_bf16
    mm.should_use_fp16 = should_use_bf16
    mm.module_size = lambda module: sum(t.numel() * t.element_size() for t in module.state_dict().values())
    return mm


def _progress_hook(value, total, preview, node_id=None):
    """ComfyUI's server hook (main.py): checks for Cancel, then sends the update to the browser."""
    _model_management_throw()
    STATE.progress.append((value, total))


class ProgressBar:
    """comfy.utils.ProgressBar with the throttling ComfyUI applies to custom nodes since #11504
    (200 ms / 2 % for custom nodes): an update reaches the hook only if it is the bar's first, reaches
    the total, carries a preview, or comes at least ``THROTTLE_S`` and ``THROTTLE_FRACTION`` of the
    total after the last one sent; the others only move ``current``."""

    THROTTLE_S, THROTTLE_FRACTION = 0.2, 0.02

    def __init__(self, total, node_id=None):
        self.total, self.current, self.node_id = total, 0, node_id
        self._sent_value, self._sent_at = None, 0.0

    def update_absolute(self, value, total=None, preview=None):
        if total is not None:
            self.total = total
        value = min(value, self.total)
        self.current = value
        now = time.monotonic()
        due = (
            self._sent_value is None
            or value >= self.total
            or preview is not None
            or (now - self._sent_at >= self.THROTTLE_S and value - self._sent_value >= self.THROTTLE_FRACTION * self.total)
        )
        if due:
            self._sent_value, self._sent_at = value, now
            _progress_hook(self.current, self.total, preview, node_id=self.node_id)

    def update(self, value):
        self.update_absolute(self.current + value)


class ModelPatcher:
    """Like ComfyUI's: moves the whole module, and tracks ``model.model_loaded_weight_memory``."""

    def __init__(self, model, load_device, offload_device, size=0, weight_inplace_update=False):
        self.model, self.load_device, self.offload_device = model, load_device, offload_device
        self.size = size
        if not hasattr(model, "model_loaded_weight_memory"):
            model.model_loaded_weight_memory = 0

    def model_size(self):
        return sum(t.numel() * t.element_size() for t in self.model.state_dict().values())

    def load(self):
        self.model.to(self.load_device)
        self.model.device = self.load_device  # as ComfyUI's patch_model/load do
        self.model.model_loaded_weight_memory = self.model_size()

    def unload(self):
        self.model.to(self.offload_device)
        self.model.device = self.offload_device
        self.model.model_loaded_weight_memory = 0

    def loaded_size(self):
        return self.model.model_loaded_weight_memory


def _folder_paths(models_dir: str) -> types.ModuleType:
    fp = types.ModuleType("folder_paths")
    fp.models_dir = models_dir
    fp.folder_names_and_paths = {}

    def add_model_folder_path(name, path, is_default=False):
        paths, exts = fp.folder_names_and_paths.setdefault(name, ([], set()))
        if path in paths:
            paths.remove(path)
        paths.insert(0, path) if is_default else paths.append(path)

    fp.add_model_folder_path = add_model_folder_path
    fp.get_folder_paths = lambda name: list(fp.folder_names_and_paths.get(name, ([], set()))[0])
    fp.get_temp_directory = lambda: os.path.join(models_dir, "..", "temp")
    fp.get_output_directory = lambda: os.path.join(models_dir, "..", "output")
    return fp


def install(models_dir: str) -> None:
    """Put the stand-in modules into ``sys.modules`` (replacing earlier ones)."""
    io = types.ModuleType("comfy_api.latest._io")
    for name, obj in dict(globals()).items():
        if name in {"Input", "WidgetInput", "Output", "Boolean", "Int", "Float", "String", "Combo", "Audio",
                    "Custom", "Hidden", "Schema", "NodeOutput", "ComfyNode"}:
            setattr(io, name, obj)
    latest = types.ModuleType("comfy_api.latest")
    latest.io, latest.ComfyExtension = io, ComfyExtension
    api = types.ModuleType("comfy_api")
    api.latest = latest
    comfy = types.ModuleType("comfy")
    comfy.model_management = _model_management()
    comfy.utils = types.ModuleType("comfy.utils")
    comfy.utils.ProgressBar = ProgressBar
    comfy.model_patcher = types.ModuleType("comfy.model_patcher")
    comfy.model_patcher.ModelPatcher = ModelPatcher
    sys.modules.update({
        "comfy_api": api, "comfy_api.latest": latest, "comfy_api.latest._io": io, "comfy": comfy,
        "comfy.model_management": comfy.model_management, "comfy.utils": comfy.utils,
        "comfy.model_patcher": comfy.model_patcher, "folder_paths": _folder_paths(models_dir),
    })
    STATE.interrupted = False
    STATE.progress.clear()
    STATE.loaded.clear()
