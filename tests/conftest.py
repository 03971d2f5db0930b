"""Shared fixtures: where the real logs are, and a pseudonym key for tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TEST_KEY = b"test-pseudonym-key-0123456789"


def real_data_dir() -> Path:
    """The real public logs: $GIAMSAT_DATA_DIR, else ../shared/data beside the repo."""
    return Path(os.environ.get("GIAMSAT_DATA_DIR", ROOT.parent / "shared" / "data"))


@pytest.fixture
def data_dir() -> Path:
    path = real_data_dir()
    if not (path / "README.md").exists() and not any(path.glob("*.xes*")):
        pytest.skip(
            f"real logs not found at {path}: set GIAMSAT_DATA_DIR to the folder holding "
            "receipt.xes etc. to run this test"
        )
    return path


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Every test gets fresh settings with a known key, and no .env of the developer's."""
    from giamsat.settings import get_settings

    monkeypatch.setenv("GIAMSAT_PSEUDONYM_KEY", TEST_KEY.decode())
    monkeypatch.setenv("GIAMSAT_ENVIRONMENT", "test")
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
