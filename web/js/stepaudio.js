// StepAudio nodes in the ComfyUI front end:
// - Edit / Edit (iterate): the `option` list follows `edit_type`, and `new_text` is dimmed unless the type
//   is paralinguistic. Widgets are never added in front of or removed from the node's own widgets, so
//   `widgets_values` keeps its order and workflows load the same with or without this extension.
// - Edit, Edit (iterate), Clone and Dialogue get an "insert tag" button that puts a paralinguistic tag such as
//   [Laughter] at the caret of their text box.
// The edit types, options and tags come from the generated edit_registry.js (from stepaudio_core/edits.py).
import { app } from "../../../scripts/app.js";
import { NO_OPTION, REGISTRY } from "./edit_registry.js";

// node id -> the multiline text input that tags go into
const TAG_TARGETS = {
  StepAudioEdit: "new_text", StepAudioEditIterate: "new_text", StepAudioClone: "text", StepAudioDialogue: "script",
};
const EDIT_NODES = new Set(["StepAudioEdit", "StepAudioEditIterate"]);

const findWidget = (node, name) => node.widgets?.find((w) => w.name === name);
const isLinked = (node, name) => !!node.inputs?.some((i) => i.widget?.name === name && i.link != null);

// Run `extra` after whatever `owner[key]` already did (another extension or the front end may have set it).
function chain(owner, key, extra) {
  const before = owner[key];
  owner[key] = function (...args) {
    const result = before?.apply(this, args);
    extra.apply(this, args);
    return result;
  };
}

/** The options of an edit type, as the option list shows them; null for a type this registry does not know. */
export function optionsFor(editType) {
  const type = REGISTRY.edit_types[editType];
  if (!type) return null;
  return type.options.length ? [...type.options] : [NO_OPTION];
}

/**
 * `value` with `tag` in place of the characters start..end, and the caret position just after it. A space
 * goes between the tag and a Latin letter or digit, so English words stay apart; Chinese text gets none.
 */
export function spliceTag(value, start, end, tag) {
  const from = Math.max(0, Math.min(start, value.length));
  const to = Math.max(from, Math.min(end, value.length));
  const word = /[A-Za-z0-9]/;
  const text = (word.test(value.charAt(from - 1)) ? " " : "") + tag + (word.test(value.charAt(to)) ? " " : "");
  return [value.slice(0, from) + text + value.slice(to), from + text.length];
}

/** Put `tag` at the caret of a multiline text widget (replacing any selection), as if it had been typed. */
export function insertTag(textWidget, tag) {
  const el = textWidget.inputEl ?? textWidget.element;
  const value = String(textWidget.value ?? "");
  // A text box that was never focused has its caret at the end, so the tag is appended.
  const start = el?.selectionStart ?? value.length;
  const [next, caret] = spliceTag(value, start, el?.selectionEnd ?? start, tag);
  textWidget.value = next;
  if (el) {
    el.focus?.();
    el.setSelectionRange?.(caret, caret);
  }
  textWidget.callback?.(next);
  return next;
}

function addTagButton(node, textName) {
  const text = findWidget(node, textName);
  if (!text) return null;
  // Appended last and never serialized: the node's widgets_values stay exactly what the server defined.
  const button = node.addWidget("button", "insert_tag", null, (_widget, _canvas, _node, _pos, event) => {
    new globalThis.LiteGraph.ContextMenu(REGISTRY.paralinguistic_tags, {
      event,
      title: `Insert into ${textName}`,
      callback: (tag) => {
        insertTag(text, tag);
        node.setDirtyCanvas?.(true, true);
      },
    });
  }, { serialize: false });
  button.serialize = false;
  button.label = `insert tag into ${textName}…`;
  return button;
}

function setUpEdit(node, button) {
  const type = findWidget(node, "edit_type");
  const option = findWidget(node, "option");
  const text = findWidget(node, "new_text");
  if (!type || !option) return;
  // The server sends every option of every type; the list is narrowed per node, never edited in place.
  const everything = [...option.options.values];

  // `switchInvalid` only when the user picks another type: a value restored from a workflow is kept.
  const refresh = (switchInvalid) => {
    // A linked edit_type is only known when the prompt runs, so everything stays available.
    const valid = (!isLinked(node, "edit_type") && optionsFor(type.value)) || everything;
    option.options.values = valid;
    if (switchInvalid && !valid.includes(option.value)) {
      option.value = valid[0];
      option.callback?.(option.value);
    }
    const edit = isLinked(node, "edit_type") ? null : REGISTRY.edit_types[type.value];
    const usesText = !edit || edit.needs_new_text;
    if (text) text.disabled = !usesText;
    if (button) button.disabled = !usesText;
    node.setDirtyCanvas?.(true, true);
  };

  chain(type, "callback", () => refresh(true));
  chain(node, "onConfigure", () => refresh(false));
  chain(node, "onConnectionsChange", () => refresh(false));
  refresh(false);
}

app.registerExtension({
  name: "StepAudio.EditX",
  nodeCreated(node) {
    const id = node.comfyClass ?? node.type;
    if (!(id in TAG_TARGETS)) return;
    const button = addTagButton(node, TAG_TARGETS[id]);
    if (EDIT_NODES.has(id)) setUpEdit(node, button);
  },
});
