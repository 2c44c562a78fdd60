"""The pass after a corpus stage, run while the stage decides (`curate.engine._EarlyPass`): what
it made of a document the stage leaves alone stands, every other document goes through the pass
again after the decision, and the output is the output of a pass that waited."""

from __future__ import annotations

import copy
import json
import pickle
import signal
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

import pytest

from curate import engine as engine_module
from curate.document import DUPLICATE, OK, Document
from curate.engine import LocalEngine
from curate.stages.base import CorpusStage, DocumentStage, RunContext, StageSettings
from curate.stages.dedup import INDEX_NAME, DedupSettings, NearDuplicates
from curate.version import Encoded, encode

from .scale_helpers import FailOnMarker, FlagLongSentences, articles
from .test_dedup import engine_corpus


class LogDocuments(DocumentStage):
    """Appends the id of each document it processes to `path`, in whichever process runs it
    (one short write in append mode: whole lines)."""

    name = "test_log"
    Settings = StageSettings
    path: ClassVar[Path]

    def process(self, doc: Document) -> None:
        with open(self.path, "a", encoding="utf-8") as log:
            log.write(doc.id + "\n")


def _corpus() -> list[Document]:
    """The dedup engine corpus (duplicates, repeated passages, splices) and articles that share
    nothing: documents dedup changes and documents it leaves alone."""
    built = [Document.new(f"built/{n:03d}.txt", text) for n, text in enumerate(articles(40, seed=5))]
    return [*engine_corpus()[:6], *built[:20], *engine_corpus()[6:], *built[20:]]


def _run(tmp_path: Path, name: str, workers: int, early: bool, **engine: Any):
    """The documents encoded, the index and the log of which documents the pass after dedup
    processed (the last pass: the early pass only ever runs that one)."""
    LogDocuments.path = tmp_path / f"{name}.log"
    context = RunContext(config=None, state={"artifacts": {}, "warnings": []})
    stages = [
        NearDuplicates(DedupSettings(), context),
        LogDocuments(StageSettings(), context),
        FlagLongSentences(StageSettings(), context),
    ]
    local = LocalEngine(workers=workers, batch_size=3, early=early, **engine)
    docs = list(local.execute(_corpus(), stages, finish=encode))
    log = LogDocuments.path.read_text(encoding="utf-8").split() if LogDocuments.path.exists() else []
    return docs, context.state["artifacts"][INDEX_NAME], log


def _written(docs: list[Encoded]) -> list[tuple[bytes, bytes]]:
    """What the writer writes of each document, in order."""
    return [(doc.line, doc.edit_lines) for doc in docs]


def _edited_by_dedup(doc: Encoded) -> bool:
    return any(json.loads(line)["stage"] == "dedup" for line in doc.edit_lines.splitlines())


@pytest.fixture
def early_pass_takes_everything(monkeypatch):
    """The early pass goes on until it has taken every document (or its budget), and made
    their results, however short the decision."""
    made = engine_module._EarlyPass.made
    taken: list[int] = []

    def made_once_all_done(self: Any) -> Any:
        if self.thread is not None:
            self.thread.join()  # (it ends when the documents, or the budget, do)
            for pending in self.sent:
                while not pending.ready():
                    pending.wait(0.1)
            taken.append(len(self.taken))
        return made(self)

    monkeypatch.setattr(engine_module._EarlyPass, "made", made_once_all_done)
    return taken


def test_results_made_early_stand_for_the_documents_dedup_leaves_alone(tmp_path, early_pass_takes_everything):
    waited, waited_index, waited_log = _run(tmp_path, "waited", workers=2, early=False)
    one, one_index, _ = _run(tmp_path, "one", workers=1, early=True)
    docs, index, log = _run(tmp_path, "early", workers=2, early=True)
    assert early_pass_takes_everything == [len(docs)]  # it ran, on every document
    # The output of a pass that waited for the decision (and of one worker), byte for byte.
    assert _written(docs) == _written(waited) == _written(one)
    assert index == waited_index == one_index
    # Waiting, the pass's document stages process each document left OK once. Early, every
    # document once before the decision but the exact copies of earlier ones (duplicates,
    # most likely: `probably_changes`), and the ones dedup then edits once more after it (its
    # duplicates, no longer OK, are not processed after it), and only they.
    assert sorted(waited_log) == sorted(d.id for d in waited if d.status == OK)
    copies = {d.id for d in docs} - set(log)
    assert copies and copies <= {d.id for d in docs if d.status == DUPLICATE}
    edited = {d.id for d in docs if _edited_by_dedup(d)}
    assert {doc_id for doc_id in log if log.count(doc_id) == 2} == edited
    assert edited and any(d.status == DUPLICATE for d in docs) and max(map(log.count, log)) == 2


