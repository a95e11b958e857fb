"""The pack as ComfyUI meets it: cheap import, V3 entry point, schemas, model folder, Decode."""

import asyncio
import shutil
import subprocess
import sys

import pytest
import torch

from tests import comfy_stub
from tests.conftest import PACK, ROOT


def _nodes(pack):
    return {n.define_schema().node_id: n for n in asyncio.run(comfy_stub.load_extension(pack))}


def test_import_is_cheap_and_leaves_sys_path_alone(tmp_path):
    """In a fresh interpreter, as ComfyUI starts: loading the pack and listing its nodes imports no model code."""
    script = f"""
import asyncio, sys
sys.path.insert(0, {str(ROOT)!r})
from tests import comfy_stub
comfy_stub.install({str(tmp_path)!r})
before = list(sys.path)
from tests.conftest import load_pack, PACK
pack = load_pack()
nodes = asyncio.run(comfy_stub.load_extension(pack))
assert sys.path == before, "sys.path changed"
ours = sorted(m for m in sys.modules if m.startswith(PACK + ".stepaudio_core."))
heavy = sorted(m for m in ("onnx", "sentencepiece", "safetensors", "bitsandbytes", "transformers", "s3tokenizer", "soundfile") if m in sys.modules)
print(len(nodes), ",".join(ours), ",".join(heavy) or "-")
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    count, ours, heavy = out.stdout.split()
    assert int(count) == 9
    # only plain-data modules load with the node definitions: the model-folder layouts (the Loaders list
    # folders; download.py imports huggingface_hub only when it downloads), the edit registry, the error
    # types and the named limits
    light = ("asr", "asr.folder", "bundle", "download", "edits", "errors", "limits")
    assert ours == ",".join(f"{PACK}.stepaudio_core.{m}" for m in light), ours
    assert heavy == "-", f"heavy packages imported at start-up: {heavy}"


def test_every_node_has_a_documented_schema(pack):
    nodes = _nodes(pack)
    assert set(nodes) == {"StepAudioModelLoader", "StepAudioEncode", "StepAudioClone", "StepAudioEdit",
                          "StepAudioEditIterate", "StepAudioDecode", "StepAudioDialogue", "StepAudioASRLoader",
                          "StepAudioTranscribe"}
    for node_id, node in nodes.items():
        schema = node.GET_SCHEMA()
        assert node_id.startswith("StepAudio") and schema.display_name.startswith("StepAudio ")
        assert schema.category == "audio/Step-Audio-EditX" and schema.description
        for item in schema.inputs + schema.outputs:
            assert item.tooltip, f"{node_id}.{item.id} has no tooltip"


def test_model_folder_is_registered_and_listed(pack, tmp_path):
    import folder_paths

    _nodes(pack)
    base = folder_paths.get_folder_paths("step_audio_editx")
    assert any(p.endswith("step_audio_editx") for p in base)
    (tmp_path / "models" / "step_audio_editx" / "Step-Audio-EditX").mkdir(parents=True)
    extra = tmp_path / "elsewhere"
    (extra / "Step-Audio-EditX").mkdir(parents=True)
    folder_paths.add_model_folder_path("step_audio_editx", str(extra))  # what extra_model_paths.yaml does
    options = pack.nodes.loader.StepAudioModelLoader.define_schema().inputs[0].options
    # the default folder is listed relative to the models directory, so saved workflows travel
    assert options == ["models/step_audio_editx", str(extra), pack.nodes.loader.AWQ_OFFER]
    assert pack.nodes.loader.resolve_folder(options[0]) == str(tmp_path / "models" / "step_audio_editx")


def test_loader_shares_one_handle_per_configuration(pack, tiny_bundle):
    loader = pack.nodes.loader.StepAudioModelLoader
    a = loader.execute(str(tiny_bundle), "cpu", "fp32")[0]
    b = loader.execute(str(tiny_bundle), "cpu", "fp32")[0]
    c = loader.execute(str(tiny_bundle), "cpu", "bf16")[0]
    assert a is b and a is not c


def test_loader_error_names_the_node(pack, tmp_path):
    with pytest.raises(pack.nodes.errors.StepAudioNodeError, match="StepAudio Model Loader: no Step-Audio-EditX/"):
        pack.nodes.loader.StepAudioModelLoader.execute(str(tmp_path), "cpu", "fp32")


def _prompt_and_tokens(pack, model, seconds=1.0, groups=10, seed=0):
    from importlib import import_module

    core = import_module(f"{PACK}.stepaudio_core.prompt")
    g = torch.Generator().manual_seed(seed)
    wav = 0.3 * torch.randn(int(seconds * 24000), generator=g)
    mel, speaker = model.components.decoder.prompt_features(wav, 24000)

    def mixed(n):
        ids = []
        for _ in range(n):
            ids += torch.randint(0, 1024, (2,), generator=g).tolist() + (1024 + torch.randint(0, 4096, (3,), generator=g)).tolist()
        return tuple(ids)

    prompt = core.EncodedPrompt(mixed(int(seconds * 25 / 3)), mel, speaker, "hello", wav, 24000)
    return prompt, core.GeneratedTokens((mixed(groups),), prompt)


def test_decode_node_makes_24khz_audio_of_the_token_length(pack, tiny_bundle):
    model = pack.nodes.loader.StepAudioModelLoader.execute(str(tiny_bundle), "cpu", "fp32")[0]
    prompt, tokens = _prompt_and_tokens(pack, model)
    decode = pack.nodes.decode.StepAudioDecode
    audio = decode.execute(model, (tokens,), seed=7, flow_steps=2)[0]
    assert audio["sample_rate"] == 24000
    assert audio["waveform"].shape == (1, 1, 10 * 3 * 2 * 480)  # 10 groups -> 30 frames -> 60 mel frames
    assert torch.isfinite(audio["waveform"]).all() and audio["waveform"].abs().max() <= 0.99
    again = decode.execute(model, (tokens,), seed=7, flow_steps=2)[0]
    other = decode.execute(model, (tokens,), seed=8, flow_steps=2)[0]
    assert torch.equal(audio["waveform"], again["waveform"])
    assert not torch.equal(audio["waveform"], other["waveform"])


def test_decode_node_reports_missing_decoder_files(pack, tiny_bundle, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_bundle, broken)
    (broken / "Step-Audio-EditX" / "CosyVoice-300M-25Hz" / "hift.pt").unlink()
    good = pack.nodes.loader.StepAudioModelLoader.execute(str(tiny_bundle), "cpu", "fp32")[0]
    _, tokens = _prompt_and_tokens(pack, good)
    model = pack.nodes.loader.StepAudioModelLoader.execute(str(broken), "cpu", "fp32")[0]
    with pytest.raises(pack.nodes.errors.StepAudioNodeError, match="StepAudio Decode: the decoder files hift.pt are missing"):
        pack.nodes.decode.StepAudioDecode.execute(model, (tokens,), seed=0, flow_steps=2)
