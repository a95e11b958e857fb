"""The pack inside a real ComfyUI: registration, prompts over the HTTP API, example workflows, /free, /interrupt.

Runs only where COMFYUI_DIR points at a ComfyUI checkout (see conftest.py); one server for the module.
"""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import ROOT
from tests.e2e.comfy_server import messages
from tests.e2e.workflow_api import api_node, to_api

WORKFLOWS = sorted((ROOT / "example_workflows").glob("*.json"))
SAMPLE_RATE = 24000


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


def fetch_audio(server, entry: dict) -> list[tuple[np.ndarray, int]]:
    """Every audio file the prompt's output nodes produced, fetched over /view and decoded: (samples [T, C], rate)."""
    clips = []
    for output in entry["outputs"].values():
        for item in output.get("audio", []):
            wav, rate = sf.read(io.BytesIO(server.view(item)), dtype="float32", always_2d=True)
            seconds = wav.shape[0] / rate
            assert 0.05 <= seconds <= 600, f"{item['filename']} lasts {seconds:.3f} s"
            assert np.isfinite(wav).all() and np.abs(wav).max() <= 1.0, f"{item['filename']} holds invalid samples"
            clips.append((wav, rate))
    return clips


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
    assert prompt["1"]["inputs"] == {"models_folder": str(models_folder), "device": "auto", "dtype": "fp32"}
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


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
def test_example_workflow_runs_and_saves_audio(comfy_server, object_info, models_folder, path):
    prompt = to_api(json.loads(path.read_text(encoding="utf-8")), object_info)
    for node in prompt.values():
        if node["class_type"] == "StepAudioModelLoader":
            node["inputs"]["models_folder"] = str(models_folder)
        elif node["class_type"] == "LoadAudio":
            name = node["inputs"]["audio"]
            if (path.parent / name).is_file():
                (comfy_server.input_dir / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(path.parent / name, comfy_server.input_dir / name)
            else:
                write_voice_clip(comfy_server.input_dir / name)
    entry = comfy_server.run(prompt, timeout=600)
    assert fetch_audio(comfy_server, entry), f"{path.name} ran but no node produced audio"


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