@pytest.mark.parametrize(("workers", "early", "processes"), [(2, True, 0), (3, True, 2), (2, False, 2)])
def test_the_decision_shares_the_cores_with_the_early_pass(tmp_path, monkeypatch, workers, early, processes):
    """While an early pass runs, the decision's `parallel` service has as many processes as the
    early pass (one fewer than the run's): with 2 workers none, its work is done in the driver,
    on the core the decision keeps. Without an early pass it has the run's workers."""
    offered: list[int] = []
    decide = NearDuplicates.decide

    def recording(self: NearDuplicates) -> None:
        parallel = self.context.parallel
        offered.append(0 if parallel is None else parallel.workers)
        decide(self)

    monkeypatch.setattr(NearDuplicates, "decide", recording)
    docs, _, _ = _run(tmp_path, "run", workers=workers, early=early)
    assert offered == [processes]
    assert any(doc.status == DUPLICATE for doc in docs)  # (a decision with work to verify)


def test_an_early_pass_cut_short_by_its_budget_gives_the_same_output(tmp_path, early_pass_takes_everything):
    waited, waited_index, _ = _run(tmp_path, "waited", workers=2, early=False)
    # A budget of a byte: one batch is all it takes.
    docs, index, log = _run(tmp_path, "early", workers=2, early=True, spill_memory_mb=1e-6)
    [taken] = early_pass_takes_everything
    assert 0 < taken < len(docs) / 2
    assert _written(docs) == _written(waited) and index == waited_index


def test_a_failing_document_fails_the_run_as_without_an_early_pass(tmp_path, early_pass_takes_everything):
    corpus = [d for d in _corpus() if "FAIL" not in d.text]  # (FailOnMarker's marker)
    failing = corpus[30].source  # an article dedup leaves alone

    def marked() -> list[Document]:
        return [Document.new(d.source, d.text + ("FAIL" if d.source == failing else "")) for d in corpus]

    errors = []
    for early in (False, True):
        context = RunContext(config=None, state={"artifacts": {}, "warnings": []})
        stages = [NearDuplicates(DedupSettings(), context), FailOnMarker(StageSettings(), context)]
        with pytest.raises(ValueError) as raised:
            list(LocalEngine(workers=2, batch_size=3, early=early).execute(marked(), stages, finish=encode))
        errors.append(str(raised.value))
    assert errors[0] == errors[1] and failing in errors[0]
    assert early_pass_takes_everything == [len(corpus)]  # (the early pass met it first)


def _observed_and_decided(docs: list[Document]) -> NearDuplicates:
    stage = NearDuplicates(DedupSettings(), RunContext(config=None, state={"artifacts": {}, "warnings": []}))
    for summary in stage.summarise_many([d for d in docs if d.status == OK]):
        stage.observe(summary)
    stage.decide()
    return stage


def _fingerprint(doc: Document) -> str:
    return json.dumps([doc.to_json(), [e.to_json() for e in doc.edits], doc.status], ensure_ascii=False)


def test_dedup_leaves_alone_exactly_the_documents_its_apply_leaves_as_they_are():
    docs = _corpus()
    stage = _observed_and_decided(docs)
    assert stage.tells_left_alone() and not CorpusStage.tells_left_alone()
    alone = []
    for number, doc in enumerate(docs):
        applied = copy.deepcopy(doc)
        stage.apply(applied)
        assert stage.leaves_alone(number) == (_fingerprint(applied) == _fingerprint(doc)), doc.source
        alone.append(stage.leaves_alone(number))
    assert 0 < alone.count(False) < alone.count(True)


def test_documents_of_an_id_with_a_plan_are_never_left_alone():
    """Two documents with the same id (the same source twice): one is kept as it is, the other
    is its duplicate; `apply` takes their plans from one queue in input order, so the one kept
    must be applied where the other is, not left to a pass made before the decision."""
    article = articles(1, seed=11)[0]
    docs = [Document.new("same.txt", article), Document.new("other.txt", articles(2, seed=12)[1])]
    docs.append(Document.new("same.txt", article))
    assert docs[0].id == docs[2].id
    stage = _observed_and_decided(docs)
    assert [stage.leaves_alone(n) for n in range(3)] == [False, True, False]
    first, second = copy.deepcopy(docs[0]), copy.deepcopy(docs[2])
    stage.apply(first)
    stage.apply(second)
    assert sorted([first.status, second.status]) == sorted([OK, DUPLICATE])


