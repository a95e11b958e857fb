"""The AWQ folder everywhere the full one works: bundle discovery, the pipeline, the Loader, the download."""

from __future__ import annotations

import shutil
from pathlib import Path

import huggingface_hub
import pytest
import soundfile as sf
import torch

from stepaudio_core.bundle import AWQ_DIR, DECODER_DIR, LM_DIR, TOKENIZER_DIR, find_bundle
from stepaudio_core.download import AWQ_REPO, FULL_EXTRAS, REPOS, download_models
from stepaudio_core.errors import InputError, ModelFileError
from stepaudio_core.lm.awq import PackedLinear
from stepaudio_core.lm.load import load_step1
from stepaudio_core.pipeline import StepAudioEditX
from tests.paths import FIXTURES


@pytest.fixture(scope="module")
def awq_bundle(tmp_path_factory):
    """A tiny model folder with Step-Audio-EditX-AWQ-4bit/ beside Step-Audio-EditX/ (which has the decoder)."""
    from stepaudio_core.testing.bundle import write_tiny_bundle

    return write_tiny_bundle(tmp_path_factory.mktemp("awq-bundle"), awq=True)


@pytest.fixture(scope="module")
def recording():
    data, sr = sf.read(FIXTURES / "audio" / "en2_24k.wav", dtype="float32")
    return torch.from_numpy(data[: int(1.5 * sr)]), sr, "Please call Stella and bring the things."


def test_bundle_picks_the_lm_folder(tmp_path, awq_bundle):
    assert find_bundle(awq_bundle).lm_name == LM_DIR  # both present: the models folder means the full one
    b = find_bundle(awq_bundle / AWQ_DIR)
    assert (b.root, b.lm_dir) == (awq_bundle, awq_bundle / AWQ_DIR)
    assert not (b.lm_dir / DECODER_DIR).exists()  # the tiny AWQ folder, like llmcompressor's output, has none
    assert b.decoder_dir == awq_bundle / LM_DIR / DECODER_DIR and b.require_decoder() == b.decoder_dir
    assert b.text_tokenizer_file == awq_bundle / AWQ_DIR / "tokenizer.model"  # its own when it has one

    only_awq = tmp_path / "only"
    shutil.copytree(awq_bundle / AWQ_DIR, only_awq / AWQ_DIR)
    (only_awq / TOKENIZER_DIR).mkdir()
    b = find_bundle(only_awq)
    assert b.lm_name == AWQ_DIR
    with pytest.raises(ModelFileError, match=f"{AWQ_DIR} does not carry them .*Download the {DECODER_DIR} folder"):
        b.require_decoder()
    # what the AWQ download leaves: Step-Audio-EditX/ with only the borrowed files is no model by itself
    shutil.copytree(awq_bundle / LM_DIR / DECODER_DIR, only_awq / LM_DIR / DECODER_DIR)
    (only_awq / AWQ_DIR / "tokenizer.model").rename(only_awq / LM_DIR / "tokenizer.model")
    b = find_bundle(only_awq)
    assert b.lm_name == AWQ_DIR and b.require_decoder() == only_awq / LM_DIR / DECODER_DIR
    assert b.text_tokenizer_file == only_awq / LM_DIR / "tokenizer.model"


def test_tiny_awq_lm_stays_close_to_the_full_one(awq_bundle):
    ids = torch.randint(0, 1000, (1, 24), generator=torch.Generator().manual_seed(0))
    full = load_step1(awq_bundle / LM_DIR, dtype=torch.float32)
    packed = load_step1(awq_bundle / AWQ_DIR, dtype=torch.float32, keep_packed=True)
    plain = load_step1(awq_bundle / AWQ_DIR, dtype=torch.float32)
    assert len([m for m in packed.modules() if isinstance(m, PackedLinear)]) == 14
    assert not any(isinstance(m, PackedLinear) for m in plain.modules())
    with torch.no_grad():
        a, b, c = full(ids), packed(ids), plain(ids)
    assert torch.equal(b, c)  # JIT and at-load dequantization give the same weights
    # 4-bit round-to-nearest in groups of 16 (rel. weight error ~0.1, see test_awq), 2 layers
    assert ((b - a).norm() / a.norm()).item() < 0.3


