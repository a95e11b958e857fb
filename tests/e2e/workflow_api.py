"""Workflows as the ComfyUI editor saves them (UI format) -> prompts as ``POST /prompt`` runs them (API format).

UI format: ``nodes``, each with ``id``, ``type``, ``mode``, ``inputs`` (``[{name, type, link, widget?}]``) and
``widgets_values``, and ``links``, each ``[id, from_node, from_slot, to_node, to_slot, type]`` (or the same
fields as an object). API format: ``{node_id: {"class_type": type, "inputs": {name: value | [from_node, slot]}}}``.

Which inputs are widgets, and where the editor stores their values, comes from the server's ``/object_info``,
the way the editor derives it:

- a widget is an INT, FLOAT, STRING, BOOLEAN or combo input without ``forceInput``; required inputs first,
  each section in ``input_order``; ``widgets_values`` holds one value per widget, in that order;
- after an INT widget with ``control_after_generate`` (or one named seed / noise_seed) the editor stores one
  more value, the control mode ("fixed", "randomize", ...); after a combo with it, two (mode and filter);
- values after the last widget (upload buttons, audio players) hold nothing a prompt needs, and a widget
  added to a node after the workflow was saved takes its default, as when the editor opens the workflow.

Editor-only nodes are resolved as the editor does when it queues a workflow: notes are dropped, reroutes
followed, a primitive node's value goes into the input it feeds, muted nodes are left out (with the inputs
they feed), and bypassed nodes pass their input of the same type through.

A combo whose options depend on the machine (the StepAudio Model Loader's ``models_folder`` lists the model
folders found there) holds, in a saved workflow, a value of the machine it was saved on. ``pick_offered``
does what a user does after opening such a workflow: it picks the first option this server offers instead.
"""

from __future__ import annotations

from typing import Any

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
SEED_NAMES = {"seed", "noise_seed"}
NOTES = {"Note", "MarkdownNote"}
MUTED, BYPASSED = 2, 4


class WorkflowError(ValueError):
    """The workflow cannot become a prompt: a node this server lacks, missing widget values, subgraphs."""


def _spec(spec: list) -> tuple[Any, dict]:
    options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    return spec[0], options


def _is_combo(kind: Any) -> bool:
    return isinstance(kind, list) or kind == "COMBO"


def widget_slots(info: dict) -> list[tuple[str, int]]:
    """(input name, how many ``widgets_values`` entries it takes) for each widget of a node, in stored order."""
    order = info.get("input_order") or {section: list(inputs) for section, inputs in info["input"].items()}
    slots = []
    for section in ("required", "optional"):
        for name in order.get(section, []):
            kind, options = _spec(info["input"][section][name])
            if options.get("forceInput") or not (_is_combo(kind) or kind in WIDGET_TYPES):
                continue
            control = options.get("control_after_generate")
            if kind == "INT" and (control or name in SEED_NAMES):
                slots.append((name, 2))
            elif _is_combo(kind) and control:
                slots.append((name, 3))
            else:
                slots.append((name, 1))
    return slots


def _default(node_type: str, name: str, spec: list) -> Any:
    kind, options = _spec(spec)
    choices = kind if isinstance(kind, list) else options.get("options")
    if "default" in options:
        return options["default"]
    if _is_combo(kind) and choices:
        return choices[0]
    raise WorkflowError(f"{node_type}: input '{name}' has no value and no default")


def _widget_inputs(node: dict, info: dict) -> dict:
    values = node.get("widgets_values") or []
    slots = widget_slots(info)
    if isinstance(values, dict):  # some node packs save their widgets by name
        return {name: values[name] for name, _ in slots if name in values}
    specs = info["input"].get("required", {}) | info["input"].get("optional", {})
    inputs, i = {}, 0
    for name, width in slots:
        inputs[name] = values[i] if i < len(values) else _default(node["type"], name, specs[name])
        i += width
    return inputs


