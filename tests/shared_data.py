"""Where the shared data sets are (`../shared/data` beside the repository), and the mark that
skips a test needing them, with the reason, when they are not there."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MISSING = (
    f"the shared data sets are missing ({SHARED_DATA}): they sit in ../shared/data beside the "
    "repository (GSM8K, GSM-Plus, HumanEval, Who&When samples)"
)
needs_shared_data = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=MISSING)
