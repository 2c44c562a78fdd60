"""Executing the stages: in order, streaming, with worker processes for per-document work.

The stage list is cut into segments: runs of consecutive `DocumentStage`s, which work on one
document at a time and so run in worker processes on batches of documents, and single
`CorpusStage`s, which see every document before changing any. A corpus stage streams its input
to a spill while it observes it (its per-document `summarise` runs in the workers), decides, then
reads the spill back and applies its decisions. A spill holds a bounded number of bytes in memory
and puts the rest in a file on disk (`Spill`): documents are never all held in memory, only the
stage's compact state (line hashes, signatures) grows with the corpus.

What keeps the driver (this process) from being the bottleneck of N workers:
- the input files that are slow to read (HTML pages: parsing, extraction) are read on the
  workers (`map_inputs`, a few files ahead of the first pass), and their documents come back
  pickled, to go on to the first pass's workers without being unpickled here;
- documents are pickled once, by the worker that finished with them, into the run's
  document file (`DocumentFile`); the driver's spill holds only where each one is, the next
  pass's worker reads it from there, and `observe` reads only the summary;
- the pools' pipes hold a batch (`_widen_pipes`), so what does cross them (documents on their
  way in, summaries and encoded lines on their way out) costs no round trip per 64 KiB;
- a task holds `run.batch_size` documents, or more of small ones (`BatchSize`): a task costs
  a round trip and every stage's per-batch calls, whatever its documents' size;
- the last pass encodes each document for the writer (`finish`) in the workers, so the driver
  only appends ready-made JSON lines;
- a corpus stage's `decide` may hand pure work over its state to the workers (`parallel`, a
  pool forked once the state exists and kept for the whole decision, so only method names,
  items and results travel, and the workers' caches last from one round to the next);
- the first document of each pass runs here before the pool forks, so the tables stages load
  lazily (dictionaries, rules, the bigram model) are loaded once and shared by the workers;
- two corpus stages in a row share a pass when the first can tell which documents it leaves
  alone (`CorpusStage.unchanged_by`): the pass computes both stages' summaries, and only the
  documents the first stage changes make a second round trip (`LocalEngine._fused`);
- the last pass, after a corpus stage that can tell, once decided, which documents it leaves
  alone (`CorpusStage.leaves_alone`), starts as the stage observes the documents, on the cores
  the observation and the decision leave idle, and keeps what it made of those documents
  (`_EarlyPass`).

Results come back in input order whatever the number of workers, so the output is byte-identical
for 1 or N workers.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import mmap
import multiprocessing
import multiprocessing.connection
import multiprocessing.pool
import os
import pickle
import queue
import signal
import struct
import tempfile
import threading
import time
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

from curate.document import OK, Document
from curate.stages.base import (
    Artifacts,
    CorpusStage,
    DocumentStage,
    Stage,
    fork_is_safe,
    leave_interrupts_to_the_driver,
    widen_pipe,
)


@dataclass
class Segment:
    stages: list[Stage]

    @property
    def parallel(self) -> bool:
        return all(isinstance(s, DocumentStage) for s in self.stages)


def segments(stages: list[Stage]) -> list[Segment]:
    """Consecutive document stages grouped together; every other stage on its own."""
    grouped: list[Segment] = []
    for stage in stages:
        if isinstance(stage, DocumentStage) and grouped and grouped[-1].parallel:
            grouped[-1].stages.append(stage)
        else:
            grouped.append(Segment([stage]))
    return grouped


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


# A worker's task, set in the worker as it starts (`_start_worker`): inherited through the
# fork, never pickled. Pools may overlap (the files being read while the first pass runs), each
# with its own task. And its pool's halt: a byte the pool's processes share, set when the pool
# ends (`_Pool.terminate`) or its work is no longer wanted (`_EarlyPass.made`).
_TASK: Callable[[Any], Any] | None = None
_HALT: mmap.mmap | None = None


def _start_worker(task: Callable[[Any], Any], nice: int = 0, halt: mmap.mmap | None = None) -> None:
    global _TASK, _HALT
    _TASK, _HALT = task, halt
    leave_interrupts_to_the_driver()
    if nice:
        os.nice(nice)


def _run_task(item: Any) -> Any:
    assert _TASK is not None
    if halted():
        raise Halted
    return _TASK(item)


class Halted(Exception):
    """A task stopped, or not started, because its pool was told to stop (`halted`)."""


def halted() -> bool:
    """Whether this process is a worker whose pool was told to stop: a task then stops before
    a stage's next batch of documents (one document for most stages: `Phase.run`). Never in
    the driver."""
    return _HALT is not None and _HALT[0] != 0


class _Pool(multiprocessing.pool.Pool):
    """A process pool whose thread that keeps the workers alive sleeps until there is
    something for it to do: a worker ended, the pool's state changed or its cache of pending
    tasks drained (its change notifier, which the pool writes to on each of those).

    CPython's pool (3.8 to 3.13) also wakes that thread on the results pipe. While a result
    waits there for the thread that reads it (a batch of documents or encoded lines is
    megabytes), the pipe stays readable, so the thread goes round and round: 8,500-11,000
    rounds in a run of the benchmark, about 0.2 s of this process's CPU spent polling
    (bench/pool_rounds.py runs both pools), taken from the thread reading the results and
    from the workers on a busy machine. Worker ends are still seen (their sentinels are
    waited on, as before); nothing else waits on that pipe.
    """

    HALT_SECONDS = 5.0  # how long `terminate` waits for workers told to stop to end

    def __init__(self, *args: Any, halt: mmap.mmap | None = None, **kwargs: Any) -> None:
        self.halt = halt  # the byte its workers read (`halted`), if they do
        super().__init__(*args, **kwargs)
        # The workers as started. Without `maxtasksperchild` none ends while the pool runs, so
        # one that has ended was killed, and the task it held will never come back.
        self._started = list(self._pool) if self._maxtasksperchild is None else []

    def _get_sentinels(self) -> list[Any]:
        """What the thread waits on besides the workers: the pool's own, but the results pipe."""
        results = getattr(getattr(self, "_outqueue", None), "_reader", None)
        sentinels = super()._get_sentinels()  # (not in the comprehension: compiled, it has no class cell)
        return [sentinel for sentinel in sentinels if sentinel is not results]

    def wind_down(self) -> None:
        """No task after those in hand, and those stop at their next batch (`halted`): the
        workers end on their own, soon, and `terminate` then finds them ended."""
        self._tell_workers_to_stop()
        self.close()

    def _tell_workers_to_stop(self) -> None:
        if self.halt is not None:
            self.halt[0] = 1

    def terminate(self) -> None:
        if self.lost_worker() is None and self._halted_workers_ended():
            super().terminate()
        else:
            self._abandon()

    def _halted_workers_ended(self) -> bool:
        """Whether every worker, told to stop, has ended on its own (at once if it was idle;
        else at its task's next batch, `halted`), within `HALT_SECONDS`. True without a
        halt: CPython's `terminate` then kills them as they are.

        Killed by a signal in the middle of a task, a worker may die holding the lock of the
        pipe results go back through (a worker holds it while it writes one), and CPython's
        pool, ending, writes to that pipe under that lock: it then waits forever (a test run
        hung so; `bench/pool_teardown.py --way terminate` hung it in two of five runs of 1,000
        early passes ended with tasks in hand). Ended on their own, the workers hold nothing."""
        if self.halt is None or self._state == multiprocessing.pool.TERMINATE:
            return True
        self._tell_workers_to_stop()
        handler = self._worker_handler
        handler._state = multiprocessing.pool.TERMINATE  # (no worker started for one that ends)
        self._change_notifier.put(None)
        handler.join()  # (ending, it tells the task handler to send each worker its sentinel)
        self._task_handler._state = multiprocessing.pool.TERMINATE  # (no task after the one it sends)
        deadline = time.monotonic() + self.HALT_SECONDS
        for worker in self._pool:
            worker.join(max(0.0, deadline - time.monotonic()))
        return all(worker.exitcode == 0 for worker in self._pool)

    def _abandon(self) -> None:
        """`terminate` after a worker was lost, or one did not stop. CPython's takes the locks
        the workers share, and a dead one may have died holding one (an idle worker holds the
        task pipe's while it waits), so it would wait forever. Instead: no replacement workers,
        every worker killed and reaped, and the pool's threads (daemons, blocked on pipes no
        one writes to any more) left to end with the process."""
        self._state = multiprocessing.pool.TERMINATE
        self._terminate.cancel()  # the same teardown, at exit, would wait the same way
        handler = self._worker_handler
        handler._state = multiprocessing.pool.TERMINATE
        self._result_handler._state = multiprocessing.pool.TERMINATE  # (ends at the next result)
        self._change_notifier.put(None)
        handler.join()
        for worker in self._pool:
            worker.kill()
            worker.join()

    def lost_worker(self) -> str | None:
        """How a worker that ended while the pool ran ended ("worker 123 was killed by
        SIGKILL"), or None. (CPython's pool starts another in its place and waits forever
        for the lost task's result.)

        A worker's exit code alone does not tell: the pool's thread that keeps its workers
        reaps an ended one, and a wait in another thread that comes in between its reaping and
        its recording the code finds neither the process nor a code (seen as a run's killed
        worker taken for alive, whose pool `terminate` then waited on forever). A worker's
        sentinel, which becomes readable when it ends, says whether it has.

        Once the pool is closed (`_EarlyPass.made`), its workers end on their own, status 0:
        not lost (taken for lost, the pool was abandoned instead of ended)."""
        for worker in self._started:
            code = worker.exitcode
            if code is None and not multiprocessing.connection.wait([worker.sentinel], 0):
                continue  # (running)
            code = _exit_code(worker, code)
            if code == 0 and self._state != multiprocessing.pool.RUN:
                continue  # (ended on its own, told to)
            return f"worker process {worker.pid} {_how_it_ended(code)}"
        return None


