"""The front end: the generated edit registry, the extension's behaviour on stand-in nodes, the node docs."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess

import pytest

from stepaudio_core import edits
from tests.conftest import ROOT

WEB = ROOT / "web"
JS_FILES = [WEB / "js" / "stepaudio.js", WEB / "js" / "edit_registry.js"]
NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="Node.js is not installed (node on PATH runs the JS checks)")


def _schemas(pack) -> dict:
    extension = asyncio.run(pack.comfy_entrypoint())
    return {s.node_id: s for s in (n.define_schema() for n in asyncio.run(extension.get_node_list()))}


def test_registry_js_is_generated_from_edits(tmp_path):
    committed = (WEB / "js" / "edit_registry.js").read_text(encoding="utf-8")
    assert committed == edits.registry_js(), (
        "web/js/edit_registry.js is out of date: run `python -m stepaudio_core.edits --write-js web/js/edit_registry.js`"
    )
    edits.main(["--write-js", str(tmp_path / "r.js")])
    assert (tmp_path / "r.js").read_bytes() == committed.encode("utf-8")
    # the generated module carries the registry itself, not a copy that could drift
    body = committed.split("export const REGISTRY = ", 1)[1].rstrip().rstrip(";")
    assert json.loads(body) == edits.registry()


@needs_node
@pytest.mark.parametrize("path", JS_FILES, ids=lambda p: p.name)
def test_js_parses(path):
    done = subprocess.run([NODE, "--check", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_edit_option_combo_holds_every_registry_option(pack):
    """The extension only narrows the server's list, so that list must hold every option and 'none'."""
    for node_id in ("StepAudioEdit", "StepAudioEditIterate"):
        inputs = {i.id: i for i in _schemas(pack)[node_id].inputs}
        assert inputs["edit_type"].options == list(edits.EDIT_TYPES)
        assert set(inputs["option"].options) == {o for t in edits.EDIT_TYPES.values() for o in t.options} | {"none"}
        assert inputs["option"].default in edits.EDIT_TYPES[inputs["edit_type"].default].options


# ---------------------------------------------------------------- the extension on stand-in nodes

