"""The Ray engine gives exactly what the local engine gives (documents, edits, artifacts, version id).

Needs Ray Data (`pip install 'curate[ray]'`); the tests that need it are skipped without it.
One local Ray (2 CPUs) is started for the whole module: starting Ray and warming its workers is
most of the time these tests take.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from curate.document import Document
from curate.engine import LocalEngine
from curate.version import DATA_FILES

from .conftest import ROOT, SEED_FILES, make_config
from .scale_helpers import (
    DropEditorLine,
    ExactDuplicates,
    FailOnMarker,
    FlagLongSentences,
    NumberInDriver,
    RepeatedLinesAcrossDocs,
    articles,
    index_files,
    make_stages,
    serialised,
    write_corpus,
)

# Ray Data's own deprecation notices about its settings (it copies its context per dataset).
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray")


def test_importing_curate_does_not_import_ray():
    code = (
        "import sys, curate, curate.runner, curate.engine, curate.pipeline, curate.cli\n"
        "from curate.pipeline import stage_classes\n"
        "stage_classes()\n"
        "sys.exit(1 if 'ray' in sys.modules else 0)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr or "curate imported ray"


def test_without_ray_the_error_says_how_to_install_it(monkeypatch):
    from curate.ray_engine import RayEngine
    from curate.runner import RunError

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails
    with pytest.raises(RunError, match=r"pip install 'curate\[ray\]'"):
        list(RayEngine(None, 8).execute(iter([]), []))


def test_an_unreachable_cluster_is_one_clear_error():
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'curate[ray]')")
    if ray.is_initialized():
        pytest.skip("a Ray is already running in this process (it would be reused)")
    from curate.ray_engine import RayEngine
    from curate.runner import RunError

    with pytest.raises(RunError, match="cannot reach the Ray cluster at 127.0.0.1:1"):
        list(RayEngine("127.0.0.1:1", 8).execute(iter([]), []))


@pytest.fixture(scope="module")
def ray_cluster() -> Any:
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'curate[ray]')")
    pytest.importorskip("ray.data", reason="Ray Data is not installed (pip install 'curate[ray]')")
    started = not ray.is_initialized()
    if started:
        # The workers import the test stages from tests/, so the repository goes on their path.
        path = os.pathsep.join(p for p in [str(ROOT), os.environ.get("PYTHONPATH", "")] if p)
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            logging_level="ERROR",
            log_to_driver=False,
            runtime_env={"env_vars": {"PYTHONPATH": path}},
        )
    yield ray
    if started:
        ray.shutdown()


def _docs(count: int) -> list[Document]:
    texts = articles(count, seed=11)
    return [Document.new(f"built/{n:04d}.txt", text) for n, text in enumerate(texts)]


def _run(engine: Any, kinds: tuple[type, ...], count: int = 300) -> tuple[bytes, dict[str, bytes]]:
    stages = make_stages(*kinds)
    output = serialised(engine.execute(iter(_docs(count)), stages))
    return output, dict(stages[0].context.state["artifacts"])


ALL_KINDS = (
    DropEditorLine,
    RepeatedLinesAcrossDocs,
    FlagLongSentences,
    NumberInDriver,
    ExactDuplicates,
    FlagLongSentences,
)


def test_engines_agree_on_every_kind_of_stage(ray_cluster):
    from curate.ray_engine import RayEngine

    local, local_artifacts = _run(LocalEngine(workers=1, batch_size=64), ALL_KINDS)
    on_ray, ray_artifacts = _run(RayEngine(None, batch_size=16), ALL_KINDS)
    assert on_ray == local
    assert ray_artifacts == local_artifacts and "repeated.json" in ray_artifacts
    # The stages did something: edits, flags, duplicates, driver-side metadata.
    text = local.decode()
    assert '"rule":"test.editor"' in text and '"rule":"test.repeated"' in text
    assert '"kind":"long"' in text and '"status":"duplicate"' in text and '"position":299' in text


@pytest.mark.parametrize(
    "kinds",
    [
        (ExactDuplicates, DropEditorLine, RepeatedLinesAcrossDocs),  # corpus stages first and last
        (NumberInDriver, RepeatedLinesAcrossDocs, ExactDuplicates),  # driver stage first, two barriers
        (NumberInDriver, NumberInDriver),  # nothing for the workers at all
    ],
)
def test_any_order_of_stage_kinds(ray_cluster, kinds):
    from curate.ray_engine import RayEngine

    assert _run(RayEngine(None, batch_size=7), kinds, 50) == _run(LocalEngine(workers=1), kinds, 50)


def test_ray_that_was_already_running_is_left_running(ray_cluster):
    from curate.ray_engine import RayEngine

    list(RayEngine(None, batch_size=8).execute(iter(_docs(10)), make_stages(DropEditorLine)))
    assert ray_cluster.is_initialized()


def test_an_error_in_a_worker_is_raised_as_itself(ray_cluster):
    from curate.ray_engine import RayEngine

    docs = _docs(20)
    docs[13] = Document.new("built/bad.txt", "FAIL 这一篇不行。")
    with pytest.raises(ValueError, match="built/bad.txt: cannot process"):
        list(RayEngine(None, batch_size=4).execute(iter(docs), make_stages(DropEditorLine, FailOnMarker)))


def _version(tmp: Path, engine: str, inputs: list[Path], **run: Any) -> tuple[str, Path]:
    from curate.runner import run as curate_run

    config = make_config(tmp / engine, {"run": {"engine": engine, **run}})
    result = curate_run(config, inputs=[str(p) for p in inputs], write_report=False)
    return result.version_id, result.version_dir


def test_pipeline_on_ray_writes_the_same_version(ray_cluster, tmp_path, monkeypatch):
    from curate import ray_engine
    from curate.stages import dedup

    samples = tmp_path / "samples"
    samples.mkdir()
    for path in SEED_FILES:
        (samples / path.name).write_bytes(path.read_bytes())
    built = write_corpus(tmp_path / "built", 300, per_file=120)
    inputs = [samples, built]
    local_id, local_dir = _version(tmp_path, "local", inputs, workers=1, batch_size=64)
    # Near-duplicates on Ray: candidates from the band-key shuffle, verification as Ray tasks
    # (small chunks, so this small corpus gives them several items).
    monkeypatch.setattr(dedup._Engine, "_CHUNK", 4)
    monkeypatch.setattr(dedup._Engine, "_INDEX_CHUNK", 2)
    calls: dict[str, list[int]] = {"group_by": [], "ray_map": []}
    shuffle, remote_map = ray_engine.group_by, ray_engine.ray_map

    def counted_group_by(ray: Any, rows: Any) -> Any:
        groups = shuffle(ray, rows)
        calls["group_by"].append(len(groups))
        return groups

    def counted_ray_map(ray: Any, function: Any, items: list[Any], shipped: Any = None) -> Any:
        calls["ray_map"].append(len(items))
        return remote_map(ray, function, items, shipped)

    monkeypatch.setattr(ray_engine, "group_by", counted_group_by)
    monkeypatch.setattr(ray_engine, "ray_map", counted_ray_map)
    cut = ray_engine.cut_blocks
    blocks: list[int] = []

    def counted_cut(*args: Any) -> Any:
        for block in cut(*args):
            blocks.append(len(block))
            yield block

    monkeypatch.setattr(ray_engine, "cut_blocks", counted_cut)
    ray_id, ray_dir = _version(tmp_path, "ray", inputs, ray_block_mb=0.05)
    assert len(blocks) > 3 and sum(blocks) == 305, blocks  # several blocks of about 50 KB
    assert len(calls["group_by"]) >= 3 and max(calls["group_by"]) > 0, calls  # documents, paragraphs, windows
    assert max(calls["ray_map"]) > 1, calls
    assert ray_id == local_id
    for name in DATA_FILES:
        assert (ray_dir / name).read_bytes() == (local_dir / name).read_bytes(), name
    local_manifest = json.loads((local_dir / "manifest.json").read_text(encoding="utf-8"))
    ray_manifest = json.loads((ray_dir / "manifest.json").read_text(encoding="utf-8"))
    for key in ["files", "outputs", "counts", "inputs", "skipped", "warnings"]:
        assert ray_manifest[key] == local_manifest[key], key
    assert local_manifest["counts"]["documents_in"] == 305
    assert local_manifest["counts"]["duplicates"] > 0  # cross-document decisions were compared
    assert index_files(ray_dir) == index_files(local_dir)


def test_group_by_is_a_shuffle_that_finds_every_shared_key(ray_cluster):
    import random

    from curate.ray_engine import group_by

    rng = random.Random(7)
    rows = [(f"band{rng.randrange(3)}:{rng.randrange(400)}".encode(), n) for n in range(3000)]
    expected: dict[bytes, list[int]] = {}
    for key, value in rows:
        expected.setdefault(key, []).append(value)
    want = sorted(sorted(v) for v in expected.values() if len(v) >= 2)
    got = sorted(sorted(group) for group in group_by(ray_cluster, iter(rows)))
    assert got == want and len(want) > 100
    assert group_by(ray_cluster, iter([])) == []
    assert group_by(ray_cluster, iter([(b"a", 1), (b"b", 2)])) == []


def test_group_by_merges_a_key_that_straddles_sorted_blocks():
    """Sorted rows cut into blocks at every kind of place (inside a key's run, at a run's
    edge, a block of one row): the groups are those of the uncut rows."""
    import random

    pa = pytest.importorskip("pyarrow")
    from curate.ray_engine import KEY, VALUE, _groups_of_block, _merge_groups

    rng = random.Random(3)
    rows = sorted((f"k{rng.randrange(60):02d}".encode(), n) for n in range(500))
    want: dict[bytes, list[int]] = {}
    for key, value in rows:
        want.setdefault(key, []).append(value)
    for _ in range(20):
        cuts = sorted({0, len(rows), *(rng.randrange(len(rows)) for _ in range(rng.randrange(1, 40)))})
        blocks = [
            pa.table({KEY: pa.array([k for k, _ in part], pa.binary()), VALUE: pa.array([v for _, v in part], pa.int64())})
            for part in (rows[a:b] for a, b in zip(cuts, cuts[1:], strict=False))
        ]
        got = _merge_groups(_groups_of_block(block) for block in blocks)
        assert sorted(map(sorted, got)) == sorted(sorted(v) for v in want.values() if len(v) >= 2)


def test_ray_map_runs_a_function_over_its_state_on_the_cluster(ray_cluster):
    from curate.ray_engine import ray_map

    table = {n: n * 3 for n in range(40)}

    def triple_and_pid(chunk: list[int]) -> tuple[list[int], int]:
        return [table[n] for n in chunk], os.getpid()

    chunks = [list(range(s, s + 4)) for s in range(0, 40, 4)]
    results = ray_map(ray_cluster, triple_and_pid, chunks)
    assert [values for values, _ in results] == [[n * 3 for n in chunk] for chunk in chunks]
    assert os.getpid() not in {pid for _, pid in results}  # ran in Ray's workers


def test_the_ray_engine_offers_group_by_and_parallel_to_decide(ray_cluster):
    from curate.ray_engine import RayEngine

    seen: dict[str, Any] = {}

    class Recording(ExactDuplicates):
        def decide(self) -> None:
            context = self.context
            seen["groups"] = context.group_by([(b"x", 1), (b"y", 2), (b"x", 3)])
            seen["parallel"] = context.parallel(sum, [[1, 2], [3]])
            super().decide()

    stages = make_stages(Recording)
    out = list(RayEngine(None, batch_size=8).execute(iter(_docs(40)), stages))
    assert len(out) == 40
    assert sorted(map(sorted, seen["groups"])) == [[1, 3]] and seen["parallel"] == [3, 3]
    assert stages[0].context.group_by is None and stages[0].context.parallel is None


@pytest.mark.parametrize(("block_bytes", "max_items"), [(1, 0), (10, 0), (25, 0), (10**6, 0), (25, 3), (10**6, 4)])
def test_blocks_are_cut_at_a_size_or_a_count_in_order(block_bytes, max_items):
    from curate.ray_engine import cut_blocks

    items = [bytes(n % 13) for n in range(60)]
    blocks = list(cut_blocks(iter(items), block_bytes, max_items))
    assert [item for block in blocks for item in block] == items
    for block in blocks[:-1]:  # every block but the last is full: by size or by count
        full_by_size = sum(map(len, block)) >= block_bytes > sum(map(len, block[:-1]))
        assert full_by_size or len(block) == max_items
    assert all(block for block in blocks)
    if max_items:
        assert all(len(block) <= max_items for block in blocks)


def test_pages_are_read_by_ray_tasks_and_give_what_the_local_engine_gives(ray_cluster, tmp_path, monkeypatch):
    # A driver parsing every page alone would hold back a whole cluster: pages are read in Ray
    # tasks (text and JSON, quick to read, in the driver).
    from curate import runner

    from .scale_helpers import logged_read_files
    from .test_ingest import PAGE, SIMPLIFIED

    folder = tmp_path / "inputs" / "incoming"
    folder.mkdir(parents=True)
    for n in range(6):
        (folder / f"page{n}.html").write_bytes(PAGE.replace("海西州", f"第{n}州").encode("utf-8"))
    (folder / "z-notes.txt").write_text(SIMPLIFIED, encoding="utf-8")  # (last: a group of its own)
    monkeypatch.setattr(runner, "_read_files", logged_read_files)
    monkeypatch.setattr(runner, "READ_TASK_FILES", 2)
    log = folder.parent / "read_by.log"
    made = {}
    for engine in ("local", "ray"):
        log.write_text("", encoding="utf-8")
        made[engine] = _version(tmp_path, engine, [folder], workers=1 if engine == "local" else 2)
    readers = dict(line.split() for line in log.read_text(encoding="utf-8").splitlines())
    assert sorted(readers) == sorted(p.name for p in folder.iterdir())
    driver = str(os.getpid())
    assert readers["z-notes.txt"] == driver
    assert all(pid != driver for name, pid in readers.items() if name.endswith(".html"))
    (local_id, local_dir), (ray_id, ray_dir) = made["local"], made["ray"]
    assert ray_id == local_id
    for name in DATA_FILES:
        assert (ray_dir / name).read_bytes() == (local_dir / name).read_bytes(), name
    assert b"html-chrome" in (ray_dir / "edits.jsonl").read_bytes()
