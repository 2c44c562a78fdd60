"""Executing the stages on Ray Data: the same stages as `curate.engine.LocalEngine`, on a cluster.

Install with `pip install curate[ray]`; nothing else in curate imports this module (or Ray).

How the stage list runs (the same cut into segments as the local engine):

- Documents travel as pickled bytes in the one column (`doc`) of Arrow blocks of about
  `block_mb` MB (`cut_blocks`): Ray Data's cost per block falls on the driver (scheduling, a
  task, an object), so blocks are far bigger than the local engine's batches (with 64-document
  blocks the benchmark ran 1.4x longer). Pickle is exact for every field of a `Document`
  (edits, flags, the source map), so a document comes back from a worker exactly as the local
  engine would have left it.
- Consecutive per-document work runs as one Ray Data `map_batches` over those blocks: the stages
  are shipped once per run through the object store (`ray.put`) and each worker process
  unpickles them once (a small per-process cache), not once per batch.
- A `CorpusStage` is a barrier. Its `summarise` runs in the same batch map as the per-document
  stages before it and travels back beside each document (the document itself stays pickled:
  the driver never unpickles it); the driver calls `observe` in input order, then `decide`
  once. The documents wait in the object store meanwhile (Ray spills it to disk when it fills,
  as the local engine spills to a file). The decided stage is then shipped to the workers and
  its `apply` runs as the first step of the next batch map.
- `decide` gets the cluster's services (`RunContext.group_by`, `RunContext.parallel`). For
  near-duplicates that makes the decision a shuffle on LSH band keys (a Ray Data sort on the
  key: rows that share a band of their signatures meet in one block, grouped there with numpy)
  giving the candidate pairs, verification of candidate pairs as Ray tasks (the stage's
  decision state is put in the object store once and unpickled once per worker process), and
  the deterministic keep-smallest-id choice in the driver. Candidates are exactly those of
  datasketch's `MinHashLSH` (same band keys), so the output is the local engine's.
- The last pass also runs `finish` (the writer's encoding of a document) in the workers.
- Any other `Stage` (one that overrides `run` itself) runs in the driver on the ordered stream.

Ray Data keeps block order (`preserve_order`), so results come back in input order and
`documents.jsonl` and the version id are byte-identical to the local engine's.

Input comes from the driver's ingest iterator, so it is cut into windows of a few blocks per
CPU of the cluster: memory for per-document stages stays bounded however long the stream is.

Contract for corpus stages (as for the local engine with several workers): `apply` changes only
the document it is given; what the manifest or the next version needs (artifacts, statistics)
is produced by `decide`, which runs in the driver.
"""

from __future__ import annotations

import logging
import pickle
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from curate.document import Document
from curate.engine import Phase, default_workers, dumps, segments
from curate.runner import RunError
from curate.stages.base import CorpusStage, Stage

DOC = "doc"  # the document pickled (in the last pass: what `finish` made of it, pickled)
OK_ = "ok"  # its status is OK (the corpus stage observes it)
SUMMARY = "summary"
ERROR = "error"  # a block that failed: the stage's exception and its traceback, pickled
# Blocks per worker in the first window of a pass: enough to keep every worker busy while the
# driver collects the results of the window. Each next window is twice as large, up to
# MAX_WINDOW_GROWTH times the first: a Ray dataset costs about a second to plan and start, so
# large windows amortise that, while the bound keeps the blocks in flight (memory) limited
# (at most BLOCKS_PER_WORKER * MAX_WINDOW_GROWTH * block_mb per CPU: 64 MB by default).
BLOCKS_PER_WORKER = 4
MAX_WINDOW_GROWTH = 4


class RayEngineError(RunError):
    """Ray is missing or cannot be started/reached (one line, says what to do); a `RunError`, so
    `curate run` reports it as one line."""


# Worker side --------------------------------------------------------------------------------
# What the driver shipped (phases, a stage's decision state), already unpickled in this worker
# process, by object id: a run ships a few, each used by many tasks.
_SHIPPED: OrderedDict[str, Any] = OrderedDict()
_SHIPPED_KEPT = 4


