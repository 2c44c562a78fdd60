"""Near-duplicate benchmark: curate's dedup stage vs a plain datasketch loop vs datatrove.

Input: the NewsSpider articles (`<corpora>/lzjqsdd-NewsSpider/testdata/data/orinews/`, natural
cross-outlet duplicates) plus duplicates planted from their own paragraphs: character edits,
punctuation width changes, Simplified->Traditional, truncation, and splicing a paragraph onto
the end of another document's paragraph. Every method sees the same documents.

Measured, side by side, each method in its own process (so peak memory is its own):
- recall on the planted pairs (a copy counts as found when a removal covers it and links to
  its source paragraph, or the source is removed linking to the copy);
- precision over every paragraph-level removal, judged by an independent oracle: after a plain
  normalisation (letters and digits only, OpenCC t2s), at least 80% of the removed text must be
  matched, by difflib, in the text it is said to duplicate;
- throughput (UTF-8 MB of all document text per second of the method's own work) and peak RSS;
- for curate also the signature path alone (comparison form -> shingles -> 128 permutations),
  the target being >= 20 MB/s per core, and the size of the saved index per paragraph.

Peers: (a) datasketch `MinHash.update` per shingle (character 5-grams of the text, sha1 hash,
MinHashLSH at 0.8, first kept copy wins, no verification); (b) datatrove's four-stage MinHash
dedup with paragraphs as documents (jieba words via spaCy for `zho_Hani`). datatrove runs in a
separate environment, never a dependency of curate:

    python3 -m venv bench/.venv-peers
    bench/.venv-peers/bin/pip install datatrove jieba spacy tokenizers "xxhash<4"

(datatrove 0.10.1 hashes str with xxhash, which xxhash 4 refuses.)

curate runs twice: in memory (`NearDuplicates.run`, one process) and as the pipeline runs it
(`LocalEngine(workers=2)`: signatures in forked workers, decisions in the driver).

Usage: .venv/bin/python bench/bench_dedup.py [--corpora PATH] [--planted N] [--peers-python PATH]
Prints a markdown table. Exits 0 with a "skipped: ... not found" line when the corpora are absent.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import unicodedata
from difflib import SequenceMatcher
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ORINEWS = Path("lzjqsdd-NewsSpider/testdata/data/orinews")
KINDS = ["edits", "punctuation", "traditional", "truncation", "splice"]
HALF_TO_FULL = str.maketrans(
    {",": "，", ".": "。", ":": "：", ";": "；", "?": "？", "!": "！", "(": "（", ")": "）"}
)
FULL_TO_HALF = {v: chr(k) for k, v in HALF_TO_FULL.items()}


# --------------------------------------------------------------------------- data
def load_articles(folder: Path) -> list[tuple[str, str]]:
    docs = []
    for path in sorted(folder.glob("*.txt"), key=lambda p: (len(p.stem), p.stem)):
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle):
                line = line.strip()
                if not line:
                    continue
                record = json.loads(line)
                text = str(record.get("content") or "").replace("\r", "")
                if text.strip():
                    docs.append((f"{path.name}#{number}", text))
    return docs


def paragraphs(text: str) -> list[tuple[int, int]]:
    spans, start = [], 0
    for line in text.split("\n"):
        if line.strip():
            spans.append((start, start + len(line)))
        start += len(line) + 1
    return spans


def letters(text: str) -> str:
    return "".join(c for c in text if unicodedata.category(c)[0] in "LN")


def plant(
    docs: list[tuple[str, str]], count: int, seed: int
) -> tuple[list[tuple[str, str]], list[dict]]:
    """Insert `count` modified copies of real paragraphs into other documents (one per host)."""
    import opencc

    to_traditional = opencc.OpenCC("s2t").convert
    rng = random.Random(seed)
    seen: dict[str, int] = {}
    for _, text in docs:
        for s, e in paragraphs(text):
            key = letters(text[s:e])
            seen[key] = seen.get(key, 0) + 1
    # Sources: long, multi-sentence paragraphs that occur once; hosts: documents none of whose
    # long paragraphs occur elsewhere (so no host is itself a natural duplicate document).
    sources, hosts = [], []
    for d, (_, text) in enumerate(docs):
        spans = paragraphs(text)
        body_keys = [letters(text[s:e]) for s, e in spans]
        unique = all(seen[k] == 1 for k in body_keys if len(k) >= 40)
        if unique and spans:
            hosts.append(d)
        for s, e in spans:
            body = text[s:e]
            if (
                80 <= len(letters(body)) <= 500
                and body.count("。") >= 2
                and seen[letters(body)] == 1
            ):
                sources.append((d, s, e))
                break
    rng.shuffle(sources)
    rng.shuffle(hosts)
    han = [chr(c) for c in range(0x4E00, 0x9FA5)]
    used, truth, texts = set(), [], [text for _, text in docs]
    for source_doc, s, e in sources:
        if len(truth) == count:
            break
        host = next((h for h in hosts if h not in used and h != source_doc), None)
        if host is None or source_doc in used:
            continue
        used.update((host, source_doc))
        kind = KINDS[len(truth) % len(KINDS)]
        original = texts[source_doc][s:e]
        if kind == "edits":
            chars = list(original)
            for i in rng.sample(range(len(chars)), max(1, len(chars) // 40)):
                if unicodedata.category(chars[i])[0] == "L":
                    chars[i] = rng.choice(han)
            copy = "".join(chars)
        elif kind == "punctuation":
            swapped = "".join(FULL_TO_HALF.get(c, c) for c in original)
            copy = swapped if swapped != original else original.translate(HALF_TO_FULL)
        elif kind == "traditional":
            copy = to_traditional(original)
        elif kind == "truncation":
            copy = original[: int(len(original) * rng.uniform(0.55, 0.8))]
        else:
            copy = original
        host_text = texts[host]
        spans = paragraphs(host_text)
        if kind == "splice":
            # Append the copy to a host paragraph that ends a sentence.
            endings = [(hs, he) for hs, he in spans if host_text[hs:he].rstrip().endswith("。")]
            if not endings:
                used.discard(host)
                continue
            hs, he = rng.choice(endings)
            texts[host] = host_text[:he] + copy + host_text[he:]
            at = he
        else:
            at = rng.choice([hs for hs, _ in spans] + [len(host_text)])
            insert = copy + "\n" if at < len(host_text) else "\n" + copy
            texts[host] = host_text[:at] + insert + host_text[at:]
            at = at if at < len(host_text) else at + 1
        truth.append(
            {
                "kind": kind,
                "copy": [docs[host][0], at, at + len(copy)],
                "source": [docs[source_doc][0], s, e],
            }
        )
    return [(source, texts[i]) for i, (source, _) in enumerate(docs)], truth


# --------------------------------------------------------------------------- methods (children)
def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def method_curate(docs: list[tuple[str, str]], workers: int = 0) -> dict:
    """The stage in memory (workers=0: `run`, one process) or through the pipeline's engine
    (summarise in `workers` forked processes, observe/decide in this one, apply from a spill)."""
    sys.path.insert(0, str(REPO))
    from curate import minhash
    from curate.document import DUPLICATE, Document
    from curate.engine import LocalEngine
    from curate.stages.base import RunContext
    from curate.stages.dedup import INDEX_NAME, DedupSettings, NearDuplicates

    minhash.comparison_form("預熱")  # code point tables: built once per process, before forking
    documents = [Document.new(source, text) for source, text in docs]
    context = RunContext(config=None)
    stage = NearDuplicates(DedupSettings(), context)
    start = time.perf_counter()
    if workers:
        out = list(LocalEngine(workers=workers).execute(documents, [stage]))
    else:
        out = list(stage.run(documents))
    seconds = time.perf_counter() - start
    by_id = {d.id: d for d in out}
    removals = []
    for d in out:
        for edit in d.edits:
            if edit.stage != "dedup":
                continue
            linked = by_id.get(edit.link["doc"])
            removals.append(
                {
                    "doc": d.source,
                    "start": edit.src_start,
                    "end": edit.src_end,
                    "link_doc": linked.source if linked else edit.link["doc"],
                    "link_start": edit.link.get("src_start", edit.link["start"]),
                    "link_end": edit.link.get("src_end", edit.link["end"]),
                    "rule": edit.rule,
                }
            )
    index = context.state["artifacts"][INDEX_NAME]
    return {
        "seconds": seconds,
        "peak_mb": peak_mb(),
        "worker_peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        "removals": removals,
        "duplicate_docs": sum(d.status == DUPLICATE for d in out),
        "paragraphs": context.state["dedup"]["paragraphs"],
        "index_bytes": len(index),
        "index_members": index_members(index),
    }


def index_members(data: bytes) -> dict[str, int]:
    import io
    import zipfile

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {info.filename: info.compress_size for info in archive.infolist()}


def method_signatures(docs: list[tuple[str, str]]) -> dict:
    """curate's signature path alone: all paragraphs, 128 permutations."""
    sys.path.insert(0, str(REPO))
    import numpy as np

    from curate import minhash

    minhash.comparison_form("預熱")  # build the code point tables (t2s fold, letters) once
    spans = [np.array(paragraphs(text), dtype=np.int64).reshape(-1, 2) for _, text in docs]
    best: dict[str, float] = {}
    for _ in range(5):  # best of five: the machine is shared, the fastest run is the cost
        start = time.perf_counter()
        forms = [minhash.comparison_form(text) for _, text in docs]
        formed = time.perf_counter()
        # Paragraphs are contiguous in the comparison form (what lies between them, line
        # breaks, is not compared), so the segment bounds are just their starts.
        codes = np.concatenate([form.codes for form in forms])
        offsets = np.cumsum([0] + [len(form) for form in forms])
        bounds_all = np.unique(
            np.concatenate(
                [
                    np.searchsorted(form.positions, span[:, 0]) + offset
                    for form, span, offset in zip(forms, spans, offsets[:-1], strict=True)
                ]
                + [offsets[-1:]]
            )
        )
        laid_out = time.perf_counter()
        ids, starts = minhash.shingle_ids(codes, bounds_all, 5)
        groups = np.searchsorted(starts, bounds_all)
        signatures = minhash.signatures(minhash.fold32(ids), groups, 128, 1)
        done = time.perf_counter()
        for key, value in (
            ("seconds", done - start),
            ("form_seconds", formed - start),
            ("sign_seconds", done - laid_out),
        ):
            best[key] = min(best.get(key, value), value)
    return {**best, "paragraphs": int(signatures.shape[0]), "peak_mb": peak_mb()}


