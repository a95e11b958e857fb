"""cosyvoice.yaml is read with a safe loader into typed configs; nothing in it is executed."""

from pathlib import Path

import pytest

from stepaudio_core.decoder.config import DecoderConfig, New, read_hyperpyyaml
from stepaudio_core.errors import ModelFileError
from stepaudio_core.testing.decoder import TINY_COSYVOICE_YAML

GOLDEN_YAML = Path(__file__).parent / "fixtures" / "flow" / "cosyvoice.yaml"


def test_golden_yaml_gives_the_tiny_config():
    cfg = DecoderConfig.from_yaml(GOLDEN_YAML)
    assert cfg.flow.input_size == 32 and cfg.flow.vocab_size == 5121 and cfg.flow.spk_embed_dim == 192
    assert (cfg.flow.encoder.num_blocks, cfg.flow.encoder.num_up_blocks, cfg.flow.encoder.attention_heads) == (2, 2, 4)
    assert cfg.flow.encoder.linear_units == 64 and cfg.flow.encoder.pre_lookahead_len == 3
    assert (cfg.flow.estimator.depth, cfg.flow.estimator.num_heads, cfg.flow.estimator.head_dim) == (2, 4, 8)
    assert cfg.flow.inference_cfg_rate == 0.7
    assert cfg.hift.base_channels == 32 and cfg.hift.f0_cond_channels == 32
    assert cfg.hift.upsample_rates == (8, 5, 3) and cfg.hift.istft_n_fft == 16 and cfg.hift.istft_hop_len == 4
    assert cfg.hift.resblock_dilation_sizes == ((1, 3, 5),) * 3
    assert (cfg.mel.n_fft, cfg.mel.hop_size, cfg.mel.fmax, cfg.mel.center) == (1920, 480, 8000, False)


def test_tiny_bundle_yaml_matches_the_golden_layout():
    assert DecoderConfig.from_yaml(GOLDEN_YAML) == DecoderConfig.from_yaml_text(TINY_COSYVOICE_YAML)


def test_defaults_are_the_released_dimensions():
    cfg = DecoderConfig()
    assert (cfg.flow.input_size, cfg.flow.encoder.num_blocks, cfg.flow.encoder.num_up_blocks) == (512, 6, 4)
    assert (cfg.flow.estimator.depth, cfg.flow.estimator.hidden_size) == (16, 512)
    assert (cfg.hift.base_channels, cfg.hift.f0_cond_channels) == (512, 512)


def test_apply_tags_are_never_executed(tmp_path):
    marker = tmp_path / "executed"
    path = tmp_path / "cosyvoice.yaml"
    text = TINY_COSYVOICE_YAML.replace(
        "__set_seed1: !apply:random.seed [1986]", f"__evil: !apply:pathlib.Path.touch [!new:pathlib.Path {{}}, '{marker}']"
    )
    path.write_text(text)
    root = read_hyperpyyaml(path)
    assert "__evil" not in root and not marker.exists()
    assert isinstance(root["flow"], New) and root["flow"].cls.endswith("CausalMaskedDiffWithXvec")
    DecoderConfig.from_yaml(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    "edit, message",
    [
        (("HiFTGenerator\n", "BigVGAN\n"), "implements HiFTGenerator only"),
        (("flow_hidden: 32", "flow_hidden: [32"), "not valid YAML"),
        (("!ref <flow_hidden>", "!ref <no_such_key>"), "does not exist"),
        (("mel_conf:", "not_mel_conf:"), "no 'mel_conf' section"),
    ],
)
def test_broken_yaml_names_the_file(tmp_path, edit, message):
    path = tmp_path / "cosyvoice.yaml"
    path.write_text(TINY_COSYVOICE_YAML.replace(*edit, 1))
    with pytest.raises(ModelFileError, match=message) as err:
        DecoderConfig.from_yaml(path)
    assert str(path) in str(err.value)


def test_missing_yaml(tmp_path):
    with pytest.raises(ModelFileError, match="cannot read"):
        DecoderConfig.from_yaml(tmp_path / "cosyvoice.yaml")