def test_an_early_worker_killed_while_the_stage_decides_costs_nothing_but_its_work(tmp_path, monkeypatch):
    """Its documents go through the pass after the decision; the run ends as it would have."""
    waited, waited_index, _ = _run(tmp_path, "waited", workers=2, early=False)
    enter, decide = engine_module._EarlyPass.__enter__, NearDuplicates.decide
    passes: list[Any] = []
    killed: list[int] = []

    def entered(self: Any) -> Any:
        passes.append(self)
        return enter(self)

    def decide_after_a_kill(self: Any) -> None:
        if passes and passes[-1].pool is not None:
            worker = passes[-1].pool._pool[0]
            worker.kill()
            # (the pool's thread that keeps its workers polls the same process: whichever
            # reaps it first sets its exit code, and the other's wait may return before that)
            deadline = time.monotonic() + 30
            while worker.exitcode is None and time.monotonic() < deadline:
                time.sleep(0.01)
            killed.append(worker.exitcode)
        decide(self)

    monkeypatch.setattr(engine_module._EarlyPass, "__enter__", entered)
    monkeypatch.setattr(NearDuplicates, "decide", decide_after_a_kill)
    docs, index, _ = _run(tmp_path, "early", workers=2, early=True)
    assert killed == [-9]
    assert _written(docs) == _written(waited) and index == waited_index


def test_dedup_takes_an_exact_copy_of_an_earlier_document_for_a_probable_change():
    a, b = articles(2, seed=21)
    edited = a.replace("。", "！", 1)
    assert edited != a
    first = Document.new("a", a)
    # Two more copies of `a`: one `decide` takes after it (a larger id), one before it.
    later = next(d for n in range(100) if (d := Document.new(f"later{n}", a)).id > first.id)
    earlier = next(d for n in range(100) if (d := Document.new(f"earlier{n}", a)).id < first.id)
    docs = [first, Document.new("b", b), later, Document.new("a3", edited), earlier]
    stage = NearDuplicates(DedupSettings(), RunContext(config=None, state={"artifacts": {}, "warnings": []}))
    asked = []
    for n, summary in enumerate(stage.summarise_many(docs)):
        stage.observe(summary)
        asked.append(stage.probably_changes(n))  # (as the engine asks: of those observed so far)
    # Of exact copies, all but the one `decide` takes first (its id, then input order) are the
    # hint: as each is observed, of those observed so far; once all are, of all.
    assert asked == [False, False, True, False, False]
    assert [stage.probably_changes(n) for n in range(5)] == [True, False, True, False, False]
    stage.decide()
    assert not stage.leaves_alone(0) and not stage.leaves_alone(2)  # (the hint was right: duplicates)
    assert not any(stage.probably_changes(n) for n in range(5))  # (let go by the decision)


class SleepOnEach(DocumentStage):
    """Sleeps on each document as many seconds as its text says; counts the documents it
    processed in this process, and sets `halt` (a pool's halt, as a worker sees it) at the
    `halt_after`th."""

    name = "test_sleep"
    Settings = StageSettings
    processed: ClassVar[int] = 0
    halt_after: ClassVar[int] = 0
    halt: ClassVar[bytearray] = bytearray(1)

    def process(self, doc: Document) -> None:
        SleepOnEach.processed += 1
        if SleepOnEach.processed == self.halt_after:
            self.halt[0] = 1
        time.sleep(float(doc.text))


def _sleepy(seconds: float, count: int) -> list[bytes]:
    return [pickle.dumps(Document.new(f"d{n}", str(seconds))) for n in range(count)]


def _sleep_phase() -> engine_module.Phase:
    return engine_module.Phase(stages=[SleepOnEach(StageSettings(), RunContext(config=None))], finish=encode)


def test_a_halted_task_stops_at_its_next_document(monkeypatch):
    halt = bytearray(1)
    monkeypatch.setattr(engine_module, "_HALT", halt)  # (this process as a worker sees its pool)
    monkeypatch.setattr(engine_module, "_TASK", _sleep_phase().run)
    monkeypatch.setattr(SleepOnEach, "halt", halt)
    monkeypatch.setattr(SleepOnEach, "halt_after", 2)
    SleepOnEach.processed = 0
    with pytest.raises(engine_module.Halted):
        engine_module._run_task(_sleepy(0, 5))
    assert SleepOnEach.processed == 2
    with pytest.raises(engine_module.Halted):  # (a task that comes after: not started at all)
        engine_module._run_task(_sleepy(0, 5))
    assert SleepOnEach.processed == 2
    halt[0] = 0
    assert len(engine_module._run_task(_sleepy(0, 5))) == 5


