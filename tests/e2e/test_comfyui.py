"""The pack inside a real ComfyUI: registration, prompts over the HTTP API, example workflows, /free, /interrupt.

Runs only where COMFYUI_DIR points at a ComfyUI checkout (see conftest.py); one server for the module.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import uuid
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from stepaudio_core import budgets
from stepaudio_core.codes import GROUP
from stepaudio_core.dialogue import parse_script
from stepaudio_core.lm.generate import max_new_tokens_for
from stepaudio_core.longform import split_text
from tests.conftest import FIXTURES, ROOT
from tests.e2e.comfy_server import PACK_FOLDER, messages
from tests.e2e.conftest import E2E_ASR_MODEL
from tests.e2e.workflow_api import api_node, pick_offered, to_api, widget_slots

WORKFLOWS = sorted((ROOT / "example_workflows").glob("*.json"))
SAMPLE_RATE = 24000
# The recordings the example workflows' Load Audio nodes name (a user uploads their own there), and the file
# the test puts into the server's input folder under each name.
EXAMPLE_INPUTS = {
    "stepaudio_reference.wav": FIXTURES / "audio" / "en2_24k.wav",
    "stepaudio_reference_2.wav": FIXTURES / "audio" / "en1_24k.wav",  # a second voice, for the dialogue
    # 80 s built from the fixture voices (tests/long_recording.py), written on first use rather than committed
    "stepaudio_long_recording.wav": Path(tempfile.gettempdir()) / "stepaudio_e2e" / "stepaudio_long_recording.wav",
}


def example_input(name: str) -> Path:
    """The file for a Load Audio name of the examples; generated ones are written on first use."""
    path = EXAMPLE_INPUTS[name]
    if name == "stepaudio_long_recording.wav" and not path.is_file():
        from tests.long_recording import SAMPLE_RATE as LONG_RATE
        from tests.long_recording import build

        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, build().wav.numpy(), LONG_RATE)
    return path
# Tiny random models seldom pick the stop token, so a generation mostly runs to its whole budget. Two example
# workflows cannot run as saved with them, so the test changes one value in each; everything else runs as
# saved. Edit (iterate) in audio round trip edits each pass's audio, and an edit may produce 2.5 x its input
# + 5 s: the passes grow 2.5 -> 11 -> 34 s, and the third would edit its 34 s input in pieces, each run to its
# 30 s budget (minutes of CPU; a trained model keeps the length). Token space edits every pass within the recording's 11 s budget. The long
# text's two pieces would get 53 s and 27 s (about 200 s of CPU); 2 s each still shows the split.
SPEED_UPS = {
    "stepaudio_iterate_style": ("StepAudioEditIterate", "mode", "token space (faster, not the reference)"),
    "stepaudio_longform_clone": ("StepAudioClone", "max_seconds", 2.0),
    # Each dialogue line's clone would get 7-9 s, and an edited line 2.5 x that + 5 s more.
    "stepaudio_dialogue": ("StepAudioDialogue", "max_seconds", 1.0),
    # seven pieces run to their 30 s budgets (about 210 s of audio): one flow step decodes it in seconds
    "stepaudio_edit_long": ("StepAudioDecode", "flow_steps", 1),
}
CORE_MODULES = re.compile(r"^(nodes|comfy_extras\.\w+)$")


def pack_schemas(pack) -> dict:
    """The pack's own node schemas, by node id, from its entry point (as ComfyUI gets them)."""
    extension = asyncio.run(pack.comfy_entrypoint())
    return {schema.node_id: schema for schema in (node.GET_SCHEMA() for node in asyncio.run(extension.get_node_list()))}


def write_voice_clip(path: Path, seconds: float = 3.0, sample_rate: int = SAMPLE_RATE) -> None:
    """A voice-like recording: a buzz at a gliding 120-160 Hz pitch with its harmonics, and a little noise."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    phase = 2 * np.pi * np.cumsum(140 + 20 * np.sin(2 * np.pi * 0.5 * t)) / sample_rate
    wav = 0.1 * sum(np.sin(k * phase) / k for k in range(1, 8))
    wav += 0.01 * np.random.default_rng(0).standard_normal(t.size)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, wav.astype(np.float32), sample_rate)


def fetch_clip(server, item: dict) -> tuple[np.ndarray, int]:
    """One audio file a node produced, fetched over /view and decoded: (samples [T, C], rate)."""
    wav, rate = sf.read(io.BytesIO(server.view(item)), dtype="float32", always_2d=True)
    seconds = wav.shape[0] / rate
    assert 0.05 <= seconds <= 600, f"{item['filename']} lasts {seconds:.3f} s"
    assert np.isfinite(wav).all() and np.abs(wav).max() <= 1.0, f"{item['filename']} holds invalid samples"
    return wav, rate


def fetch_audio(server, entry: dict) -> list[tuple[np.ndarray, int]]:
    """Every audio file the prompt's output nodes produced, fetched over /view and decoded: (samples [T, C], rate)."""
    return [fetch_clip(server, item) for output in entry["outputs"].values() for item in output.get("audio", [])]