def method_datasketch(docs: list[tuple[str, str]]) -> dict:
    from datasketch import MinHash, MinHashLSH

    start = time.perf_counter()
    lsh = MinHashLSH(threshold=0.8, num_perm=128)
    removals = []
    units = []
    for source, text in docs:
        for s, e in paragraphs(text):
            units.append((source, s, e))
    for key, (source, s, e) in enumerate(units):
        text = "".join(docs_text(docs, source)[s:e].split())
        if len(text) < 20:
            continue
        sketch = MinHash(num_perm=128)
        for i in range(max(1, len(text) - 4)):
            sketch.update(text[i : i + 5].encode("utf-8"))
        found = sorted(lsh.query(sketch))
        if found:
            other = units[found[0]]
            removals.append(
                {
                    "doc": source,
                    "start": s,
                    "end": e,
                    "link_doc": other[0],
                    "link_start": other[1],
                    "link_end": other[2],
                }
            )
        else:
            lsh.insert(key, sketch)
    return {"seconds": time.perf_counter() - start, "peak_mb": peak_mb(), "removals": removals}


_TEXTS: dict[str, str] = {}


def docs_text(docs: list[tuple[str, str]], source: str) -> str:
    if not _TEXTS:
        _TEXTS.update(docs)
    return _TEXTS[source]


