"""Broken, foreign and hostile model files: a ModelFileError naming the path, nothing run, nothing kept.

Each case breaks one file of a copy of the tiny bundle, checks that loading the component fails
with our error naming that file (and keeps no half-loaded component), then puts the good file back
and loads again on the same handle: fixing the file is all a user has to do.
"""

from __future__ import annotations

import ast
import json
import os
import pickle
import re
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from stepaudio_core.bundle import DECODER_DIR, LM_DIR, TOKENIZER_DIR
from stepaudio_core.decoder import config as decoder_config
from stepaudio_core.errors import ModelFileError
from stepaudio_core.pipeline import StepAudioEditX
from tests.conftest import FIXTURES, ROOT

PARAFORMER = f"{TOKENIZER_DIR}/dengcunqin/speech_paraformer-large_asr_nat-zh-cantonese-en-16k-vocab8501-online"
DECODER = f"{LM_DIR}/{DECODER_DIR}"
# file -> the component whose load reads it ("text": the LM's text tokenizer)
FILES = {
    f"{LM_DIR}/config.json": "lm",
    f"{LM_DIR}/model-00001.safetensors": "lm",
    f"{LM_DIR}/model.safetensors.index.json": "lm",
    f"{LM_DIR}/tokenizer.model": "text",
    f"{DECODER}/cosyvoice.yaml": "decoder",
    f"{DECODER}/flow.pt": "decoder",
    f"{DECODER}/hift.pt": "decoder",
    f"{DECODER}/campplus.onnx": "decoder",
    f"{TOKENIZER_DIR}/speech_tokenizer_v1.onnx": "tokenizer",
    f"{TOKENIZER_DIR}/linguistic_tokenizer.npy": "tokenizer",
    f"{PARAFORMER}/model.pt": "tokenizer",
    f"{PARAFORMER}/am.mvn": "tokenizer",
    f"{PARAFORMER}/config.yaml": "tokenizer",
}
LFS_POINTER = (b"version https://git-lfs.github.com/spec/v1\n"
               b"oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 1982\n")
DAMAGE = {
    "missing": lambda data: None,
    "empty": lambda data: b"",
    "LFS pointer": lambda data: LFS_POINTER,
    "first half": lambda data: data[: len(data) // 2],
    "last bytes cut": lambda data: data[:-7],
    "random bytes": lambda data: np.random.default_rng(0).bytes(4096),
}
# text files that still parse when cut short, or whose absence has a documented fallback
SURVIVES = {
    (f"{LM_DIR}/model.safetensors.index.json", "missing"),  # the shards are then found by name
    (f"{PARAFORMER}/am.mvn", "last bytes cut"),  # the vectors end lines before the cut
    (f"{DECODER}/cosyvoice.yaml", "last bytes cut"),  # 'center: False' loses its value, which reads as off
}
# what a clone without git-lfs leaves as pointers (the repositories' .gitattributes track these)
LFS_TRACKED = (".safetensors", ".model", ".pt", ".onnx", ".npy")


def _copy_bundle(src: Path, dst: Path) -> Path:
    """A copy of ``src`` made of hard links (cheap); tests replace files, never write through a link."""

    def link(a, b):
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)

    shutil.copytree(src, dst, copy_function=link)
    return dst


def _replace(path: Path, content: bytes | None) -> None:
    path.unlink(missing_ok=True)
    if content is not None:
        path.write_bytes(content)


def _load(handle: StepAudioEditX, component: str):
    return handle.components.text_tokenizer if component == "text" else getattr(handle.components, component)


def _loaded(handle: StepAudioEditX, component: str) -> bool:
    return handle.components._text_tokenizer is not None if component == "text" else component in handle.loaded()


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # On a shared 2-core runner, two threads wait on each other in every tiny op.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def bundle(tiny_bundle, tmp_path):
    return _copy_bundle(tiny_bundle, tmp_path / "bundle")


def _names(message: str, path: Path) -> bool:
    """The message names ``path``: whole, or as its file name and its folder."""
    return str(path) in message or (path.name in message and str(path.parent) in message)


