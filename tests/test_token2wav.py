"""The whole decoder as the reference's token2wav_nonstream runs it, from the released file layout."""

import shutil
from pathlib import Path

import pytest
import soundfile as sf
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from stepaudio_core.audio import prompt_audio
from stepaudio_core.decoder.token2wav import Decoder, align_prompt_mel, reshape_mixed_tokens
from tests.paths import shared_file
from tests.tolerances import HIFT_TOL, LOG_MAGNITUDE

FIX = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def golden_decoder(tmp_path_factory):
    """The golden flow, HiFT and CAM++ files in a CosyVoice-300M-25Hz folder, loaded like the release."""
    folder = tmp_path_factory.mktemp("CosyVoice-300M-25Hz")
    shutil.copy(FIX / "flow" / "cosyvoice.yaml", folder)
    shutil.copy(FIX / "flow" / "flow.pt", folder)
    shutil.copy(FIX / "hift" / "hift.pt", folder)
    shutil.copy(shared_file("goldens/campplus/campplus.onnx"), folder)
    return Decoder.from_folder(folder)


@pytest.mark.parity
def test_prompt_features_match_the_reference_front_end(golden_decoder):
    data, sr = sf.read(FIX / "audio" / "en2_24k.wav", dtype="float32")
    wav = prompt_audio(torch.from_numpy(data))
    mel, embedding = golden_decoder.prompt_features(wav, sr)
    golden_mel = load_file(FIX / "frontend" / "io.safetensors")["en2.speech_feat"]
    # The matcha log-magnitude mel (tests/tolerances.py). Worst seen: 1.0e-4 (every capability and thread count).
    assert (mel - golden_mel).abs().max() <= LOG_MAGNITUDE
    golden_emb = load_file(FIX / "campplus" / "io.safetensors")["en2.embedding_onnx"]
    # Direction of the CAM++ embedding, as in test_campplus. Worst seen: 0.99999988 (avx512, 1 thread).
    assert F.cosine_similarity(embedding, golden_emb).item() >= 0.9999


@pytest.mark.parity
def test_tokens_to_waveform_chain_matches_the_reference(golden_decoder):
    """flow case a (its recorded noise) -> mel -> HiFT (its recorded source noise) == the golden waveform."""
    flow_io = load_file(FIX / "flow" / "io.safetensors")
    hift_io = load_file(FIX / "hift" / "io.safetensors")
    token = reshape_mixed_tokens(flow_io["a.token_mixed"])[None]
    prompt_token = reshape_mixed_tokens(flow_io["prompt_token_mixed"])[None]
    prompt_feat = align_prompt_mel(flow_io["prompt_feat_raw"], prompt_token.shape[1])
    mel = golden_decoder.flow.inference(
        token, prompt_token, prompt_feat, flow_io["embedding"], noise=flow_io["a.cfm.noise_z"]
    )
    # As test_flow's TOL (mel values up to 4.9, ~30 roundings deep). Worst seen: 1.5e-6 (MKL AVX2).
    assert (mel - flow_io["a.mel"]).abs().max() <= 2e-5
    speech, _ = golden_decoder.hift.inference(mel, source_noise=hift_io["flow.draw1.randn_like"])
    # HiFT's bound (tests/tolerances.py): fed our mel, 1e-6 from the golden's, the source's phase (2.4e4 rad)
    # rounds as in test_hift. Worst seen: 1.0e-4 (every capability and thread count).
    assert (speech - hift_io["flow.speech"]).abs().max() <= HIFT_TOL


def test_decoder_output_length_determinism_and_conditioning(tiny_bundle):
    decoder = Decoder.from_folder(tiny_bundle / "Step-Audio-EditX" / "CosyVoice-300M-25Hz")
    g = torch.Generator().manual_seed(1)
    wav = 0.3 * torch.randn(36000, generator=g)
    mel, emb = decoder.prompt_features(wav, 24000)
    assert mel.shape == (1, 75, 80) and emb.shape == (1, 192)
    prompt = [int(x) for x in torch.randint(0, 1024, (40,), generator=g)]
    prompt = [c if i % 5 < 2 else 1024 + c for i, c in enumerate(prompt)]
    tokens = prompt[:23]  # 4 groups and a partial one: padded to 5 groups
    out = decoder(tokens, prompt, mel, emb, seed=3, n_timesteps=3)
    assert out.shape == (5 * 3 * 2 * 480,) and out.dtype == torch.float32 and torch.isfinite(out).all()
    assert torch.equal(out, decoder(tokens, prompt, mel, emb, seed=3, n_timesteps=3))
    assert not torch.equal(out, decoder(tokens, prompt, mel, emb, seed=4, n_timesteps=3))
    exact = decoder(tokens, prompt, mel, emb, seed=3, n_timesteps=3, bf16_conditioning=False)
    assert not torch.equal(out, exact)  # the release rounds the conditioning through bf16; we can opt out