def _made_once_all_taken(early: engine_module._EarlyPass) -> list[bool]:
    """`early.made()` once its feeder has taken every record and every batch sent is done."""
    assert early.thread is not None
    early.thread.join()
    for pending in early.sent:
        pending.wait(30)
    return early.made()


def _first_batch_done(early: engine_module._EarlyPass) -> None:
    """Wait for the feeder thread to send the first batch, then for it to be done (30 s each)."""
    deadline = time.monotonic() + 30
    while not early.sent and time.monotonic() < deadline:
        time.sleep(0.01)
    assert early.sent, "no batch sent in 30 s"
    early.sent[0].wait(30)
    assert early.sent[0].ready(), "the first batch not done in 30 s"


def _workers_of_each_pool(monkeypatch) -> list[list[Any]]:
    """The workers of every pool forked from now on, as each pool started them."""
    pools: list[list[Any]] = []

    class Recorded(engine_module._Pool):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            pools.append(list(self._pool))

    monkeypatch.setattr(engine_module, "_Pool", Recorded)
    return pools


def test_the_early_pass_ends_its_workers_without_killing_them_in_the_middle_of_a_task(tmp_path, monkeypatch):
    """Killed by a signal in the middle of a task, a worker may die holding the lock of the
    pipe results go back through, and CPython's pool, ending, then waits for that lock forever
    (bench/pool_teardown.py --way terminate). Told to stop, the workers end at their next
    document, on their own."""
    pools = _workers_of_each_pool(monkeypatch)
    with engine_module._EarlyPass(_sleep_phase(), 2, 4, tmp_path, 1 << 30) as early:
        early.fork()
        early.start(iter(_sleepy(0.1, 80)), bytearray(80))  # (8 s of work, 4 s on 2 workers)
        # The first batch done, the next ones handed out. Waited for rather than slept for:
        # the workers run at the lowest priority, and on a loaded machine (other test
        # processes) a fixed 0.6 s once ended before any batch was done.
        _first_batch_done(early)
        time.sleep(0.1)
        start = time.monotonic()
        made = early.made()
        took = time.monotonic() - start
        for worker in pools[0]:  # (they end as the last pass starts, not with the early pass)
            worker.join(30)  # (at their next document; later when other processes load the machine)
        assert [[worker.exitcode for worker in workers] for workers in pools] == [[0, 0]]  # no signal
    assert 0 < sum(made) < 32  # (batches were in the workers' hands; what was done counts)
    # Whole batches of 4 records, the first among them (done in order but for a worker held
    # up by the machine's other work).
    assert made[:4] == [True] * 4
    assert all(len(set(made[i : i + 4])) == 1 for i in range(0, len(made), 4))
    assert took < 1.5  # (not waited for, the batches handed out: about 2.6 s more)
    assert [[worker.exitcode for worker in workers] for workers in pools] == [[0, 0]]


def test_a_pass_left_in_the_middle_ends_its_workers_without_killing_them(monkeypatch):
    """The same for any pass: its results no longer wanted (the run failed elsewhere)."""
    pools = _workers_of_each_pool(monkeypatch)
    results = engine_module.parallel_map(_sleep_phase().run, _sleepy(0.2, 40), 2, 4)
    # (the first in this process, the second a worker's: 8 batches out, 3.2 s more on 2 workers)
    next(results), next(results)
    start = time.monotonic()
    results.close()
    took = time.monotonic() - start
    assert [[worker.exitcode for worker in workers] for workers in pools] == [[0, 0]]
    assert took < 1.5


def test_a_worker_still_in_one_document_after_it_was_told_to_stop_is_killed(monkeypatch):
    monkeypatch.setattr(engine_module._Pool, "HALT_SECONDS", 0.2)
    pools = _workers_of_each_pool(monkeypatch)
    results = engine_module.parallel_map(_sleep_phase().run, _sleepy(0, 2) + _sleepy(30, 4), 2, 1)
    next(results), next(results)  # (the first in this process, the second a worker's: the rest out)
    time.sleep(0.2)
    start = time.monotonic()
    results.close()
    took = time.monotonic() - start
    assert [[worker.exitcode for worker in workers] for workers in pools] == [[-signal.SIGKILL] * 2]
    assert took < 10


