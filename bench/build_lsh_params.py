"""Write `curate/data/lsh_params.json`: datasketch's MinHashLSH (bands, rows) for a grid of
thresholds and permutation counts, so that a run need not import datasketch (and scipy) to
know its banding (see curate.lsh_params). Deterministic; takes a few seconds.

    .venv/bin/python bench/build_lsh_params.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from curate import lsh_params  # noqa: E402


def main() -> int:
    table = {}
    for num_perm in lsh_params.GRID_NUM_PERM:
        for threshold in lsh_params.GRID_THRESHOLDS:
            try:
                chosen = lsh_params.computed_by_datasketch(threshold, num_perm)
            except ValueError:  # datasketch refuses the setting (e.g. b < 2): left to it
                continue
            table[lsh_params.table_key(threshold, num_perm)] = list(chosen)
    lines = [f"{json.dumps(key)}: {json.dumps(table[key])}" for key in sorted(table)]
    text = "{\n" + ",\n".join(lines) + "\n}\n"
    lsh_params.TABLE.write_text(text, encoding="utf-8")
    print(f"wrote {lsh_params.TABLE.relative_to(ROOT)}: {len(table)} settings")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