# A stand-in for ComfyUI's front end, just what the extension touches: app.registerExtension, nodes with
# widgets and widget input slots, LGraphNode.configure/serialize's handling of widgets_values, combo
# callbacks, multiline text boxes with a caret, and LiteGraph.ContextMenu.
APP_STUB = "export const app = { registerExtension: (ext) => globalThis.registered.push(ext) };\n"
HARNESS = r"""
globalThis.registered = [];
const menus = [];
globalThis.LiteGraph = { ContextMenu: class { constructor(values, options) { menus.push({ values, options }); } } };
await import("./extensions/pack/js/stepaudio.js");
const [ext] = globalThis.registered;
const specs = JSON.parse(process.argv[2]);

function textBox(value) {
  // like a <textarea>: assigning the value puts the caret at the end
  const el = { focused: false, focus() { this.focused = true; }, setSelectionRange(a, b) { this.selectionStart = a; this.selectionEnd = b; } };
  let v = value;
  Object.defineProperty(el, "value", { get: () => v, set: (x) => { v = x; el.selectionStart = el.selectionEnd = x.length; } });
  el.value = value;
  return el;
}

function makeNode(id) {
  const node = {
    comfyClass: id, widgets: [], inputs: [], dirty: 0,
    addWidget(type, name, value, callback, options) {
      const w = { type, name, value, callback, options: options ?? {} };
      this.widgets.push(w);
      return w;
    },
    setDirtyCanvas() { this.dirty++; },
  };
  for (const s of specs[id]) {
    const w = { name: s.name, type: s.type, options: s.type === "combo" ? { values: s.options } : {}, callback: () => {} };
    if (s.multiline) {
      w.inputEl = textBox(s.value);
      Object.defineProperty(w, "value", { get: () => w.inputEl.value, set: (x) => { w.inputEl.value = x; } });
    } else w.value = s.value;
    node.widgets.push(w);
    if (s.socket) node.inputs.push({ name: s.name, widget: { name: s.name }, link: null });
  }
  ext.nodeCreated(node);
  return node;
}

const widget = (node, name) => node.widgets.find((w) => w.name === name);
const state = (node) => ({
  option: widget(node, "option").value,
  values: [...widget(node, "option").options.values],
  new_text_disabled: !!widget(node, "new_text").disabled,
  button_disabled: !!widget(node, "insert_tag").disabled,
});
// the user picks a value in a combo: the widget sets it, then calls its callback
const pick = (node, name, value) => { const w = widget(node, name); w.value = value; w.callback(value); return state(node); };
// LGraphNode.serialize and LGraphNode.configure, for the widgets
const serialize = (node) => node.widgets.filter((w) => w.serialize !== false).map((w) => w.value);
function configure(node, values) {
  for (const [i, input] of node.inputs.entries()) node.onConnectionsChange?.(1, i, false, null, input);
  const withValue = node.widgets.filter((w) => w.serialize !== false);
  values.forEach((v, i) => { if (withValue[i]) withValue[i].value = v; });
  node.onConfigure?.({ widgets_values: values });
  return node;
}
function clickTag(node, tag) {
  const before = menus.length;
  widget(node, "insert_tag").callback(widget(node, "insert_tag"), null, node, [0, 0], { type: "pointerdown" });
  const menu = menus[before];
  menu.options.callback(tag);
  return menu;
}

const out = {};
const edit = makeNode("StepAudioEdit");
out.created = state(edit);
out.widget_names = edit.widgets.map((w) => w.name);
out.button = { serialize: widget(edit, "insert_tag").serialize, option_serialize: widget(edit, "insert_tag").options.serialize };
out.to_style = pick(edit, "edit_type", "style");
out.style_whisper = pick(edit, "option", "whisper");
out.to_denoise = pick(edit, "edit_type", "denoise");
out.to_paralinguistic = pick(edit, "edit_type", "paralinguistic");
pick(edit, "edit_type", "emotion");
pick(edit, "option", "remove");
out.emotion_remove_to_style = pick(edit, "edit_type", "style");

const text = widget(edit, "new_text");
text.value = "I can't believe it really worked.";
text.inputEl.selectionStart = text.inputEl.selectionEnd = 19;
const menu = clickTag(edit, "[Laughter]");
out.menu = { values: menu.values, title: menu.options.title, has_event: !!menu.options.event };
out.inserted = { value: text.value, caret: text.inputEl.selectionStart, focused: text.inputEl.focused };
text.inputEl.selectionStart = 2; text.inputEl.selectionEnd = 7;
clickTag(edit, "[Sigh]");
out.replaced_selection = text.value;
text.value = "plain";
text.inputEl.selectionStart = text.inputEl.selectionEnd = 2;
clickTag(edit, "[Uhm]");
out.inside_word = text.value;
text.value = "我觉得挺好的";
text.inputEl.selectionStart = text.inputEl.selectionEnd = 3;
clickTag(edit, "[Sigh]");
out.chinese = text.value;

const saved = ["style", "whisper", "soft [Sigh] voice", 42, "fixed", 20];
const loaded = configure(makeNode("StepAudioEdit"), saved);
out.loaded = { state: state(loaded), serialized: serialize(loaded) };
out.loaded_old = serialize(configure(makeNode("StepAudioEdit"), saved.slice(0, 5)));
const odd = configure(makeNode("StepAudioEdit"), ["denoise", "happy", "", 0, "fixed"]);
out.loaded_odd = state(odd);

const linked = makeNode("StepAudioEdit");
linked.inputs.find((i) => i.name === "edit_type").link = 7;
linked.onConnectionsChange(1, 0, true, null, linked.inputs[0]);
out.linked = state(linked);

const iterate = makeNode("StepAudioEditIterate");
out.iterate_to_speed = pick(iterate, "edit_type", "speed");
out.iterate_serialized = serialize(configure(makeNode("StepAudioEditIterate"), ["speed", "more slower", "", 1, "fixed", 3, "token space (faster, not the reference)", 5, 20]));

const clone = makeNode("StepAudioClone");
widget(clone, "text").value = "Hello there.";
clickTag(clone, "[Breathing]");
out.clone = { names: clone.widgets.map((w) => w.name), text: widget(clone, "text").value, button_disabled: !!widget(clone, "insert_tag").disabled };
out.decode_names = makeNode("StepAudioDecode").widgets.map((w) => w.name);
const dialogue = makeNode("StepAudioDialogue");
widget(dialogue, "script").value = "[Bob|happy] Oh, hi!";
const dialogueMenu = clickTag(dialogue, "[Laughter]");
out.dialogue = { text: widget(dialogue, "script").value, title: dialogueMenu.options.title,
                 last: dialogue.widgets[dialogue.widgets.length - 1].name };
console.log(JSON.stringify(out));
"""