def _fails_then_recovers(bundle: Path, tiny_bundle: Path, rel: str, component: str, content: bytes | None,
                         names: str | None = None) -> str:
    """Break ``rel``, expect a ModelFileError naming it, restore it, expect the same handle to load."""
    target = bundle / rel
    _replace(target, content)
    handle = StepAudioEditX(bundle, device="cpu", dtype="fp32")
    with pytest.raises(ModelFileError) as raised:
        _load(handle, component)
    message = str(raised.value)
    assert _names(message, names or target), message
    assert not _loaded(handle, component)  # nothing half-loaded is kept
    _replace(target, (tiny_bundle / rel).read_bytes())
    assert _load(handle, component) is not None and _loaded(handle, component)
    return message


@pytest.mark.parametrize("rel, how", [(rel, how) for rel in FILES for how in DAMAGE if (rel, how) not in SURVIVES],
                         ids=lambda v: Path(v).name if "/" in str(v) else str(v))
def test_damaged_file(bundle, tiny_bundle, rel, how):
    data = (tiny_bundle / rel).read_bytes()
    message = _fails_then_recovers(bundle, tiny_bundle, rel, FILES[rel], DAMAGE[how](data))
    if how == "LFS pointer" and rel.endswith(LFS_TRACKED):
        assert "Git LFS pointer" in message and "git lfs pull" in message
    if how == "missing":
        assert "not found" in message or "missing" in message or "no " in message


def test_index_without_shards_and_files_that_survive(bundle, tiny_bundle):
    for rel, how in SURVIVES:
        _replace(bundle / rel, DAMAGE[how]((tiny_bundle / rel).read_bytes()))
    handle = StepAudioEditX(bundle, device="cpu", dtype="fp32")
    assert handle.components.lm is not None and handle.components.tokenizer is not None


def _json_edit(**changes):
    def edit(data: bytes) -> bytes:
        cfg = json.loads(data)
        cfg.update(changes)
        return json.dumps({k: v for k, v in cfg.items() if v != "DELETE"}).encode()

    return edit


def _text_edit(old: str, new: str):
    def edit(data: bytes) -> bytes:
        text = data.decode()
        assert old in text, old
        return text.replace(old, new, 1).encode()

    return edit


CONFIG_VALUES = {
    # config.json of the LM
    "hidden_size of another model": (f"{LM_DIR}/config.json", _json_edit(hidden_size=64), r"wrong shape"),
    "one layer more": (f"{LM_DIR}/config.json", _json_edit(num_hidden_layers=3), r"missing: model\.layers\.2\."),
    "one layer less": (f"{LM_DIR}/config.json", _json_edit(num_hidden_layers=1), r"unexpected: model\.layers\.1\."),
    "vocabulary too small": (f"{LM_DIR}/config.json", _json_edit(vocab_size=1000), r"wrong shape"),
    "heads that do not divide": (f"{LM_DIR}/config.json", _json_edit(hidden_size=33), r"do not divide evenly"),
    "zero heads": (f"{LM_DIR}/config.json", _json_edit(num_attention_heads=0), r"holds values this model cannot have"),
    "negative size": (f"{LM_DIR}/config.json", _json_edit(hidden_size=-32), r"holds values this model cannot have"),
    "size as a string": (f"{LM_DIR}/config.json", _json_edit(hidden_size="32"), r"holds values this model cannot have"),
    "no vocab_size": (f"{LM_DIR}/config.json", _json_edit(vocab_size="DELETE"), r"lacks vocab_size"),
    "another model type": (f"{LM_DIR}/config.json", _json_edit(model_type="llama"), r"'llama' model, not Step1"),
    "unknown dtype": (f"{LM_DIR}/config.json", _json_edit(torch_dtype="int8"), r"torch_dtype 'int8'"),
    "not an object": (f"{LM_DIR}/config.json", lambda d: b"[1, 2]", r"not a JSON object"),
    # cosyvoice.yaml of the decoder
    "flow width of another model": (f"{DECODER}/cosyvoice.yaml", _text_edit("flow_hidden: 32", "flow_hidden: 48"),
                                    r"flow\.pt.*wrong shape"),
    "one conformer block more": (f"{DECODER}/cosyvoice.yaml", _text_edit("num_blocks: 2", "num_blocks: 3"), r"missing"),
    "a class this pack does not have": (f"{DECODER}/cosyvoice.yaml", _text_edit("HiFTGenerator", "Evil"),
                                        r"implements HiFTGenerator"),
    "a dangling reference": (f"{DECODER}/cosyvoice.yaml", _text_edit("!ref <flow_hidden>", "!ref <nothere>"),
                             r"points at a key that does not exist"),
    "a width as text": (f"{DECODER}/cosyvoice.yaml", _text_edit("flow_hidden: 32", "flow_hidden: abc"),
                        r"holds values this model cannot have"),
    "not UTF-8": (f"{DECODER}/cosyvoice.yaml", lambda d: b"\xff\xfe" + d, r"is not a text file"),
    "tabs": (f"{DECODER}/cosyvoice.yaml", _text_edit("sample_rate: 24000", "sample_rate:\t24000\n\t"), r"not valid"),
    # config.yaml of the Paraformer
    "paraformer not a mapping": (f"{PARAFORMER}/config.yaml", lambda d: b"- 1\n- 2\n", r"config\.yaml"),
}


