"""Versions: content-addressed ids, byte-identical output, atomic writes, verification."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from curate.version import count_each, json_bytes, json_line, read_latest, verify

from .conftest import ROOT, SEED_FILES, SEEDS, make_config


def tree_hashes(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_a_version_has_its_files_and_fields(curate_run, tmp_path):
    result = curate_run()
    assert result.created
    folder = result.version_dir
    for name in ["documents.jsonl", "edits.jsonl", "manifest.json", "quarantine.jsonl", "duplicates.jsonl"]:
        assert (folder / name).is_file(), name
    assert read_latest(tmp_path / "corpus") == result.version_id
    docs = [json.loads(line) for line in (folder / "documents.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(docs) == 5
    assert [d["source"] for d in docs] == sorted(d["source"] for d in docs)  # input order
    for doc in docs:
        assert set(doc) >= {"id", "source", "text", "meta", "flags"}
        for flag in doc["flags"]:
            assert doc["text"][flag["start"] : flag["end"]] == flag["text"]
            assert set(flag) >= {"kind", "start", "end", "text", "reason"}
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["version"] == result.version_id
    assert manifest["parent"] is None
    assert set(manifest) >= {"tool_version", "config", "rules_digest", "inputs", "outputs", "counts", "skipped"}
    seeds = sorted(p.name for p in SEEDS.glob("*") if p.suffix == ".txt")
    assert [i["path"] for i in manifest["inputs"]] == seeds
    for item in manifest["inputs"]:
        assert item["sha256"] == hashlib.sha256((SEEDS / item["path"]).read_bytes()).hexdigest()
    assert manifest["counts"]["documents_in"] == 5
    edits = [json.loads(line) for line in (folder / "edits.jsonl").read_text(encoding="utf-8").splitlines()]
    for edit in edits:
        assert set(edit) >= {"doc", "stage", "rule", "action", "start", "end", "before", "after", "reason"}


def test_manifest_counts_are_those_of_the_version_files(curate_run):
    """The counts the writer accumulates as documents stream by are what counting the written
    edit and record lines gives."""
    from collections import Counter

    folder = curate_run().version_dir
    edits = [json.loads(line) for line in (folder / "edits.jsonl").read_text(encoding="utf-8").splitlines()]
    records = [
        json.loads(line)
        for name in ["documents.jsonl", "quarantine.jsonl", "duplicates.jsonl"]
        for line in (folder / name).read_text(encoding="utf-8").splitlines()
    ]
    counts = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))["counts"]
    removed: Counter[str] = Counter()
    for e in edits:
        removed[e["rule"]] += max(0, len(e["before"]) - len(e["after"]))
    assert edits and any(e["action"].startswith("meta:") for e in edits)  # the counts are not trivial
    assert counts["edits"] == len(edits)
    assert counts["edits_by_stage"] == dict(sorted(Counter(e["stage"] for e in edits).items()))
    assert counts["edits_by_rule"] == dict(sorted(Counter(e["rule"] for e in edits).items()))
    assert counts["chars_removed_by_rule"] == dict(sorted(removed.items()))
    by_doc = Counter(rule for rule, _ in {(e["rule"], e["doc"]) for e in edits})
    assert counts["documents_by_rule"] == dict(sorted(by_doc.items()))
    meta = Counter(e["action"][5:] for e in edits if e["action"].startswith("meta:"))
    assert counts["meta_fields"] == dict(sorted(meta.items()))
    flags = Counter(f["kind"] for r in records for f in r.get("flags", []))
    assert counts["flags_by_kind"] == dict(sorted(flags.items()))
    assert counts["documents_in"] == len(records)


def test_edits_rebuild_every_input_exactly(curate_run):
    from curate.document import Edit, undo_edits

    folder = curate_run().version_dir
    docs = {}
    for name in ["documents.jsonl", "quarantine.jsonl", "duplicates.jsonl"]:
        for line in (folder / name).read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            docs[record["id"]] = record
    edits: dict[str, list[Edit]] = {}
    for line in (folder / "edits.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        edits.setdefault(record["doc"], []).append(Edit.from_json(record))
    for record in docs.values():
        original = (SEEDS / record["source"]).read_text(encoding="utf-8")
        assert undo_edits(record["text"], edits.get(record["id"], [])) == original
        for edit in edits.get(record["id"], []):
            assert 0 <= edit.src_start <= edit.src_end <= len(original)


def test_same_inputs_same_id_and_bytes(tmp_path):
    from curate.runner import run

    first = run(make_config(tmp_path / "a"), inputs=[str(p) for p in SEED_FILES])
    second = run(make_config(tmp_path / "b"), inputs=[str(p) for p in SEED_FILES])
    assert first.version_id == second.version_id
    for name in ["documents.jsonl", "edits.jsonl", "quarantine.jsonl", "duplicates.jsonl"]:
        assert (first.version_dir / name).read_bytes() == (second.version_dir / name).read_bytes()


def test_rerun_creates_nothing(curate_run, tmp_path):
    first = curate_run()
    before = tree_hashes(tmp_path / "corpus")
    again = curate_run()
    assert not again.created and again.version_id == first.version_id
    assert tree_hashes(tmp_path / "corpus") == before
    assert len(list((tmp_path / "corpus" / "versions").iterdir())) == 1


def test_a_version_whose_id_did_not_name_its_parent_is_still_a_rerun(tmp_path, monkeypatch):
    # A corpus curated before ids named the parent: its latest version, made on a parent, has
    # the id of the same inputs alone. Curating them again creates nothing.
    from curate import runner

    copies = tmp_path / "again"
    copies.mkdir()
    for path in SEED_FILES:
        (copies / f"again-{path.name}").write_bytes(path.read_bytes())
    config = make_config(tmp_path)
    runner.run(config, inputs=[str(p) for p in SEED_FILES], write_report=False)
    with monkeypatch.context() as before:
        before.setattr(runner, "reads_parent", lambda config: False)  # (ids as they were)
        old = runner.run(config, inputs=[str(copies)], write_report=False)
    again = runner.run(config, inputs=[str(copies)], write_report=False)
    assert old.created and old.parent and not again.created and again.version_id == old.version_id


def test_a_version_made_on_a_parent_it_reads_has_an_id_of_its_own(tmp_path):
    # Incremental near-duplicates keep the parent version's documents first: the same files
    # curated into an empty corpus and into one that holds their copies make different
    # versions (there, every copy is a duplicate), so they must not share an id; a rerun on
    # the latest version still creates nothing. Without a stage that reads the parent, the
    # parent is no part of the id.
    from curate.runner import run

    copies = tmp_path / "again"
    copies.mkdir()
    for path in SEED_FILES:  # (other names: other sources, so other document ids)
        (copies / f"again-{path.name}").write_bytes(path.read_bytes())

    def curate(corpus: str, inputs: list[Path], overrides: dict | None = None):
        config = make_config(tmp_path / corpus, overrides)
        return run(config, inputs=[str(p) for p in inputs], write_report=False)

    def duplicates(result) -> int:
        return len((result.version_dir / "duplicates.jsonl").read_text(encoding="utf-8").splitlines())

    alone = curate("alone", [copies])
    first = curate("both", SEED_FILES)
    on_parent = curate("both", [copies])
    assert on_parent.created and on_parent.version_id not in (alone.version_id, first.version_id)
    assert duplicates(alone) < duplicates(on_parent) == len(SEED_FILES)
    again = curate("both", [copies])
    assert not again.created and again.version_id == on_parent.version_id
    assert len(list((tmp_path / "both" / "corpus" / "versions").iterdir())) == 2

    off = {"dedup": {"incremental": False}}
    alone_off = curate("alone-off", [copies], off)
    curate("both-off", SEED_FILES, off)
    on_parent_off = curate("both-off", [copies], off)
    assert on_parent_off.created and on_parent_off.version_id == alone_off.version_id
    assert (on_parent_off.version_dir / "documents.jsonl").read_bytes() == (
        alone_off.version_dir / "documents.jsonl"
    ).read_bytes()


def test_a_version_whose_index_refers_to_earlier_ones_names_them_and_verify_checks_them(tmp_path):
    # A small run on a larger parent writes only its own rows into its near-duplicate index
    # and refers to the parent's file: the manifest names it with its sha256, `verify` checks
    # it, and the next run reads both (a copy of a sample file is a duplicate there).
    from curate.runner import run

    config = make_config(tmp_path)
    first = run(config, inputs=[str(p) for p in SEED_FILES], write_report=False)
    news = tmp_path / "news"
    news.mkdir()
    (news / "brief.txt").write_text("市气象台今天发布寒潮蓝色预警，预计未来三天气温下降八到十度。\n", encoding="utf-8")
    second = run(config, inputs=[str(news)], write_report=False)
    name = f"{first.version_id}/index/dedup-index.npz"
    first_index = first.version_dir / "index" / "dedup-index.npz"
    manifest = json.loads((second.version_dir / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["references"] == {name: hashlib.sha256(first_index.read_bytes()).hexdigest()}
    assert "references" not in json.loads((first.version_dir / "manifest.json").read_text(encoding="utf-8"))
    own = (second.version_dir / "index" / "dedup-index.npz").stat().st_size
    assert own < first_index.stat().st_size / 5
    assert verify(second.version_dir) == []

    copies = tmp_path / "copies"
    copies.mkdir()
    (copies / "again.txt").write_bytes(SEED_FILES[0].read_bytes())
    original = first_index.read_bytes()
    first_index.write_bytes(original + b"\0")
    assert verify(second.version_dir) == [f"refers to {name}: sha256 differs from the one recorded"]
    first_index.unlink()
    assert verify(second.version_dir) == [f"refers to {name}: missing"]
    first_index.write_bytes(original)
    third = run(config, inputs=[str(copies)], write_report=False)
    assert third.parent == second.version_id and not third.warnings
    duplicates = (third.version_dir / "duplicates.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(duplicates) == 1 and verify(third.version_dir) == []

    # The parent's own file is checked against its manifest: its signatures are read from the
    # file's pages, which zip's checksum does not cover. A bit flipped there (in a copy of the
    # corpus as it was before the third run): not used.
    spoiled = tmp_path / "spoiled"
    shutil.copytree(tmp_path / "corpus", spoiled / "corpus")
    (spoiled / "corpus" / "LATEST").write_text(f"{second.version_id}\n", encoding="utf-8")
    second_index = spoiled / "corpus" / "versions" / second.version_id / "index" / "dedup-index.npz"
    with zipfile.ZipFile(second_index) as archive:
        info = archive.getinfo("para_sigs.npy")
    assert info.compress_type == zipfile.ZIP_STORED and info.file_size > 300
    flipped = bytearray(second_index.read_bytes())
    flipped[info.header_offset + 30 + len(info.filename) + 200] ^= 1  # (past the array's header)
    second_index.write_bytes(bytes(flipped))
    later = tmp_path / "later"
    later.mkdir()
    (later / "again-too.txt").write_bytes(SEED_FILES[1].read_bytes())
    fourth = run(make_config(spoiled), inputs=[str(later)], write_report=False)
    assert fourth.created and fourth.parent == second.version_id
    (warning,) = fourth.warnings
    assert str(second_index) in warning and "not the file recorded for it" in warning
    assert not (fourth.version_dir / "duplicates.jsonl").read_text(encoding="utf-8")


def test_config_change_makes_a_new_version_with_parent(curate_run):
    first = curate_run()
    second = curate_run(overrides={"punctuation": {"enabled": False}})
    assert second.created and second.version_id != first.version_id
    manifest = json.loads((second.version_dir / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["parent"] == first.version_id


def test_inputs_are_never_modified(tmp_path, curate_run):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for path in SEEDS.glob("*.txt"):
        (inputs / path.name).write_bytes(path.read_bytes())
    before = tree_hashes(inputs)
    mtimes = {p.name: p.stat().st_mtime_ns for p in inputs.iterdir()}
    curate_run(inputs=[inputs])
    assert tree_hashes(inputs) == before
    assert {p.name: p.stat().st_mtime_ns for p in inputs.iterdir()} == mtimes


@pytest.mark.parametrize("point", ["documents", "manifest"])
def test_a_run_killed_mid_write_leaves_latest_intact(tmp_path, point):
    corpus = tmp_path / "corpus"
    config = tmp_path / "curate.toml"
    config.write_text(
        f'[run]\ncorpus = "{corpus}"\nreports = "{tmp_path / "reports"}"\nrules = ["{ROOT / "rules"}"]\n',
        encoding="utf-8",
    )
    cmd = [sys.executable, "-m", "curate", "run", str(SEEDS), "--config", str(config), "-q"]
    # A timeout: a process the killed run leaves behind holding its pipes must fail the test,
    # not hang it.
    ok = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert ok.returncode == 0, ok.stderr
    latest = read_latest(corpus)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "new.txt").write_text("新的一篇文章。", encoding="utf-8")
    killed = subprocess.run(
        [*cmd[:4], str(tmp_path / "in"), *cmd[5:]],
        capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "CURATE_TEST_KILL_AT": point},
        timeout=300,
    )
    assert killed.returncode == -9
    assert read_latest(corpus) == latest
    assert sorted(p.name for p in (corpus / "versions").iterdir() if not p.name.startswith(".")) == [latest]
    assert verify(corpus / "versions" / latest) == []
    # The next run cleans up the half-written folder and succeeds.
    again = subprocess.run(
        [*cmd[:4], str(tmp_path / "in"), *cmd[5:]], capture_output=True, text=True, cwd=tmp_path, timeout=300
    )
    assert again.returncode == 0, again.stderr
    assert not [p for p in (corpus / "versions").iterdir() if p.name.startswith(".tmp")]
    assert read_latest(corpus) != latest


def test_verify_detects_a_tampered_document(curate_run):
    folder = curate_run().version_dir
    assert verify(folder) == []  # the near-duplicate index too, written by its builder: no part left
    assert [path.name for path in (folder / "index").iterdir()] == ["dedup-index.npz"]
    path = folder / "documents.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    record = json.loads(lines[1])
    record["text"] = record["text"].replace("民族", "名族", 1)
    lines[1] = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    problems = verify(folder)
    assert any(record["id"] in p and "sha256 differs" in p for p in problems)
    assert "documents.jsonl: sha256 differs from the manifest" in problems
    (folder / "edits.jsonl").unlink()
    assert "edits.jsonl: missing" in verify(folder)


def test_a_second_run_on_a_locked_corpus_fails_clearly(tmp_path):
    from curate.runner import RunError, run
    from curate.version import corpus_lock

    config = make_config(tmp_path)
    with corpus_lock(tmp_path / "corpus"):
        with pytest.raises(RunError, match="another curate run is working on this corpus"):
            run(config, inputs=[str(SEEDS)])


def test_output_is_identical_for_one_and_two_workers(tmp_path):
    from curate.runner import run

    one = run(make_config(tmp_path / "one", {"run": {"workers": 1}}), inputs=[str(p) for p in SEED_FILES])
    two = run(
        make_config(tmp_path / "two", {"run": {"workers": 2, "batch_size": 1}}),
        inputs=[str(p) for p in SEED_FILES],
    )
    assert one.version_id == two.version_id
    for name in ["documents.jsonl", "edits.jsonl", "quarantine.jsonl", "duplicates.jsonl"]:
        a = (one.version_dir / name).read_text(encoding="utf-8").splitlines()
        b = (two.version_dir / name).read_text(encoding="utf-8").splitlines()
        differing = [(x[:300], y[:300]) for x, y in zip(a, b, strict=False) if x != y]
        assert len(a) == len(b) and not differing, (name, differing[:2])


# --------------------------------------------------------------------------- the line encoding
STANDARD = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def test_lines_hold_every_character_as_the_standard_encoder_writes_it():
    """orjson and the standard encoder agree on every code point a str can hold in UTF-8
    (quotes, backslashes and control characters escaped alike, everything else as it is)."""
    text = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000)
    assert json_bytes({"text": text}) == STANDARD.encode({"text": text}).encode("utf-8")


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(-1e15, 1e15, allow_nan=False).map(lambda x: round(x, 4))
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_lines_are_the_standard_encoders_bytes(value):
    assert json_bytes(value) == STANDARD.encode(value).encode("utf-8")
    assert json_line(value) == STANDARD.encode(value).encode("utf-8") + b"\n"


class Pair(NamedTuple):
    first: int
    second: str


class Tag(str):
    pass


@pytest.mark.parametrize(
    "value",
    [{1: "int key"}, {"big": 2**64}, {"pair": Pair(1, "二")}, {"tag": Tag("標")}, {"float": np.float64(0.5)}],
    ids=["int key", "beyond 64 bits", "named tuple", "str subclass", "numpy float"],
)
def test_what_orjson_would_write_otherwise_is_written_the_standard_way(value):
    assert json_bytes(value) == STANDARD.encode(value).encode("utf-8")
    assert json_line(value) == STANDARD.encode(value).encode("utf-8") + b"\n"


@dataclass
class Point:
    x: int


@pytest.mark.parametrize("value", [{1, 2}, Point(1), datetime(2026, 12, 3)], ids=["set", "dataclass", "datetime"])
def test_what_the_standard_encoder_refuses_is_refused(value):
    """orjson would write a dataclass or a date; a record holding one is a bug, as before."""
    with pytest.raises(TypeError):
        json_bytes({"value": value})
    with pytest.raises(TypeError):
        json_line({"value": value})


def test_counts_add_one_for_each_key_in_order_of_first_appearance():
    counts = {"b": 5}
    count_each(counts, ["a", "b", "a", ("x", "y")])
    count_each(counts, [])
    assert list(counts.items()) == [("b", 6), ("a", 2), (("x", "y"), 1)]


def test_what_is_not_json_is_written_null():
    """NaN and infinities, which the standard encoder writes as the non-JSON NaN and Infinity."""
    assert json_bytes({"x": [float("nan"), float("inf"), -float("inf")]}) == b'{"x":[null,null,null]}'


@pytest.mark.parametrize("workers", [1, 2])
def test_every_file_of_a_version_is_flushed_to_disk_once_before_the_rename(tmp_path, monkeypatch, workers):
    # The data files in a thread beside the manifest, the rest at the end: each once in this
    # process, all before the folder is renamed into place. (A forked index builder flushes its
    # file too, unseen here.)
    from curate import runner

    synced: list[str] = []
    at_rename: list[list[str]] = []
    fsync, rename = os.fsync, os.rename

    def recorded(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        fsync(fd)

    def renaming(source, target) -> None:
        if Path(source).name.startswith(".tmp-"):
            at_rename.append([str(Path(p).relative_to(source)) for p in synced if Path(p).is_relative_to(source)])
        rename(source, target)

    monkeypatch.setattr(os, "fsync", recorded)
    monkeypatch.setattr(os, "rename", renaming)
    config = make_config(tmp_path, {"run": {"workers": workers}})
    final = runner.run(config, inputs=[str(p) for p in SEED_FILES], write_report=False).version_dir
    (flushed,) = at_rename
    files = sorted(p.relative_to(final).as_posix() for p in final.rglob("*") if p.is_file())
    assert sorted(flushed) == files  # each once, none forgotten


def test_a_run_that_stops_before_the_rename_leaves_no_temporary_folder(tmp_path):
    # The writer's folder goes with the error, after the index builder writing into it is
    # stopped (it would make its folder again); a killed run's is left to the next run.
    import multiprocessing
    import time

    from curate.document import Document
    from curate.stages.base import Artifacts
    from curate.version import RunRecord, write_version

    def slow_index() -> bytes:
        time.sleep(1.5)
        return b"index"

    artifacts = Artifacts()
    artifacts.defer("index.npz", slow_index)
    record = RunRecord("0123456789abcdef", {}, "rules", [], [], None, artifacts, [])

    def documents():
        yield Document(id="a", text="一篇。", source="a.txt")  # the writer starts the builder here
        raise OSError("the disk went away")

    with pytest.raises(OSError, match="went away"):
        write_version(tmp_path / "corpus", documents(), record)
    versions = tmp_path / "corpus" / "versions"
    assert list(versions.iterdir()) == []
    assert not [p for p in multiprocessing.active_children() if p.name == "curate-artifacts"]
    time.sleep(2)  # past the build: nothing made the folder again
    assert list(versions.iterdir()) == []
