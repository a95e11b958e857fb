"""Without transformers the pack still starts; speech recognition then says what to install."""

import subprocess
import sys

import pytest

from tests.asr_fixtures import TINY_WHISPER
from tests.conftest import ROOT

pytestmark = pytest.mark.asr


def test_pack_and_nodes_load_without_transformers(tmp_path):
    script = f"""
import asyncio, sys
sys.modules["transformers"] = None  # any import of it now raises ImportError
sys.path.insert(0, {str(ROOT)!r})
from tests import comfy_stub
comfy_stub.install({str(tmp_path)!r})
from tests.conftest import load_pack
pack = load_pack()
ext = asyncio.run(pack.comfy_entrypoint())
asyncio.run(ext.on_load())
nodes = {{n.GET_SCHEMA().node_id for n in asyncio.run(ext.get_node_list())}}
assert {{"StepAudioTranscribe", "StepAudioASRLoader", "StepAudioEncode"}} <= nodes, nodes
import torch
from stepaudio_core.asr.recognizer import SpeechRecognizer
from stepaudio_core.errors import StepAudioError
try:
    SpeechRecognizer({str(TINY_WHISPER)!r}, device="cpu").transcribe(torch.zeros(16000), 16000)
except StepAudioError as e:
    print(e)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "speech recognition needs the transformers package: pip install transformers"
