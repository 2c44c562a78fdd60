"""Scale properties of the local engine: bounded memory for per-document stages, and output that
does not depend on the number of workers or the batch size."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import pickle
import tracemalloc
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

import pytest

from curate.document import QUARANTINED, Change, Document, Edit, Flag
from curate.engine import IN_FLIGHT, LocalEngine
from curate.stages.base import DocumentStage, StageSettings, defer_artifact
from curate.version import DATA_FILES, json_bytes

from .conftest import SEED_FILES, make_config
from .scale_helpers import (
    DropEditorLine,
    ExactDuplicates,
    FlagLongSentences,
    NumberInDriver,
    RepeatedLinesAcrossDocs,
    articles,
    documents,
    index_files,
    make_stages,
    serialised,
    write_corpus,
)


def _consume(docs: Iterable[Document]) -> str:
    """Hash every output record, keeping nothing (as the version writer does)."""
    digest = hashlib.sha256()
    for doc in docs:
        digest.update(json_bytes(doc.to_json()))
    return digest.hexdigest()


def _peak_bytes(stages: list[Any], count: int, workers: int, seed: int = 7) -> int:
    """Peak traced memory of this process while `count` generated documents stream through."""
    engine = LocalEngine(workers=workers, batch_size=32)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        _consume(engine.execute(documents(count, seed), stages))
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("workers", [1, 2])
def test_memory_of_document_stages_does_not_grow_with_the_number_of_documents(workers):
    stages = make_stages(DropEditorLine, FlagLongSentences)
    small = _peak_bytes(stages, 200, workers)
    large = _peak_bytes(stages, 800, workers)
    # Holding the documents would make the peak ~4x; streaming keeps it about flat.
    assert large < 1.6 * small, (small, large)


def test_memory_of_the_real_document_stages_does_not_grow(tmp_path):
    """The pipeline's own per-document stages keep no per-document state (no growing caches)."""
    from curate.pipeline import build_stages
    from curate.runner import load_rules
    from curate.stages.base import CorpusStage, DocumentStage, RunContext

    config = make_config(tmp_path)
    context = RunContext(config=config, rules=load_rules(config), state={"artifacts": {}, "warnings": []})
    stages = [s for s in build_stages(context) if isinstance(s, DocumentStage) and not isinstance(s, CorpusStage)]
    # Warm up: lazily built tables and compiled patterns. Some are built at the first document
    # that needs them (the spam detector's patterns, at the first with a candidate), which the
    # large run read and the small one did not: 1.42 MB against 0.85, a failure. So also as
    # many other documents as the large run reads (a cache of what documents hold would still
    # grow in the runs measured: a stage keeping 500 characters of each, 1.73 times).
    _peak_bytes(stages, 10, 1)
    _peak_bytes(stages, 320, 1, seed=8)
    small = _peak_bytes(stages, 80, 1)
    large = _peak_bytes(stages, 320, 1)
    assert large < 1.6 * small, (small, large)


KINDS = (DropEditorLine, RepeatedLinesAcrossDocs, FlagLongSentences, NumberInDriver, ExactDuplicates)


def _run(workers: int, batch_size: int) -> tuple[bytes, dict[str, bytes]]:
    stages = make_stages(*KINDS)
    docs = [Document.new(f"built/{n:04d}.txt", text) for n, text in enumerate(articles(250, seed=3))]
    output = serialised(LocalEngine(workers=workers, batch_size=batch_size).execute(iter(docs), stages))
    return output, dict(stages[0].context.state["artifacts"])


def test_one_or_two_workers_and_any_batch_size_give_the_same_output():
    one, one_artifacts = _run(1, 64)
    assert one.count(b'"status":"duplicate"') > 10 and one_artifacts
    for workers, batch_size in [(2, 64), (2, 5)]:
        assert _run(workers, batch_size) == (one, one_artifacts), (workers, batch_size)


def _version(tmp_path: Path, name: str, inputs: list[Path], **run: Any) -> tuple[str, Path]:
    from curate.runner import run as curate_run

    config = make_config(tmp_path / name, {"run": run})
    result = curate_run(config, inputs=[str(p) for p in inputs], write_report=False)
    return result.version_id, result.version_dir


def test_pipeline_writes_the_same_version_with_one_or_two_workers(tmp_path):
    samples = tmp_path / "samples"
    samples.mkdir()
    for path in SEED_FILES:
        (samples / path.name).write_bytes(path.read_bytes())
    inputs = [samples, write_corpus(tmp_path / "built", 200, per_file=50)]
    one_id, one_dir = _version(tmp_path, "one", inputs, workers=1)
    two_id, two_dir = _version(tmp_path, "two", inputs, workers=2, batch_size=7)
    assert one_id == two_id
    assert b'"duplicate_of"' in (one_dir / "duplicates.jsonl").read_bytes()  # cross-document work
    for name in DATA_FILES:
        assert (one_dir / name).read_bytes() == (two_dir / name).read_bytes(), name
    assert index_files(one_dir) == index_files(two_dir)



_WORKER_IMPORTS = """
import os, sys
from pathlib import Path

sys.path.insert(0, {root!r})
driver = os.getpid()
log = {log!r}


class Watch:
    # Every import a forked process makes: what the driver did not load before the fork.
    def find_spec(self, name, path=None, target=None):
        if os.getpid() != driver:
            with open(log, "a", encoding="utf-8") as handle:
                handle.write(name + "\\n")
        return None


from curate import runner
from tests.conftest import SEED_FILES, make_config
from tests.scale_helpers import articles, write_corpus

tmp = Path({tmp!r})
# The first document runs in the driver before the pools fork: a short one, which leaves most
# code paths (and their lazy imports) to the workers.
(tmp / "first").mkdir()
(tmp / "first" / "0.txt").write_text("短短一句。\\n", encoding="utf-8")
# And one with a run of unrelated Han characters, which the garbage detector looks at closely.
noise = "".join(chr(0x4E00 + (i * 7919) % 20000) for i in range(48))
prose = articles(2, seed=99)  # (unlike the others: a copy would be dropped before the detectors)
(tmp / "noisy").mkdir()
(tmp / "noisy" / "1.txt").write_text(prose[0] + "\\n附件内容：" + noise + "\\n" + prose[1], encoding="utf-8")
# And a page: files are read by the workers (the HTML reader imports its parser on first use).
(tmp / "pages").mkdir()
(tmp / "pages" / "2.html").write_text(
    "<html><head><title>一页</title></head><body><div class=nav>首页</div><p>" + prose[1] + "</p></body></html>",
    encoding="utf-8",
)
inputs = [str(tmp / "first"), str(write_corpus(tmp / "built", 120, per_file=40)), str(tmp / "noisy")]
inputs.append(str(tmp / "pages"))
inputs += [str(p) for p in SEED_FILES]
config = make_config(tmp, {{"run": {{"input": inputs, "workers": 2, "batch_size": 7}}}})
sys.meta_path.insert(0, Watch())
runner.run(config)
"""


def test_workers_import_nothing_the_driver_could_have_loaded_before_the_fork(tmp_path):
    # A module a worker imports on first use is imported again by every worker of every pass
    # (numpy.ma, which np.median imports lazily, cost each last-pass worker its import). The
    # stages import what they use with their modules, before any pool forks. A codec
    # (`encodings.*`) is looked up by name on first use: small, and which ones depends on the text.
    # Twice: with the table cache empty (the driver builds what it keeps between runs) and full
    # (it reads them back: what building them imported must still be imported before the fork).
    import os
    import subprocess
    import sys

    from .conftest import ROOT

    env = {**os.environ, "CURATE_CACHE_DIR": str(tmp_path / "cache")}
    for attempt in ("cold", "warm"):
        folder = tmp_path / attempt
        folder.mkdir()
        log = folder / "imports.txt"
        log.touch()
        script = _WORKER_IMPORTS.format(root=str(ROOT), log=str(log), tmp=str(folder))
        subprocess.run([sys.executable, "-c", script], check=True, cwd=folder, timeout=300, env=env)
        imported = sorted(set(log.read_text(encoding="utf-8").split()))
        assert [name for name in imported if not name.startswith("encodings.")] == [], attempt