def loader_preview(object_info: dict, models_folder: Path, **loader) -> dict:
    """Model Loader -> Preview Any: the Loader is not an output node, so a core output node makes the prompt run."""
    return {
        "1": api_node(object_info, "StepAudioModelLoader", models_folder=str(models_folder), **loader),
        "2": api_node(object_info, "PreviewAny", source=["1", 0]),
    }


def blur_chain(object_info: dict, length: int) -> dict:
    """A prompt of ``length`` slow core nodes (about half a second each on two CPU cores); never cached."""
    color = uuid.uuid4().int % 0xFFFFFF
    prompt = {"0": api_node(object_info, "EmptyImage", width=512, height=512, color=color)}
    for i in range(1, length + 1):
        prompt[str(i)] = api_node(object_info, "ImageBlur", image=[str(i - 1), 0], blur_radius=31, sigma=5.0)
    prompt[str(length + 1)] = api_node(object_info, "PreviewAny", source=[str(length), 0])
    return prompt


def cached_nodes(entry: dict) -> list[str]:
    return [node for m in messages(entry, "execution_cached") for node in m["nodes"]]


def test_object_info_lists_every_pack_node_with_its_schema(object_info, pack):
    ours = pack_schemas(pack)
    assert {k for k in object_info if k.startswith("StepAudio")} == set(ours)
    for node_id, schema in ours.items():
        info = object_info[node_id]
        assert (info["display_name"], info["category"], info["description"], info["output_node"]) == (
            schema.display_name, schema.category, schema.description, schema.is_output_node)
        for section, optional in (("required", False), ("optional", True)):
            served = info["input"].get(section, {})
            kinds = [(name, "COMBO" if isinstance(served[name][0], list) else served[name][0])
                     for name in info["input_order"].get(section, [])]
            assert kinds == [(i.id, i.io_type) for i in schema.inputs if bool(i.optional) == optional], (node_id, section)
        assert info["output"] == [o.io_type for o in schema.outputs], node_id
        assert info["output_is_list"] == [o.is_output_list for o in schema.outputs], node_id


def test_models_folder_from_extra_model_paths_is_offered(object_info, models_folder):
    _, options = object_info["StepAudioModelLoader"]["input"]["required"]["models_folder"]
    assert str(models_folder) in options["options"]


def test_loader_prompt_runs(comfy_server, object_info, models_folder):
    entry = comfy_server.run(loader_preview(object_info, models_folder), timeout=120)
    (text,) = entry["outputs"]["2"]["text"]
    assert models_folder.name in text, f"the model handle should name its folder; Preview Any showed {text!r}"


def test_ui_workflow_converts_with_the_servers_schemas(comfy_server, object_info, models_folder):
    def node(id_, type_, inputs=(), widgets=(), mode=0):
        return {"id": id_, "type": type_, "mode": mode, "widgets_values": list(widgets),
                "inputs": [{"name": name, "type": kind, "link": link} for name, kind, link in inputs]}

    def workflow(decode_mode):
        return {
            "nodes": [
                node(1, "StepAudioModelLoader", widgets=[str(models_folder), "auto", "fp32"]),
                node(2, "Reroute", inputs=[("", "*", 1)]),
                # The editor stores the seed's control mode after the seed: [seed, "randomize", flow_steps].
                node(3, "StepAudioDecode", [("model", "STEP_AUDIO_MODEL", 2), ("tokens", "STEP_AUDIO_TOKENS", None)],
                     widgets=[1234, "randomize", 4], mode=decode_mode),
                node(4, "PreviewAny", [("source", "*", 3)]),
                node(5, "Note", widgets=["Loads the tiny model folder."]),
                node(6, "LoadAudio", widgets=["voice.wav", None, None]),
                node(7, "AudioAdjustVolume", [("audio", "AUDIO", 4)], widgets=[6], mode=4),
                node(8, "SaveAudio", [("audio", "AUDIO", 5)], widgets=["stepaudio_e2e/x"]),
            ],
            "links": [[1, 1, 0, 2, 0, "STEP_AUDIO_MODEL"], [2, 2, 0, 3, 0, "STEP_AUDIO_MODEL"],
                      [3, 2, 0, 4, 0, "STEP_AUDIO_MODEL"], [4, 6, 0, 7, 0, "AUDIO"], [5, 7, 0, 8, 0, "AUDIO"]],
        }

    prompt = to_api(workflow(decode_mode=0), object_info)
    assert set(prompt) == {"1", "3", "4", "6", "8"}
    # widgets saved before the Loader grew quantization and download take their defaults
    assert prompt["1"]["inputs"] == {"models_folder": str(models_folder), "device": "auto", "dtype": "fp32",
                                     "quantization": "none", "download": False}
    assert prompt["3"]["inputs"] == {"model": ["1", 0], "seed": 1234, "flow_steps": 4}
    assert prompt["4"]["inputs"] == {"source": ["1", 0]}
    assert prompt["8"]["inputs"] == {"audio": ["6", 0], "filename_prefix": "stepaudio_e2e/x"}

    runnable = to_api(workflow(decode_mode=2), object_info)
    assert "3" not in runnable
    for audio_node in ("6", "8"):
        del runnable[audio_node]
    entry = comfy_server.run(runnable, timeout=120)
    assert models_folder.name in entry["outputs"]["4"]["text"][0]