class WorkerLost(Exception):
    """A worker process ended in the middle of a run (killed, most often by the system's
    out-of-memory killer): what it held is lost, so the run stops rather than wait forever."""


def _exit_code(worker: Any, code: int | None) -> int | None:
    """The exit code of a worker that has ended, once whichever thread reaped it has recorded
    it (None if it is not known within a second: reaped by a wait of some other code)."""
    deadline = time.monotonic() + 1
    while code is None and time.monotonic() < deadline:
        time.sleep(0.001)
        code = worker.exitcode
    return code


def _how_it_ended(code: int | None) -> str:
    if code is None:
        return "ended"
    if code >= 0:
        return f"exited with status {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    return f"was killed by {name}" + (" (as the out-of-memory killer does)" if -code == signal.SIGKILL else "")


_WORKER_CHECK_SECONDS = 0.5  # how often a wait for results checks that the workers live


def _result(pool: Any, pending: Any) -> Any:
    """`pending.get()` (an `AsyncResult` of `pool`), raising `WorkerLost` instead of waiting
    forever once a worker of the pool has ended."""
    lost_worker = getattr(pool, "lost_worker", None)
    while lost_worker is not None and not pending.ready():
        pending.wait(_WORKER_CHECK_SECONDS)
        how = None if pending.ready() else lost_worker()
        if how is not None:
            raise WorkerLost(
                f"{how} in the middle of the run: the run stopped and wrote no version "
                "(fewer --workers or a smaller run.batch_size need less memory)"
            )
    return pending.get()


_POOLS_ALIVE = 0  # forked pools of this process not yet ended (they may overlap)


@contextlib.contextmanager
def _forked_pool(task: Callable[[Any], Any], workers: int, nice: int = 0, freeze: bool = True) -> Iterator[Any]:
    """A pool of `workers` processes forked now, running `task` (inherited, never pickled),
    at `nice` more than this process's niceness (lower priority).

    `freeze=False` for a pool that waits through most of a run (`_EarlyPass`): this process's
    objects are then not kept out of its own collector all that time (kept out, a run of short
    documents took 3-5% longer); a collection in one of its workers copies the pages it
    touches into that worker, at the lowest priority, for the length of a decision."""
    global _POOLS_ALIVE
    # Objects that exist now are moved out of the collector's reach while the pool lives: a
    # collection in a worker would otherwise write to every one of them, copying each page the
    # fork shares (Python's documented use of gc.freeze). They stay out until the last pool
    # alive ends, whichever ends first.
    if freeze:
        gc.freeze()
        _POOLS_ALIVE += 1
    try:
        with (
            mmap.mmap(-1, 1) as halt,  # (shared with the forks: `halted`)
            _Pool(
                workers,
                initializer=_start_worker,
                initargs=(task, nice, halt),
                context=multiprocessing.get_context("fork"),
                halt=halt,
            ) as pool,
        ):
            _widen_pipes(pool)
            yield pool
    finally:
        if freeze:
            _POOLS_ALIVE -= 1
            if not _POOLS_ALIVE:
                gc.unfreeze()


def _widen_pipes(pool: Any) -> None:
    """Let a pool's task and result pipes hold a whole batch (`widen_pipe`)."""
    try:
        readers = [pool._inqueue._reader, pool._outqueue._reader]
    except AttributeError:  # another implementation of the pool: its pipes stay as they are
        return
    for reader in readers:
        widen_pipe(reader)