@pytest.mark.parametrize("workers", [1, 2])
def test_a_run_collects_cycles_less_often_and_leaves_the_collector_as_it_was(tmp_path, monkeypatch, workers):
    # The last pass's workers encode the documents: they see the run's threshold (inherited).
    import gc

    from curate import runner

    seen: list[tuple[int, int, int]] = []
    encode = runner.encode

    def watched(doc: Document, made: Any = None) -> Any:
        seen.append(gc.get_threshold())
        return encode(doc, made)

    monkeypatch.setattr(runner, "encode", watched)
    gc.set_threshold(700, 10, 10)
    try:
        _version(tmp_path, "run", [SEED_FILES[0]], workers=workers)
        assert gc.get_threshold() == (700, 10, 10)
    finally:
        gc.set_threshold(700, 10, 10)
    if workers == 1:
        assert seen and set(seen) == {(100_000, 10, 10)}


def test_finish_runs_in_the_workers_and_gives_what_the_writer_would_make():
    from curate.version import Encoded, encode

    stages = make_stages(*KINDS)
    texts = list(enumerate(articles(120, seed=5)))
    docs = [Document.new(f"built/{n:04d}.txt", text) for n, text in texts]
    # (the stages change the documents they are given: the run on 1 worker gets its own)
    alike = [Document.new(f"built/{n:04d}.txt", text) for n, text in texts]
    expected = [encode(doc) for doc in LocalEngine(workers=1).execute(iter(alike), make_stages(*KINDS))]
    pids: set[int] = set()

    def finish(doc: Document) -> tuple[int, Encoded]:
        return os.getpid(), encode(doc)

    results = list(LocalEngine(workers=2, batch_size=8).execute(iter(docs), stages, finish=finish))
    pids = {pid for pid, _ in results}
    assert [encoded for _, encoded in results] == expected
    assert os.getpid() in pids and len(pids) >= 2  # the first batch here, the rest in workers
    assert sum(e.status == "duplicate" for e in expected) > 3 and any(e.edits for e in expected)


def test_fork_map_gives_the_results_in_order_from_forked_workers():
    from curate.engine import fork_map

    state = {n: n * n for n in range(50)}  # made after import: workers see it because they fork

    def square_and_pid(chunk: list[int]) -> tuple[list[int], int]:
        return [state[n] for n in chunk], os.getpid()

    chunks = [list(range(start, start + 5)) for start in range(0, 50, 5)]
    results = fork_map(square_and_pid, chunks, 2)
    assert [squares for squares, _ in results] == [[n * n for n in chunk] for chunk in chunks]
    assert os.getpid() not in {pid for _, pid in results}
    assert fork_map(square_and_pid, chunks, 1) == [(s, os.getpid()) for s, _ in results]


def _megabytes(n: int) -> bytes:
    return bytes([n % 251]) * (2 << 20)


def _rounds_of_the_worker_handler(pool_class: type, monkeypatch: pytest.MonkeyPatch) -> int:
    """How often a pool's worker-handling thread woke while it returned 24 results of 2 MB."""
    from multiprocessing.pool import Pool

    rounds = []
    maintain = Pool._maintain_pool  # (a static method the thread calls on Pool, each round)

    def counted(*args: Any) -> None:
        rounds.append(1)
        maintain(*args)

    monkeypatch.setattr(Pool, "_maintain_pool", staticmethod(counted))
    with pool_class(2, context=multiprocessing.get_context("fork")) as pool:
        results = pool.map(_megabytes, range(24), chunksize=1)
    assert [r[:1] for r in results] == [bytes([n % 251]) for n in range(24)]
    return len(rounds)


def test_the_engines_pools_do_not_poll_while_results_wait_to_be_read(monkeypatch):
    """The stock pool's worker handler spins while a result waits in the pipe; ours sleeps
    until a worker ends, the pool's state changes or its cache drains (`curate.engine._Pool`)."""
    from multiprocessing.pool import Pool

    from curate.engine import _Pool

    assert _rounds_of_the_worker_handler(_Pool, monkeypatch) < 10
    assert _rounds_of_the_worker_handler(Pool, monkeypatch) > 50  # (what it replaces)


def _pid(_: int) -> int:
    return os.getpid()


def test_the_engines_pools_still_replace_the_workers_that_end():
    """Its thread still wakes when a worker ends (here each ends after one task) and starts
    another: the tasks are all done."""
    from curate.engine import _Pool

    with _Pool(2, maxtasksperchild=1, context=multiprocessing.get_context("fork")) as pool:
        done = pool.map_async(_pid, range(12), chunksize=1)
        assert len(set(done.get(timeout=30))) == 12  # each task in a worker of its own


class _UsesServices(ExactDuplicates):
    """Records which services the engine offered its decide (and checks `parallel` works)."""

    offered: dict[str, Any] = {}

    def decide(self) -> None:
        context = self.context
        _UsesServices.offered = {"group_by": context.group_by, "parallel": context.parallel}
        if context.parallel is not None:
            assert context.parallel(len, [[1], [1, 2], [1, 2, 3]]) == [1, 2, 3]
        super().decide()


@pytest.mark.parametrize("workers", [1, 2])
def test_the_local_engine_offers_parallel_to_decide_only_with_workers(workers):
    stages = make_stages(_UsesServices)
    docs = [Document.new(f"built/{n:04d}.txt", text) for n, text in enumerate(articles(30, seed=2))]
    list(LocalEngine(workers=workers, batch_size=4).execute(iter(docs), stages))
    offered = _UsesServices.offered
    assert offered["group_by"] is None  # local candidates come from datasketch's MinHashLSH
    assert (offered["parallel"] is not None) == (workers > 1)
    assert stages[0].context.parallel is None  # withdrawn after decide


class _Verifier:
    """A decision state whose methods `parallel` runs: what a worker sees and caches."""

    def __init__(self) -> None:
        self.table = {n: n * n for n in range(40)}
        self.cache: dict[int, int] = {}

    def squares(self, chunk: list[int]) -> tuple[list[int], int, int]:
        """(squares, this worker, how many entries it had cached before this chunk)."""
        cached = len(self.cache)
        for n in chunk:
            self.cache.setdefault(n, self.table[n])
        return [self.table[n] for n in chunk], os.getpid(), cached

    def cubes(self, chunk: list[int]) -> tuple[list[int], int]:
        return [self.table[n] * n for n in chunk], os.getpid()


def test_decide_workers_fork_once_per_decide_and_keep_their_caches():
    from curate.engine import DecideWorkers

    state = _Verifier()
    workers = DecideWorkers(2)
    try:
        chunks = [list(range(start, start + 4)) for start in range(0, 40, 4)]
        first = workers(state.squares, chunks)
        state.table[0] = -1  # changed after the first call: workers keep the state they forked
        later = [workers(state.squares, chunks)]
        # Which worker takes which chunk is the scheduler's choice: more rounds until a worker
        # of the first one works again (on a busy machine one worker may take a whole round).
        first_pids = {pid for _, pid, _ in first}
        while not first_pids & {pid for _, pid, _ in later[-1]} and len(later) < 20:
            later.append(workers(state.squares, chunks))
        third = workers(state.cubes, chunks)  # another method of the same object: same pool
    finally:
        workers.close()
    expected = [[n * n for n in chunk] for chunk in chunks]
    assert [r for r, _, _ in first] == expected and all([r for r, _, _ in rows] == expected for rows in later)
    assert [r for r, _ in third] == [[n * n * n for n in chunk] for chunk in chunks]
    pids = {pid for rows in [first, *later] for _, pid, _ in rows} | {pid for _, pid in third}
    assert os.getpid() not in pids and len(pids) <= 2  # one pool of two for every round
    # Each worker of the first round starts from nothing (forked for it), and when it works
    # again it still holds what it cached then: 4 entries per chunk it took.
    seen: dict[int, int] = {}
    for _, pid, cached in first:
        assert cached == 4 * seen.get(pid, 0)
        seen[pid] = seen.get(pid, 0) + 1
    again = next((pid, cached) for _, pid, cached in later[-1] if pid in seen)
    assert again[1] >= 4 * seen[again[0]] > 0
    assert state.cache == {}  # the driver's object was never the one that cached


def test_decide_workers_run_other_functions_on_a_fork_of_their_own():
    from curate.engine import DecideWorkers

    state, other = _Verifier(), _Verifier()
    workers = DecideWorkers(2)
    try:
        workers(state.squares, [[1], [2]])
        other.table[3] = 0  # a different object: forked now, so its current state is seen
        results = workers(other.squares, [[3], [4]])
        plain = workers(len, [[1], [1, 2]])
    finally:
        workers.close()
    assert [r for r, _, _ in results] == [[0], [16]]
    assert plain == [1, 2]
    assert DecideWorkers(1)(state.cubes, [[2], [3]]) == [([8], os.getpid()), ([27], os.getpid())]


