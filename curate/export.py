"""Export a version's documents in formats other tools read directly.

- jsonl: the documents as JSON lines (`datasets.load_dataset("json", data_files=...)`).
- parquet: columns id, source, text, meta (JSON string), flags (JSON string); meta and flags are
  JSON strings because their keys differ from document to document.
- txt: a folder with one UTF-8 file per document, `<id>.txt`, and `index.tsv` (id, source).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from curate.version import read_jsonl


def export_version(version_dir: Path, fmt: str, out: Path) -> int:
    docs_path = version_dir / "documents.jsonl"
    if fmt == "jsonl":
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(docs_path, out)
        return sum(1 for _ in read_jsonl(out))
    records = list(read_jsonl(docs_path))
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table(
            {
                "id": [r["id"] for r in records],
                "source": [r["source"] for r in records],
                "text": [r["text"] for r in records],
                "meta": [json.dumps(r["meta"], ensure_ascii=False) for r in records],
                "flags": [json.dumps(r["flags"], ensure_ascii=False) for r in records],
            }
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, out)
        return len(records)
    if fmt == "txt":
        out.mkdir(parents=True, exist_ok=True)
        lines = []
        for record in records:
            (out / f"{record['id']}.txt").write_text(record["text"] + "\n", encoding="utf-8")
            lines.append(f"{record['id']}\t{record['source']}")
        (out / "index.tsv").write_text("id\tsource\n" + "\n".join(lines) + "\n", encoding="utf-8")
        return len(records)
    raise ValueError(f"unknown export format {fmt!r}")
