"""HiFT vocoder parity against the reference goldens (tiny random model saved in the released format)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from stepaudio_core.decoder.config import DecoderConfig, HiFTConfig
from stepaudio_core.decoder.hift import HiFTGenerator, load_hift
from stepaudio_core.errors import InputError, ModelFileError
from tests.paths import FIXTURES, shared_file
from tests.tolerances import EPS, HIFT_TOL

HIFT = FIXTURES / "hift"


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a.float() - b.float()).abs().max().item()


@pytest.fixture(scope="module")
def cfg() -> HiFTConfig:
    yaml_path = FIXTURES / "flow" / "cosyvoice.yaml"
    if not yaml_path.is_file():
        yaml_path = shared_file("goldens/flow/cosyvoice.yaml")
    return DecoderConfig.from_yaml(yaml_path).hift


@pytest.fixture(scope="module")
def io() -> dict[str, torch.Tensor]:
    return load_file(HIFT / "io.safetensors")


def speech_noise(length: int) -> torch.Tensor:
    """The reference's source noise for case `speech`: its draws right after torch.manual_seed(4242)."""
    torch.manual_seed(4242)
    torch.rand(1, 9)  # rand_ini, which has no effect but comes first
    return torch.empty(1, 9, length).transpose(1, 2).normal_()


@pytest.mark.parity
@pytest.mark.parametrize("fold", [False, True], ids=["weight_norm", "folded"])
def test_flow_case_matches_reference(cfg, io, fold):
    model = load_hift(HIFT / "hift.pt", cfg, fold=fold)
    seen = {}
    model.f0_predictor.register_forward_hook(lambda m, args, out: seen.__setitem__("f0", out))
    model.conv_post.register_forward_hook(lambda m, args, out: seen.__setitem__("conv_post", out))
    speech, source = model.inference(io["flow.mel"], source_noise=io["flow.draw1.randn_like"])

    assert speech.dtype == torch.float32 and source.dtype == torch.float32
    # f0 in Hz (up to 937) from five convolutions and a linear layer: 16 ulps of the largest value (1.8e-3).
    # Worst seen: 2.4e-4 (avx2, avx512), 2.1e-4 (default). A missing or misread layer moves f0 by tens of Hz.
    assert max_diff(seen["f0"], io["flow.f0"]) <= 16 * EPS * io["flow.f0"].abs().max()
    # Source, conv_post (up to 1.9) and waveform (up to 0.6) carry the source's phase rounding: tests/tolerances.py.
    # Worst seen: source 1.8e-4 (default), conv_post 1.6e-4 (avx512, 2 threads), speech 1.5e-4 (default).
    assert max_diff(source.transpose(1, 2), io["flow.m_source.sine_merge"]) <= HIFT_TOL
    assert max_diff(source, io["flow.source"]) <= HIFT_TOL
    assert max_diff(seen["conv_post"], io["flow.decode.conv_post_out"]) <= HIFT_TOL
    assert max_diff(speech, io["flow.speech"]) <= HIFT_TOL


@pytest.mark.parity
def test_speech_case_with_replayed_draw(cfg, io):
    model = load_hift(HIFT / "hift.pt", cfg)
    mel = io["speech.mel"]
    speech, source = model.inference(mel, source_noise=speech_noise(480 * mel.shape[2]))
    # As the flow case (tests/tolerances.py). Worst seen: source 1.4e-4, speech 3.2e-4 (MKL AVX2); 2.7e-4 (default).
    assert max_diff(source, io["speech.source"]) <= HIFT_TOL
    assert max_diff(speech, io["speech.speech"]) <= HIFT_TOL


@pytest.mark.parity
def test_generator_draws_the_reference_noise(cfg, io):
    # The noise is drawn channel-major like the reference's randn_like, so a CPU generator in the
    # reference's RNG state (seeded, rand_ini consumed) reproduces its waveform.
    model = load_hift(HIFT / "hift.pt", cfg)
    generator = torch.Generator().manual_seed(4242)
    torch.rand(1, 9, generator=generator)
    speech, _ = model.inference(io["speech.mel"], generator=generator)
    # As above; a wrong draw order gives other noise and misses by ~0.1. Worst seen: 3.2e-4 (MKL AVX2).
    assert max_diff(speech, io["speech.speech"]) <= HIFT_TOL