def test_deferred_artifacts_build_in_the_background_with_the_same_bytes():
    from curate.stages.base import Artifacts, defer_artifact

    def build() -> bytes:
        return f"index built by {os.getpid()}".encode()

    artifacts = Artifacts({"plain.json": b"{}"})
    state = {"artifacts": artifacts}
    defer_artifact(state, "index.npz", build)
    assert "index.npz" in artifacts and len(artifacts) == 2
    artifacts.start()
    built = artifacts["index.npz"]
    assert built.startswith(b"index built by ") and built != build()  # in another process
    assert sorted(artifacts.items()) == [("index.npz", built), ("plain.json", b"{}")]

    lazy = Artifacts()
    defer_artifact({"artifacts": lazy}, "index.npz", build)
    assert lazy.get("index.npz") == build()  # never started: built here when read

    plain: dict[str, bytes] = {}
    defer_artifact({"artifacts": plain}, "index.npz", build)  # a plain dict: built now
    assert plain == {"index.npz": build()}


@pytest.mark.parametrize("keep", [False, True])
def test_what_a_run_lets_go_of_is_freed_unless_its_process_ends_at_once(monkeypatch, keep):
    # The `curate` command ends its process at once (`cli.entry`): what the run lets go of,
    # the deciding stage's state first, is then left to the process's end, never freed object
    # by object; any other caller frees it as the run goes.
    import weakref

    from curate.stages import base

    monkeypatch.setattr(base, "_KEPT_UNTIL_EXIT", [] if keep else None)

    class State:
        def index(self) -> bytes:
            return b"the index"

    state = State()
    held = weakref.ref(state)
    artifacts = base.Artifacts()
    base.defer_artifact({"artifacts": artifacts}, "index.npz", state.index)  # (the method holds it)
    del state
    artifacts.start()
    assert artifacts["index.npz"] == b"the index"  # (the builder's result in: the function goes)
    assert (held() is not None) == keep


def test_a_run_in_a_process_that_ends_at_once_leaves_its_state_to_the_end(tmp_path, monkeypatch):
    # What the run lets go of (`let_go`): the near-duplicate decision's state once its index is
    # built, the stages (their decisions) as the run ends.
    from curate import runner
    from curate.stages import base

    kept: list[Any] = []
    monkeypatch.setattr(base, "_KEPT_UNTIL_EXIT", kept)
    runner.run(make_config(tmp_path, {"run": {"workers": 2}}), inputs=[str(p) for p in SEED_FILES],
               write_report=False)
    assert any(isinstance(value, dict) and "dedup-index.npz" in value for value in kept)
    stages = [value[0] for value in kept if isinstance(value, tuple)]
    assert len(stages) == 1 and {stage.name for stage in stages[0]} >= {"dedup", "repeated_lines"}


def test_artifacts_deferred_after_a_start_are_built_too_and_the_last_definition_wins():
    from curate.stages.base import Artifacts

    artifacts = Artifacts()
    artifacts.defer("first.npz", lambda: b"first")
    artifacts.defer("again.npz", lambda: b"old")
    artifacts.start()
    artifacts.defer("again.npz", lambda: b"new")  # deferred again after the build began
    artifacts.defer("later.npz", lambda: b"later")
    artifacts.start()  # builds only what no builder has: again.npz (new) and later.npz
    artifacts.start()  # nothing left: no third builder
    artifacts.defer("read_here.npz", lambda: b"here")  # never started: built when read
    assert len(artifacts._builders) == 2
    assert dict(artifacts.items()) == {
        "first.npz": b"first",
        "again.npz": b"new",
        "later.npz": b"later",
        "read_here.npz": b"here",
    }