def _from_store(ref: Any) -> Any:
    """`ray.get(ref)`, once per worker process."""
    import ray

    key = ref.hex()
    value = _SHIPPED.get(key)
    if value is None:
        value = _SHIPPED[key] = ray.get(ref)
        while len(_SHIPPED) > _SHIPPED_KEPT:
            _SHIPPED.popitem(last=False)
    return value


def _run_phase_on_block(block: Any, phase: Any) -> Any:
    """The batch map: unpickle a block of documents, run the phase, pickle them back.

    A stage's exception comes back as data (Ray Data would wrap it beyond recognition), so
    the driver raises the very exception the local engine would have raised.
    """
    import pyarrow as pa

    try:
        return pa.table(_run_phase(_from_store(phase), block.column(DOC).to_pylist()))
    except Exception as exc:  # re-raised in the driver
        import traceback

        where = traceback.format_exc()
        try:
            payload = pickle.dumps((exc, where), protocol=pickle.HIGHEST_PROTOCOL)
            pickle.loads(payload)
        except Exception:  # an exception that does not survive pickling
            payload = pickle.dumps((RuntimeError(f"{type(exc).__name__}: {exc}"), where))
        return pa.table({ERROR: pa.array([payload], pa.large_binary())})


def _run_phase(work: Phase, raw_docs: list[bytes]) -> dict[str, Any]:
    import pyarrow as pa

    results = work.run(raw_docs)
    columns = {DOC: pa.array([dumps(payload) for payload, _, _ in results], pa.large_binary())}
    if work.summarise is not None:
        columns[OK_] = pa.array([ok for _, ok, _ in results], pa.bool_())
        columns[SUMMARY] = pa.array(_pickled(summary for _, _, summary in results), pa.large_binary())
    return columns


def _pickled(values: Iterable[Any]) -> list[bytes]:
    return [_pickle(v) for v in values]


def _pickle(value: Any) -> bytes:
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def cut_blocks(items: Iterable[bytes], block_bytes: int, max_items: int = 0) -> Iterator[list[bytes]]:
    """`items` in order, in lists of about `block_bytes` bytes: a list ends with the item that
    reaches `block_bytes`, or with its `max_items`-th item (0: no count limit)."""
    block: list[bytes] = []
    size = 0
    for item in items:
        block.append(item)
        size += len(item)
        if size >= block_bytes or len(block) == max_items:
            yield block
            block, size = [], 0
    if block:
        yield block