DATATROVE_SCRIPT = r"""
import json, struct, sys, time, resource, tempfile
from pathlib import Path
from datatrove.data import Document
from datatrove.pipeline.dedup.minhash import (MinhashConfig, MinhashDedupSignature,
    MinhashDedupBuckets, MinhashDedupCluster)
from datatrove.utils.typeshelper import Languages
units = json.load(open(sys.argv[1], encoding="utf-8"))
work = Path(tempfile.mkdtemp())
config = MinhashConfig()
language = sys.argv[2]
docs = [Document(text=u["text"], id=str(i)) for i, u in enumerate(units)]
start = time.perf_counter()
MinhashDedupSignature(output_folder=str(work / "sigs"), config=config, language=language).run(iter(docs), 0, 1)
for bucket in range(config.num_buckets):
    MinhashDedupBuckets(input_folder=str(work / "sigs"), output_folder=str(work / "buckets"),
                        config=config).run(None, bucket, config.num_buckets)
MinhashDedupCluster(input_folder=str(work / "buckets"), output_folder=str(work / "remove"),
                    config=config, save_cluster_id=True).run(None, 0, 1)
seconds = time.perf_counter() - start
removed, clusters = [], {}
path = work / "remove" / "000000.remove"
if path.exists():
    data = path.read_bytes()
    removed = [struct.unpack_from("<I", data, i)[0] for i in range(0, len(data), 4)]
path = work / "remove" / "000000.clusters"
if path.exists():
    data = path.read_bytes()
    for i in range(0, len(data), 8):
        doc, cluster = struct.unpack_from("<II", data, i)
        clusters[doc] = cluster
print(json.dumps({"seconds": seconds, "removed": removed, "clusters": clusters,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def method_datatrove(docs: list[tuple[str, str]], python: str) -> dict:
    units = [(source, s, e) for source, text in docs for s, e in paragraphs(text)]
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "units.json"
        data.write_text(
            json.dumps(
                [{"text": docs_text(docs, u[0])[u[1] : u[2]]} for u in units], ensure_ascii=False
            ),
            encoding="utf-8",
        )
        script = Path(tmp) / "run_datatrove.py"
        script.write_text(DATATROVE_SCRIPT, encoding="utf-8")
        result = None
        for language in ("zho_Hani", "zho"):
            proc = subprocess.run(
                [python, str(script), str(data), language],
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode == 0:
                result = json.loads(proc.stdout.strip().splitlines()[-1])
                result["language"] = language
                break
            error = proc.stderr.strip().splitlines()[-1:] or ["?"]
            print(f"datatrove ({language}) failed: {error[0]}", file=sys.stderr)
        if result is None:
            return {"error": "datatrove did not run"}
    clusters = {int(k): v for k, v in result["clusters"].items()}
    removed = set(result["removed"])
    keeper = {}
    for doc, cluster in sorted(clusters.items()):
        if doc not in removed:
            keeper.setdefault(cluster, doc)
    removals = []
    for doc in sorted(removed):
        kept = keeper.get(clusters.get(doc, -1))
        if kept is None:
            continue
        (source, s, e), (k_source, k_s, k_e) = units[doc], units[kept]
        removals.append(
            {
                "doc": source,
                "start": s,
                "end": e,
                "link_doc": k_source,
                "link_start": k_s,
                "link_end": k_e,
            }
        )
    return {
        "seconds": result["seconds"],
        "peak_mb": result["peak_mb"],
        "removals": removals,
        "language": result["language"],
    }


# --------------------------------------------------------------------------- evaluation
def oracle(removed: str, linked: str, t2s) -> bool:
    """At least 80% of the removed letters are matched, in order, in the linked text."""
    a, b = letters(t2s(removed)), letters(t2s(linked))
    if not a:
        return False
    matched = sum(
        block.size for block in SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks()
    )
    return matched >= 0.8 * len(a)


def overlaps(span: tuple[int, int], other: tuple[int, int], share: float = 0.5) -> bool:
    inter = min(span[1], other[1]) - max(span[0], other[0])
    return inter > 0 and inter >= share * (span[1] - span[0])


def evaluate(result: dict, docs: dict[str, str], truth: list[dict]) -> dict:
    import opencc

    t2s = opencc.OpenCC("t2s").convert
    removals = result.get("removals", [])
    correct = sum(
        oracle(
            docs[r["doc"]][r["start"] : r["end"]],
            docs[r["link_doc"]][r["link_start"] : r["link_end"]],
            t2s,
        )
        for r in removals
    )
    found: dict[str, list[int]] = {k: [0, 0] for k in KINDS}
    for plant in truth:
        (c_doc, c_s, c_e), (s_doc, s_s, s_e) = plant["copy"], plant["source"]
        hit = any(
            (
                r["doc"] == c_doc
                and overlaps((c_s, c_e), (r["start"], r["end"]))
                and r["link_doc"] == s_doc
                and overlaps((r["link_start"], r["link_end"]), (s_s, s_e), 0.3)
            )
            or (
                r["doc"] == s_doc
                and overlaps((s_s, s_e), (r["start"], r["end"]))
                and r["link_doc"] == c_doc
                and overlaps((r["link_start"], r["link_end"]), (c_s, c_e), 0.3)
            )
            for r in removals
        )
        found[plant["kind"]][0] += hit
        found[plant["kind"]][1] += 1
    hits = sum(v[0] for v in found.values())
    return {
        "removals": len(removals),
        "precision": correct / len(removals) if removals else float("nan"),
        "recall": hits / len(truth) if truth else float("nan"),
        "by_kind": {k: f"{v[0]}/{v[1]}" for k, v in found.items()},
    }


# --------------------------------------------------------------------------- main
def run_child(method: str, data: Path, extra: list[str]) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", method, "--data", str(data), *extra],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpora", default=str(REPO.parent / "shared" / "corpora"))
    parser.add_argument("--planted", type=int, default=250)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--peers-python", default=str(REPO / "bench" / ".venv-peers" / "bin" / "python")
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        docs = [tuple(d) for d in json.loads(Path(args.data).read_text(encoding="utf-8"))]
        method = {
            "curate": method_curate,
            "curate-engine": lambda d: method_curate(d, workers=2),
            "signatures": method_signatures,
            "datasketch": method_datasketch,
        }
        if args.child == "datatrove":
            print(json.dumps(method_datatrove(docs, args.peers_python)))
        else:
            print(json.dumps(method[args.child](docs)))
        return 0

    folder = Path(args.corpora) / ORINEWS
    if not folder.is_dir():
        print(f"skipped: {folder} not found")
        return 0
    docs, truth = plant(load_articles(folder), args.planted, args.seed)
    texts = dict(docs)
    megabytes = sum(len(t.encode("utf-8")) for _, t in docs) / 1e6
    paragraph_count = sum(len(paragraphs(t)) for _, t in docs)
    print(
        f"input: {len(docs)} articles, {paragraph_count} paragraphs, {megabytes:.2f} MB of text, "
        f"{len(truth)} planted copies ({', '.join(KINDS)}), seed {args.seed}\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "docs.json"
        data.write_text(json.dumps(docs, ensure_ascii=False), encoding="utf-8")
        results = {"curate": run_child("curate", data, [])}
        results["curate-engine"] = run_child("curate-engine", data, [])
        results["signatures"] = run_child("signatures", data, [])
        results["datasketch"] = run_child("datasketch", data, [])
        if Path(args.peers_python).is_file():
            results["datatrove"] = run_child(
                "datatrove", data, ["--peers-python", args.peers_python]
            )
        else:
            results["datatrove"] = {
                "error": f"{args.peers_python} not found (see the module docstring)"
            }

    names = {
        "curate": "curate dedup stage (paragraphs, passages, documents; exact verification)",
        "curate-engine": "curate dedup stage via LocalEngine(workers=2) (peak: driver, worker)",
        "datasketch": "(a) datasketch MinHash.update loop, per paragraph",
        "datatrove": "(b) datatrove MinHash dedup, paragraphs as documents",
    }
    print(
        "| method | MB/s | peak RSS MB | removals | precision | planted recall | by kind ("
        + "/".join(KINDS)
        + ") |"
    )
    print("|---|---|---|---|---|---|---|")
    for key, name in names.items():
        result = results[key]
        if "error" in result:
            print(f"| {name} | - | - | - | - | - | not run: {result['error']} |")
            continue
        score = evaluate(result, texts, truth)
        if key == "datatrove":
            name += f" ({result.get('language')})"
        peak = f"{result['peak_mb']:.0f}"
        if key == "curate-engine":
            peak += f", {result['worker_peak_mb']:.0f}"
        print(
            f"| {name} | {megabytes / result['seconds']:.2f} | {peak} | {score['removals']} "
            f"| {score['precision']:.3f} | {score['recall']:.3f} | "
            + " ".join(score["by_kind"][k] for k in KINDS)
            + " |"
        )
    sig = results["signatures"]
    if "error" not in sig:
        print(
            f"\ncurate signatures alone (128 permutations, {sig['paragraphs']} paragraphs): "
            f"{megabytes / sig['seconds']:.1f} MB/s for text -> signatures "
            f"(comparison form incl. t2s {megabytes / sig['form_seconds']:.1f} MB/s; "
            f"shingles + permutations {megabytes / sig['sign_seconds']:.1f} MB/s), peak RSS {sig['peak_mb']:.0f} MB"
        )
    cur = results["curate"]
    if "error" not in cur:
        per = cur["index_bytes"] / max(1, cur["paragraphs"])
        parts = ", ".join(
            f"{k.removesuffix('.npy')} {v / max(1, cur['paragraphs']):.0f}"
            for k, v in sorted(cur["index_members"].items())
            if v > 1000
        )
        print(
            f"curate: {cur['duplicate_docs']} duplicate documents; index {cur['index_bytes'] / 1e6:.1f} MB = "
            f"{per:.0f} bytes per paragraph ({parts})"
        )
    print(
        f"\ncommand: {' '.join([Path(sys.executable).name, 'bench/bench_dedup.py', '--corpora', args.corpora])}; "
        f"cores: {os.cpu_count()}, load average {os.getloadavg()[0]:.1f} (each method one process)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