def test_pipeline_encode_edit_decode_on_the_awq_folder(awq_bundle, recording):
    wav, sr, text = recording
    handle = StepAudioEditX(awq_bundle / AWQ_DIR, device="cpu", dtype="fp32")
    prompt = handle.encode(wav, sr, text)
    tokens = handle.edit(prompt, "emotion", "happy", seed=1)
    audio = handle.decode(tokens)
    assert audio.dim() == 1 and audio.numel() > 0 and torch.isfinite(audio).all()
    lm = handle.components.lm
    # on the CPU the weights are dequantized at load into plain Linears of the handle's dtype
    assert not any(isinstance(m, PackedLinear) for m in lm.modules())
    assert lm.model.layers[0].mlp.up_proj.weight.dtype == torch.float32
    again = StepAudioEditX(awq_bundle / AWQ_DIR, device="cpu", dtype="fp32").edit(prompt, "emotion", "happy", seed=1)
    assert again.pieces == tokens.pieces and len(tokens.pieces[0]) > 0  # seeded: the same tokens


def test_bitsandbytes_with_the_awq_folder_is_refused(awq_bundle):
    with pytest.raises(InputError, match=f"{AWQ_DIR} is already 4-bit quantized: set quantization to none"):
        StepAudioEditX(awq_bundle / AWQ_DIR, device="cpu", quantization="int8")


def test_download_awq_fetches_the_4bit_repo_and_only_the_missing_files(tmp_path, monkeypatch, awq_bundle):
    calls = []
    sources = {AWQ_REPO: AWQ_DIR, REPOS[LM_DIR]: LM_DIR, REPOS[TOKENIZER_DIR]: TOKENIZER_DIR}

    def fake_snapshot(repo_id, local_dir, allow_patterns=None):
        calls.append((repo_id, local_dir, allow_patterns))
        src = awq_bundle / sources[repo_id]
        if allow_patterns is None:
            shutil.copytree(src, local_dir, dirs_exist_ok=True)
        else:  # only the decoder folder and the tokenizer files
            shutil.copytree(src / DECODER_DIR, f"{local_dir}/{DECODER_DIR}", dirs_exist_ok=True)
            shutil.copy(src / "tokenizer.model", local_dir)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    messages = []
    download_models(tmp_path, progress=messages.append, awq=True)
    assert calls == [
        (AWQ_REPO, str(tmp_path / AWQ_DIR), None),
        (REPOS[LM_DIR], str(tmp_path / LM_DIR), list(FULL_EXTRAS)),
        (REPOS[TOKENIZER_DIR], str(tmp_path / TOKENIZER_DIR), None),
    ]
    assert find_bundle(tmp_path).lm_name == AWQ_DIR and len(messages) == 3
    calls.clear()
    download_models(tmp_path, awq=True)  # the decoder is there now: the full repo is not asked again
    assert [c[0] for c in calls] == [AWQ_REPO, REPOS[TOKENIZER_DIR]]


def test_loader_lists_and_downloads_the_awq_folder(pack, monkeypatch, awq_bundle):
    import folder_paths

    loader = pack.nodes.loader
    pack.nodes.loader.register_model_folder()
    target = folder_paths.get_folder_paths("step_audio_editx")[0]
    assert loader.StepAudioModelLoader.define_schema().inputs[0].options == [loader.NOT_FOUND, loader.AWQ_OFFER]
    with pytest.raises(pack.nodes.errors.StepAudioNodeError, match="not downloaded yet: turn on download"):
        loader.StepAudioModelLoader.execute(loader.AWQ_OFFER, "cpu", "fp32", "none", False)

    sources = {AWQ_REPO: AWQ_DIR, REPOS[LM_DIR]: LM_DIR, REPOS[TOKENIZER_DIR]: TOKENIZER_DIR}
    repos = []

    def fake_snapshot(repo_id, local_dir, **kwargs):
        repos.append(repo_id)
        shutil.copytree(awq_bundle / sources[repo_id], local_dir, dirs_exist_ok=True)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    model = loader.StepAudioModelLoader.execute(loader.AWQ_OFFER, "cpu", "fp32", "none", True)[0]
    assert repos == [AWQ_REPO, REPOS[LM_DIR], REPOS[TOKENIZER_DIR]]
    assert model.components.bundle.lm_dir == Path(target) / AWQ_DIR
    options = loader.StepAudioModelLoader.define_schema().inputs[0].options
    # the full folder arrived too in this fake (a real AWQ download fetches only its decoder files)
    assert options == ["models/step_audio_editx", f"models/step_audio_editx/{AWQ_DIR}"]
    with pytest.raises(pack.nodes.errors.StepAudioNodeError, match="already 4-bit quantized"):
        loader.StepAudioModelLoader.execute(options[1], "cpu", "fp32", "int8", False)
