"""MinHashLSH banding without importing datasketch at start-up.

`datasketch.MinHashLSH` chooses its bands (b bands of r rows) by numerical integration with
`scipy.integrate`; importing datasketch therefore imports scipy, about 0.45 s of serial CPU in
every run before a single document is read (two thirds of curate's start-up). The choice is a
pure function of (threshold, num_perm) with the default weights, so the pairs for the usual
settings are computed once by datasketch itself and shipped in `curate/data/lsh_params.json`
(`bench/build_lsh_params.py` writes it; `tests/test_lsh_params.py` checks every entry against
datasketch's `_optimal_param`). Any other setting asks datasketch, imported then.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

TABLE = Path(__file__).parent / "data" / "lsh_params.json"
# The grid the table covers (what bench/build_lsh_params.py computes).
GRID_NUM_PERM = (16, 32, 64, 128, 256)
GRID_THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(6, 20))  # 0.3 ... 0.95


def table_key(threshold: float, num_perm: int) -> str:
    return f"{num_perm}:{threshold!r}"


@cache
def _table() -> dict[str, tuple[int, int]]:
    try:
        data = json.loads(TABLE.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {key: (int(b), int(r)) for key, (b, r) in data.items()}


def computed_by_datasketch(threshold: float, num_perm: int) -> tuple[int, int]:
    """(b, r) exactly as `datasketch.MinHashLSH(threshold, num_perm)` chooses them (and with
    its checks of the arguments)."""
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    return lsh.b, lsh.r


@cache
def bands(threshold: float, num_perm: int) -> tuple[tuple[int, int], ...]:
    """The (start, end) signature columns of MinHashLSH's bands for `threshold`."""
    found = _table().get(table_key(threshold, num_perm))
    b, r = found if found is not None else computed_by_datasketch(threshold, num_perm)
    return tuple((i * r, (i + 1) * r) for i in range(b))