# Driver side --------------------------------------------------------------------------------
class RayEngine:
    """The pipeline on Ray Data; output identical to `LocalEngine`'s.

    `address`: a Ray cluster to connect to (None: start a local Ray with `workers` CPUs, or use
    the one this process already started). A Ray started here is shut down when the run ends.
    A block of documents holds `block_mb` MB of them pickled, or `batch_size` documents if
    that comes first (0: no such limit).
    """

    def __init__(
        self,
        address: str | None = None,
        batch_size: int = 0,
        workers: int = 0,
        block_mb: float = 4.0,
    ) -> None:
        self.address = address or None
        self.batch_size = max(0, batch_size)
        self.block_bytes = max(1, int(block_mb * (1 << 20)))
        self.workers = workers if workers > 0 else default_workers()
        self._started = False

    # -- lifecycle
    def _connect(self) -> Any:
        try:
            import ray
            import ray.data  # noqa: F401  (Ray Data is the `data` extra of ray)
        except ImportError as exc:
            raise RayEngineError(
                f"engine 'ray' needs Ray Data ({exc}); install it with: pip install 'curate[ray]'"
            ) from None
        if ray.is_initialized():
            self._started = False
            return ray
        if self.address:
            _check_reachable(self.address)
        try:
            if self.address:
                ray.init(address=self.address, logging_level=logging.WARNING, log_to_driver=False)
            else:
                ray.init(
                    address="local",
                    num_cpus=self.workers,
                    include_dashboard=False,
                    logging_level=logging.WARNING,
                    log_to_driver=False,
                )
        except Exception as exc:  # ConnectionError, RuntimeError, ValueError from ray.init
            where = self.address or "a local Ray"
            raise RayEngineError(f"engine 'ray': cannot start or reach {where}: {exc}") from None
        self._started = True
        return ray

    def _disconnect(self, ray: Any) -> None:
        if self._started:
            ray.shutdown()
            self._started = False

    # -- execution
    takes_pickled_documents = False  # (`LocalEngine`'s): documents reach `execute` as objects

    def map_inputs(
        self, read: Callable[[Any], Any], items: Iterable[Any], here: Callable[[Any], Any] | None = None
    ) -> Iterator[Any]:
        """`read(item)` for every item, in order, as Ray tasks (at most two per CPU of the run
        ahead of the reader); `here(item)`, when given, may answer for an item quick to read,
        in this process (None: a task reads it). As `LocalEngine.map_inputs`: a driver parsing
        every HTML page alone would hold back the whole cluster. The tasks read the files at
        the paths the run was given: a cluster needs them on a shared filesystem, as it needs
        the corpus. Outside a run (no Ray connected) everything is read here."""
        import ray

        if not ray.is_initialized():
            yield from map(read, items)
            return
        target = (ray.put(read), None)  # (see `ray_map`)
        task = ray.remote(_call)
        pending: deque[tuple[bool, Any]] = deque()  # (read here, its result or its task)
        for item in items:
            result = here(item) if here is not None else None
            pending.append((True, result) if result is not None else (False, task.remote(target, item)))
            while pending and (pending[0][0] or len(pending) > 2 * self.workers):
                done_here, value = pending.popleft()
                yield value if done_here else ray.get(value)
        for done_here, value in pending:
            yield value if done_here else ray.get(value)

    def execute(
        self, docs: Iterable[Document], stages: list[Stage], finish: Callable[[Document], Any] | None = None
    ) -> Iterator[Any]:
        """Run `stages` over `docs`; documents (or `finish(document)` of each, made in the
        workers) come back in input order."""
        ray = self._connect()
        from ray.data import DataContext

        context = DataContext.get_current()
        saved_order = context.execution_options.preserve_order
        context.execution_options.preserve_order = True  # results in input order
        quiet = {"enable_progress_bars": False, "print_on_execution_start": False, "enable_auto_log_stats": False}
        saved = {name: getattr(context, name) for name in quiet if hasattr(context, name)}
        for name in saved:
            setattr(context, name, quiet[name])
        # Ray Data's per-dataset chatter (execution plans, "progress bars disabled") is noise in a
        # command's output; its errors still show.
        data_logger = logging.getLogger("ray.data")
        progress_logger = logging.getLogger("ray.data._internal.progress")
        saved_level = data_logger.level, progress_logger.level
        data_logger.setLevel(logging.WARNING)
        progress_logger.setLevel(logging.ERROR)
        try:
            yield from self._execute(ray, docs, stages, finish)
        finally:
            context.execution_options.preserve_order = saved_order
            for name, value in saved.items():
                setattr(context, name, value)
            data_logger.setLevel(saved_level[0])
            progress_logger.setLevel(saved_level[1])
            self._disconnect(ray)

    def _execute(
        self, ray: Any, docs: Iterable[Document], stages: list[Stage], finish: Callable[[Document], Any] | None
    ) -> Iterator[Any]:
        # The stream is either documents in the driver or refs of blocks in the object store;
        # it only goes to Ray when there is worker work to do on it.
        cpus = max(1, int(ray.cluster_resources().get("CPU", self.workers)))
        window = cpus * BLOCKS_PER_WORKER
        stream: Iterable[Document] | None = docs
        blocks: Iterator[Any] = iter(())
        phase = Phase()

        def run_phase() -> Iterator[Any]:
            source = self._blocks(ray, stream) if stream is not None else blocks
            return self._map(ray, source, phase, window)

        def documents() -> Iterable[Any]:
            if not phase:
                return stream if stream is not None else self._documents(ray.get(r) for r in blocks)
            return self._documents(run_phase())

        def finished() -> Iterable[Any]:
            if finish is None:
                return documents()
            phase.finish = finish
            return self._documents(run_phase())

        for segment in segments(stages):
            first = segment.stages[0]
            if segment.parallel:
                phase.stages.extend(segment.stages)
            elif isinstance(first, CorpusStage):
                if not first.settings.enabled:
                    continue
                phase.summarise = first
                held = self._observe(ray, first, run_phase())
                self._decide(ray, first)
                stream, blocks, phase = None, _drain(held), Phase(apply=first)
            elif getattr(first.settings, "enabled", True):
                # A stage with its own `run`: in the driver, on the ordered stream. (Switched
                # off, it would only pass documents through: no need to bring them back here.)
                stream, phase = first.run(documents()), Phase()
        yield from finished()

    def _blocks(self, ray: Any, docs: Iterable[Document]) -> Iterator[Any]:
        """Documents as object refs of Arrow blocks of pickled documents (`cut_blocks`)."""
        import pyarrow as pa

        for block in cut_blocks(map(_pickle, docs), self.block_bytes, self.batch_size):
            yield ray.put(pa.table({DOC: pa.array(block, pa.large_binary())}))

    def _map(self, ray: Any, blocks: Iterator[Any], phase: Phase, window: int) -> Iterator[Any]:
        """Blocks after `phase` (as Arrow tables), in input order.

        One Ray dataset per window of blocks (`window`, then doubling up to MAX_WINDOW_GROWTH
        times that): Ray Data streams within a window, and the next window is read from
        `blocks` only when this one is consumed.
        """
        phase_ref = ray.put(phase)
        size = window
        while True:
            refs = [ref for _, ref in zip(range(size), blocks, strict=False)]
            if not refs:
                return
            size = min(2 * size, MAX_WINDOW_GROWTH * window)
            dataset = ray.data.from_arrow_refs(refs).map_batches(
                _run_phase_on_block,
                batch_size=None,  # one task per block: a block is one batch of documents
                batch_format="pyarrow",
                fn_kwargs={"phase": phase_ref},
            )
            del refs
            for table in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
                if ERROR in table.column_names:
                    exc, where = pickle.loads(table.column(ERROR)[0].as_py())
                    exc.add_note(f"(raised in a Ray worker)\n{where}")
                    raise exc
                yield table

    def _observe(self, ray: Any, stage: CorpusStage, tables: Iterator[Any]) -> list[Any]:
        """Driver side of a corpus stage: observe every document in input order; keep the
        documents in the object store until the decision is made."""
        held: list[Any] = []
        for table in tables:
            summaries = table.column(SUMMARY).to_pylist()
            for ok, raw_summary in zip(table.column(OK_).to_pylist(), summaries, strict=True):
                if ok:
                    stage.observe(pickle.loads(raw_summary))
            held.append(ray.put(table.select([DOC])))
        return held

    def _decide(self, ray: Any, stage: CorpusStage) -> None:
        """The stage's `decide`, with the cluster's services: a shuffle on keys (`group_by`) and
        parallel work over the stage's state (`parallel`)."""
        context = stage.context
        if context is None:
            stage.decide()
            return
        context.group_by = lambda rows: group_by(ray, rows)
        shipped: dict[int, Any] = {}  # the objects whose methods `parallel` ran, by id
        context.parallel = lambda function, items: ray_map(ray, function, items, shipped)
        try:
            stage.decide()
        finally:
            context.group_by = context.parallel = None

    @staticmethod
    def _documents(tables: Iterator[Any]) -> Iterator[Any]:
        for table in tables:
            for raw in table.column(DOC).to_pylist():
                yield pickle.loads(raw)