def _widget_specs(schema) -> list[dict]:
    """The widgets ComfyUI's front end makes for a V3 schema, in order (seed gets its control_after_generate)."""
    specs = []
    for i in schema.inputs:
        kind = i.io_type
        if kind == "COMBO":
            specs.append({"name": i.id, "type": "combo", "value": i.default or i.options[0], "options": list(i.options)})
        elif kind in ("INT", "FLOAT"):
            specs.append({"name": i.id, "type": "number", "value": i.default, "socket": True})
            if getattr(i, "control_after_generate", None):
                specs.append({"name": "control_after_generate", "type": "combo", "value": "fixed",
                              "options": ["fixed", "increment", "decrement", "randomize"], "socket": False})
                continue
        elif kind == "STRING":
            specs.append({"name": i.id, "type": "customtext" if i.multiline else "text", "value": i.default or "",
                          "multiline": bool(i.multiline)})
        else:
            continue  # a socket only (model, prompt, audio, ...): no widget
        specs[-1].setdefault("socket", True)
    return specs


@pytest.fixture
def extension_run(pack, tmp_path):
    if NODE is None:
        pytest.skip("Node.js is not installed (node on PATH runs the JS checks)")
    js = tmp_path / "extensions" / "pack" / "js"
    js.mkdir(parents=True)
    for f in JS_FILES:
        shutil.copy(f, js / f.name)
    # the extension imports ../../../scripts/app.js, as it sits in /extensions/<pack>/js/ on a ComfyUI server
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "app.js").write_text(APP_STUB)
    (tmp_path / "package.json").write_text('{"type": "module"}')
    (tmp_path / "harness.js").write_text(HARNESS)
    specs = {node_id: _widget_specs(s) for node_id, s in _schemas(pack).items()}
    done = subprocess.run([NODE, "harness.js", json.dumps(specs)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), specs


def _options(edit_type: str) -> list[str]:
    return list(edits.EDIT_TYPES[edit_type].options) or ["none"]


def test_option_list_follows_edit_type(extension_run):
    out, _ = extension_run
    assert out["created"] == {"option": "happy", "values": _options("emotion"), "new_text_disabled": True,
                              "button_disabled": True}
    # a type change moves an option that does not fit to the type's first one
    assert out["to_style"]["option"] == "serious" and out["to_style"]["values"] == _options("style")
    assert out["style_whisper"]["option"] == "whisper"
    assert out["to_denoise"] == {"option": "none", "values": ["none"], "new_text_disabled": True,
                                 "button_disabled": True}
    assert out["to_paralinguistic"] == {"option": "none", "values": ["none"], "new_text_disabled": False,
                                        "button_disabled": False}
    # ... and keeps one that does ('remove' is both an emotion and a style option)
    assert out["emotion_remove_to_style"]["option"] == "remove"
    assert out["iterate_to_speed"]["option"] == "faster" and out["iterate_to_speed"]["values"] == _options("speed")


def test_loading_a_workflow_keeps_its_values(extension_run):
    out, _ = extension_run
    assert out["loaded"]["state"] == {"option": "whisper", "values": _options("style"), "new_text_disabled": True,
                                      "button_disabled": True}
    assert out["loaded"]["serialized"] == ["style", "whisper", "soft [Sigh] voice", 42, "fixed", 20]
    # a workflow saved before max_piece_seconds existed keeps its values and gets the default for it
    assert out["loaded_old"] == ["style", "whisper", "soft [Sigh] voice", 42, "fixed", 15]
    # a value saved without the extension is not rewritten on load: the server reports it if it matters
    assert out["loaded_odd"]["option"] == "happy" and out["loaded_odd"]["values"] == ["none"]
    assert out["iterate_serialized"] == ["speed", "more slower", "", 1, "fixed", 3,
                                         "token space (faster, not the reference)", 5, 20]


def test_widgets_values_keep_the_schema_order(extension_run):
    """The tag button is appended after the node's own widgets and never serialized."""
    out, specs = extension_run
    own = [s["name"] for s in specs["StepAudioEdit"]]
    assert out["widget_names"] == [*own, "insert_tag"]
    assert out["button"] == {"serialize": False, "option_serialize": False}
    assert out["clone"]["names"] == [*(s["name"] for s in specs["StepAudioClone"]), "insert_tag"]
    assert out["decode_names"] == [s["name"] for s in specs["StepAudioDecode"]]


def test_linked_edit_type_offers_every_option(extension_run, pack):
    out, _ = extension_run
    everything = {i.id: i for i in _schemas(pack)["StepAudioEdit"].inputs}["option"].options
    assert out["linked"]["values"] == list(everything)
    assert not out["linked"]["new_text_disabled"]


def test_tags_go_in_at_the_caret(extension_run):
    out, _ = extension_run
    assert out["menu"] == {"values": list(edits.PARALINGUISTIC_TAGS), "title": "Insert into new_text",
                           "has_event": True}
    assert out["inserted"] == {"value": "I can't believe it [Laughter] really worked.", "caret": 30, "focused": True}
    assert out["replaced_selection"] == "I [Sigh] believe it [Laughter] really worked."
    # a space keeps Latin words apart; Chinese takes the tag as it is
    assert out["inside_word"] == "pl [Uhm] ain"
    assert out["chinese"] == "我觉得[Sigh]挺好的"
    # a text box never clicked into has its caret at the end
    assert out["clone"]["text"] == "Hello there.[Breathing]" and not out["clone"]["button_disabled"]
    assert out["dialogue"] == {"text": "[Bob|happy] Oh, hi![Laughter]", "title": "Insert into script",
                               "last": "insert_tag"}


# ---------------------------------------------------------------- node docs


def _doc(node_id: str) -> str:
    path = WEB / "docs" / f"{node_id}.md"
    assert path.is_file(), f"web/docs/{node_id}.md is missing: every node needs its help page"
    return path.read_text(encoding="utf-8")


def test_every_node_has_a_doc_that_names_its_inputs_and_outputs(pack):
    schemas = _schemas(pack)
    assert len(schemas) == 9
    for node_id, schema in schemas.items():
        doc = _doc(node_id)
        assert doc.startswith(f"# {schema.display_name}\n"), f"{node_id}.md should open with its display name"
        for item in schema.inputs + schema.outputs:
            assert f"**{item.id}**" in doc, f"web/docs/{node_id}.md does not describe '{item.id}'"
        assert "## Inputs" in doc and re.search(r"^## Outputs?$", doc, re.M), node_id


def test_docs_list_every_edit_option_tag_and_language():
    edit = _doc("StepAudioEdit")
    for name, t in edits.EDIT_TYPES.items():
        row = next((line for line in edit.splitlines() if line.startswith(f"| `{name}` |")), None)
        assert row is not None, f"StepAudioEdit.md has no table row for edit type '{name}'"
        for option in t.options or ("none",):
            assert f"`{option}`" in row, f"StepAudioEdit.md's '{name}' row lacks option '{option}'"
    for doc in (edit, _doc("StepAudioClone")):
        for tag in edits.PARALINGUISTIC_TAGS:
            assert f"`{tag}`" in doc, f"a doc lacks the tag {tag}"
    clone = _doc("StepAudioClone")
    for language in edits.LANGUAGE_TAGS:
        assert language in clone
