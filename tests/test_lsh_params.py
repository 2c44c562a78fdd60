"""curate.lsh_params: MinHashLSH's banding without importing datasketch (and scipy) in a run."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from datasketch import MinHashLSH
from datasketch.lsh import _optimal_param

from curate import lsh_params

from .conftest import ROOT, SEED_FILES


def test_every_shipped_entry_is_what_datasketch_chooses() -> None:
    table = json.loads(lsh_params.TABLE.read_text(encoding="utf-8"))
    assert "128:0.6" in table and "32:0.6" in table  # the defaults of the dedup stage
    assert len(table) >= 60
    for key, (b, r) in table.items():
        num_perm, threshold = key.split(":")
        assert _optimal_param(float(threshold), int(num_perm), 0.5, 0.5) == (b, r), key


@pytest.mark.parametrize(("threshold", "num_perm"), [(0.6, 128), (0.6, 32), (0.85, 64), (0.71, 100)])
def test_bands_equal_minhashlsh_hashranges(threshold: float, num_perm: int) -> None:
    # (0.71, 100) is not in the table: datasketch is asked then, with the same result.
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    assert lsh_params.bands(threshold, num_perm) == tuple(lsh.hashranges)


def test_a_setting_datasketch_refuses_is_refused() -> None:
    with pytest.raises(ValueError):
        lsh_params.bands(0.95, 16)  # b < 2: datasketch refuses it, and so does a run


def test_a_run_on_the_samples_never_imports_datasketch_or_scipy(tmp_path) -> None:
    # Importing datasketch imports scipy: ~0.45 s of serial start-up in every run.
    script = (
        "import sys\n"
        "from curate import config, runner\n"
        f"settings = config.build({{'run': {{'corpus': {str(tmp_path / 'c')!r}, "
        f"'reports': {str(tmp_path / 'r')!r}, 'rules': [{str(ROOT / 'rules')!r}], 'workers': 1}}}})\n"
        f"result = runner.run(settings, inputs={[str(p) for p in SEED_FILES]!r})\n"
        "assert result.created\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('datasketch', 'scipy')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
