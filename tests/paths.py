"""Where test data lives.

Small fixtures are copied into ``tests/fixtures/`` so the suite runs anywhere. Large goldens
(``campplus.onnx``) and the released model's own files are read from the ``shared`` folder
beside the checkout; tests that need them call ``shared_file`` and skip, saying why, where it is
absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SHARED = Path(os.environ.get("STEPAUDIO_SHARED", Path(__file__).resolve().parents[2] / "shared"))


def shared_file(relative: str) -> Path:
    """Path of ``relative`` under the shared folder, or skip the calling test."""
    path = SHARED / relative
    if not path.is_file():
        pytest.skip(f"{relative} is not available (looked in {SHARED}; set STEPAUDIO_SHARED to the shared folder)")
    return path
