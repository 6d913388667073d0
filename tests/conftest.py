"""Shared fixtures: the shipped EmojiMem assets and whether the emoji font is installed.

The Hugging Face environment is set first, before anything imports huggingface_hub (it reads these at import): every
test, and every subprocess a test starts, runs offline against an empty cache in a temporary folder."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

if "huggingface_hub" in sys.modules:  # its constants would keep the real cache and online mode
    raise RuntimeError("huggingface_hub was imported before tests/conftest.py could make the tests offline")
HF_TEST_HOME = tempfile.mkdtemp(prefix="memdemo-hf-home-")
os.environ.update(
    {
        "HF_HOME": HF_TEST_HOME,
        "HF_HUB_CACHE": os.path.join(HF_TEST_HOME, "hub"),
        "HUGGINGFACE_HUB_CACHE": os.path.join(HF_TEST_HOME, "hub"),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
    }
)

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from memdemo.data.emojimem import DEFAULT_DIR, EmojiMem  # noqa: E402
from memdemo.data.render import FontNotFoundError, find_noto_font  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHIPPED_PIXEL_INDEX = REPO / "indexes" / "emojimem-pixel"


def _font_installed() -> bool:
    try:
        find_noto_font()
    except FontNotFoundError:
        return False
    return True


needs_font = pytest.mark.skipif(
    not _font_installed(), reason="needs the Debian package fonts-noto-color-emoji (CI installs it)"
)


@pytest.fixture(scope="session")
def emojimem() -> EmojiMem:
    return EmojiMem.load(DEFAULT_DIR)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the temporary Hugging Face home at the end of the session."""
    shutil.rmtree(HF_TEST_HOME, ignore_errors=True)
