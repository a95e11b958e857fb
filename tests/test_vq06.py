"""vq06 on a tiny S3 tokenizer v1 (25 Hz) ONNX file, and the whole tokenizer from a tiny folder.

Our network (``tokenizer/s3.py``) is checked against onnx's pure-numpy reference evaluator running
the same graph, and, where the ``s3tokenizer`` package is installed, against that independent
implementation reading the same file. The pack itself never imports s3tokenizer.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import onnx
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file

from stepaudio_core.audio import prompt_audio, tokenizer_preprocess
from stepaudio_core.codes import AudioCodes
from stepaudio_core.errors import ModelFileError
from stepaudio_core.features import whisper_log_mel
from stepaudio_core.testing.tokenizer import tiny_s3_state, write_s3_onnx, write_tiny_tokenizer
from stepaudio_core.tokenizer import AudioTokenizer
from stepaudio_core.tokenizer.frontend import frame_count
from stepaudio_core.tokenizer.s3 import S3Dims, S3Tokenizer
from stepaudio_core.tokenizer.vq06 import VQ06_FILE, VQ06Tokenizer, read_s3_onnx
from tests.paths import FIXTURES

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_tiny_tokenizer(tmp_path_factory.mktemp("tok") / "Step-Audio-Tokenizer", seed=0)


@pytest.fixture(scope="module")
def vq06(folder):
    return VQ06Tokenizer.from_onnx(folder / VQ06_FILE)


@pytest.fixture(scope="module")
def wav():
    return load_file(FIXTURES / "frontend" / "io.safetensors")["en1.tok.3_trimmed"][0]


@pytest.fixture(scope="module")
def s3tokenizer():
    """The s3tokenizer package, or skip. It imports torchaudio for ``load_audio`` only, which is never
    called here; where torchaudio is absent an empty module stands in during the import."""
    stand_in = None
    if "s3tokenizer" not in sys.modules and importlib.util.find_spec("torchaudio") is None:
        stand_in = sys.modules.setdefault("torchaudio", types.ModuleType("torchaudio"))
    try:
        return pytest.importorskip(
            "s3tokenizer",
            reason="s3tokenizer is not installed (pip install --no-deps s3tokenizer einops to cross-check)",
        )
    finally:
        if stand_in is not None and sys.modules.get("torchaudio") is stand_in:
            del sys.modules["torchaudio"]


def test_25_tokens_per_second(vq06, wav):
    codes = vq06(wav)
    seconds = wav.shape[0] / 16000
    assert abs(len(codes) - round(seconds, 2) * 25) <= 2  # the reference's own check
    assert len(codes) == -(-(wav.shape[0] // 160) // 4) == 94
    assert vq06.model.encoder.conv1.stride == (2,) and vq06.model.encoder.conv2.stride == (2,)
    assert codes.dtype == torch.long and 0 <= codes.min() and codes.max() < 4096
    assert len(set(codes.tolist())) > 1


def test_onnx_weights_read_back_exactly(tmp_path):
    state = tiny_s3_state(torch.Generator().manual_seed(5), n_state=64, n_layer=3, n_codes=512)
    write_s3_onnx(state, tmp_path / VQ06_FILE)
    dims, read = read_s3_onnx(tmp_path / VQ06_FILE)
    assert dims == S3Dims(n_state=64, n_head=1, n_layer=3, n_codes=512)
    assert read.keys() == state.keys()
    assert all(torch.equal(read[k], state[k]) for k in state)
    # The exporter may inline a weight as a Constant node, or reach a shared one through an Identity.
    model = onnx.load(str(tmp_path / VQ06_FILE))
    initializers = {t.name: t for t in model.graph.initializer}
    add = next(n for n in model.graph.node if n.name == "/blocks.1/attn/value/Add")
    bias = next(i for i in add.input if i in initializers)
    model.graph.initializer.remove(initializers[bias])
    model.graph.node.insert(0, onnx.helper.make_node("Constant", [], [bias], value=initializers[bias]))
    conv = next(n for n in model.graph.node if n.name == "/conv2/Conv")
    model.graph.node.insert(0, onnx.helper.make_node("Identity", [conv.input[1]], ["conv2_weight_alias"]))
    conv.input[1] = "conv2_weight_alias"
    onnx.save(model, str(tmp_path / "variant.onnx"))
    read = read_s3_onnx(tmp_path / "variant.onnx")[1]
    assert all(torch.equal(read[k], state[k]) for k in state)


@pytest.mark.parity
def test_matches_onnx_reference_evaluator(folder, vq06, wav):
    # The file is a runnable graph; onnx's numpy evaluator of it must give our tokens, one for one.
    from onnx.reference import ReferenceEvaluator

    mel = whisper_log_mel(wav, n_mels=128)
    graph = ReferenceEvaluator(str(folder / VQ06_FILE))
    results = graph.run(
        None, {"feats": mel[None].numpy(), "feats_length": np.array([mel.shape[1]], np.int32)}, intermediate=True
    )
    tokens = results[graph.output_names[0]]
    assert torch.equal(torch.from_numpy(tokens[0]), vq06(wav))
    with torch.inference_mode():
        ours = vq06.model.encoder(mel[None])
    theirs = torch.from_numpy(results["/blocks.1/Add_1_output_0"])  # the last block's output, before the quantizer
    diff = (ours - theirs).abs().max().item()
    # numpy's float32 evaluator of the same graph: two tiny blocks, ~30 roundings of values of order 1.
    # Worst seen: 7.7e-7 (avx2, avx512). The tokens above are compared exactly.
    assert diff < 1e-5, f"encoder output max|diff| {diff:.2e} vs the ONNX reference evaluator"


@pytest.mark.parity
def test_matches_s3tokenizer(s3tokenizer, folder, vq06, wav):
    path = str(folder / VQ06_FILE)
    theirs = s3tokenizer.S3Tokenizer(
        "speech_tokenizer_v1_25hz",  # the only name that builds the stride-2 (25 Hz) network
        s3tokenizer.model.ModelConfig(n_audio_state=128, n_audio_head=2, n_audio_layer=2, n_codebook_size=4096),
    )
    theirs.init_from_onnx(path)
    # Their converter and ours read the same tensors out of the file.
    converted, ours_state = s3tokenizer.onnx2torch(path, None, False), read_s3_onnx(path)[1]
    assert converted.keys() == ours_state.keys()
    assert all(torch.equal(converted[k], ours_state[k]) for k in converted)

    noise = 0.1 * torch.randn(2 * 16000 + 123, generator=torch.Generator().manual_seed(1))
    for clip in (wav, noise):
        mel = whisper_log_mel(clip, n_mels=128)
        their_mel = s3tokenizer.log_mel_spectrogram(clip, n_mels=128)
        assert (mel - their_mel).abs().max() < 1e-5  # same operations in the same order; worst seen: 0
        lengths = torch.tensor([mel.shape[1]])
        with torch.inference_mode():
            hidden = vq06.model.encoder(mel[None])
            their_hidden, their_len = theirs.encoder(mel[None], lengths)
            codes, code_len = theirs.quantize(mel[None], lengths)
        assert hidden.shape == their_hidden.shape and int(their_len[0]) == hidden.shape[1]
        assert (hidden - their_hidden).abs().max() < 1e-5  # as the ONNX evaluator above; worst seen: 0
        assert torch.equal(vq06(clip), codes[0, : int(code_len[0])])


def test_release_dimensions_and_key_names():
    # Built on the meta device: the real sizes and names without allocating 520 MB.
    with torch.device("meta"):
        model = S3Tokenizer(S3Dims())
    expected = {
        "encoder.positional_embedding": (1500, 1280),
        "encoder.conv1.weight": (1280, 128, 3),
        "encoder.conv1.bias": (1280,),
        "encoder.conv2.weight": (1280, 1280, 3),
        "encoder.conv2.bias": (1280,),
        "quantizer._codebook.embed": (4096, 1280),
    }
    for i in range(6):
        b = f"encoder.blocks.{i}"
        for name in ("query", "key", "value", "out"):
            expected[f"{b}.attn.{name}.weight"] = (1280, 1280)
            if name != "key":
                expected[f"{b}.attn.{name}.bias"] = (1280,)
        for name in ("attn_ln", "mlp_ln"):
            expected[f"{b}.{name}.weight"] = expected[f"{b}.{name}.bias"] = (1280,)
        expected.update({f"{b}.mlp.0.weight": (5120, 1280), f"{b}.mlp.0.bias": (5120,)})
        expected.update({f"{b}.mlp.2.weight": (1280, 5120), f"{b}.mlp.2.bias": (1280,)})
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == expected
    assert len(expected) == 96 and model.encoder.blocks[0].attn.n_head == 20
    assert model(torch.empty(1, 128, 3000, device="meta")).shape == (1, 750)  # 30 s -> 750 codes


def test_long_audio_in_30_s_pieces(vq06):
    g = torch.Generator().manual_seed(3)
    long = 0.1 * torch.randn(30 * 16000 + 8000, generator=g)
    codes = vq06(long)
    assert len(codes) == 750 + 13  # a full 30 s piece, then 0.5 s -> ceil(50 / 4)
    assert torch.equal(codes[:750], vq06(long[: 30 * 16000]))  # pieces do not overlap or see each other
    assert len(vq06(long[: 30 * 16000 + 479])) == 750  # a last piece under 480 samples is dropped


def test_bad_onnx_files_are_refused(folder, tmp_path):
    path = tmp_path / VQ06_FILE
    with pytest.raises(ModelFileError, match="not found"):
        VQ06Tokenizer.from_onnx(path)
    path.write_bytes(b"version https://git-lfs.github.com/spec/v1\noid sha256:56285ddd\nsize 522625011\n")
    with pytest.raises(ModelFileError, match=f"Git LFS pointer.*{VQ06_FILE}"):
        VQ06Tokenizer.from_onnx(path)
    path.write_bytes(b"\x08\x07" + bytes(range(256)) * 8)
    with pytest.raises(ModelFileError, match=f"{VQ06_FILE}.*corrupt"):
        VQ06Tokenizer.from_onnx(path)
    good = (folder / VQ06_FILE).read_bytes()
    for cut in (len(good) // 2, len(good) - 100):
        path.write_bytes(good[:cut])
        with pytest.raises(ModelFileError, match=VQ06_FILE):
            VQ06Tokenizer.from_onnx(path)
    # A readable graph of the 50 Hz tokenizer (conv1 stride 1) would load and give twice the codes.
    model = onnx.load(str(folder / VQ06_FILE))
    conv1 = next(n for n in model.graph.node if n.name == "/conv1/Conv")
    next(a for a in conv1.attribute if a.name == "strides").ints[:] = [1]
    onnx.save(model, str(path))
    with pytest.raises(ModelFileError, match="50 Hz"):
        VQ06Tokenizer.from_onnx(path)
    # A valid ONNX file of another model.
    other = onnx.helper.make_graph(
        [onnx.helper.make_node("Relu", ["x"], ["y"], name="/Relu")],
        "other",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])],
    )
    onnx.save(onnx.helper.make_model(other), str(path))
    with pytest.raises(ModelFileError, match=f"{VQ06_FILE}.*no Conv node named '/conv1/Conv'"):
        VQ06Tokenizer.from_onnx(path)


def test_runs_without_s3tokenizer_or_torchaudio(tmp_path):
    script = (
        "import sys\n"
        "sys.modules['s3tokenizer'] = sys.modules['torchaudio'] = None  # any import of them now fails\n"
        "import torch\n"
        "from stepaudio_core.tokenizer import AudioTokenizer\n"
        "from stepaudio_core.testing.tokenizer import write_tiny_tokenizer\n"
        "tokenizer = AudioTokenizer.from_folder(write_tiny_tokenizer(sys.argv[1]))\n"
        "print(len(tokenizer.vq06(0.1 * torch.randn(16000, generator=torch.Generator().manual_seed(0)))))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "tok")], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split()[-1] == "25"


def test_audio_tokenizer_encodes_any_rate_end_to_end(folder):
    tokenizer = AudioTokenizer.from_folder(folder)
    pcm, sr = sf.read(FIXTURES / "audio" / "en1_24k.wav", dtype="int16")
    wav = prompt_audio(torch.from_numpy(pcm.astype(np.float32) / 32768.0))
    codes = tokenizer.encode(wav, sr)
    wav_16k = tokenizer.preprocess(wav, sr)
    assert torch.equal(wav_16k, tokenizer_preprocess(wav, sr)) and wav_16k.shape == (60000,)
    assert isinstance(codes, AudioCodes)
    assert len(codes.vq02) == frame_count(60000) == 63 and len(codes.vq06) == 94 and codes.groups == 31
    assert codes == tokenizer.encode(wav, sr) == tokenizer.encode_16k(wav_16k, batched=False)
    # Below 16 kHz the clip is upsampled (the reference refuses): 8 kHz gives codes as well.
    low = tokenizer.encode(wav[::3].contiguous(), 8000)
    assert low.groups > 0


def test_missing_folder_is_refused(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        AudioTokenizer.from_folder(tmp_path / "nowhere")