def _batches(docs: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for doc in docs:
        batch.append(doc)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class BatchSize:
    """Documents per worker task: `documents`, or more when documents are small.

    A task costs the same round trip and the same per-batch numpy calls of every stage
    whatever its documents' size: 64 one-sentence documents are 4,000 characters, and the
    workers then spend more on batches than on text (`bench/bench_shapes.py --shape short`).
    So a batch of the first pass, whose items are documents (or documents pickled), also waits
    for `BATCH_TEXT` characters (bytes, pickled), up to `MOST` times `documents`; its mean
    document sets the count for the passes after it, whose items only say where a document
    is. A pass tells which it is at its first item: a later pass gets one only once the first
    has ended (a corpus stage observes every document before it yields any). Batches never
    change a result, only how many documents travel together.
    """

    BATCH_TEXT = 32 * 1024  # (64 of the benchmark's news articles hold more)
    MOST = 8

    def __init__(self, documents: int) -> None:
        self.documents = max(1, documents)
        self.learned: int | None = None  # documents per batch, from the first pass

    def batches(self, items: Iterable[Any]) -> Iterator[list[Any]]:
        stream = iter(items)
        first = next(stream, _NOTHING)
        if first is _NOTHING:
            return
        stream = itertools.chain((first,), stream)
        if self.learned is not None:  # a later pass (see above: known at its first item)
            yield from _batches(stream, self.learned)
            return
        most = self.documents * self.MOST
        seen = total = weight = 0
        batch: list[Any] = []
        for item in stream:
            batch.append(item)
            weight += _text_size(item)
            if len(batch) >= most or (len(batch) >= self.documents and weight >= self.BATCH_TEXT):
                seen, total = seen + len(batch), total + weight
                yield batch
                batch, weight = [], 0
        if batch:
            seen, total = seen + len(batch), total + weight
            yield batch
        wanted = -(-self.BATCH_TEXT * seen // max(total, 1))
        self.learned = min(max(wanted, self.documents), most)


_NOTHING = object()  # (an empty stream's first item)


def _text_size(item: Any) -> int:
    """What a document of the first pass weighs: its text's length, or its pickle's."""
    if isinstance(item, Document):
        return len(item.text)
    return len(item) if isinstance(item, bytes) else 0


def _each(function: Callable[[Any], Any], batch: list[Any]) -> list[Any]:
    return [function(item) for item in batch]


def _each_or_none(function: Callable[[Any], Any | None], batch: list[Any]) -> list[Any] | None:
    """[function(item) for item in batch], or None if it gave None for any item."""
    results = []
    for item in batch:
        result = function(item)
        if result is None:
            return None
        results.append(result)
    return results


class _Ready(NamedTuple):
    """Results made in this process, queued among the workers' pending ones."""

    value: list[Any]

    def ready(self) -> bool:
        return True

    def get(self) -> list[Any]:
        return self.value


# Batches handed out and not yet taken back, per worker (`parallel_map`: `IN_FLIGHT` x workers
# in all, in the queue the workers share). The driver's threads that take the workers' results
# and hand out the next batches may wait up to a switch interval (5 ms by default) for the
# interpreter while its main thread runs Python code (reading inputs, observing, writing),
# which on the benchmark is about a batch's time: with 2, a worker could run out between them.
IN_FLIGHT = 4


def parallel_map(
    task: Callable[[list[Any]], list[Any]],
    docs: Iterable[Any],
    workers: int,
    batch_size: int | BatchSize,
    local: Callable[[list[Any]], list[Any] | None] | None = None,
) -> Iterator[Any]:
    """Apply `task` to batches of documents in worker processes; results in input order.
    `batch_size`: documents per batch, or a `BatchSize` that chooses.

    At most `IN_FLIGHT` × workers batches are in flight, and 4 times as many wait in all (done
    behind a slow one), so memory stays bounded however long the stream.
    `local(batch)`, when given, may answer for a batch that needs no work here (its results,
    or None to send the batch to `task`). In a process connected to Ray (the report of a Ray
    run) nothing is forked: the batches run here.
    """
    batches = batch_size.batches(docs) if isinstance(batch_size, BatchSize) else _batches(docs, batch_size)
    if local is not None:
        batches = (_Ready(ready) if (ready := local(batch)) is not None else batch for batch in batches)
    if workers <= 1 or not fork_is_safe():
        for batch in batches:
            yield from batch.get() if isinstance(batch, _Ready) else task(batch)
        return
    # The first document runs here, before the pool forks: by then every barrier upstream has
    # decided, and every table the stages load lazily (dictionaries, rules, the bigram model)
    # is loaded once, in this process, and shared copy-on-write by the workers it forks. One
    # document is enough to load them; the rest of its batch goes to the workers.
    first = next(batches, None)
    while isinstance(first, _Ready):  # nothing to do before the first batch with work
        yield from first.get()
        first = next(batches, None)
    if first is None:
        return
    first_results = task(first[:1])
    with _forked_pool(task, workers) as pool:
        pending: deque[Any] = deque()
        if len(first) > 1:
            pending.append(pool.apply_async(_run_task, (first[1:],)))
        yield from first_results
        del first_results
        working = len(pending)  # batches in the workers' hands
        for batch in batches:
            if isinstance(batch, _Ready):
                pending.append(batch)
            else:
                pending.append(pool.apply_async(_run_task, (batch,)))
                working += 1
            # Hand out what is done at the head; wait when the workers hold `IN_FLIGHT` batches
            # each (or, behind a slow one, many ready batches are waiting: memory stays bounded).
            while pending and (
                isinstance(pending[0], _Ready)
                or working >= IN_FLIGHT * workers
                or len(pending) >= 4 * IN_FLIGHT * workers
            ):
                head = pending.popleft()
                working -= not isinstance(head, _Ready)
                yield from _result(pool, head)
        while pending:
            yield from _result(pool, pending.popleft())


def fork_map(function: Callable[[Any], Any], items: list[Any], workers: int) -> list[Any]:
    """[function(item) for item in items] on `workers` forked processes, in order.

    The `parallel` service of the local engine: a corpus stage's `decide` hands it work over
    its own state (inherited by the fork, so only the items' indices and the results travel).
    """
    if workers <= 1 or len(items) <= 1:
        return [function(item) for item in items]
    with _forked_pool(lambda i: function(items[i]), min(workers, len(items))) as pool:
        return _result(pool, pool.map_async(_run_task, range(len(items)), chunksize=1))


class DecideWorkers:
    """The local engine's `parallel` service for one `decide`: worker processes forked at the
    first call and kept until the decision is made (`close`).

    `function` is a bound method of the stage's decision state (the dedup `_Engine`): the
    fork inherits that object, and later calls on methods of the same object reuse the pool,
    sending only the method's name and the items. So the driver forks once per decide instead
    of once per round, and what the workers cached in one round (comparison forms, shingle
    sets) serves the next. As with `RayEngine`, which ships the object once per decide, the
    workers see the object as it was at the first call: `parallel` work must be a pure
    function of state collected before the decision began. Any other function gets a pool
    forked for that call (`fork_map`).
    """

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._owner: Any = None
        self._pool: Any = None
        self._exit = contextlib.ExitStack()

    def __call__(self, function: Callable[[Any], Any], items: list[Any]) -> list[Any]:
        if self.workers <= 1 or len(items) <= 1:
            return [function(item) for item in items]
        owner = getattr(function, "__self__", None)
        if owner is None or (self._owner is not None and owner is not self._owner):
            return fork_map(function, items, self.workers)
        if self._pool is None:
            self._owner = owner
            self._pool = self._exit.enter_context(
                _forked_pool(lambda call: getattr(owner, call[0])(call[1]), self.workers)
            )
        name = function.__name__
        calls = [(name, item) for item in items]
        return _result(self._pool, self._pool.map_async(_run_task, calls, chunksize=1))

    def close(self) -> None:
        self._exit.close()
        self._owner = self._pool = None


# One document as it leaves a worker: (payload, ok, summary). `payload` is the document pickled
# (or, in the last pass, what the engine's `finish` made of it); `ok` its status is OK; `summary`
# what the next corpus stage's `summarise` made of it (None when not OK). A plain tuple: with more
# than one worker, each document's result is pickled on its way back to the driver after every
# pass (on the benchmark, after pass 1 and after the last), and a NamedTuple pickles through its
# Python `__getnewargs__` and unpickles through its Python `__new__` (by hand, a batch of 64 of
# pass 1's: 1.6 -> 0.2 us a result pickled, 0.6 -> 0.24 us unpickled; about 21 ms of CPU over the
# benchmark's 12,048 results).
Result = tuple[Any, bool, Any]


class SpillError(Exception):
    """Documents could not be kept between passes: `run.spill_dir` full, missing or read-only."""


def _spill_error(folder: Path | None, exc: OSError) -> SpillError:
    where = folder or tempfile.gettempdir()
    return SpillError(
        f"{where}: cannot keep documents between passes ({exc.strerror or exc}); "
        "run.spill_dir names where they go"
    )


class Spill:
    """Records written in order, then read back once, in order: the first ones held in memory,
    up to `budget` bytes in all, the rest in a temporary file in `folder`. A record is a
    document itself with one worker (weighed by its `Document.memory_size`, pickled only if it
    goes to the file), with more a reference to one (`Stored`), or other bytes.

    Why not always a file: moving a pickled document through the page cache costs the driver
    a write and a read of its bytes, while the workers wait at the barrier; held, a record is
    only a reference, and a record read from one spill and put into the next is not copied at
    all. With one worker, a document held as it is is neither pickled nor unpickled (on the
    benchmark's 1-worker run 5% less time: `bench/ab_pipeline.py --workers 1`), for memory that
    holds it unpickled (about twice its pickle). The budget keeps memory bounded however many
    documents a corpus has (setting `run.spill_memory_mb`). Records read are released, so a
    spill being read while the next fills holds about one budget between the two.
    """

    def __init__(self, folder: Path | None, prefix: str, budget: int) -> None:
        self.folder, self.prefix, self.budget = folder, prefix, budget
        self.held: deque[Any] = deque()
        self.held_bytes = 0
        self.file: Any = None
        self.in_file = 0  # records in the file

    def __enter__(self) -> Spill:
        return self

    def __exit__(self, *exc: object) -> None:
        self.held.clear()
        if self.file is not None:
            self.file.close()

    def put(self, record: Any) -> None:
        """Keep a document or bytes (anything else is kept pickled: `dumps`)."""
        if isinstance(record, Document):
            size = record.memory_size()
        else:
            record = dumps(record)
            size = len(record)
        if self.file is None and self.held_bytes + size <= self.budget:
            self.held.append(record)
            self.held_bytes += size
            return
        data = dumps(record)
        try:
            if self.file is None:  # from here on, in order, everything goes to the file
                self.file = tempfile.TemporaryFile(dir=self.folder, prefix=self.prefix)
            self.file.write(len(data).to_bytes(8, "little"))
            self.file.write(data)
        except OSError as exc:
            raise _spill_error(self.folder, exc) from None
        self.in_file += 1

    def __len__(self) -> int:
        return len(self.held) + self.in_file

    def records(self) -> Iterator[Any]:
        """Every record, in the order put, each once (held ones are released as they go): a
        document held comes back as it is, one from the file pickled (`loads` takes both)."""
        held = self.held
        while held:
            yield held.popleft()
        if self.file is not None:
            self.file.seek(0)
            for _ in range(self.in_file):
                yield self.file.read(int.from_bytes(self.file.read(8), "little"))


class Stored(NamedTuple):
    """Where a worker put a pickled document in the run's `DocumentFile`: what travels instead,
    as its `record`."""

    offset: int
    length: int

    def record(self) -> bytes:
        """The 17 bytes it travels and waits in (a spill's record), which `unpickled` reads
        back: a named tuple pickled cost the driver 6 us a document (its class looked up, its
        fields passed through `__reduce__`), 17,822 short documents 0.1 s a pass."""
        return _STORED.pack(b"S", self.offset, self.length)


# A `Stored` as bytes: b"S", offset, length. Never a pickle's: every pickle made here (protocol
# 2 and up) starts with b"\x80".
_STORED = struct.Struct("<cqq")


class DocumentFile:
    """Pickled documents between passes, written by the workers that made them: one temporary
    file, unlinked as soon as it is created (nothing is left behind, however the run ends),
    whose descriptor every worker inherits from the driver. A worker reserves room for a
    batch's documents (a counter shared by the forks, under its lock), writes them there with
    `pwrite`, and hands back only where each one is (`Stored`); the next pass's worker reads
    it with `pread`.

    Why: a document sent back to the driver through the pool's pipe and then out again to
    the next pass's worker crosses two pipes and is copied in the driver four times (read,
    unpickled by the pool, spilled, pickled by the pool): on the benchmark 61 MB each way
    when this came (30 MB since documents pickle smaller), in the process the workers wait for. Written to the page cache and read back, it is
    copied twice, by the workers, in parallel. The driver's spill then holds references only.
    """

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        try:
            self.file = tempfile.TemporaryFile(dir=folder, prefix="curate-documents-")
        except OSError as exc:
            raise _spill_error(folder, exc) from None
        self.fd = self.file.fileno()
        self.size = multiprocessing.get_context("fork").Value("q", 0)  # bytes reserved so far

    def put(self, records: list[bytes]) -> list[Stored]:
        data = b"".join(records)
        with self.size.get_lock():
            offset = self.size.value
            self.size.value = offset + len(data)
        view = memoryview(data)
        written = 0
        try:
            while written < len(data):  # a regular file takes it all at once, short of a full disk
                written += os.pwrite(self.fd, view[written:], offset + written)
        except OSError as exc:
            raise _spill_error(self.folder, exc) from None
        stored = []
        for record in records:
            stored.append(Stored(offset, len(record)))
            offset += len(record)
        return stored

    def read(self, stored: Stored) -> bytes:
        return os.pread(self.fd, stored.length, stored.offset)

    def close(self) -> None:
        self.file.close()


def _stored(item: bytes) -> Stored | None:
    """The `Stored` whose record `item` is, or None (`item` is then a pickle)."""
    if len(item) == _STORED.size and item[:1] == b"S":
        return Stored(*_STORED.unpack(item)[1:])
    return None


def pickled_size(item: Any) -> int:
    """The bytes of a document as `dumps` made it (where a `Stored` record says), without
    reading it; 0 for a document as it is."""
    if not isinstance(item, bytes):
        return 0
    stored = _stored(item)
    return len(item) if stored is None else stored.length


def unpickled(item: Any) -> Any:
    """An item as `dumps` made it, back as an object (a `Stored` from its record)."""
    if not isinstance(item, bytes):
        return item
    stored = _stored(item)
    return pickle.loads(item) if stored is None else stored


def loads(item: Any, store: DocumentFile | None = None) -> Any:
    """A document (or payload) that may still be pickled, or be in `store` (`Stored`)."""
    item = unpickled(item)
    if isinstance(item, Stored):
        if store is None:
            raise RuntimeError("a stored document, and no document file to read it from")
        return pickle.loads(store.read(item))
    return item


def dumps(item: Any) -> bytes:
    """An item as bytes: as it is if it is bytes, a `Stored` as its record, else pickled."""
    if isinstance(item, bytes):
        return item
    if isinstance(item, Stored):
        return item.record()
    return pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)


def _stop_if_halted() -> None:
    if halted():
        raise Halted


def _until_halted(docs: list[Document]) -> Iterator[Document]:
    for doc in docs:
        _stop_if_halted()
        yield doc


@dataclass
class Phase:
    """The work of one pass of documents through the workers, in order: `apply` of a decided
    corpus stage, then per-document stages, then `summarise` of the next corpus stage, then
    `finish` (what the writer needs of a document) in the last pass.

    Documents travel between passes pickled (`pack`), through the files of `store` when
    given: the driver never unpickles a document it has no work for.
    """

    apply: CorpusStage | None = None
    stages: list[Stage] = field(default_factory=list)
    summarise: CorpusStage | None = None
    ahead: CorpusStage | None = None  # summarised too, speculatively: see `LocalEngine._fused`
    finish: Callable[[Document], Any] | None = None
    pack: bool = True
    store: DocumentFile | None = None  # where pickled documents go, if not back to the driver

    def __bool__(self) -> bool:
        return bool(self.apply or self.stages or self.summarise or self.finish)

    def packed(self, stage: CorpusStage, summary: Any) -> Any:
        """A summary of `stage` as it travels: as bytes when documents are
        (`CorpusStage.pack_summary`; `unpacked` reverses it)."""
        return stage.pack_summary(summary) if self.pack else summary

    def unpacked(self, stage: CorpusStage, summary: Any) -> Any:
        return stage.unpack_summary(summary) if self.pack else summary

    def run(self, batch: list[Any]) -> list[Result]:
        docs: list[Document] = [loads(item, self.store) for item in batch]
        if self.apply is not None:
            for doc in docs:
                if doc.status == OK:
                    self.apply.apply(doc)
        # Document stages with the usual `run` take the list whole (`run_list`), the others
        # (a stage with a `run` of its own) the stream.
        stop_if_halted = None if _HALT is None else _stop_if_halted
        done = docs
        for stage in self.stages:
            if isinstance(stage, DocumentStage) and stage.runs_lists():
                stage.run_list(done, stop_if_halted)
            else:
                done = list(stage.run(done if stop_if_halted is None else _until_halted(done)))
        summaries: Iterator[Any] = iter(())
        if self.summarise is not None:
            ok_docs = [doc for doc in done if doc.status == OK]
            summaries = iter(self.summarise.summarise_many(ok_docs))
            if self.ahead is not None:  # (summary, the next corpus stage's summary, packed)
                ahead = [self.packed(self.ahead, a) for a in self.ahead.summarise_many(ok_docs)]
                summaries = zip(summaries, ahead, strict=True)
        finish = self.finish
        if finish is not None:
            payloads = [finish(doc) for doc in done]
        elif not self.pack:
            payloads = done
        else:
            payloads = [dumps(doc) for doc in done]
            if self.store is not None:  # (where each went travels as its record)
                payloads = [stored.record() for stored in self.store.put(payloads)]
        results = []
        for doc, payload in zip(done, payloads, strict=True):
            ok = doc.status == OK
            summary = next(summaries) if ok and self.summarise is not None else None
            results.append((payload, ok, summary))
        return results


class LocalEngine:
    """All cores of one machine, streaming, bounded memory for per-document work.

    Documents make one round trip to the workers per phase: a corpus stage's `summarise` runs
    in the same task as the per-document stages before it, and its `apply` in the same task as
    those after it (the worker pool of that phase is forked after `decide`, so it inherits the
    decisions). The last phase also runs `finish` (the writer's encoding) in the workers.
    Stages switched off are left out before the phases are cut.
    """

    # Documents the first of two fused corpus stages changed that the driver redoes itself
    # before it hands the rest to a pool (`_fused`). On the benchmark the pass has 41 to redo,
    # 0.29 ms each here (12 ms), and took 0.19-0.22 s with a pool, 0.12-0.13 s without: a pool
    # costs about what redoing 256 documents here does (bench/pipeline_timeline.py, before and
    # after).
    REDO_HERE = 256

    def __init__(
        self,
        workers: int = 0,
        batch_size: int = 64,
        spill_dir: str | Path | None = None,
        fuse: bool = True,
        spill_memory_mb: float = 256,
        early: bool = True,
    ) -> None:
        self.workers = workers if workers > 0 else default_workers()
        self.batch_size = batch_size
        self._batch_size = BatchSize(batch_size)  # (learns the documents' size: see there)
        self.spill_dir = Path(spill_dir) if spill_dir else None
        self.spill_memory = int(spill_memory_mb * (1 << 20))  # per spill (`Spill`)
        self.fuse = fuse  # adjacent corpus stages in one pass where possible (`_fused`)
        self.early = early  # a pass started before a decision is made, where possible (`_EarlyPass`)
        self._store: DocumentFile | None = None  # set for the length of `execute`

    def execute(
        self, docs: Iterable[Document], stages: list[Stage], finish: Callable[[Document], Any] | None = None
    ) -> Iterator[Any]:
        """Documents after `stages`, in input order (or `finish(document)` of each, if given)."""
        self._batch_size = BatchSize(self.batch_size)  # (sized afresh for each run's documents)
        if self.workers <= 1:
            yield from self._execute(docs, stages, finish)
            return
        self._store = DocumentFile(self.spill_dir)
        try:
            yield from self._execute(docs, stages, finish)
        finally:
            self._store.close()
            self._store = None

    @property
    def takes_pickled_documents(self) -> bool:
        """Whether `execute` may be given documents already pickled (bytes): with workers,
        documents travel pickled anyway, so one pickled where it was made is never unpickled
        here."""
        return self.workers > 1

    def map_inputs(
        self,
        read: Callable[[Any], Any],
        items: Iterable[Any],
        here: Callable[[Any], Any | None] | None = None,
    ) -> Iterator[Any]:
        """`read(item)` for every item, in order, on the workers (at most `IN_FLIGHT` × workers
        items handed out at a time); `here(item)`, when given, may answer for an item quick to
        read (its result, or None to send it to the workers). Ingest is per-file work: reading HTML
        pages (parsing, extraction) here, the driver worked alone while the workers waited
        for their text (bench/bench_shapes.py)."""
        local = None if here is None else partial(_each_or_none, here)
        return parallel_map(partial(_each, read), items, self.workers, batch_size=1, local=local)

    def _execute(
        self, docs: Iterable[Document], stages: list[Stage], finish: Callable[[Document], Any] | None
    ) -> Iterator[Any]:
        stream: Iterable[Any] = docs
        phase = self._phase()
        enabled = [stage for stage in stages if getattr(stage.settings, "enabled", True)]
        done_early: Stage | None = None  # a corpus stage already run with the one before it
        for stage, ahead in zip(enabled, [*enabled[1:], None], strict=True):
            if stage is done_early:
                continue
            if isinstance(stage, DocumentStage):
                phase.stages.append(stage)
            elif isinstance(stage, CorpusStage):
                if self.fuse and isinstance(ahead, CorpusStage) and stage.tells_unchanged():
                    phase.summarise, phase.ahead = stage, ahead
                    stream = self._fused(stage, ahead, self._run(phase, stream))
                    stage = done_early = ahead
                else:
                    phase.summarise = stage
                    stream = self._barrier(stage, self._run(phase, stream))
                phase = self._phase(apply=stage)
            else:  # a stage with its own `run`: in this process, on the ordered stream
                stream = stage.run(self._documents(phase, stream))
                phase = self._phase()
        phase.finish = finish
        if not phase.apply and not phase.stages and finish is None:
            yield from (loads(item, self._store) for item in stream)
            return
        for result in self._run(phase, stream):
            yield result[0] if finish is not None else loads(result[0], self._store)

    def _phase(self, apply: CorpusStage | None = None) -> Phase:
        # With one worker nothing crosses a process boundary: documents stay objects.
        return Phase(apply=apply, pack=self.workers > 1, store=self._store)

    def _run(self, phase: Phase, docs: Iterable[Any]) -> Iterator[Result]:
        if isinstance(docs, _Barrier):  # (it may start the phase ahead of its decision)
            return docs.through(phase)
        return parallel_map(phase.run, docs, self.workers, self._batch_size)

    def _documents(self, phase: Phase, docs: Iterable[Any]) -> Iterable[Document]:
        if not phase:
            return (loads(item, self._store) for item in docs)
        return (loads(payload, self._store) for payload, _, _ in self._run(phase, docs))

    def _barrier(self, stage: CorpusStage, results: Iterable[Result]) -> _Barrier:
        """Observe every document (spilling it: `Spill`), decide, then stream the spill back
        for the next phase's workers (see `_Barrier`)."""
        return _Barrier(self, stage, results)

    def _spill(self, stage: CorpusStage) -> Spill:
        return Spill(self.spill_dir, f"curate-{stage.name}-", self.spill_memory)

    def _decide(self, stage: CorpusStage, processes: int | None = None) -> None:
        """`stage.decide()`, with `processes` workers (default: the run's) offered as its
        `parallel` service; with one, no service: the stage does that work itself."""
        context = stage.context
        processes = self.workers if processes is None else processes
        workers = DecideWorkers(processes) if processes > 1 else None
        if context is not None:
            context.parallel = workers
        try:
            stage.decide()
        finally:
            if context is not None:
                context.parallel = None
            if workers is not None:
                workers.close()
        # What the decision deferred for the writer (the near-duplicate index) is built from
        # here on, beside the next pass: its first document and fork leave a core free.
        artifacts = context.state.get("artifacts") if context is not None else None
        if isinstance(artifacts, Artifacts):
            artifacts.start()

    def _fused(self, stage: CorpusStage, ahead: CorpusStage, results: Iterable[Result]) -> _Barrier:
        """Two adjacent corpus stages for the price of one pass, where the first can tell which
        documents its `apply` leaves alone (`CorpusStage.unchanged_by`).

        The pass before summarised every document for both (`Phase.ahead`). Once `stage` has
        decided, a document it leaves alone already has its final summary for `ahead` and goes
        on as it is, never unpickled; only the documents `stage` changes make a round trip to
        the workers (`stage.apply`, then `ahead`'s summary again). Then `ahead` observes every
        document in input order and decides, as in `_barrier`: the same decisions and
        documents as with two passes, one pass over the documents fewer (on the benchmark,
        repeated lines change 32 documents of 6,024). The first `REDO_HERE` documents to redo
        are redone here, not in a pool: a pass with few forks none.
        """
        return self._barrier(ahead, self._fused_results(stage, ahead, results))

    def _fused_results(
        self, stage: CorpusStage, ahead: CorpusStage, results: Iterable[Result]
    ) -> Iterator[Result]:
        """The documents of `_fused` with `ahead`'s summaries, in order, once `stage` decided."""
        phase = self._phase(apply=stage)
        phase.summarise = ahead
        with self._spill(stage) as spill:
            for payload, ok, summaries in results:
                summary, early = summaries if ok else (None, None)
                if ok:
                    stage.observe(summary)
                # The document as it is, what goes with it, then `ahead`'s summary as bytes
                # (as the worker packed it, when documents travel so): neither the document's
                # bytes nor the summary's are copied into a second pickle.
                spill.put(payload)
                spill.put(pickle.dumps((ok, summary), pickle.HIGHEST_PROTOCOL))
                spill.put(b"" if not ok else early if phase.pack else ahead.pack_summary(early))
            self._decide(stage)

            def records() -> Iterator[tuple[Any, bool, bool, Any]]:
                """(document, ok, changed by `stage`, `ahead`'s early summary), in order."""
                spilled = spill.records()  # three records per document: zip groups them
                for payload, extra, early in zip(spilled, spilled, spilled, strict=True):
                    ok, summary = pickle.loads(extra)
                    changed = ok and not stage.unchanged_by(summary)
                    if not ok:
                        early = None
                    elif not phase.pack:
                        early = ahead.unpack_summary(early)
                    yield payload, ok, changed, early

            budget = self.REDO_HERE  # documents the driver may still redo itself

            def here(batch: list[tuple[Any, bool, bool, Any]]) -> list[Result] | None:
                """A batch with no document to redo, or one the driver's budget still covers:
                answered here (a pass with few documents to redo forks no pool)."""
                nonlocal budget
                changed = sum(changed for _, _, changed, _ in batch)
                if changed > budget:
                    return None
                budget -= changed
                return redo(batch)

            def redo(batch: list[tuple[Any, bool, bool, Any]]) -> list[Result]:
                again = [payload for payload, _, changed, _ in batch if changed]
                done = iter(phase.run(again) if again else ())
                results = []
                for payload, ok, changed, early in batch:
                    if changed:
                        redone, redone_ok, summary = next(done)
                        results.append((redone, redone_ok, phase.packed(ahead, summary) if redone_ok else None))
                    else:
                        results.append((payload, ok, early))
                return results

            final = parallel_map(redo, records(), self.workers, self._batch_size, local=here)
            for payload, ok, summary in final:
                yield payload, ok, phase.unpacked(ahead, summary) if ok else None


class _Barrier:
    """The documents after a corpus stage (`LocalEngine._barrier`). Iterated: every document
    observed (and spilled: `Spill`), the stage's decision, then the spill's records in order,
    for the next phase's workers. `through(phase)`: that next phase's results, with the phase
    started ahead of the decision (`_EarlyPass`) when it is the last pass and the stage can tell
    which documents it leaves alone (`CorpusStage.leaves_alone`); the same results in the same
    order either way."""

    def __init__(self, engine: LocalEngine, stage: CorpusStage, results: Iterable[Result]) -> None:
        self.engine, self.stage, self.results = engine, stage, results

    def __iter__(self) -> Iterator[Any]:
        with self.engine._spill(self.stage) as spill:
            self._observe(spill)
            self.engine._decide(self.stage)
            yield from spill.records()

    def _observe(self, spill: Spill, early: _EarlyPass | None = None) -> bytearray:
        """Observe and spill every document; whether each was observed (status OK). With an
        `early` pass, the documents it takes as they are observed (`_EarlyPass.offer`) are not
        spilled: the spill holds the others, which follow them."""
        stage, observed, number = self.stage, bytearray(), 0
        for payload, ok, summary in self.results:
            if ok:
                stage.observe(summary)
            taken = (  # (the hint is asked for only while the early pass takes offers)
                early is not None
                and early.offering
                and early.offer(payload, ok and stage.probably_changes(number))
            )
            if not taken:
                spill.put(payload)
            number += ok
            observed.append(ok)
        return observed

    def through(self, phase: Phase) -> Iterator[Result]:
        engine = self.engine
        # Only into the last pass: its results travel back to the driver, so the early pass's
        # workers write nothing the other passes read (a worker of it lost costs nothing but
        # its work: `_EarlyPass`).
        last = phase.finish is not None and phase.summarise is None
        if engine.early and last and engine.workers > 1 and self.stage.tells_left_alone() and fork_is_safe():
            return self._early(phase)
        return parallel_map(phase.run, iter(self), engine.workers, engine._batch_size)

    def _early(self, phase: Phase) -> Iterator[Result]:
        engine, stage = self.engine, self.stage
        batch = engine._batch_size.learned or engine._batch_size.documents
        workers = max(1, engine.workers - 1)  # (the decision keeps a core of its own)
        early = _EarlyPass(replace(phase, apply=None), workers, batch, engine.spill_dir, engine.spill_memory)
        with engine._spill(stage) as spill, early:
            early.fork()  # (as the run's documents start to flow: see there)
            early.start()  # (documents are offered to it as they are observed)
            observed = self._observe(spill, early)  # (a byte a document)
            records = spill.records()  # (those not taken as they were observed)
            # The hints of every document, now that all are observed: those of the documents
            # offered as they were observed, not taken yet, know more than the offers' own (on
            # the benchmark, 865 rather than 435 of the 1,123 documents dedup changes).
            skip = self._probably_changed(observed)
            offered = early.offered_records
            early.start(records, skip[offered:], skip[:offered])
            # The decision's `parallel` work gets as many processes as the early pass: with 2
            # workers none, it is done here, on the core the decision keeps. With 2 of them
            # (the benchmark's near-duplicate verifications) they took the other core from the
            # early pass and worked with cold caches: 0.41 CPU-s for what takes this process
            # about 0.25 (`bench/ab_pipeline.py`: 3% less wall and CPU without them). Forked
            # only once the early pass had nothing left to do, they still cost more than they
            # gave (`bench/bench_shapes.py --shape copies`, where it runs out first: 2.6% more).
            engine._decide(stage, workers)
            made = early.made()
            # A result made early stands for a document the stage leaves alone (or never
            # observed: `apply` is for documents of status OK); the rest go through the phase.
            kept, number = [], 0
            for has_result, ok in zip(made, observed, strict=False):
                kept.append(has_result and (not ok or stage.leaves_alone(number)))
                number += ok
            del observed, made
            again = (record for record, keep in zip(early.taken, kept, strict=True) if not keep)
            rest = parallel_map(
                phase.run,
                itertools.chain(again, records),
                engine.workers,
                engine._batch_size,
            )
            results = early.results(kept)
            for keep in kept:
                result = next(results)
                yield result if keep else next(rest)
            del kept
            yield from rest

    def _probably_changed(self, observed: bytearray) -> bytearray:
        """Per document, whether the stage will most likely change it
        (`CorpusStage.probably_changes`, asked once every document is observed): not worth
        running early."""
        stage, number = self.stage, 0
        skip = bytearray(len(observed))
        for i, ok in enumerate(observed):
            if ok:
                skip[i] = stage.probably_changes(number)
                number += 1
        return skip


def _stored_run(task: Callable[[list[Any]], list[Any]], store: DocumentFile, batch: list[Any]) -> bytes:
    """`task(batch)`, its results pickled into `store`: what travels back is where they are."""
    return store.put([pickle.dumps(task(batch), pickle.HIGHEST_PROTOCOL)])[0].record()


class _EarlyPass:
    """The pass after a corpus stage, run before its decision is made (`_Barrier.through`).

    A decision is serial work in the driver for the most part (dedup's, on the benchmark: about
    0.5 s with a core idle), and the pass after it waited for it whole. Here, from the moment
    the stage observes the first documents (`offer`) until it has decided, workers (one fewer
    than the run's: the decision keeps a core) run that pass without the stage's `apply`, on
    the documents in order. Once decided, what they made of a document the stage leaves alone
    (`CorpusStage.leaves_alone`) is what the pass would make of it (its `apply` would leave it
    as it is): that result stands, and only the other documents go through the pass. A batch
    not done by then is not waited for: its documents go through the pass too.

    What keeps it from slowing the decision down: the workers run at the lowest priority, so
    the decision's own (its `parallel` work, in as many processes as this pass has: none with
    2 workers, the driver does it) come first, and they put their results in a
    document file of their own (`_stored_run`), so the driver, while it decides, only hands out
    and takes back where documents are, and reads back only the results that stand.

    What keeps it from costing memory: the workers fork before the run's documents flow (idle,
    they wait for the first documents observed), when the driver holds nothing large. A page a
    fork shares stays with the fork when the driver writes it: forked when the decision
    started, they held the pages the decision then wrote, 0.8 KB a document on a corpus of many
    copies (`bench/bench_shapes.py --shape copies`). So no document runs in the driver before they
    fork: they load the pass's tables themselves, on the core they use (the modules those
    need are imported with the stages).
    """

    NICE = 19  # the workers' niceness above the driver's: the lowest priority
    # A document larger than this (pickled) is left to the pass after the decision: told to
    # stop, a worker ends the batch it is in first (`halted`), and one of many megabytes,
    # still being run there when the last pass runs it too, would take its time and memory.
    LARGEST = 1 << 20
    # Batches handed out per worker: more than a pass's (`IN_FLIGHT`, for the same reason), as
    # the decision runs Python code in the driver's main thread without a pause. With 2, the
    # worker waited between batches (47-49 of the 49 sent were done when the decision ended;
    # with 8, 49-51 of 57). Told to stop (`made`), a worker ends the batch it is in at its next
    # document, and each batch still queued at its first (`halted`): the last pass runs them.
    IN_HAND = 8

    def __init__(self, phase: Phase, workers: int, batch: int, folder: Path | None, budget: int) -> None:
        self.phase, self.workers, self.folder = phase, workers, folder
        self.batch = batch  # documents a task
        self.budget = budget  # bytes of records taken at most (they wait here: `Spill`'s weight)
        self.records: Iterator[Any] = iter(())
        # Records offered as they are observed (`offer`), taken before those of `records`, with
        # their hints: a batch at a time (`offered_batch`, then the queue, then `in_hand`, the
        # rest of the batch the feeder is taking from); None ends them (`start` with the
        # records, or `_stop`).
        self.offered_batch: list[tuple[Any, bool]] = []
        self.offers: queue.SimpleQueue[list[tuple[Any, bool]] | None] = queue.SimpleQueue()
        self.in_hand: deque[tuple[Any, bool]] = deque()
        self.offering = False
        self.offered = 0  # bytes of records offered
        self.offered_records = 0
        self.taken: list[Any] = []  # the records taken (offered, then from `records`), in order
        self.batch_of = array("q")  # of each record taken, the batch it went in (-1: none)
        self.sent: list[Any] = []  # the pending results of each batch
        self.skip = bytearray()  # of each of `records`, whether not to run it (`_probably_changed`)
        # Of each record offered, whether not to run it, as told once every document is observed
        # (`start`): what the offer's own hint could not know yet.
        self.offered_skip: bytearray | None = None
        self.stopping = threading.Event()
        self.slots = threading.Semaphore(self.IN_HAND * workers)  # batches in the workers' hands
        self.error: BaseException | None = None
        self.pool: Any = None
        self.thread: threading.Thread | None = None
        self.done: list[Any] = []  # each batch's results (or where they are), or None
        self.store: DocumentFile | None = None  # where the workers put their results
        self._exit = contextlib.ExitStack()  # the file (last), the workers and their feeder
        self._workers = contextlib.ExitStack()  # the workers and their feeder

    def __enter__(self) -> _EarlyPass:
        return self

    def __exit__(self, *exc: object) -> None:
        self._exit.close()

    def fork(self) -> None:
        """Fork the workers, idle until `start` (see the class: before the documents flow)."""
        # A file of its own: a worker of this pass ended in the middle of a batch (holding the
        # file's lock, maybe) can only hold up this pass's other workers.
        self.store = DocumentFile(self.folder)
        self._exit.callback(self.store.close)
        task = partial(_stored_run, self.phase.run, self.store)
        self._exit.enter_context(self._workers)
        self.pool = self._workers.enter_context(_forked_pool(task, self.workers, self.NICE, freeze=False))
        self._workers.callback(self._stop)  # (before the pool ends)

    def start(
        self,
        records: Iterator[Any] | None = None,
        skip: bytearray | None = None,
        offered_skip: bytearray | None = None,
    ) -> None:
        """Hand the workers documents until the decision is made (`made`): first those
        `offer`ed, then those of `records` but those `skip` marks (a byte for each of them).
        Called without `records` before the documents are observed (they are offered as they
        are: `_Barrier._observe`), then with the records that follow once all are; or with
        them at once. `offered_skip` (a byte for each record offered) marks more of the offered
        ones not to run, those not taken yet: a hint given as a document is observed knows only
        the documents before it (of two exact copies, the one `decide` keeps may come later)."""
        if records is None:
            self.offering = True
        else:
            self.records, self.skip = records, skip if skip is not None else bytearray()
            self.offered_skip = offered_skip
            self.offering = False
            self._hand_over_offers()
            self.offers.put(None)
        if self.thread is None:
            self.thread = threading.Thread(target=self._feed, name="curate-early-pass", daemon=True)
            self.thread.start()

    def offer(self, record: Any, skip: bool) -> bool:
        """Take the next record now, as its document is observed (`skip`: its hint, from the
        documents observed so far): whether it was taken. The first core the decision leaves
        idle is idle from the end of the pass before it (its last batches, then the driver
        alone observing every document: about 0.05-0.1 s on the benchmark), not only from the
        decision on. No longer once the records offered weigh the budget: the spill keeps that
        record and every later one (`records`), so the records taken stay the first ones. Only
        bytes, as documents travel between the workers' passes (anything else, the spill keeps
        as it would: `Spill.put`). Handed to the feeder a batch at a time: one record at a
        time, its thread woke for each (6,024 on the benchmark), and the run took 2% more CPU
        (`bench/ab_pipeline.py`)."""
        if not self.offering or not isinstance(record, bytes):
            self.offering = False
            self._hand_over_offers()
            return False
        self.offered_batch.append((record, skip))
        self.offered += len(record)
        self.offered_records += 1
        self.offering = self.offered < self.budget
        if len(self.offered_batch) >= self.batch or not self.offering:
            self._hand_over_offers()
        return True

    def _hand_over_offers(self) -> None:
        if self.offered_batch:
            self.offers.put(self.offered_batch)
            self.offered_batch = []

    def _taking(self) -> Iterator[tuple[Any, bool]]:
        """The records to take, in order, with whether to skip each: the offered ones, then
        those of `records`."""
        number = 0  # (of the records offered)
        while (offered := self.offers.get()) is not None:
            self.in_hand.extend(offered)
            while self.in_hand:
                record, hint = self.in_hand.popleft()
                later = self.offered_skip  # (set once every document is observed: `start`)
                yield record, hint or (later is not None and bool(later[number]))
                number += 1
        for number, record in enumerate(self.records):
            yield record, bool(self.skip[number])

    def _feed(self) -> None:
        """In a thread of the driver: hand the workers batches until the decision is made."""
        try:
            weight, batch = 0, []
            for record, hint in self._taking():
                skip = hint or pickled_size(record) > self.LARGEST
                self.taken.append(record)
                weight += len(record) if isinstance(record, bytes) else 0
                self.batch_of.append(-1 if skip else len(self.sent))
                if not skip:
                    batch.append(record)
                if batch and (len(batch) >= self.batch or weight >= self.budget):
                    self.slots.acquire()
                    if self.stopping.is_set():
                        break
                    self._send(batch)
                    batch = []
                if self.stopping.is_set() or weight >= self.budget:
                    break
            if batch and not self.stopping.is_set():
                self._send(batch)
        except BaseException as exc:  # (the spill's file unreadable: raised in the driver)
            self.error = exc
        finally:  # (the records taken for a batch never sent, the last ones, have no result)
            sent = len(self.sent)
            for i in range(len(self.batch_of) - 1, -1, -1):
                if self.batch_of[i] >= sent:
                    self.batch_of[i] = -1
                elif self.batch_of[i] >= 0:
                    break

    def _send(self, batch: list[Any]) -> None:
        pending = self.pool.apply_async(_run_task, (batch,), callback=self._free, error_callback=self._free)
        self.sent.append(pending)

    def _free(self, _: Any) -> None:
        self.slots.release()

    def _stop(self) -> None:
        self.stopping.set()
        if self.thread is not None:
            self.slots.release()
            self.offers.put(None)  # (in case it waits for an offer)
            self.thread.join()
            self.thread = None
        # The records offered that it did not take are taken now, without a result, in order.
        self._hand_over_offers()
        while True:
            try:
                offered = self.offers.get_nowait()
            except queue.Empty:
                break
            if offered is not None:
                self.in_hand.extend(offered)
        for record, _ in self.in_hand:
            self.taken.append(record)
            self.batch_of.append(-1)
        self.in_hand.clear()

    def made(self) -> list[bool]:
        """Whether each record taken has a result, in order: the results of the batches done
        by now. The workers are told to stop (`halted`) and the pool closed: the batches still
        in their hands are not waited for (their documents go through the pass after the
        decision), and the workers end on their own as the last pass starts, never killed in the
        middle of a task (`_Pool.terminate`, when the early pass ends)."""
        self._stop()
        if self.error is not None:
            raise self.error
        if self.pool is not None:
            self.pool.wind_down()
        for pending in self.sent:
            try:
                self.done.append(pending.get() if pending.ready() else None)
            except Exception:  # (the pass after the decision meets it again, as it would have)
                self.done.append(None)
        done = self.done
        return [b >= 0 and done[b] is not None for b in self.batch_of]

    def results(self, wanted: list[bool]) -> Iterator[Result | None]:
        """The result of every record taken, in order, read back from the document file batch
        by batch; None where none was made, or where not `wanted` (a batch is read when the
        first result wanted of it is reached, and only then)."""
        at = [0] * len(self.sent)  # the next result of each batch
        loaded, results = -1, []
        for b, want in zip(self.batch_of, wanted, strict=True):
            if b < 0:
                yield None
                continue
            k, at[b] = at[b], at[b] + 1
            where = self.done[b]
            if where is None or not want:
                yield None
                continue
            if loaded != b:
                loaded, results = b, where if isinstance(where, list) else loads(where, self.store)
            yield results[k]