def test_generator_seeding(cfg, io):
    model = load_hift(HIFT / "hift.pt", cfg)
    mel = io["speech.mel"]
    a, _ = model.inference(mel, generator=torch.Generator().manual_seed(7))
    b, _ = model.inference(mel, generator=torch.Generator().manual_seed(7))
    c, _ = model.inference(mel, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert max_diff(a, c) > 1e-3


def test_legacy_weight_norm_keys(cfg, io, tmp_path):
    state = torch.load(HIFT / "hift.pt", weights_only=True)
    mapping = json.loads((HIFT / "hift_legacy_weightnorm_key_map.json").read_text())["map"]
    legacy = {old: state[new] for old, new in mapping.items()}
    assert any(k.endswith(".weight_g") for k in legacy) and len(legacy) == len(state) == 328
    torch.save(legacy, tmp_path / "hift.pt")

    noise = io["flow.draw1.randn_like"]
    expected, _ = load_hift(HIFT / "hift.pt", cfg).inference(io["flow.mel"], source_noise=noise)
    speech, _ = load_hift(tmp_path / "hift.pt", cfg).inference(io["flow.mel"], source_noise=noise)
    assert torch.equal(speech, expected)


@pytest.mark.parity
def test_real_dimensions():
    torch.manual_seed(0)
    model = HiFTGenerator(HiFTConfig()).eval()
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert len(shapes) == 328
    assert sum(v.numel() for v in model.state_dict().values()) == 20_821_295
    assert shapes["m_source.l_linear.weight"] == (1, 9)
    assert shapes["source_downs.0.weight"] == (256, 18, 30)
    assert shapes["source_downs.1.weight"] == (128, 18, 6)
    assert shapes["source_downs.2.weight"] == (64, 18, 1)
    assert shapes["conv_post.parametrizations.weight.original1"] == (18, 64, 7)
    assert shapes["ups.0.parametrizations.weight.original0"] == (512, 1, 1)  # per input channel
    assert shapes["f0_predictor.condnet.8.parametrizations.weight.original1"] == (512, 512, 3)
    assert shapes["resblocks.8.activations2.2.alpha"] == (64,)
    assert sum(k.startswith("resblocks.") for k in shapes) == 216
    assert sum(k.startswith("source_resblocks.") for k in shapes) == 72

    mel = torch.randn(1, 80, 3)
    speech, source = model.inference(mel, generator=torch.Generator().manual_seed(0))
    assert speech.shape == (1, 1440) and source.shape == (1, 1, 1440)
    folded, _ = model.fold_weight_norm().inference(mel, generator=torch.Generator().manual_seed(0))
    assert len(model.state_dict()) == 246
    # Folding weight norm rounds each weight once (0.5 ulp); the waveform (|x| < 1) moves by a few ulps of 1.
    # Worst seen: 0.
    assert max_diff(folded, speech) <= 1e-5


def test_bf16_module_keeps_fp32_stft(cfg, io):
    model = load_hift(HIFT / "hift.pt", cfg).to(torch.bfloat16)
    speech, source = model.inference(io["flow.mel"], source_noise=io["flow.draw1.randn_like"])
    assert speech.dtype == torch.float32 and source.dtype == torch.float32
    assert speech.shape == io["flow.speech"].shape and torch.isfinite(speech).all()


def test_bad_inputs(cfg, io):
    model = load_hift(HIFT / "hift.pt", cfg)
    with pytest.raises(InputError, match="mel"):
        model.inference(torch.zeros(1, 40, 10))
    with pytest.raises(InputError, match="source_noise"):
        model.inference(io["speech.mel"], source_noise=torch.zeros(1, 100, 9))


def test_missing_key_names_file_and_key(cfg, tmp_path):
    state = torch.load(HIFT / "hift.pt", weights_only=True)
    del state["conv_post.bias"]
    path = tmp_path / "hift.pt"
    torch.save(state, path)
    with pytest.raises(ModelFileError, match="conv_post.bias") as err:
        load_hift(path, cfg)
    assert str(path) in str(err.value)


def test_truncated_file_names_file(cfg, tmp_path):
    path = tmp_path / "hift.pt"
    path.write_bytes((HIFT / "hift.pt").read_bytes()[:200_000])
    with pytest.raises(ModelFileError) as err:
        load_hift(path, cfg)
    assert str(path) in str(err.value)
