"""The pytest plugin shoal installs: light to import, and its fixtures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_plugin_imports_nothing_heavy() -> None:
    # It is loaded into every pytest run of every project that has shoal installed.
    code = (
        "import sys; import shoal.testing.pytest_plugin; "
        "heavy = sorted({'trio', 'sqlite3', 'shoal.testing.store', 'shoal.kernel'} & set(sys.modules)); "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]"


def test_data_root_is_an_empty_directory(shoal_tmp_data_root: Path, tmp_path: Path) -> None:
    assert shoal_tmp_data_root.is_dir()
    assert list(shoal_tmp_data_root.iterdir()) == []
    assert shoal_tmp_data_root.is_relative_to(tmp_path)


def test_store_history_defaults_to_unlimited(store_history: int | None) -> None:
    assert store_history is None