def test_clone_and_decode_save_24khz_mono_audio(comfy_server, object_info, models_folder):
    missing = [n for n in ("StepAudioEncode", "StepAudioClone", "StepAudioDecode") if n not in object_info]
    if missing:
        pytest.skip(f"{', '.join(missing)} not registered by the pack yet")
    write_voice_clip(comfy_server.input_dir / "stepaudio_e2e_voice.wav")
    prompt = {
        "1": api_node(object_info, "StepAudioModelLoader", models_folder=str(models_folder)),
        "2": api_node(object_info, "LoadAudio", audio="stepaudio_e2e_voice.wav"),
        "3": api_node(object_info, "StepAudioEncode", model=["1", 0], audio=["2", 0],
                      transcript="This is a short test recording."),
        "4": api_node(object_info, "StepAudioClone", model=["1", 0], prompt=["3", 0], text="Hello from the tests."),
        "5": api_node(object_info, "StepAudioDecode", model=["1", 0], tokens=["4", 0]),
        "6": api_node(object_info, "SaveAudio", audio=["5", 0], filename_prefix="stepaudio_e2e/clone"),
    }
    entry = comfy_server.run(prompt, timeout=600)
    clips = fetch_audio(comfy_server, entry)
    assert [(wav.shape[1], rate) for wav, rate in clips] == [(1, SAMPLE_RATE)]


# ---------------------------------------------------------------- example workflows