@pytest.mark.parametrize("rel, edit, match", CONFIG_VALUES.values(), ids=CONFIG_VALUES.keys())
def test_wrong_config_values(bundle, tiny_bundle, rel, edit, match):
    component = FILES[rel]
    content = edit((tiny_bundle / rel).read_bytes())
    # the message names the file, or for values only the built model can reject, its folder
    folder = {"lm": bundle / LM_DIR, "decoder": bundle / DECODER, "tokenizer": bundle / TOKENIZER_DIR}[component]
    message = _fails_then_recovers(bundle, tiny_bundle, rel, component, content, names=folder)
    assert re.search(match, message), message


def _state_dict_edit(edit):
    def apply(path: Path) -> None:
        state = torch.load(path, weights_only=True)
        edit(state)
        path.unlink()
        torch.save(state, path)

    return apply


def _safetensors_edit(edit):
    def apply(path: Path) -> None:
        from safetensors.torch import load_file, save_file

        state = load_file(str(path))
        edit(state)
        path.unlink()
        save_file(state, str(path))

    return apply


def _pop_first(state):
    state.pop(next(iter(state)))


STATE_DICTS = {
    "flow.pt with an extra key": (f"{DECODER}/flow.pt", _state_dict_edit(lambda s: s.update(extra=torch.zeros(3))),
                                  r"1 unexpected: extra"),
    "flow.pt with a key missing": (f"{DECODER}/flow.pt", _state_dict_edit(_pop_first), r"1 missing: "),
    "hift.pt with a wrong shape": (f"{DECODER}/hift.pt", _state_dict_edit(
        lambda s: s.update({k: torch.zeros(1) for k in list(s)[:1]})), r"1 wrong shape"),
    "hift.pt holding a list": (f"{DECODER}/hift.pt", _state_dict_edit(lambda s: s.update(extra=[1, 2])),
                               r"not a plain state dict of tensors"),
    "paraformer model.pt with a key missing": (f"{PARAFORMER}/model.pt", _state_dict_edit(_pop_first), r"1 missing: "),
    "LM weights with an extra tensor": (f"{LM_DIR}/model-00001.safetensors", _safetensors_edit(
        lambda s: s.update({"model.extra.weight": torch.zeros(2)})), r"1 unexpected: model\.extra\.weight"),
    "LM weights with a tensor missing": (f"{LM_DIR}/model-00001.safetensors", _safetensors_edit(
        lambda s: s.pop("lm_head.weight")), r"1 missing: lm_head\.weight"),
}


