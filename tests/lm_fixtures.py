"""Fixtures shared by the LM test files: the golden tiny Step1 model and its recorded tensors."""

import pytest
import torch
from safetensors.torch import load_file

from stepaudio_core.lm.load import load_step1
from tests.paths import FIXTURES

LM = FIXTURES / "lm"


@pytest.fixture(scope="module")
def golden():
    return load_file(str(LM / "io.safetensors"))


@pytest.fixture(scope="module")
def model():
    return load_step1(LM, dtype=torch.float32)
