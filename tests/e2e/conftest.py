"""Fixtures for the end-to-end tests: a tiny model folder and one real ComfyUI server per test module.

The tests run only where ``COMFYUI_DIR`` points at a ComfyUI checkout; ``COMFYUI_PYTHON`` is the Python that
has ComfyUI's requirements installed (default: the one running pytest). Elsewhere they are skipped at
collection. When a test fails, what the server printed while it ran is attached to the report.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.comfy_server import PACK_ROOT, ComfyServer

E2E_DIR = Path(__file__).resolve().parent
E2E_ASR_MODEL = "whisper-tiny-random"  # models_folder/asr/<this>: the example workflows' ASR Loaders use it
_LOG_START = pytest.StashKey[int]()


def pytest_collection_modifyitems(config, items):
    if os.environ.get("COMFYUI_DIR"):
        return
    skip = pytest.mark.skip(reason="end-to-end tests need a ComfyUI checkout: set COMFYUI_DIR to it (and "
                            "COMFYUI_PYTHON to a Python with its requirements)")
    for item in items:
        if E2E_DIR in Path(item.path).parents:
            item.add_marker(skip)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    server = getattr(item, "funcargs", {}).get("comfy_server")
    if not isinstance(server, ComfyServer):
        return
    if report.when == "setup":
        item.stash[_LOG_START] = server.log_size()
    elif report.when == "call" and report.failed:
        report.sections.append(("ComfyUI log during this test", server.log(item.stash.get(_LOG_START, 0))))


@pytest.fixture(scope="session")
def comfyui_dir() -> Path:
    path = Path(os.environ["COMFYUI_DIR"]).expanduser().resolve()
    if not (path / "main.py").is_file() or not (path / "comfy").is_dir():
        pytest.fail(f"COMFYUI_DIR={path} is not a ComfyUI checkout (no main.py and comfy/ there)")
    return path


@pytest.fixture(scope="session")
def comfyui_python() -> str:
    python = os.environ.get("COMFYUI_PYTHON") or sys.executable
    if not Path(python).is_file():
        pytest.fail(f"COMFYUI_PYTHON={python} does not exist")
    return python


@pytest.fixture(scope="session")
def models_folder(tmp_path_factory, comfyui_python) -> Path:
    """A tiny random model folder, written by the pack's own command with ComfyUI's Python (with the AWQ folder)."""
    out = tmp_path_factory.mktemp("step_audio_editx")
    done = subprocess.run([comfyui_python, "-m", "stepaudio_core.testing", "tiny-bundle", str(out), "--awq"], cwd=PACK_ROOT,
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        pytest.fail(f"writing the tiny model folder failed:\n{done.stdout}\n{done.stderr}")
    # The ASR golden's tiny Whisper, where users put theirs. It never stops by itself, so its generation
    # config caps each transcript at 12 tokens (a run to Whisper's 448 would only cost time).
    whisper = out / "asr" / E2E_ASR_MODEL
    shutil.copytree(PACK_ROOT / "tests" / "fixtures" / "asr" / "whisper-tiny-random", whisper)
    config = json.loads((whisper / "generation_config.json").read_text())
    (whisper / "generation_config.json").write_text(json.dumps(config | {"max_new_tokens": 12}))
    return out


@pytest.fixture(scope="module")
def comfy_server(tmp_path_factory, comfyui_dir, comfyui_python, models_folder):
    server = ComfyServer(comfyui_dir, comfyui_python, tmp_path_factory.mktemp("comfyui"),
                         model_paths={"step_audio_editx": models_folder})
    with server:
        yield server


@pytest.fixture(scope="module")
def object_info(comfy_server) -> dict:
    return comfy_server.get_json("/object_info", timeout=120)