def test_the_early_pass_leaves_a_large_document_to_the_pass_after_the_decision(tmp_path, monkeypatch):
    """Told to stop, a worker ends the document it is in first: one of many megabytes is not
    started early (`_EarlyPass.LARGEST`), whether it travels pickled or as where it is stored."""
    monkeypatch.setattr(engine_module._EarlyPass, "LARGEST", 500)
    records = _sleepy(0, 6)
    records[2] = pickle.dumps(Document.new("big", "0" + " " * 1000))  # (sleeps 0 s)
    records[4] = engine_module.Stored(0, 501).record()  # (never read: not started)
    with engine_module._EarlyPass(_sleep_phase(), 1, 1, tmp_path, 1 << 30) as early:
        early.fork()
        early.start(iter(records), bytearray(6))
        made = _made_once_all_taken(early)
    assert made == [True, True, False, True, False, True]
    assert engine_module.pickled_size(records[4]) == 501
    assert engine_module.pickled_size(records[0]) == len(records[0])
    assert engine_module.pickled_size(Document.new("d", "x")) == 0


def test_a_closed_pool_whose_workers_ended_on_their_own_is_ended_not_abandoned(tmp_path, monkeypatch):
    """Workers that ended, status 0, after their pool was closed (`_EarlyPass.made`) were told
    to: not lost, so the pool goes through CPython's teardown (nothing left behind)."""
    abandoned: list[Any] = []
    monkeypatch.setattr(engine_module._Pool, "_abandon", lambda self: abandoned.append(self))
    pools = _workers_of_each_pool(monkeypatch)
    with engine_module._EarlyPass(_sleep_phase(), 2, 4, tmp_path, 1 << 30) as early:
        early.fork()
        early.start(iter(_sleepy(0, 8)), bytearray(8))
        early.made()
        for worker in pools[0]:
            worker.join(5)
        assert early.pool.lost_worker() is None
    assert abandoned == []
    assert [[worker.exitcode for worker in workers] for workers in pools] == [[0, 0]]


def test_the_early_pass_takes_documents_as_they_are_observed(tmp_path):
    """Offered as they are observed, the first records are run before the rest are known;
    once the offers weigh the budget they are refused, and the spill's records follow them."""
    records = _sleepy(0, 9)
    budget = sum(map(len, records[:4]))  # (the fourth offer reaches it)
    with engine_module._EarlyPass(_sleep_phase(), 1, 2, tmp_path, budget) as early:
        early.fork()
        early.start()
        assert [early.offer(record, n == 1) for n, record in enumerate(records[:6])] == [True] * 4 + [False] * 2
        _first_batch_done(early)  # made before the records that follow were given
        early.start(iter(records[4:]), bytearray(9))
        made = _made_once_all_taken(early)
    # The second was hinted a probable change: not run. The budget reached, nothing of the
    # spill's records was taken.
    assert early.taken == records[:4] and made == [True, False, True, True]


def test_records_after_the_offers_are_taken_from_the_spill_with_their_own_hints(tmp_path):
    """Offers end at the first record that is not bytes (the spill keeps it, and every later
    one); the records that follow are taken with the hints given for them, one each."""
    records: list[Any] = _sleepy(0, 6)
    records[2] = Document.new("kept", "0")  # (a document as it is: not offered)
    with engine_module._EarlyPass(_sleep_phase(), 1, 1, tmp_path, 1 << 30) as early:
        early.fork()
        early.start()
        assert [early.offer(record, False) for record in records[:4]] == [True, True, False, False]
        early.start(iter(records[2:]), bytearray([0, 1, 0, 0]))  # (the fourth record: skipped)
        made = _made_once_all_taken(early)
    assert early.taken == records and made == [True, True, True, False, True, True]


def test_offered_records_not_taken_yet_take_the_hints_given_once_all_are_observed(tmp_path):
    """A hint given as a document is observed knows only the documents before it; once all
    are observed, the records offered but not taken yet are skipped where the hints then given
    for them (`offered_skip`) say so, as well as where their own did."""
    records = _sleepy(0, 5)
    with engine_module._EarlyPass(_sleep_phase(), 1, 1, tmp_path, 1 << 30) as early:
        early.fork()
        early.slots = threading.Semaphore(0)  # (the feeder waits to send its first batch)
        early.start()
        assert [early.offer(record, n == 3) for n, record in enumerate(records)] == [True] * 5
        deadline = time.monotonic() + 30
        while not early.taken and time.monotonic() < deadline:  # (the first, taken: its batch waits)
            time.sleep(0.01)
        early.start(iter(()), bytearray(), bytearray([1, 1, 0, 0, 1]))
        for _ in records:
            early.slots.release()
        made = _made_once_all_taken(early)
    # The first was taken before the later hints: it ran. The second and the fifth: skipped
    # by the later hints; the fourth by its own.
    assert early.taken == records and made == [True, False, True, False, False]