def _links(workflow: dict) -> dict[int, tuple[str, int, str]]:
    """link id -> (from node, from slot, type)."""
    links = {}
    for link in workflow.get("links") or []:
        if isinstance(link, dict):
            links[link["id"]] = (str(link["origin_id"]), link["origin_slot"], link["type"])
        else:
            links[link[0]] = (str(link[1]), link[2], link[5])
    return links


def _source(link_id: int, nodes: dict[str, dict], links: dict) -> Any:
    """What a link delivers: ``[node, slot]``, a primitive's value, or None when it comes from a muted node."""
    origin, slot, kind = links[link_id]
    node = nodes[origin]
    if node["type"] == "Reroute":
        upstream = node["inputs"][0].get("link") if node.get("inputs") else None
        return None if upstream is None else _source(upstream, nodes, links)
    if node["type"] == "PrimitiveNode":
        return node["widgets_values"][0]
    mode = node.get("mode", 0)
    if mode == MUTED:
        return None
    if mode == BYPASSED:
        # The editor tries the input at the output's index first, then every input, for one of the same type.
        inputs = node.get("inputs") or []
        for i in [slot, *range(len(inputs))]:
            if i < len(inputs) and inputs[i].get("type") == kind and inputs[i].get("link") is not None:
                return _source(inputs[i]["link"], nodes, links)
        return None
    return [origin, slot]


def to_api(workflow: dict, object_info: dict) -> dict[str, dict]:
    """The API-format prompt for a UI-format ``workflow``, using the node schemas of ``object_info``."""
    if (workflow.get("definitions") or {}).get("subgraphs"):
        raise WorkflowError("the workflow contains subgraphs; unpack them in the editor before converting it")
    nodes = {str(node["id"]): node for node in workflow["nodes"]}
    links = _links(workflow)
    prompt = {}
    for node_id, node in nodes.items():
        kind = node["type"]
        if kind in NOTES or kind in ("Reroute", "PrimitiveNode") or node.get("mode", 0) in (MUTED, BYPASSED):
            continue
        if kind not in object_info:
            raise WorkflowError(f"node {node_id} is a '{kind}', which this ComfyUI does not have; install its node pack")
        inputs = _widget_inputs(node, object_info[kind])
        for slot in node.get("inputs") or []:
            if slot.get("link") is None:
                continue
            value = _source(slot["link"], nodes, links)
            if value is not None:
                inputs[(slot.get("widget") or {}).get("name", slot["name"])] = value
        title = node.get("title") or object_info[kind].get("display_name") or kind
        prompt[node_id] = {"class_type": kind, "inputs": inputs, "_meta": {"title": title}}
    return prompt


def api_node(object_info: dict, class_type: str, **inputs: Any) -> dict:
    """One API-format node: ``inputs`` as given, every other required widget at its default (a combo: its first option)."""
    if class_type not in object_info:
        raise WorkflowError(f"this ComfyUI has no node '{class_type}'")
    declared = object_info[class_type]["input"]
    unknown = set(inputs) - set(declared.get("required", {})) - set(declared.get("optional", {}))
    if unknown:
        raise WorkflowError(f"{class_type} has no input(s) {sorted(unknown)}")
    filled = {name: _default(class_type, name, spec) for name, spec in declared.get("required", {}).items()
              if name not in inputs}
    return {"class_type": class_type, "inputs": filled | inputs}


def pick_offered(prompt: dict[str, dict], object_info: dict, class_type: str, name: str) -> list[str]:
    """Set combo ``name`` of every ``class_type`` node whose value this server does not offer to its first option.

    Returns the node ids changed. A linked input is left alone; a combo without options raises.
    """
    changed = []
    for node_id, node in prompt.items():
        if node["class_type"] != class_type or isinstance(node["inputs"].get(name), list):
            continue
        info = object_info[class_type]["input"]
        kind, options = _spec((info.get("required", {}) | info.get("optional", {}))[name])
        choices = kind if isinstance(kind, list) else options.get("options") or []
        if not choices:
            raise WorkflowError(f"{class_type}: this server offers no option for '{name}'")
        if node["inputs"].get(name) not in choices:
            node["inputs"][name] = choices[0]
            changed.append(node_id)
    return changed