# Services for a corpus stage's decide -------------------------------------------------------
KEY = "key"
VALUE = "value"


def group_by(ray: Any, rows: Iterable[tuple[bytes, int]]) -> list[list[int]]:
    """The values that share a key, for keys held by two or more rows: a Ray Data shuffle on
    the key (a distributed sort: equal keys end up next to each other), then a vectorised
    grouping of each sorted block. A key may straddle two blocks only as the last key of one
    and the first of the next: those edge groups are merged here."""
    import pyarrow as pa
    from ray.data.context import DataContext, ShuffleStrategy

    keys: list[bytes] = []
    values: list[int] = []
    for key, value in rows:
        keys.append(key)
        values.append(value)
    if not keys:
        return []
    table = pa.table({KEY: pa.array(keys, pa.binary()), VALUE: pa.array(values, pa.int64())})
    del keys, values
    context = DataContext.get_current()
    saved = context.shuffle_strategy
    # The sort shuffle runs as plain tasks; the hash shuffle starts aggregator actors first,
    # which costs seconds per call on a small cluster.
    context.shuffle_strategy = ShuffleStrategy.SORT_SHUFFLE_PULL_BASED
    try:
        dataset = ray.data.from_arrow(table).sort(KEY).map_batches(
            _groups_of_block, batch_size=None, batch_format="pyarrow"
        )
        return _merge_groups(dataset.iter_batches(batch_size=None, batch_format="pyarrow"))
    finally:
        context.shuffle_strategy = saved