def test_records_offered_but_not_taken_when_the_decision_ends_go_through_the_pass(tmp_path):
    """Stopped (`made`) before its thread took every offered record, the early pass lists
    them among the records taken, without a result: the pass after the decision runs them."""
    records = _sleepy(0, 6)
    with engine_module._EarlyPass(_sleep_phase(), 1, 2, tmp_path, 1 << 30) as early:
        early.fork()
        early.slots = threading.Semaphore(0)  # (the feeder waits to send its first batch)
        early.start()
        # Offered two at a time; the second hinted: the first batch to send is the first and
        # the third, and the feeder waits with the fourth in hand.
        assert all(early.offer(record, n == 1) for n, record in enumerate(records))
        early.start(iter(()), bytearray(6))
        made = early.made()
    assert early.taken == records and made == [False] * 6


def test_the_early_pass_runs_while_the_stage_still_observes(tmp_path, monkeypatch):
    """Documents the pass after dedup processes early are processed before dedup has observed
    every document, not only once it decides."""
    observe = NearDuplicates.observe
    seen: list[int] = []
    wait = [0.0]

    def observe_then_look(self: NearDuplicates, summary: Any) -> None:
        observe(self, summary)
        seen.append(0)
        if len(seen) == 12:  # (of 46) wait a while for the early pass's first documents
            deadline = time.monotonic() + wait[0]
            while not LogDocuments.path.exists() and time.monotonic() < deadline:
                time.sleep(0.01)
            seen[-1] = len(LogDocuments.path.read_text(encoding="utf-8").split()) if LogDocuments.path.exists() else 0

    monkeypatch.setattr(NearDuplicates, "observe", observe_then_look)
    waited, waited_index, _ = _run(tmp_path, "waited", workers=2, early=False)
    assert seen[11] == 0 and len(seen) > 12  # (no early pass: nothing processed while observing)
    seen.clear()
    wait[0] = 30
    docs, index, _ = _run(tmp_path, "early", workers=2, early=True)
    assert seen[11] > 0
    assert _written(docs) == _written(waited) and index == waited_index


def test_the_early_pass_is_given_every_documents_hint_once_all_are_observed(tmp_path, monkeypatch):
    """Once dedup has observed every document, the early pass gets each document's hint as dedup
    then gives it: for the records offered as they were observed (`offered_skip`), and for the
    rest. The corpus has exact copies whose first in `decide`'s order (by id) is observed after
    them: their hints, given as they were offered, could not name them."""
    observe, offer, start = NearDuplicates.observe, engine_module._EarlyPass.offer, engine_module._EarlyPass.start
    stages: list[NearDuplicates] = []
    offered: list[bool] = []
    given: list[tuple[int, bytes, bytes, list[bool]]] = []

    def observing(self: NearDuplicates, summary: Any) -> None:
        if not stages:
            stages.append(self)
        observe(self, summary)

    def offering(self: Any, record: Any, skip: bool) -> bool:
        taken = offer(self, record, skip)
        if taken:
            offered.append(skip)
        return taken

    def starting(self: Any, records: Any = None, skip: Any = None, offered_skip: Any = None) -> None:
        if records is not None:  # (every document observed, not yet decided: as dedup now hints)
            hints = [stages[0].probably_changes(n) for n in range(len(stages[0]._observed))]
            given.append((self.offered_records, bytes(offered_skip or b""), bytes(skip), hints))
        start(self, records, skip, offered_skip)

    monkeypatch.setattr(NearDuplicates, "observe", observing)
    monkeypatch.setattr(engine_module._EarlyPass, "offer", offering)
    monkeypatch.setattr(engine_module._EarlyPass, "start", starting)
    docs, _, _ = _run(tmp_path, "early", workers=2, early=True)
    [(count, later, rest, hints)] = given
    assert len(hints) == len(docs) and count == len(offered) > 0  # (every document observed, OK)
    assert later + rest == bytes(hints)
    assert any(late and not then for late, then in zip(later, offered, strict=True))