def test_builders_write_their_artifacts_into_the_writers_folder_and_send_back_digests(tmp_path):
    from curate.stages.base import Artifacts, _Saved

    folder = tmp_path / "index"
    artifacts = Artifacts({"plain.json": b"{}"})
    artifacts.write_into(folder)
    artifacts.defer("index.npz", lambda: f"built by {os.getpid()}".encode())
    artifacts.defer("again.npz", lambda: b"old")
    artifacts.start()
    artifacts.defer("again.npz", lambda: b"new")  # deferred again: the first build's file goes
    artifacts.start()
    artifacts.defer("here.npz", lambda: b"here")  # never started: built and written here
    artifacts._settle()
    kept = artifacts._values
    # What the forked builder built reached this process as a file it wrote, not as bytes.
    assert isinstance(kept["index.npz"], _Saved) and kept["index.npz"].path.parent == folder
    assert kept["plain.json"] == b"{}"
    assert dict(artifacts)["index.npz"] == kept["index.npz"].path.read_bytes()  # read as bytes

    digests = artifacts.save(folder)
    files = {path.name: path.read_bytes() for path in folder.iterdir()}
    assert sorted(files) == ["again.npz", "here.npz", "index.npz", "plain.json"]  # no part left over
    assert files["again.npz"] == b"new" and files["here.npz"] == b"here" and files["plain.json"] == b"{}"
    assert files["index.npz"].startswith(b"built by ") and files["index.npz"] != f"built by {os.getpid()}".encode()
    assert digests == {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    assert artifacts["index.npz"] == files["index.npz"] and dict(artifacts.items()) == files
    assert artifacts == files and dict(artifacts) == files and {**artifacts} == files

    # The version writer renames its folder: the values are read from where the files went.
    final = tmp_path / "final"
    folder.rename(final)
    artifacts.moved(final)
    assert dict(artifacts) == files
    # Saved again elsewhere: copied, the first folder keeps its files.
    artifacts.save(tmp_path / "copy")
    assert sorted(p.name for p in final.iterdir()) == sorted(files) == sorted(p.name for p in (tmp_path / "copy").iterdir())


def test_a_streamed_artifact_writes_itself_into_the_builders_file_and_nowhere_else(tmp_path):
    """A `Streamed` build writes into the file it is given (seeking back, as a zip writer
    does), its digest that of the file; without a file to go to, its bytes are the same; one
    that fails half-way leaves no part of its file."""
    from curate.stages.base import Artifacts, Streamed, _Saved

    def write(file) -> None:
        file.write(b"header: ....\n")
        file.write(f"body written by {os.getpid()}\n".encode())
        end = file.tell()
        file.seek(8)
        file.write(b"done")  # (what a zip writer does to a member's header once written)
        file.seek(end)

    def fails(file) -> None:
        file.write(b"half of it")
        raise ValueError("the build went wrong")

    folder = tmp_path / "index"
    artifacts = Artifacts()
    artifacts.write_into(folder)
    artifacts.defer("index.npz", Streamed(write))
    artifacts.start()
    artifacts._settle()
    saved = artifacts._values["index.npz"]
    assert isinstance(saved, _Saved) and saved.path.parent == folder
    data = saved.path.read_bytes()
    assert data.startswith(b"header: done\nbody written by ") and str(os.getpid()).encode() not in data
    assert artifacts.save(folder) == {"index.npz": hashlib.sha256(data).hexdigest()}
    assert (folder / "index.npz").read_bytes() == data

    here = Artifacts()
    here.defer("index.npz", Streamed(write))  # no folder: built here when read, as bytes
    assert here["index.npz"] == f"header: done\nbody written by {os.getpid()}\n".encode()

    failing = Artifacts()
    failing.write_into(tmp_path / "failing")
    failing.defer("index.npz", Streamed(fails))
    failing.start()
    with pytest.raises(ValueError, match="went wrong"):
        failing.save(tmp_path / "failing")
    assert not list((tmp_path / "failing").iterdir())


def test_the_last_definition_of_an_artifact_wins_and_leaves_no_file_behind(tmp_path):
    from curate.stages.base import Artifacts

    def fails() -> bytes:
        raise ValueError("the build went wrong")

    folder = tmp_path / "index"
    artifacts = Artifacts()
    artifacts.write_into(folder)
    artifacts.defer("a.bin", lambda: b"first")
    artifacts.defer("b.bin", fails)
    artifacts.start()  # builds a.bin (a file) then fails on b.bin: its a.bin file goes too
    artifacts.defer("b.bin", lambda: b"fixed")  # deferred again: the failed build no longer counts
    artifacts.defer("a.bin", lambda: b"second")
    artifacts.defer("c.bin", lambda: b"built")
    artifacts.start()
    artifacts["c.bin"] = b"assigned"  # assigned after its build started: the assignment wins
    assert dict(artifacts) == {"a.bin": b"second", "b.bin": b"fixed", "c.bin": b"assigned"}
    del artifacts["b.bin"]  # its builder's file goes with it
    left = [p.name for p in folder.iterdir()]
    assert len(left) == 1 and left[0].startswith(".a.bin.") and left[0].endswith(".part")  # a.bin's build
    assert artifacts.save(folder).keys() == {"a.bin", "c.bin"}
    assert sorted(p.name for p in folder.iterdir()) == ["a.bin", "c.bin"]

    failing = Artifacts()
    failing.write_into(tmp_path / "failing")
    failing.defer("a.bin", lambda: b"first")
    failing.defer("b.bin", fails)
    failing.start()
    with pytest.raises(ValueError, match="went wrong"):
        failing.save(tmp_path / "failing")
    assert not [p for p in (tmp_path / "failing").iterdir() if p.name.endswith(".part")]


class _DefersAnArtifact(ExactDuplicates):
    """Defers an artifact in its decide, as the near-duplicate stage defers its index."""

    def decide(self) -> None:
        super().decide()
        defer_artifact(self.context.state, "index.bin", lambda: f"built by {os.getpid()}".encode())


class _SeesTheBuildStarted(DropEditorLine):
    """Records, for each document, whether the artifact's build had begun (the engine starts
    it once the decision before this stage is made, before this pass's first document)."""

    seen: ClassVar[list[bool]] = []

    def process(self, doc: Document) -> None:
        _SeesTheBuildStarted.seen.append("index.bin" in self.context.state["artifacts"]._started)
        super().process(doc)


@pytest.mark.parametrize("workers", [1, 2])
def test_the_local_engine_starts_deferred_builds_once_the_decision_is_made(workers):
    from curate.stages.base import Artifacts

    stages = make_stages(_DefersAnArtifact, _SeesTheBuildStarted)
    artifacts = stages[0].context.state["artifacts"] = Artifacts()
    _SeesTheBuildStarted.seen = []
    docs = [Document.new(f"built/{n:04d}.txt", text) for n, text in enumerate(articles(20, seed=3))]
    list(LocalEngine(workers=workers, batch_size=4).execute(iter(docs), stages))
    assert _SeesTheBuildStarted.seen and all(_SeesTheBuildStarted.seen)  # here or in a fork
    built = artifacts["index.bin"]
    assert built.startswith(b"built by ") and built != f"built by {os.getpid()}".encode()


def _connected_to_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process looks connected to Ray, whose driver must not fork."""
    import sys
    import types

    ray = types.ModuleType("ray")
    ray.is_initialized = lambda: True  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "ray", ray)


@pytest.mark.parametrize("ray", [False, True])
def test_a_deferred_artifact_that_fails_fails_where_it_is_read(monkeypatch, ray):
    from curate.stages.base import Artifacts

    if ray:
        _connected_to_ray(monkeypatch)

    def broken() -> bytes:
        raise ValueError("no index")

    artifacts = Artifacts()
    artifacts.defer("index.npz", broken)
    artifacts.start()
    with pytest.raises(ValueError, match="no index"):
        dict(artifacts.items())


def test_in_a_process_connected_to_ray_deferred_artifacts_build_in_a_thread(monkeypatch):
    import threading

    from curate.stages.base import Artifacts

    _connected_to_ray(monkeypatch)
    release = threading.Event()

    def build() -> bytes:
        release.wait(10)
        return f"index built by {os.getpid()} in {threading.current_thread().name}".encode()

    artifacts = Artifacts()
    artifacts.defer("index.npz", build)
    artifacts.start()  # returns at once: the build waits in the background
    release.set()
    assert artifacts["index.npz"] == f"index built by {os.getpid()} in curate-artifacts".encode()


def test_a_copy_of_the_artifacts_leaves_the_deferred_ones_and_their_state_behind():
    import pickle

    from curate.stages.base import Artifacts, RunContext, defer_artifact

    decision_state = bytes(8 << 20)  # what a deferred builder closes over
    artifacts = Artifacts({"plain.json": b"{}"})
    context = RunContext(config=None, state={"artifacts": artifacts})
    defer_artifact(context.state, "index.npz", lambda: decision_state[:4])  # a lambda: no pickle
    shipped = pickle.dumps(context)  # as when a stage goes to a Ray worker with its context
    assert len(shipped) < 10_000
    copy = pickle.loads(shipped).state["artifacts"]
    assert isinstance(copy, Artifacts) and dict(copy.items()) == {"plain.json": b"{}"}
    assert sorted(artifacts.items()) == [("index.npz", bytes(4)), ("plain.json", b"{}")]  # here: all


def _real_pipeline(tmp_path: Path) -> list[Any]:
    """Every stage of curate.pipeline with the project's rules (a fresh context)."""
    from curate.pipeline import build_stages
    from curate.runner import load_rules
    from curate.stages.base import RunContext

    config = make_config(tmp_path)
    context = RunContext(config=config, rules=load_rules(config), state={"artifacts": {}, "warnings": []})
    return build_stages(context)


SITE_LINE = "每周三下午社区图书馆举办读书分享活动"  # no rule names it: only repeated_lines removes it


def _built_documents() -> list[Document]:
    """Built articles, a third ending with a line that only repeated_lines removes, and the
    samples."""
    texts = articles(160, seed=11)
    texts = [text + SITE_LINE + "\n" if n % 3 == 0 else text for n, text in enumerate(texts)]
    docs = [Document.new(f"built/{n:04d}.txt", text) for n, text in enumerate(texts)]
    return docs + [Document.new(path.name, path.read_text(encoding="utf-8")) for path in SEED_FILES]


@pytest.mark.parametrize("workers", [1, 2])
def test_fused_corpus_stages_give_what_two_passes_give(tmp_path, workers):
    from curate.version import encode

    outputs = {}
    for fuse in (False, True):
        stages = _real_pipeline(tmp_path / f"fuse-{fuse}")
        engine = LocalEngine(workers=workers, batch_size=16, fuse=fuse)
        encoded = list(engine.execute(iter(_built_documents()), stages, finish=encode))
        artifacts = dict(stages[0].context.state["artifacts"])
        outputs[fuse] = ([(e.line, e.edit_lines) for e in encoded], artifacts)
    assert outputs[True] == outputs[False]
    lines = b"".join(edits for _, edits in outputs[True][0]).decode("utf-8")
    assert '"stage":"repeated_lines"' in lines and '"stage":"dedup"' in lines  # both did work


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("spill_memory_mb", [0, 256])
def test_fused_stages_carry_documents_not_ok_as_two_passes_do(tmp_path, workers, spill_memory_mb):
    # Documents quarantined before the corpus stages have no summaries: the fused pass spills
    # their records (three a document) all the same, held in memory or in its file.
    from curate.document import QUARANTINED
    from curate.version import encode

    outputs = {}
    for fuse in (False, True):
        docs = _built_documents()
        for doc in docs[::5]:
            doc.status, doc.status_reason = QUARANTINED, "quarantined before the corpus stages (test)"
        stages = _real_pipeline(tmp_path / f"fuse-{fuse}")
        engine = LocalEngine(
            workers=workers, batch_size=16, fuse=fuse, spill_dir=tmp_path, spill_memory_mb=spill_memory_mb
        )
        encoded = list(engine.execute(iter(docs), stages, finish=encode))
        outputs[fuse] = [(e.line, e.edit_lines) for e in encoded]
    assert outputs[True] == outputs[False]
    quarantined = [line for line, _ in outputs[True] if b"quarantined before the corpus stages" in line]
    assert len(quarantined) == len(docs[::5])


def test_fused_stages_send_only_the_documents_the_first_one_changes(tmp_path):
    from curate.stages.repeated_lines import RepeatedLines

    applied: list[str] = []
    original = RepeatedLines.apply

    def counting(self: RepeatedLines, doc: Document) -> None:
        applied.append(doc.source)
        original(self, doc)

    docs = _built_documents()
    try:
        RepeatedLines.apply = counting  # type: ignore[method-assign]
        out = list(LocalEngine(workers=1, fuse=True).execute(iter(docs), _real_pipeline(tmp_path)))
    finally:
        RepeatedLines.apply = original  # type: ignore[method-assign]
    changed = {d.source for d in out if any(e.stage == "repeated_lines" for e in d.edits)}
    assert changed and changed <= set(applied)
    assert len(applied) < len(docs) / 2  # the others went on with their early summaries


def test_a_fused_pass_with_few_documents_to_redo_forks_no_pool(tmp_path, monkeypatch):
    # Repeated lines change about 60 of these documents: the driver redoes them itself (a pool
    # costs more than that), unless its budget is smaller; the output is the same either way.
    from curate import engine as engine_module
    from curate.version import encode

    forked: list[str] = []
    fork = engine_module._forked_pool

    def watched(task: Any, workers: int, *args: Any, **kwargs: Any) -> Any:
        forked.append(getattr(task, "__name__", "?"))
        return fork(task, workers, *args, **kwargs)

    monkeypatch.setattr(engine_module, "_forked_pool", watched)
    outputs = {}
    for budget in (0, LocalEngine.REDO_HERE):
        forked.clear()
        engine = LocalEngine(workers=2, batch_size=16)
        engine.REDO_HERE = budget
        stages = _real_pipeline(tmp_path / f"budget-{budget}")
        encoded = list(engine.execute(iter(_built_documents()), stages, finish=encode))
        outputs[budget] = [(e.line, e.edit_lines) for e in encoded], list(forked)
    assert outputs[0][0] == outputs[LocalEngine.REDO_HERE][0]
    assert "redo" in outputs[0][1] and "redo" not in outputs[LocalEngine.REDO_HERE][1]
    assert "run" in outputs[LocalEngine.REDO_HERE][1]  # the other passes still fork theirs


def test_repeated_lines_unchanged_by_is_never_wrong(tmp_path):
    from curate.stages.repeated_lines import RepeatedLines

    stage = next(s for s in _real_pipeline(tmp_path) if isinstance(s, RepeatedLines))
    docs = _built_documents()
    summaries = [stage.summarise(doc) for doc in docs]
    for summary in summaries:
        stage.observe(summary)
    stage.decide()
    verdicts = []
    for doc, summary in zip(docs, summaries, strict=True):
        before = (doc.text, len(doc.edits), dict(doc.meta))
        stage.apply(doc)
        verdicts.append(stage.unchanged_by(summary))
        if verdicts[-1]:
            assert (doc.text, len(doc.edits), dict(doc.meta)) == before, doc.source
    assert any(verdicts) and not all(verdicts)


def test_parallel_map_answers_local_batches_here_and_keeps_the_order():
    from curate.engine import parallel_map

    def task(batch: list[int]) -> list[tuple[int, int]]:
        return [(n * 10, os.getpid()) for n in batch]

    def local(batch: list[int]) -> list[tuple[int, int]] | None:
        return None if any(n % 7 == 0 for n in batch) else [(n * 10, -1) for n in batch]

    for workers in (1, 2):
        results = list(parallel_map(task, range(100), workers, 4, local=local))
        assert [value for value, _ in results] == [n * 10 for n in range(100)]
        for start in range(0, 100, 4):
            batch = range(start, min(start + 4, 100))
            worked = any(n % 7 == 0 for n in batch)
            assert all((results[n][1] != -1) == worked for n in batch), (workers, start)


def _tiny(count: int) -> list[Document]:
    return [Document.new(f"tiny/{n:04d}.txt", f"第{n}句。") for n in range(count)]


def test_small_documents_are_batched_by_their_text_and_later_passes_take_the_count_learned():
    from curate.engine import BatchSize

    sizer = BatchSize(4)
    assert [len(b) for b in sizer.batches(_tiny(70))] == [32, 32, 6]  # up to 8 x 4 documents
    assert sizer.learned == 32
    # Items of a later pass say nothing of their document's size: the count learned holds,
    # also for a pass whose batches began waiting before the first pass ended (the engine's
    # passes are chained generators: a corpus stage yields nothing before it has seen all).
    later = BatchSize(4)

    def spilled() -> Iterable[bytes]:
        assert len(list(later.batches(_tiny(70)))) == 3
        yield from [b"x" * BatchSize.BATCH_TEXT] * 40  # (weighed, each would fill a batch of 4)

    assert [len(b) for b in later.batches(spilled())] == [32, 8]


def test_documents_big_enough_keep_the_batch_size():
    from curate.engine import BatchSize

    for chars, expected in [(BatchSize.BATCH_TEXT, 4), (-(-BatchSize.BATCH_TEXT // 6), 6)]:
        sizer = BatchSize(4)
        docs = [Document.new(f"big/{n}.txt", "字" * chars) for n in range(12)]
        assert [len(b) for b in sizer.batches(docs)] == [expected] * (12 // expected), chars
        assert sizer.learned == expected
        pickled = [pickle.dumps(doc) for doc in docs]  # (as pages read on the workers come)
        assert len(next(BatchSize(4).batches(pickled))) <= expected


class _BatchLength(DocumentStage):
    """Writes into each document how many documents its batch (of the engine) held."""

    name = "test_batch_first"
    Settings = StageSettings
    batch_documents = 1 << 20  # (the stage sees the engine's batch whole)

    def process_batch(self, docs: list[Document]) -> None:
        for doc in docs:
            doc.set_meta(self.name, len(docs))


class _BatchLengthLater(_BatchLength):
    name = "test_batch_later"


@pytest.mark.parametrize("workers", [1, 2])
def test_small_documents_reach_the_stages_in_larger_batches_in_every_pass(workers):
    docs = _tiny(600)
    stages = make_stages(_BatchLength, ExactDuplicates, _BatchLengthLater)
    out = list(LocalEngine(workers=workers, batch_size=4).execute(iter(docs), stages))
    assert [doc.id for doc in out] == [doc.id for doc in docs]
    for name in ("test_batch_first", "test_batch_later"):
        lengths = [doc.meta[name] for doc in out]
        assert max(lengths) == 32 and lengths.count(32) >= 500, (name, sorted(set(lengths)))


class _QuarantineMarked(DocumentStage):
    """Quarantines the documents holding "bad", a document at a time."""

    name = "test_quarantine"
    Settings = StageSettings

    def process(self, doc: Document) -> None:
        if "bad" in doc.text:
            doc.status = QUARANTINED


class _RecordBatches(DocumentStage):
    """Notes the sources of each batch it is given and grows each document's text by one character
    (so the stage after it cuts its batches on the grown lengths)."""

    name = "test_record"
    Settings = StageSettings
    batch_documents = 3
    batch_characters = 12
    seen: ClassVar[dict[str, list[list[str]]]] = {}

    def process_batch(self, docs: list[Document]) -> None:
        _RecordBatches.seen.setdefault(self.name, []).append([doc.source for doc in docs])
        for doc in docs:
            doc.apply(self.name, [Change(len(doc.text), len(doc.text), "+", "test.grow", "grown")])


class _RecordBatchesAfter(_RecordBatches):
    name = "test_record_after"
    batch_documents = 4
    batch_characters = 0


def _batch_texts() -> list[Document]:
    texts = ["a", "bad one", "ccc", "dddddddddddd", "e", "ffffffffffff", "g", "bad", "hh", "i", "jjjjjjj"]
    return [Document.new(f"t/{n:02d}", text) for n, text in enumerate(texts)]


def test_a_stage_run_on_a_list_gets_the_batches_its_stream_gets():
    """`DocumentStage.run_list` (what an engine's worker runs) makes the batches `run` makes,
    status and lengths read after the stages before it, and the same documents."""
    stages = make_stages(_QuarantineMarked, _RecordBatches, _RecordBatchesAfter)
    _RecordBatches.seen = {}
    streamed: Iterable[Document] = _batch_texts()
    for stage in stages:
        streamed = stage.run(streamed)
    streamed = list(streamed)
    by_stream = _RecordBatches.seen
    _RecordBatches.seen = {}
    listed = _batch_texts()
    for stage in stages:
        stage.run_list(listed)
    assert _RecordBatches.seen == by_stream
    assert [serialised([d]) for d in listed] == [serialised([d]) for d in streamed]
    assert any(d.status == QUARANTINED for d in listed) and any(d.edits for d in listed)
    # Cut at 3 documents, or where they reach 12 characters (the quarantined ones count, and
    # are not given); then 4 at a time, on the grown texts.
    assert by_stream == {
        "test_record": [["t/00", "t/02"], ["t/03"], ["t/04", "t/05"], ["t/06", "t/08"], ["t/09", "t/10"]],
        "test_record_after": [["t/00", "t/02", "t/03"], ["t/04", "t/05", "t/06"], ["t/08", "t/09", "t/10"]],
    }


def test_a_halted_worker_stops_a_listed_stage_before_its_next_batch():
    """`run_list` calls `before_each` before each batch; what it raises stops the stage there
    (a worker of an early pass told to stop: `engine.halted`)."""
    calls = []

    def before_each() -> None:
        calls.append(len(_RecordBatches.seen.get("test_record", ())))
        if len(calls) == 3:
            raise RuntimeError("halted")

    _RecordBatches.seen = {}
    with pytest.raises(RuntimeError):
        make_stages(_RecordBatches)[0].run_list(_batch_texts(), before_each)
    assert calls == [0, 1, 2] and len(_RecordBatches.seen["test_record"]) == 2


def test_a_listed_stage_calls_a_process_batch_put_in_its_place():
    """A stage of one document a batch whose `process_batch` was replaced on the instance (a
    benchmark's timer, say) gets its documents through it, from `run_list` as from `run`."""
    stage = make_stages(_QuarantineMarked)[0]
    given: list[list[str]] = []
    process_batch = stage.process_batch

    def noted(docs: list[Document]) -> None:
        given.append([doc.source for doc in docs])
        process_batch(docs)

    stage.process_batch = noted
    list(stage.run(_batch_texts()))
    streamed, given[:] = list(given), []
    stage.run_list(_batch_texts())
    assert given == streamed == [[doc.source] for doc in _batch_texts()]


def test_a_phase_gives_a_stage_with_its_own_run_the_stream():
    """`Phase.run` (a worker's task) gives each document stage with the usual `run` the task's
    list (`run_list`), and a stage with its own `run` the documents one by one."""
    from curate.engine import Phase

    stages = make_stages(_QuarantineMarked, NumberInDriver, _RecordBatchesAfter)
    listed = []
    for stage in (stages[0], stages[2]):
        run_list = stage.run_list

        def noted(docs: list[Document], before_each: Any = None, stage: Any = stage, run_list: Any = run_list) -> None:
            listed.append((stage.name, len(docs)))
            run_list(docs, before_each)

        stage.run_list = noted
    _RecordBatches.seen = {}
    results = Phase(stages=stages, pack=False).run(_batch_texts())
    assert listed == [("test_quarantine", 11), ("test_record_after", 11)]
    assert [payload.meta["position"] for payload, _, _ in results] == list(range(11))
    assert [ok for _, ok, _ in results] == ["bad" not in d.text for d in _batch_texts()]
    assert _RecordBatches.seen == {
        "test_record_after": [["t/00", "t/02", "t/03"], ["t/04", "t/05", "t/06"], ["t/08", "t/09", "t/10"]]
    }


@pytest.mark.parametrize("budget", [0, 100, 10_000])
def test_a_spill_gives_its_records_back_in_order_held_up_to_its_budget(tmp_path, budget):
    from curate.engine import Spill

    records = [bytes([n]) * (n * 7 % 300) for n in range(200)]  # 29,800 bytes, some empty
    with Spill(tmp_path, "test-", budget) as spill:
        for record in records:
            spill.put(record)
        held = list(spill.held)
        assert len(spill) == len(records)
        assert list(spill.records()) == records
        assert not spill.held  # released as read
    assert sum(map(len, held)) <= budget
    assert held == records[: len(held)]  # the first ones, then everything else in the file
    assert (len(held) == len(records)) == (budget >= sum(map(len, records)))
    assert list(tmp_path.iterdir()) == []  # the file is unlinked


def test_a_spill_holds_documents_as_they_are_within_its_budget_and_files_the_rest(tmp_path):
    from curate.engine import Spill, loads

    docs = _built_documents()[:40]
    for doc in docs[::3]:  # (some with edits and flags)
        doc.apply("test", [Change(0, 2, "", "test", "a test edit")])
        doc.add_flag(Flag(kind="test", start=0, end=1, text=doc.text[:1], reason="a test flag"))
    budget = sum(doc.memory_size() for doc in docs[:25])
    with Spill(tmp_path, "test-", budget) as spill:
        for doc in docs:
            spill.put(doc)
        assert list(spill.held) == docs[:25] and all(a is b for a, b in zip(spill.held, docs, strict=False))
        assert spill.held_bytes == budget and spill.in_file == 15
        back = list(spill.records())
    assert all(back[n] is docs[n] for n in range(25))  # never pickled
    assert all(isinstance(record, bytes) for record in back[25:])  # pickled into the file
    assert [loads(record) for record in back] == docs


def test_a_documents_memory_size_is_at_least_what_it_holds(tmp_path):
    import pickle
    import tracemalloc

    from curate.version import encode

    docs = list(LocalEngine(workers=1).execute(iter(_built_documents()), _real_pipeline(tmp_path)))
    assert any(doc.edits for doc in docs) and any(doc.flags for doc in docs) and any(doc.meta for doc in docs)
    pickles = [pickle.dumps(doc, pickle.HIGHEST_PROTOCOL) for doc in docs]
    tracemalloc.start()
    try:
        for doc, data in zip(docs, pickles, strict=True):
            before = tracemalloc.get_traced_memory()[0]
            copy = pickle.loads(data)
            held = tracemalloc.get_traced_memory()[0] - before
            assert encode(copy).line == encode(doc).line
            assert held <= doc.memory_size() <= 3 * held + 4096, doc.source
            del copy
    finally:
        tracemalloc.stop()


def test_a_documents_memory_size_is_the_same_compiled_or_not(tmp_path, monkeypatch):
    # The compiled sum of its strings' sizes is what `sys.getsizeof` gives them (strings fresh
    # from a pickle: no UTF-8 copy of themselves, which `getsizeof` would count).
    import pickle

    from curate import document

    if document._compiled_texts_size is None:
        pytest.skip("curate._kernels was not built")
    docs = list(LocalEngine(workers=1).execute(iter(_built_documents()), _real_pipeline(tmp_path)))
    fresh = [pickle.loads(pickle.dumps(doc, pickle.HIGHEST_PROTOCOL)) for doc in docs]
    assert any(doc.edits for doc in fresh) and any(doc.flags for doc in fresh)
    compiled = [doc.memory_size() for doc in fresh]
    monkeypatch.setattr(document, "_compiled_texts_size", None)
    assert [doc.memory_size() for doc in fresh] == compiled


def test_a_documents_memory_size_takes_texts_that_are_not_str():
    # An edit's text of a `str` subclass (a stage of one's own may make one): weighed as
    # `sys.getsizeof` weighs it, as before the kernel.
    import sys

    from curate import document

    class Text(str):
        pass

    doc = Document.new("a.txt", "中文")
    doc.edits.append(Edit("x", "x.rule", "replace", 0, 1, Text("中"), "中", "a test"))
    fixed = document._OBJECT_SIZE + doc._src.itemsize * len(doc._src) + document._PART_SIZE
    want = fixed + sum(map(sys.getsizeof, ("中文", Text("中"), "中")))
    assert doc.memory_size() == want


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("spill_memory_mb", [0, 0.05])
def test_spilling_to_disk_gives_what_holding_in_memory_gives(tmp_path, spill_memory_mb, workers):
    from curate.version import encode

    outputs = []
    for budget in (spill_memory_mb, 256):
        stages = _real_pipeline(tmp_path / f"budget-{budget}")
        engine = LocalEngine(workers=workers, batch_size=16, spill_dir=tmp_path, spill_memory_mb=budget)
        encoded = list(engine.execute(iter(_built_documents()), stages, finish=encode))
        outputs.append(([(e.line, e.edit_lines) for e in encoded], dict(stages[0].context.state["artifacts"])))
    assert outputs[0] == outputs[1]


def test_the_document_file_gives_back_what_any_process_put(tmp_path):
    from curate.engine import DocumentFile, Stored, dumps, fork_map, unpickled

    store = DocumentFile(tmp_path)
    assert list(tmp_path.iterdir()) == []  # unlinked from the start: nothing can be left behind
    here = store.put([b"driver", b"", b"again"])
    made = fork_map(lambda n: store.put([bytes([n]) * n, b"-" * n]), list(range(1, 9)), 2)
    everything = here + [stored for pair in made for stored in pair]
    assert len({stored.offset for stored in everything if stored.length}) == 2 + 16  # no overlap
    expected = [b"driver", b"", b"again"] + [part for n in range(1, 9) for part in (bytes([n]) * n, b"-" * n)]
    assert fork_map(store.read, everything, 2) == expected
    assert [store.read(stored) for stored in everything] == expected
    # Where a document is travels and waits as 17 bytes, read back as what it was.
    records = [dumps(stored) for stored in everything]
    assert {len(record) for record in records} == {17}
    assert [unpickled(record) for record in records] == everything
    assert [store.read(unpickled(record)) for record in records] == expected
    for value in ("S" * 17, 12345, Stored(1, 2)._asdict()):  # pickles are never taken for one
        assert unpickled(dumps(value)) == value
    store.close()
    assert store.file.closed


def test_with_workers_documents_wait_in_the_document_file_not_in_the_driver(tmp_path, monkeypatch):
    from curate.engine import Spill, Stored, unpickled
    from curate.version import encode

    spilled: list[bytes] = []
    put = Spill.put
    monkeypatch.setattr(Spill, "put", lambda self, data: (spilled.append(data), put(self, data))[1])
    docs = _built_documents()
    outputs = []
    for workers in (1, 2):
        folder = tmp_path / f"spill-{workers}"
        folder.mkdir()
        spilled.clear()
        engine = LocalEngine(workers=workers, batch_size=16, spill_dir=folder)
        stages = _real_pipeline(tmp_path / f"stages-{workers}")
        run = engine.execute(iter(_built_documents()), stages, finish=encode)  # (documents of its own)
        outputs.append([(e.line, e.edit_lines) for e in run])
        # (a near-duplicate summary is spilled as its own flat record: neither pickle nor `Stored`)
        records = [unpickled(data) for data in spilled if not isinstance(data, bytes) or data[:1] in (b"\x80", b"S")]
        if workers == 1:  # documents, as they are: never pickled while they wait
            assert sum(isinstance(data, Document) for data in spilled) >= len(docs)
        else:
            assert not any(isinstance(record, Document) for record in records)
            stored = [record for record in records if isinstance(record, Stored)]
            assert len(stored) >= len(docs)  # each document, once per corpus stage it waits for
            assert len({s.offset for s in stored}) >= len(docs)
        assert list(folder.iterdir()) == []
    assert outputs[0] == outputs[1]


def test_a_run_stopped_early_closes_its_document_file(tmp_path):
    from curate.version import encode

    engine = LocalEngine(workers=2, batch_size=16, spill_dir=tmp_path)
    run = engine.execute(iter(_built_documents()), _real_pipeline(tmp_path / "stages"), finish=encode)
    next(run)  # both corpus stages have decided: their documents wait in the file
    store = engine._store
    assert store is not None and os.fstat(store.fd).st_size > 0
    run.close()
    assert engine._store is None and store.file.closed


def _pipe_limit() -> int:
    try:
        return int(Path("/proc/sys/fs/pipe-max-size").read_text())
    except OSError:
        return 0


@pytest.mark.skipif(_pipe_limit() < (1 << 20), reason="pipes cannot hold 1 MiB here (not Linux?)")
def test_the_pools_and_the_artifact_builders_pipes_hold_a_batch():
    import fcntl
    import multiprocessing

    from curate.engine import _forked_pool
    from curate.stages.base import PIPE_BYTES, _ForkedBuild, widen_pipe

    def size(connection: Any) -> int:
        return fcntl.fcntl(connection.fileno(), fcntl.F_GETPIPE_SZ)

    receive, send = multiprocessing.Pipe(duplex=False)
    assert size(receive) < PIPE_BYTES  # the system's default
    widen_pipe(receive)
    assert size(receive) == size(send) == PIPE_BYTES  # one pipe, seen from both ends
    with _forked_pool(len, 2) as pool:
        assert size(pool._inqueue._reader) == size(pool._outqueue._reader) == PIPE_BYTES
        assert pool.map(len, [b"x" * 3_000_000, b""]) == [3_000_000, 0]
    builder = _ForkedBuild({"index.npz": (lambda: b"i" * 3_000_000, None)})  # (None: sent back)
    assert size(builder.receive) == PIPE_BYTES
    assert builder.result() == ("ok", {"index.npz": b"i" * 3_000_000})


def test_a_spill_folder_that_cannot_be_written_is_one_line_naming_it(tmp_path, monkeypatch):
    import errno

    from curate import engine as engine_module
    from curate.runner import RunError, run

    missing = tmp_path / "no-such-folder"
    config = make_config(tmp_path, {"run": {"workers": 2, "spill_dir": str(missing)}})
    with pytest.raises(RunError) as failed:
        run(config, inputs=[str(p) for p in SEED_FILES], write_report=False)
    assert str(failed.value).startswith(f"{missing}: cannot keep documents between passes (")
    assert "\n" not in str(failed.value)
    # the disk fills up in a worker, while it writes its documents: the driver says so, in one line
    def full(*args: Any) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(engine_module.os, "pwrite", full)  # inherited by the forked workers
    config = make_config(tmp_path, {"run": {"workers": 2, "spill_dir": str(tmp_path)}})
    with pytest.raises(RunError, match=r"cannot keep documents between passes \(No space left on device\)"):
        run(config, inputs=[str(p) for p in SEED_FILES], write_report=False)
    versions = tmp_path / "corpus" / "versions"
    assert not [p for p in versions.glob("*") if not p.name.startswith(".")]  # no version written


def test_a_spill_past_its_budget_into_a_missing_folder_says_so(tmp_path):
    from curate.engine import Spill, SpillError

    with Spill(tmp_path / "missing", "test-", 4) as spill:
        spill.put(b"held")
        with pytest.raises(SpillError, match=r"missing: cannot keep documents between passes"):
            spill.put(b"to the file")


# --------------------------------------------------------------------------- lost workers
def _within(seconds: float, work: Any) -> Any:
    """`work()`'s result, or the exception it raised; fails the test if it is still waiting
    after `seconds` (it runs in a daemon thread, so a hang cannot hold up the suite)."""
    import threading

    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = work()
        except BaseException as exc:  # noqa: BLE001 (the test looks at it)
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still waiting after {seconds} s"
    return outcome.get("error", outcome.get("value"))


def _killed_on(marker: int) -> Any:
    """A task that kills the worker process running it when its batch holds `marker`."""
    import signal

    driver = os.getpid()

    def task(batch: list[int]) -> list[int]:
        if marker in batch and os.getpid() != driver:
            os.kill(os.getpid(), signal.SIGKILL)
        return batch

    return task


def test_a_worker_killed_in_a_pass_stops_it_with_one_line_instead_of_a_hang():
    from curate.engine import WorkerLost, parallel_map

    done = _within(60, lambda: list(parallel_map(_killed_on(40), range(100), 2, 4)))
    assert isinstance(done, WorkerLost), done
    assert "was killed by SIGKILL" in str(done) and "\n" not in str(done)
    # the same pool code, no worker killed: every result, in order
    assert _within(60, lambda: list(parallel_map(_killed_on(-1), range(100), 2, 4))) == list(range(100))


def test_a_worker_killed_during_a_decision_stops_it_instead_of_a_hang():
    from curate.engine import DecideWorkers, WorkerLost, fork_map

    task = _killed_on(7)

    class Decision:
        def verify(self, item: int) -> int:
            return task([item])[0]

    workers = DecideWorkers(2)
    try:
        assert isinstance(_within(60, lambda: workers(Decision().verify, list(range(20)))), WorkerLost)
    finally:
        workers.close()
    assert isinstance(_within(60, lambda: fork_map(lambda n: task([n]), list(range(20)), 2)), WorkerLost)


def test_leaving_a_pool_whose_idle_workers_were_killed_does_not_hang():
    """An idle worker waits for a task holding the lock its pool's `terminate` takes: killed
    there, it never gives it back. Both killed, one surely held it."""
    import signal

    from curate.engine import WorkerLost, _Pool, _result

    def scenario() -> Any:
        with _Pool(2, context=multiprocessing.get_context("fork")) as pool:
            assert pool.lost_worker() is None
            pool.map(abs, range(8))
            for worker in list(pool._pool):
                os.kill(worker.pid, signal.SIGKILL)
            try:
                return _result(pool, pool.map_async(abs, range(8)))
            finally:
                assert pool.lost_worker() is not None

    assert isinstance(_within(60, scenario), WorkerLost)


def test_a_killed_worker_reaped_by_another_wait_is_still_seen_lost():
    """The pool's thread that keeps its workers reaps an ended one; a wait elsewhere that comes
    before it records the exit code finds no process and no code. Here the test reaps the
    killed worker itself: the pool must still see it lost (its sentinel says it ended), and
    leaving the pool must not wait forever on the lock the worker died holding."""
    import signal

    from curate.engine import _Pool

    def scenario() -> tuple[int, str | None]:
        with _Pool(1, context=multiprocessing.get_context("fork")) as pool:
            pool.map(abs, range(4))
            (worker,) = pool._pool
            os.kill(worker.pid, signal.SIGKILL)
            try:
                os.waitpid(worker.pid, 0)  # (reaped here: its `Process` never learns the code)
            except ChildProcessError:  # (the pool's thread was first: the code is recorded)
                pass
            return worker.pid, pool.lost_worker()  # (then left: `terminate`)

    pid, lost = _within(60, scenario)
    assert lost is not None and lost.startswith(f"worker process {pid} ")


def test_a_run_whose_worker_is_killed_fails_in_one_line_and_writes_no_version(tmp_path, monkeypatch):
    import signal

    from curate.runner import RunError, run
    from curate.stages.repair import Repair

    driver, repair = os.getpid(), Repair.process

    def killed_in_a_worker(self: Any, doc: Document) -> None:
        if os.getpid() != driver:
            os.kill(os.getpid(), signal.SIGKILL)
        repair(self, doc)

    monkeypatch.setattr(Repair, "process", killed_in_a_worker)  # inherited by the forked workers
    config = make_config(tmp_path, {"run": {"workers": 2, "batch_size": 1}})
    failed = _within(120, lambda: run(config, inputs=[str(p) for p in SEED_FILES], write_report=False))
    assert isinstance(failed, RunError), failed
    assert "was killed by SIGKILL" in str(failed) and "\n" not in str(failed)
    versions = tmp_path / "corpus" / "versions"
    assert not [p for p in versions.glob("*") if not p.name.startswith(".")]  # no version written


def test_a_worker_killed_while_reading_pages_fails_the_run_in_one_line(tmp_path, monkeypatch):
    # The files slow to read are read on a pool of their own, beside the first pass's.
    import signal

    from curate import ingest, runner

    from .test_ingest import PAGE

    pages = tmp_path / "pages"
    pages.mkdir()
    for n in range(8):
        (pages / f"{n}.html").write_text(PAGE.replace("海西州", f"第{n}州"), encoding="utf-8")
    driver, read_file = os.getpid(), ingest.read_file

    def killed_in_a_worker(file: Any, settings: Any) -> Any:
        if os.getpid() != driver:
            os.kill(os.getpid(), signal.SIGKILL)
        return read_file(file, settings)

    monkeypatch.setattr(ingest, "read_file", killed_in_a_worker)  # inherited by the forked workers
    monkeypatch.setattr(runner, "READ_TASK_FILES", 1)
    config = make_config(tmp_path, {"run": {"workers": 2}})
    failed = _within(120, lambda: runner.run(config, inputs=[str(pages)], write_report=False))
    assert isinstance(failed, runner.RunError), failed
    assert "was killed by SIGKILL" in str(failed) and "\n" not in str(failed)
    versions = tmp_path / "corpus" / "versions"
    assert not [p for p in versions.glob("*") if not p.name.startswith(".")]  # no version written


def test_workers_and_builders_leave_ctrl_c_to_the_driver():
    """Ctrl-C reaches the whole process group; the driver stops the run and ends its workers."""
    import signal

    from curate.engine import fork_map
    from curate.stages.base import Artifacts, defer_artifact

    handler = signal.getsignal(signal.SIGINT)
    assert fork_map(lambda _: signal.getsignal(signal.SIGINT), [0, 1], 2) == [signal.SIG_IGN] * 2
    artifacts = Artifacts()
    defer_artifact({"artifacts": artifacts}, "handler", lambda: str(signal.getsignal(signal.SIGINT)).encode())
    artifacts.start()  # built in a forked builder
    assert artifacts["handler"] == str(signal.SIG_IGN).encode()
    assert signal.getsignal(signal.SIGINT) is handler  # the driver's own is untouched


def test_ctrl_c_stops_a_run_with_one_word_and_no_worker_tracebacks(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    children = Path("/proc/self/task") / str(os.getpid()) / "children"
    if not children.exists():
        pytest.skip("this system does not list a process's children in /proc")
    inputs = write_corpus(tmp_path / "in", 6000, per_file=500)
    config = tmp_path / "curate.toml"
    config.write_text(
        f'[run]\ncorpus = "{tmp_path / "corpus"}"\nreports = "{tmp_path / "reports"}"\n'
        f'rules = ["{Path(__file__).resolve().parents[1] / "rules"}"]\nworkers = 2\n',
        encoding="utf-8",
    )
    run = subprocess.Popen(
        [sys.executable, "-m", "curate", "run", str(inputs), "--config", str(config), "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as in a terminal
    )
    try:
        workers = Path(f"/proc/{run.pid}/task/{run.pid}/children")
        deadline = time.monotonic() + 60
        while run.poll() is None and not workers.read_text().split() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # past the moment between a worker's fork and its first instruction
        assert run.poll() is None, "the run ended before it had workers to interrupt"
        os.killpg(run.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        output = run.communicate(timeout=60)[0].decode()
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    assert run.returncode != 0
    assert output.strip() == "Aborted!", output
    assert not [p for p in (tmp_path / "corpus" / "versions").glob("*") if not p.name.startswith(".")]


def test_map_inputs_reads_on_forked_workers_in_input_order_a_few_at_a_time():
    # Ingest's per-file work: the first item here (as every pass's first batch), the rest on
    # the workers, results in input order, no more than `IN_FLIGHT` items per worker handed out
    # ahead of the reader.
    import time

    driver = os.getpid()
    engine = LocalEngine(workers=2)
    started: multiprocessing.Queue = multiprocessing.get_context("fork").Queue()

    def read(n: int) -> tuple[int, int]:
        started.put(n)
        time.sleep(0.01)
        return n * n, os.getpid()

    results = engine.map_inputs(read, range(40))
    taken = [next(results) for _ in range(3)]
    assert taken[0] == (0, driver)
    time.sleep(0.3)  # the reader waits: the workers must not run ahead of it
    begun = []
    while not started.empty():
        begun.append(started.get())
    assert 3 <= max(begun) < len(taken) + IN_FLIGHT * engine.workers
    rest = taken[1:] + list(results)
    assert [value for value, _ in rest] == [n * n for n in range(1, 40)]
    assert driver not in {pid for _, pid in rest}
    assert list(LocalEngine(workers=1).map_inputs(lambda n: (n, os.getpid()), range(5))) == [
        (n, driver) for n in range(5)
    ]


def test_overlapping_pools_each_run_their_own_task_and_unfreeze_once_the_last_ends():
    # The files are read by one pool while the first pass forks another: each pool's workers
    # run the task they were started with, and the objects frozen for the forks stay frozen
    # until the last pool alive ends, whichever ends first.
    import gc

    from curate.engine import _forked_pool, _run_task

    assert gc.get_freeze_count() == 0
    first = _forked_pool(lambda n: ("first", n), 2)
    first_pool = first.__enter__()
    with _forked_pool(lambda n: ("second", n), 2) as second_pool:
        assert first_pool.apply_async(_run_task, (1,)).get(timeout=30) == ("first", 1)
        assert second_pool.apply_async(_run_task, (2,)).get(timeout=30) == ("second", 2)
        first.__exit__(None, None, None)
        assert gc.get_freeze_count() > 0
        assert second_pool.apply_async(_run_task, (3,)).get(timeout=30) == ("second", 3)
    assert gc.get_freeze_count() == 0


_BLAS_THREADS = """
import os
import curate
import numpy
print(os.environ.get("OPENBLAS_NUM_THREADS"), len(os.listdir("/proc/self/task")))
"""


@pytest.mark.parametrize("given", [None, "2"])
def test_numpy_starts_no_blas_threads_in_curate_unless_the_user_asks(given):
    # numpy's OpenBLAS started a thread per core, which spun after numpy's import-time check
    # while the run's workers wanted the cores. Imported after curate: one thread in all
    # (this one); a setting of the user's own is left as it is.
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    if given is not None:
        env["OPENBLAS_NUM_THREADS"] = given
    out = subprocess.run(
        [sys.executable, "-c", _BLAS_THREADS], check=True, env=env, capture_output=True, text=True, timeout=120
    ).stdout.split()
    assert out[0] == (given or "1")
    if given is None:
        assert out[1] == "1"