MEMBERS = "members"
EDGE = "edge"  # the key of a group at either end of a block (may continue in the next block)


def _merge_groups(batches: Iterable[Any]) -> list[list[int]]:
    """The groups of `_groups_of_block`'s outputs, in block order, with each edge key's rows
    gathered across the blocks it straddles."""
    groups: list[list[int]] = []
    edges: dict[bytes, list[int]] = {}
    for batch in batches:
        members = batch.column(MEMBERS).to_pylist()
        for edge_key, group in zip(batch.column(EDGE).to_pylist(), members, strict=True):
            if edge_key is None:
                groups.append(group)
            else:
                edges.setdefault(edge_key, []).extend(group)
    groups.extend(group for group in edges.values() if len(group) >= 2)
    return groups


def _groups_of_block(block: Any) -> Any:
    """Rows of one sorted block -> one row per key held by two or more rows (its values), and
    the first and last key of the block with their values whatever their number."""
    import numpy as np
    import pyarrow as pa

    rows = block.num_rows
    if rows == 0:
        return pa.table({EDGE: pa.array([], pa.binary()), MEMBERS: pa.array([], pa.list_(pa.int64()))})
    keys = block.column(KEY)
    values = block.column(VALUE).to_numpy()
    # Where a new key starts: the first row, and every row whose key differs from the last.
    first = np.ones(rows, dtype=bool)
    if rows > 1:
        first[1:] = ~pa.compute.equal(keys.slice(1), keys.slice(0, rows - 1)).to_numpy(zero_copy_only=False)
    starts = np.flatnonzero(first)
    ends = np.append(starts[1:], rows)
    edge = np.zeros(len(starts), dtype=bool)
    edge[0] = edge[-1] = True
    keep = edge | (ends - starts >= 2)
    edge_keys = [keys[int(s)].as_py() if e else None for s, e in zip(starts[keep], edge[keep], strict=True)]
    members = [values[s:e].tolist() for s, e in zip(starts[keep], ends[keep], strict=True)]
    return pa.table({EDGE: pa.array(edge_keys, pa.binary()), MEMBERS: pa.array(members, pa.list_(pa.int64()))})


def ray_map(
    ray: Any, function: Callable[[Any], Any], items: list[Any], shipped: dict[int, Any] | None = None
) -> list[Any]:
    """[function(item) for item in items] as Ray tasks.

    `function` (with the state it closes over: a stage's whole decision state, tens of MB)
    goes to the object store once and is unpickled once per worker process, not once per task.
    A bound method ships its object: with a `shipped` cache (one per `decide`), later calls on
    methods of the same object ship nothing again.
    """
    if len(items) <= 1:
        return [function(item) for item in items]
    owner = getattr(function, "__self__", None)
    if owner is not None and shipped is not None:
        ref = shipped.get(id(owner))
        if ref is None:
            ref = shipped[id(owner)] = ray.put(owner)
        target: tuple[Any, str | None] = (ref, function.__name__)
    else:
        target = (ray.put(function), None)
    task = ray.remote(_call)
    # The ref travels inside a tuple so that Ray hands it over unresolved (see _call).
    return ray.get([task.remote(target, item) for item in items])


def _call(target: tuple[Any, str | None], item: Any) -> Any:
    ref, method = target
    shipped = _from_store(ref)
    return (getattr(shipped, method) if method else shipped)(item)


def _drain(refs: list[Any]) -> Iterator[Any]:
    """The items of `refs` in order, each dropped from the list as it is handed out (so the
    object store can free a block once its window is done)."""
    refs.reverse()
    while refs:
        yield refs.pop()


def _check_reachable(address: str) -> None:
    """Fail fast on a "host:port" (or ray://host:port) nobody listens on: ray.init would retry
    for minutes before giving up."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # "auto", a file path, ...: left to Ray
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as exc:
        raise RayEngineError(
            f"engine 'ray': cannot reach the Ray cluster at {address} ({exc.strerror or exc}); "
            "check run.ray_address, or leave it empty to start a local Ray"
        ) from None