@pytest.mark.parametrize("rel, edit, match", STATE_DICTS.values(), ids=STATE_DICTS.keys())
def test_state_dict_with_extra_or_missing_keys(bundle, tiny_bundle, rel, edit, match):
    target = bundle / rel
    edit(target)
    broken = target.read_bytes()
    folder = target.parent if rel.endswith(".safetensors") else target  # the LM loads a folder of shards
    message = _fails_then_recovers(bundle, tiny_bundle, rel, FILES[rel], broken, names=folder)
    assert re.search(match, message), message


# ---------------------------------------------------------------------------- hostile files


class Payload:
    """Unpickling this runs ``exec`` on a line that writes ``marker`` - if the loader lets it."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",)


class SystemPayload(Payload):
    def __reduce__(self):
        return os.system, (f"echo pwned > {str(self.marker)!r}",)


def _hostile(kind: str, marker: Path) -> bytes:
    good = {"weight": torch.zeros(2)}
    if kind == "zip with exec":  # torch.save's format, as flow.pt ships
        path = marker.with_suffix(".pt")
        torch.save({**good, "bias": Payload(marker)}, path)
        return path.read_bytes()
    if kind == "zip with os.system":
        path = marker.with_suffix(".pt")
        torch.save(SystemPayload(marker), path)
        return path.read_bytes()
    return pickle.dumps({**good, "bias": Payload(marker)}, protocol=2)  # the legacy, bare-pickle format


@pytest.mark.parametrize("kind", ["zip with exec", "zip with os.system", "bare pickle"])
@pytest.mark.parametrize("rel", [f"{DECODER}/flow.pt", f"{DECODER}/hift.pt", f"{PARAFORMER}/model.pt"],
                         ids=["flow.pt", "hift.pt", "paraformer model.pt"])
def test_hostile_pickle_is_refused_without_running(bundle, tiny_bundle, tmp_path, rel, kind):
    marker = tmp_path / "marker"
    message = _fails_then_recovers(bundle, tiny_bundle, rel, FILES[rel], _hostile(kind, marker))
    assert "refused without running any of it" in message and "(it names " in message, message
    assert not marker.exists()


def test_hostile_numpy_array_is_refused(bundle, tiny_bundle, tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.npy"
    np.save(path, np.array([Payload(marker)], dtype=object), allow_pickle=True)
    message = _fails_then_recovers(bundle, tiny_bundle, f"{TOKENIZER_DIR}/linguistic_tokenizer.npy", "tokenizer",
                                   path.read_bytes())
    assert "not a readable .npy array" in message and not marker.exists()


def test_yaml_tags_that_would_run_code_do_nothing(bundle, tmp_path):
    marker = tmp_path / "marker"
    rel = f"{DECODER}/cosyvoice.yaml"
    text = (bundle / rel).read_text().replace(
        "__set_seed1: !apply:random.seed [1986]", f"__set_seed1: !apply:os.system ['echo pwned > {marker}']")
    text += f"evil: !new:builtins.exec {{source: \"open('{marker}', 'w')\"}}\n"
    _replace(bundle / rel, text.encode())
    assert StepAudioEditX(bundle, device="cpu").components.decoder is not None
    assert not marker.exists()
    assert issubclass(decoder_config._Loader, yaml.SafeLoader)


def test_hostile_flow_pt_through_the_nodes(pack, bundle, tiny_bundle, tmp_path):
    """What a ComfyUI user sees: the node names itself and the file; after the fix the same handle works."""
    marker = tmp_path / "marker"
    rel = f"{DECODER}/flow.pt"
    _replace(bundle / rel, _hostile("zip with exec", marker))
    model = pack.nodes.loader.StepAudioModelLoader.execute(str(bundle), "cpu", "fp32", "none", False)[0]
    data, sr = sf.read(FIXTURES / "audio" / "en1_24k.wav", dtype="float32")
    audio = {"waveform": torch.from_numpy(data[:sr])[None, None], "sample_rate": sr}
    encode = pack.nodes.encode.StepAudioEncode
    refused = r"^StepAudio Encode: flow\.pt .* at .*flow\.pt holds Python objects besides tensors \(it names exec\) " \
        r"and was refused without running any of it"
    with pytest.raises(pack.nodes.errors.StepAudioNodeError, match=refused):
        encode.execute(model, audio, "Hello.")
    assert not marker.exists() and "decoder" not in model.loaded()
    _replace(bundle / rel, (tiny_bundle / rel).read_bytes())
    assert len(encode.execute(model, audio, "Hello.")[0]) == 1


# ---------------------------------------------------------------------------- the code itself


def _sources() -> list[Path]:
    return sorted([ROOT / "__init__.py", *(ROOT / "stepaudio_core").rglob("*.py"), *(ROOT / "nodes").rglob("*.py")])


def _call_name(node: ast.Call) -> str:
    return ast.unparse(node.func)


def test_every_pickle_load_is_weights_only_and_nothing_runs_code_from_files():
    torch_loads, problems = [], []
    for path in _sources():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        where = path.relative_to(ROOT)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module in ("torch", "pickle", "dill", "marshal", "joblib"):
                if any(a.name in ("load", "loads") for a in node.names):
                    problems.append(f"{where}:{node.lineno} imports {node.module}.load by name")
            imported = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if any(name in ("pickle", "dill", "marshal", "joblib") for name in imported):
                problems.append(f"{where}:{node.lineno} imports a pickle module")
            if not isinstance(node, ast.Call):
                continue
            name = _call_name(node)
            kw = {k.arg: k.value for k in node.keywords}
            if name == "torch.load":
                torch_loads.append(f"{where}:{node.lineno}")
                flag = kw.get("weights_only")
                if not (isinstance(flag, ast.Constant) and flag.value is True):
                    problems.append(f"{where}:{node.lineno} torch.load without weights_only=True")
            if name in ("np.load", "numpy.load"):
                flag = kw.get("allow_pickle")
                if not (isinstance(flag, ast.Constant) and flag.value is False):
                    problems.append(f"{where}:{node.lineno} np.load without allow_pickle=False")
            if name in ("yaml.unsafe_load", "yaml.full_load", "yaml.load_all", "torch.jit.load", "eval", "exec",
                        "__import__", "importlib.import_module", "import_module", "os.system", "subprocess.run",
                        "subprocess.Popen", "subprocess.call", "subprocess.check_output"):
                problems.append(f"{where}:{node.lineno} calls {name}")
            if name == "yaml.load" and ast.unparse(kw.get("Loader", ast.Constant(None))) not in ("_Loader",):
                problems.append(f"{where}:{node.lineno} yaml.load with a loader that is not our SafeLoader")
            if "trust_remote_code" in kw:
                problems.append(f"{where}:{node.lineno} passes trust_remote_code")
    assert not problems, "\n".join(problems)
    assert any("checkpoint.py" in w for w in torch_loads), torch_loads  # the scan sees the one real load


def test_no_network_without_download(pack, tiny_bundle, monkeypatch):
    """A whole run on a fresh handle - every component loaded, encode, clone, decode - opens no socket."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args[1:] if args else kwargs)
        raise OSError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", lambda self, *a: refuse(self, *a))
    monkeypatch.setattr(socket.socket, "connect_ex", lambda self, *a: refuse(self, *a))
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    n = pack.nodes
    model = n.loader.StepAudioModelLoader.execute(str(tiny_bundle), "cpu", "fp32", "none", False)[0]
    data, sr = sf.read(FIXTURES / "audio" / "en1_24k.wav", dtype="float32")
    prompt = n.encode.StepAudioEncode.execute(model, {"waveform": torch.from_numpy(data[:sr])[None, None],
                                                      "sample_rate": sr}, "Hello.")[0]
    tokens = n.clone.StepAudioClone.execute(model, prompt, "Hi there.", "none", 0, 0.7, 0.3)[0]
    assert n.decode.StepAudioDecode.execute(model, tokens, 0, 1)[0]["waveform"].shape[-1] > 0
    assert set(model.loaded()) == {"tokenizer", "decoder", "lm"}
    assert attempts == []
