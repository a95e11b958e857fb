"""Shared fixtures: the ComfyUI stand-in, the pack loaded the way ComfyUI loads it, tiny bundles."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import tempfile
from pathlib import Path

import pytest
import torch

from tests import comfy_stub

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
PACK = "stepaudio_pack"

# One thread: these are tiny models, for which a second thread only adds synchronisation cost
# (and on a shared machine, 3-40x slowdowns from contended spin-waits). STEPAUDIO_TEST_THREADS=2
# runs the suite on two threads, which splits reductions differently: the parity bounds must hold there too.
torch.set_num_threads(int(os.environ.get("STEPAUDIO_TEST_THREADS", "1")))

# Conversion caches of the tests' model files go to a throwaway folder, never the user's cache.
os.environ.setdefault("STEPAUDIO_CACHE_DIR", tempfile.mkdtemp(prefix="stepaudio-cache-"))


@pytest.fixture
def comfy(tmp_path):
    """Install the ComfyUI stand-in modules, with a fresh models folder; remove them afterwards."""
    models = tmp_path / "models"
    models.mkdir()
    saved = {k: v for k, v in sys.modules.items() if k.split(".")[0] in {"comfy", "comfy_api", "folder_paths"}}
    comfy_stub.install(str(models))
    yield comfy_stub.STATE
    for k in [k for k in sys.modules if k.split(".")[0] in {"comfy", "comfy_api", "folder_paths", PACK}]:
        del sys.modules[k]
    sys.modules.update(saved)


def load_pack():
    """Import the repository as ComfyUI does: a package named after its folder, from its __init__.py."""
    for k in [k for k in sys.modules if k == PACK or k.startswith(PACK + ".")]:
        del sys.modules[k]
    spec = importlib.util.spec_from_file_location(PACK, ROOT / "__init__.py", submodule_search_locations=[str(ROOT)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACK] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def pack(comfy):
    """The loaded pack, with its nodes imported (as ComfyUI's entry-point call does)."""
    module = load_pack()
    importlib.import_module(PACK + ".nodes")
    return module


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory):
    """A complete tiny model folder in the real layout, written once per test session."""
    from stepaudio_core.testing.bundle import write_tiny_bundle

    out = tmp_path_factory.mktemp("bundle")
    write_tiny_bundle(out)
    return out


@pytest.fixture(scope="module")
def env(tmp_path_factory, tiny_bundle):
    """The pack with one model handle on the tiny bundle, its nodes called as ComfyUI calls them (tests.node_env)."""
    from tests.node_env import env_for

    yield from env_for(tmp_path_factory, tiny_bundle)