def load_workflow(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def decoded_max(budget: float) -> float:
    """The longest audio a generation given ``budget`` seconds decodes to: its whole groups of five, 0.12 s each."""
    return (max_new_tokens_for(budget) - 1) // GROUP * 0.12


def edit_max(seconds: float) -> float:
    """The longest result of one edit pass of ``seconds`` of audio, from the pipeline's own budget rule."""
    return decoded_max(budgets.edit_seconds(seconds))


def dialogue_silence(script, pause: float) -> float:
    """Seconds of silence a dialogue puts between (and around) its lines."""
    gaps = [line.pause_before if line.pause_before is not None else (pause if i else 0.0)
            for i, line in enumerate(script.lines)]
    return sum(gaps) + script.pause_after


def widget_value(prompt: dict, node_id: str, name: str):
    """An input's value; one fed by a link is the value of the String node it comes from."""
    value = prompt[node_id]["inputs"][name]
    if isinstance(value, list):
        source = prompt[value[0]]
        assert source["class_type"].startswith("PrimitiveString"), f"node {node_id}: '{name}' comes from a {source['class_type']}"
        value = source["inputs"]["value"]
    return value


def max_seconds(prompt: dict, source: list) -> list[float]:
    """Upper bounds on the duration of the audio output ``source`` = [node, slot] carries: one per item of a list
    output, else one. Derived from the token budgets the pipeline gives each generation (tiny random models use
    all of it), and from what the core audio nodes do to durations."""
    node_id, slot = source
    node = prompt[node_id]
    kind, inputs = node["class_type"], node["inputs"]

    def upstream(name: str) -> float:
        (bound,) = max_seconds(prompt, inputs[name])
        return bound

    if kind == "LoadAudio":
        return [sf.info(example_input(inputs["audio"])).duration]
    if kind in ("StepAudioEncode", "StepAudioDecode"):
        return [upstream("audio" if kind == "StepAudioEncode" else "tokens")]
    if kind == "StepAudioClone":
        cap = widget_value(prompt, node_id, "max_seconds")
        pieces = split_text(widget_value(prompt, node_id, "text"))
        return [sum(decoded_max(budgets.clone_seconds(p, cap)) for p in pieces)]
    if kind == "StepAudioEdit":
        seconds = upstream("prompt")
        if seconds <= inputs["max_piece_seconds"]:
            return [edit_max(seconds)]
        # a long edit: each piece within its own budget, the pauses between them as they were
        from stepaudio_core.segment import segment

        source = prompt[inputs["prompt"][0]]["inputs"]["audio"][0]
        wav, rate = sf.read(example_input(prompt[source]["inputs"]["audio"]), dtype="float32")
        layout = segment(torch.from_numpy(wav), rate, inputs["max_piece_seconds"])
        return [sum(edit_max(len(p) / rate) for p in layout.pieces) + sum(len(p) for p in layout.pauses) / rate]
    if kind == "StepAudioEditIterate":
        source_seconds, passes = upstream("prompt"), []
        for _ in range(inputs["iterations"]):
            # audio round trip edits the previous pass's audio; token space keeps the recording's budget
            passes.append(edit_max(passes[-1] if passes and inputs["mode"].startswith("audio") else source_seconds))
        return passes if slot == 0 else [passes[-1]]
    if kind == "StepAudioDialogue":
        script = parse_script(widget_value(prompt, node_id, "script"))
        cap, lines = inputs["max_seconds"], []
        for line in script.lines:
            pieces = [decoded_max(budgets.clone_seconds(p, cap)) for p in split_text(line.text)]
            lines.append(sum(edit_max(p) if line.instruction else p for p in pieces))  # an edit is of the clone
        if slot == 1:
            return lines
        return [sum(lines) + dialogue_silence(script, inputs["pause"])]
    if kind == "AudioConcat":
        return [upstream("audio1") + upstream("audio2")]
    if kind == "TrimAudioDuration":
        assert inputs["start_index"] >= 0
        return [min(inputs["duration"], upstream("audio") - inputs["start_index"])]
    raise AssertionError(f"no duration bound for a {kind}: teach max_seconds() what it does to durations")


def example_prompt(path: Path, object_info: dict, server, models_folder: Path) -> dict:
    """The API prompt of an example workflow, as this test server runs it."""
    prompt = to_api(load_workflow(path), object_info)
    # The saved models_folder names a folder of the machine it was saved on; like a user, take the one this
    # server offers (the harness's extra_model_paths.yaml makes that the tiny bundle).
    pick_offered(prompt, object_info, "StepAudioModelLoader", "models_folder")
    for node in prompt.values():
        if node["class_type"] == "StepAudioModelLoader":
            assert node["inputs"]["models_folder"] == str(models_folder)
        elif node["class_type"] == "StepAudioASRLoader":
            # the saved whisper-large-v3-turbo is the user's; this server has the tiny one in models_folder/asr/
            assert E2E_ASR_MODEL in object_info["StepAudioASRLoader"]["input"]["required"]["asr_model"][1]["options"]
            node["inputs"]["asr_model"] = E2E_ASR_MODEL
        elif node["class_type"] == "LoadAudio":
            name = node["inputs"]["audio"]
            assert name in EXAMPLE_INPUTS, f"{path.name} loads '{name}': use one of {sorted(EXAMPLE_INPUTS)}"
            shutil.copy(example_input(name), server.input_dir / name)
    if path.stem in SPEED_UPS:
        class_type, name, value = SPEED_UPS[path.stem]
        targets = [node for node in prompt.values() if node["class_type"] == class_type]
        assert targets, f"{path.name} has no {class_type} for its speed-up"
        for node in targets:
            node["inputs"][name] = value
    return prompt


def test_example_workflow_runs_on_the_awq_folder(comfy_server, object_info, models_folder):
    """The Loader offers Step-Audio-EditX-AWQ-4bit beside the full folder, and an example workflow runs on it."""
    awq = str(models_folder / "Step-Audio-EditX-AWQ-4bit")
    _, options = object_info["StepAudioModelLoader"]["input"]["required"]["models_folder"]
    assert awq in options["options"]
    prompt = example_prompt(ROOT / "example_workflows" / "stepaudio_edit_emotion.json", object_info, comfy_server,
                            models_folder)
    for node in prompt.values():
        if node["class_type"] == "StepAudioModelLoader":
            node["inputs"]["models_folder"] = awq
    entry = comfy_server.run(prompt, timeout=600)
    clips = fetch_audio(comfy_server, entry)
    assert clips and all(rate == SAMPLE_RATE for _, rate in clips)


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
def test_example_workflow_runs_and_saves_audio(comfy_server, object_info, models_folder, path):
    prompt = example_prompt(path, object_info, comfy_server, models_folder)
    started = time.monotonic()
    entry = comfy_server.run(prompt, timeout=600)
    took = time.monotonic() - started
    audio_nodes = {node_id: node for node_id, node in prompt.items() if node["class_type"] in ("PreviewAudio", "SaveAudio")}
    assert audio_nodes, f"{path.name} has no Preview Audio or Save Audio node"
    clips = {}
    for node_id, node in audio_nodes.items():
        items = entry["outputs"].get(node_id, {}).get("audio", [])
        clips[node_id] = [fetch_clip(comfy_server, item) for item in items]
        bounds = max_seconds(prompt, node["inputs"]["audio"])
        seconds = [wav.shape[0] / rate for wav, rate in clips[node_id]]
        print(f"{path.stem} ({took:.0f} s): node {node_id} {node['_meta']['title']!r}: "
              f"{', '.join(f'{s:.2f}' for s in seconds)} s (at most {', '.join(f'{b:.2f}' for b in bounds)})")
        # A list output (every pass of Edit (iterate)) makes the audio node run once per item.
        assert len(seconds) == len(bounds), f"node {node_id} saved {len(seconds)} clips, expected {len(bounds)}"
        for (wav, rate), s, bound in zip(clips[node_id], seconds, bounds):
            assert rate == SAMPLE_RATE and wav.shape[1] in (1, 2)
            assert s <= bound + 1e-6, f"node {node_id}: {s:.3f} s is longer than the token budget allows ({bound:.3f} s)"

    # Output nodes fed by the same output hold the same audio (Preview and Save of one Decode).
    by_source = {}
    for node_id, node in audio_nodes.items():
        by_source.setdefault(tuple(node["inputs"]["audio"]), []).append(node_id)
    for node_ids in by_source.values():
        first = clips[node_ids[0]]
        for other in node_ids[1:]:
            assert [w.tolist() for w, _ in clips[other]] == [w.tolist() for w, _ in first]

    # What each workflow is for, beyond "it runs".
    for node_id, node in audio_nodes.items():
        source, slot = node["inputs"]["audio"]
        kind = prompt[source]["class_type"]
        if kind.startswith("StepAudio"):
            assert all(wav.shape[1] == 1 for wav, _ in clips[node_id]), "StepAudio audio is mono"
        if kind == "StepAudioEditIterate" and slot == 1:  # final: the last of the passes another node previews
            passes = [i for i, n in audio_nodes.items() if n["inputs"]["audio"] == [source, 0]]
            for i in passes:
                np.testing.assert_array_equal(clips[i][-1][0], clips[node_id][0][0])
        if kind == "TrimAudioDuration":  # edit_then_core_audio: the original recording, then the edited one
            (wav, _), = clips[node_id]
            original, _ = sf.read(EXAMPLE_INPUTS["stepaudio_reference.wav"], dtype="float32")
            assert wav.shape[1] == 2, "Audio Concat makes stereo"
            assert wav.shape[0] > original.shape[0], "the edited audio is missing after the original"
            np.testing.assert_allclose(wav[: original.shape[0]], np.stack([original, original], 1), atol=1.5 / 32768)
        if kind == "StepAudioDialogue" and slot == 0:  # the scene: every line, and the pauses between them
            script = parse_script(widget_value(prompt, source, "script"))
            line_nodes = [i for i, n in audio_nodes.items() if n["inputs"]["audio"] == [source, 1]]
            assert line_nodes, "the dialogue example saves its lines"
            lines = [wav for wav, _ in clips[line_nodes[0]]]
            assert len(lines) == len(script.lines)
            silence = round(dialogue_silence(script, prompt[source]["inputs"]["pause"]) * SAMPLE_RATE)
            (scene, _), = clips[node_id]
            assert scene.shape[0] == sum(w.shape[0] for w in lines) + silence
            subtitles = [o["text"][0] for i, o in entry["outputs"].items() if prompt[i]["class_type"] == "PreviewAny"]
            assert [s.count(" --> ") for s in subtitles] == [len(script.lines)], subtitles
        if kind == "StepAudioDecode":
            tokens_from = prompt[prompt[source]["inputs"]["tokens"][0]]
            if tokens_from["class_type"] == "StepAudioClone":
                text = widget_value(prompt, prompt[source]["inputs"]["tokens"][0], "text")
                pieces = split_text(text)
                if len(pieces) > 1:  # longform: a run to budget outlasts any one piece, so the text was split
                    cap = tokens_from["inputs"]["max_seconds"]
                    longest = max(decoded_max(budgets.clone_seconds(p, cap)) for p in pieces)
                    assert clips[node_id][0][0].shape[0] / SAMPLE_RATE > longest, (
                        "the long text was not split into pieces (or the tiny model stopped a piece early)")


def test_workflow_templates_lists_the_pack_with_every_example(comfy_server):
    """The template browser lists /api/workflow_templates and opens each file from the pack's route."""
    assert WORKFLOWS, "no example_workflows/*.json"
    listed = comfy_server.get_json("/api/workflow_templates")
    assert sorted(listed.get(PACK_FOLDER, [])) == sorted(p.stem for p in WORKFLOWS), listed
    for path in WORKFLOWS:
        served = comfy_server.request("GET", f"/api/workflow_templates/{PACK_FOLDER}/{urllib.parse.quote(path.name)}")
        assert json.loads(served) == load_workflow(path)


def check_widgets(path: Path, node: dict, info: dict) -> None:
    """widgets_values as the editor saves them for this server's schema, with values the server accepts."""
    where = f"{path.name}: node {node['id']} ({node['type']})"
    values = node.get("widgets_values")
    slots = widget_slots(info)
    # One value per widget (two after a seed: its control), nothing for buttons such as "insert tag".
    expected = sum(width for _, width in slots)
    assert isinstance(values, list) and len(values) == expected, f"{where}: {values} should hold {expected} values"
    specs = info["input"].get("required", {}) | info["input"].get("optional", {})
    i = 0
    for name, width in slots:
        kind, options = specs[name][0], (specs[name][1] if len(specs[name]) > 1 else {})
        value = values[i]
        if width == 2:
            assert values[i + 1] == "fixed", f"{where}: '{name}' should stay fixed so the example repeats"
        i += width
        if (node["type"], name) == ("StepAudioModelLoader", "models_folder"):
            continue  # the saving machine's folder: see example_prompt
        if (node["type"], name) == ("LoadAudio", "audio"):
            assert value in EXAMPLE_INPUTS, f"{where}: loads '{value}'"
            continue
        if isinstance(kind, list) or kind == "COMBO":
            choices = kind if isinstance(kind, list) else options["options"]
            assert value in choices, f"{where}: '{name}' = {value!r} is not one of the server's options"
        elif kind in ("INT", "FLOAT"):
            assert isinstance(value, (int, float)) and not isinstance(value, bool), f"{where}: '{name}' = {value!r}"
            assert options.get("min", value) <= value <= options.get("max", value), f"{where}: '{name}' = {value} out of range"
        elif kind == "STRING":
            assert isinstance(value, str), f"{where}: '{name}' = {value!r}"
        elif kind == "BOOLEAN":
            assert isinstance(value, bool), f"{where}: '{name}' = {value!r}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
def test_example_workflow_is_a_consistent_saved_graph(object_info, path):
    """What the editor needs to open the file as saved: ids, links on both ends, types, slots, widget values."""
    wf = load_workflow(path)
    assert wf["version"] == 0.4 and wf["nodes"] and isinstance(wf.get("groups", []), list)
    nodes = {node["id"]: node for node in wf["nodes"]}
    links = {link[0]: link for link in wf["links"]}
    assert len(nodes) == len(wf["nodes"]) and len(links) == len(wf["links"]), "duplicate node or link ids"
    assert wf["last_node_id"] >= max(nodes) and wf["last_link_id"] >= max(links, default=0)
    assert sorted(node["order"] for node in wf["nodes"]) == list(range(len(nodes)))

    for link_id, origin, origin_slot, target, target_slot, kind in wf["links"]:
        out, into = nodes[origin]["outputs"][origin_slot], nodes[target]["inputs"][target_slot]
        assert link_id in out["links"] and into["link"] == link_id, f"{path.name}: link {link_id} is not on both ends"
        # an input that takes anything (Preview Any's source) keeps its own type "*"
        assert out["type"] == kind and into["type"] in (kind, "*"), (
            f"{path.name}: link {link_id} ({kind}) joins an {out['type']} output to an {into['type']} input")
        assert nodes[origin]["order"] < nodes[target]["order"], f"{path.name}: link {link_id} runs backwards in 'order'"

    for node in wf["nodes"]:
        where = f"{path.name}: node {node['id']} ({node['type']})"
        assert node["mode"] == 0, f"{where} is muted or bypassed"
        for slot in node["inputs"]:
            assert slot["link"] is None or links[slot["link"]][3] == node["id"], f"{where}: input '{slot['name']}'"
        for slot in node["outputs"]:
            assert all(links[i][1] == node["id"] for i in slot["links"] or []), f"{where}: output '{slot['name']}'"
        if node["type"] == "Note":
            assert node["widgets_values"][0].strip(), f"{where} is empty"
            continue
        info = object_info[node["type"]]
        assert CORE_MODULES.match(info["python_module"]) or info["python_module"].endswith(PACK_FOLDER), (
            f"{where} comes from {info['python_module']}: examples use only ComfyUI's own nodes and this pack's")
        assert node["properties"]["Node name for S&R"] == node["type"]
        assert [(o["name"], o["type"]) for o in node["outputs"]] == list(zip(info["output_name"], info["output"])), where
        # Socket inputs in the definition's order; a widget has a slot only when a link feeds it (as saved).
        specs = {name: spec for section in ("required", "optional") for name, spec in info["input"].get(section, {}).items()}
        widgets = {name for name, _ in widget_slots(info)}
        sockets = [name for section in ("required", "optional") for name in info["input_order"].get(section, [])
                   if name not in widgets]
        assert [s["name"] for s in node["inputs"] if "widget" not in s] == sockets, where
        for slot in node["inputs"]:
            if "widget" in slot:
                assert slot["widget"]["name"] == slot["name"] in widgets and slot["link"] is not None, where
            else:
                assert slot["type"] == specs[slot["name"]][0], where
        check_widgets(path, node, info)
    assert any(node["type"] == "Note" for node in wf["nodes"]), f"{path.name} has no Note explaining it"


# The editor validates a workflow with zod before it loads it (src/platform/workflow/validation/schemas/
# workflowSchema.ts). The installed front end's source map carries that file and zod itself; the test turns the
# part that defines the 0.4 format into plain JavaScript (its few type annotations removed) and runs it in Node.
ZOD_RUNNER = """
import { readFileSync } from 'fs'
console.log('READY')
for (const f of process.argv.slice(2)) {
  const r = zComfyWorkflow.safeParse(JSON.parse(readFileSync(f, 'utf8')))
  console.log(JSON.stringify({ file: f, ok: r.success, issues: r.success ? [] : r.error.issues }))
}
"""


def zod_validator(comfyui_python: str, workdir: Path) -> Path:
    done = subprocess.run([comfyui_python, "-c", "import comfyui_frontend_package as p; print(p.__path__[0])"],
                          capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        pytest.skip("ComfyUI's Python has no comfyui_frontend_package")
    sources = {}
    for source_map in sorted(Path(done.stdout.strip()).glob("static/assets/*.js.map")):
        raw = source_map.read_bytes()
        if b"workflowSchema.ts" in raw:
            data = json.loads(raw)
            sources = dict(zip(data["sources"], data.get("sourcesContent") or []))
            break
    schema = next((text for name, text in sources.items() if name.endswith("/workflowSchema.ts")), None)
    zod = next((text for name, text in sources.items() if name.endswith("/zod/lib/index.mjs")), None)
    if not schema or not zod:
        pytest.skip("the front end's source maps do not carry workflowSchema.ts and zod")
    schema = schema[: schema.index("/** Required for recursive definition")]  # the 0.4 format ends there
    schema = re.sub(r"^import .*$", "", schema, flags=re.M)
    schema = re.sub(r"^export type .*$", "", schema, flags=re.M)
    schema = re.sub(r"\s+as \[[^\]]*\]", "", schema)
    schema = re.sub(r"\((\w+): \w+, (\w+)\)", r"(\1, \2)", schema)
    (workdir / "zod.mjs").write_text(zod, encoding="utf-8")
    runner = workdir / "validate.mjs"
    runner.write_text("import { z } from './zod.mjs'\n" + schema + ZOD_RUNNER, encoding="utf-8")
    return runner


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed (node on PATH runs zod)")
def test_example_workflows_pass_the_editors_zod_schema(comfyui_python, tmp_path):
    runner = zod_validator(comfyui_python, tmp_path)
    broken = load_workflow(WORKFLOWS[0])
    del broken["last_link_id"]
    broken["links"][0] = broken["links"][0][:5]
    (tmp_path / "broken.json").write_text(json.dumps(broken), encoding="utf-8")
    files = [str(tmp_path / "broken.json"), *map(str, WORKFLOWS)]
    done = subprocess.run([shutil.which("node"), str(runner), *files], capture_output=True, text=True, timeout=120)
    if not done.stdout.startswith("READY"):
        pytest.skip(f"this front end's workflowSchema.ts did not turn into JavaScript:\n{done.stderr[-2000:]}")
    results = [json.loads(line) for line in done.stdout.splitlines()[1:]]
    assert [r["file"] for r in results] == files, done.stderr
    assert not results[0]["ok"], "the validator accepted a workflow without last_link_id and with a 5-field link"
    rejected = {Path(r["file"]).name: r["issues"] for r in results[1:] if not r["ok"]}
    assert not rejected, json.dumps(rejected, indent=1)[:4000]


def test_free_resets_the_server_and_it_stays_usable(comfy_server, object_info, models_folder):
    prompt = loader_preview(object_info, models_folder, dtype="fp32")
    comfy_server.run(prompt, timeout=120)
    assert sorted(cached_nodes(comfy_server.run(prompt, timeout=120))) == sorted(prompt)

    comfy_server.post_json("/free", {"unload_models": True, "free_memory": True})
    # The worker applies /free when it next looks at its queue; a prompt it picked up before that still
    # comes from the cache, so allow a few runs. Without the reset every run would be cached.
    for _ in range(5):
        entry = comfy_server.run(prompt, timeout=120)
        if not cached_nodes(entry):
            break
        time.sleep(0.5)
    assert not cached_nodes(entry), "POST /free did not drop the cached results"
    assert models_folder.name in entry["outputs"]["2"]["text"][0]
    assert comfy_server.get_json("/system_stats")["devices"]


def test_free_unloads_the_packs_models_and_they_load_again(comfy_server, object_info, models_folder):
    if "StepAudioEncode" not in object_info:
        pytest.skip("StepAudioEncode not registered by the pack yet")

    def encode(clip: str, seconds: float) -> dict:
        write_voice_clip(comfy_server.input_dir / clip, seconds=seconds)
        return {
            "1": api_node(object_info, "StepAudioModelLoader", models_folder=str(models_folder)),
            "2": api_node(object_info, "LoadAudio", audio=clip),
            "3": api_node(object_info, "StepAudioEncode", model=["1", 0], audio=["2", 0], transcript="A test."),
            "4": api_node(object_info, "PreviewAny", source=["3", 0]),
        }

    first = encode("stepaudio_e2e_a.wav", seconds=2.0)
    comfy_server.run(first, timeout=300)
    freed_at = comfy_server.log_size()
    comfy_server.post_json("/free", {"unload_models": True, "free_memory": True})
    for _ in range(5):  # until a run shows that the worker has applied /free (see the test above)
        if not cached_nodes(comfy_server.run(first, timeout=300)):
            break
        time.sleep(0.5)
    # A new recording (the pack caches encodings) needs the models again. Had they stayed loaded, ComfyUI
    # would not load them again; it logs every model it loads.
    comfy_server.run(encode("stepaudio_e2e_b.wav", seconds=2.5), timeout=300)
    assert "Requested to load" in comfy_server.log(freed_at), "POST /free did not unload the pack's models"


def test_interrupt_stops_the_run_and_the_next_prompt_runs(comfy_server, object_info, models_folder):
    slow = blur_chain(object_info, length=60)
    slow_id = comfy_server.queue(slow)
    next_id = comfy_server.queue(loader_preview(object_info, models_folder, device="cpu", dtype="fp32"))
    comfy_server.wait_until_running(slow_id)
    # A run resets the interrupt flag when it starts, so an interrupt that arrives in that instant is lost:
    # repeat it (aimed at this prompt only) until the run ends.
    deadline = time.monotonic() + 60
    while (entry := comfy_server.history(slow_id)) is None:
        assert time.monotonic() < deadline, "the interrupted prompt did not stop within 60 s"
        comfy_server.post_json("/interrupt", {"prompt_id": slow_id})
        time.sleep(0.5)
    assert entry["status"]["status_str"] == "error"
    (interrupted,) = messages(entry, "execution_interrupted")
    assert len(interrupted["executed"]) < len(slow), "every node ran: the prompt was not interrupted"

    after = comfy_server.wait(next_id, timeout=120)
    assert after["status"]["status_str"] == "success"
    assert models_folder.name in after["outputs"]["2"]["text"][0]


def test_cancel_inside_clone_generation_stops_within_a_second(comfy_server, object_info, models_folder):
    """Cancel reaches our own decode loop: the Clone node stops within a second and the next prompt runs."""
    write_voice_clip(comfy_server.input_dir / "stepaudio_e2e_cancel.wav", seconds=2.0)
    # A tiny random LM never emits its stop token, so this generation would run its whole 120 s budget.
    long_run = {
        "1": api_node(object_info, "StepAudioModelLoader", models_folder=str(models_folder)),
        "2": api_node(object_info, "LoadAudio", audio="stepaudio_e2e_cancel.wav"),
        "3": api_node(object_info, "StepAudioEncode", model=["1", 0], audio=["2", 0], transcript="A test."),
        "4": api_node(object_info, "StepAudioClone", model=["1", 0], prompt=["3", 0], text="Hello. " * 40,
                      max_seconds=120.0, seed=1),
        "5": api_node(object_info, "PreviewAny", source=["4", 0]),
    }
    run_id = comfy_server.queue(long_run)
    next_id = comfy_server.queue(loader_preview(object_info, models_folder, device="cpu", dtype="fp32"))
    comfy_server.wait_until_running(run_id)
    time.sleep(8.0)  # loader and encode take a few seconds on the CPU; then the clone is generating
    started, posted_at = time.monotonic(), time.time()
    entry = None
    while entry is None:
        assert time.monotonic() - started < 30, "the clone did not stop after Cancel"
        comfy_server.post_json("/interrupt", {"prompt_id": run_id})
        deadline = time.monotonic() + 0.5
        while (entry := comfy_server.history(run_id)) is None and time.monotonic() < deadline:
            time.sleep(0.02)
    (interrupted,) = messages(entry, "execution_interrupted")
    assert interrupted["node_type"] == "StepAudioClone", interrupted
    # The server stamps the interrupt message when the node stopped. /history answers later: after a
    # prompt the worker runs a full gc.collect(), which holds the GIL for about a second on a loaded
    # 2-core machine, so the time until /history answers measures ComfyUI's clean-up, not our Cancel.
    stopped_after = interrupted["timestamp"] / 1000 - posted_at
    assert stopped_after <= 1.0, f"the clone took {stopped_after:.2f} s to stop after Cancel"
    assert time.monotonic() - started < 30
    after = comfy_server.wait(next_id, timeout=120)
    assert after["status"]["status_str"] == "success"
