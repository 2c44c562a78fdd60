"""What a pipeline stage is.

A stage (compare datatrove's `PipelineStep`) takes an iterator of documents and yields
documents. Most stages work on one document at a time: they subclass `DocumentStage` and
implement `process(doc)`, changing the document only through `doc.apply(...)`, `doc.set_meta`
and `doc.add_flag`, so that every change lands in the edit log. Stages that need the whole
corpus (corpus-level repeated lines, near-duplicates across documents) subclass `Stage` and
implement `run` themselves.

A stage declares its settings as a dataclass (`Settings`); its section in the configuration is
`[<name>]`. Adding a stage is: write the module, add one line to `curate.pipeline.STAGES`.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import multiprocessing
import os
import pickle
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

try:
    import fcntl
except ImportError:  # not a POSIX system: pipes keep their size
    fcntl = None  # type: ignore[assignment]

from curate.config import setting
from curate.document import OK, Document


@dataclass
class StageSettings:
    """Settings every stage has."""

    enabled: bool = setting(True, "Run this stage.")


# Values to build: name -> (the function, and the file to write the value to or None).
_Pending = Mapping[str, tuple[Callable[[], bytes], Path | None]]


class Artifacts(MutableMapping[str, bytes]):
    """The files a run keeps with its version (`state["artifacts"]`: file name -> bytes).

    A value may also be deferred (`defer_artifact`): a function that builds the bytes from
    state that no longer changes. `start()` builds the values deferred so far in a forked
    process, overlapping what the run does next: a process rather than a thread, so that the
    build never holds the driver's GIL while the driver hands documents to the workers (a
    thread only where forking is unsafe: in a process connected to Ray). The local engine
    calls it as soon as a corpus stage has decided and its workers are gone (the decision's
    serial end and the start of the next pass leave a core free); the version writer calls it
    again when the last pass begins, for whatever was deferred since. Reading a deferred value
    waits for the builds, building it here if nothing started it. Either way the bytes are
    those the function returns: the same output, only earlier work. The last definition of a
    name wins (a value deferred again, assigned or deleted after a build started: that build's
    result, or its error, no longer counts).

    Once the version writer has said where the artifacts go (`write_into`), a builder writes
    each value there itself, under a temporary name, hashes it and sends back only the file and
    its SHA-256 (`_Saved`); `save` then moves the file into place. The benchmark's near-duplicate
    index is 32 MB: sent through a pipe, written and hashed by the driver, it was about 0.1 s of
    serial work after the last document, and 32 MB more in the driver. A value kept as a file
    is read from it when asked for.
    """

    def __init__(self, values: Mapping[str, bytes] | None = None) -> None:
        self._values: dict[str, bytes | _Saved] = {}
        self._deferred: dict[str, Callable[[], bytes]] = {}
        self._builders: list[tuple[_ForkedBuild | _ThreadBuild, dict[str, int]]] = []
        self._started: set[str] = set()
        self._stamps: dict[str, int] = {}  # name -> number of its last definition
        self._definitions = itertools.count(1)
        self._folder: Path | None = None
        self._parts = 0  # files builders were given to write, for unique names
        self.update(values or {})

    # ------------------------------------------------------------------ the mapping
    def __getitem__(self, name: str) -> bytes:
        if name in self._deferred:
            self._settle()
        return _read(self._values[name])

    def __setitem__(self, name: str, value: bytes) -> None:
        self._define(name)
        self._values[name] = value

    def __delitem__(self, name: str) -> None:
        if name not in self:
            raise KeyError(name)
        self._define(name)

    def __contains__(self, name: object) -> bool:
        return name in self._values or name in self._deferred

    def __iter__(self) -> Iterator[str]:
        return iter([*self._values, *self._deferred])

    def __len__(self) -> int:
        return len(self._values) + len(self._deferred)

    def __repr__(self) -> str:
        return f"Artifacts(values={sorted(self._values)}, deferred={sorted(self._deferred)})"

    def __reduce__(self) -> tuple[type, tuple[dict[str, bytes]]]:
        """A copy for another process (a stage shipped to a Ray worker takes its context with
        it) holds the values built so far, never the deferred ones: their functions close over
        the deciding stage's whole state (the near-duplicate decision: tens of MB), and only
        the writer, here, reads them."""
        return Artifacts, ({name: _read(value) for name, value in self._values.items()},)

    def _define(self, name: str) -> None:
        """A new definition of `name`: what it held goes (a builder's file too), and a build
        started for an earlier definition no longer counts."""
        _discard(self._values.pop(name, None))
        self._deferred.pop(name, None)
        self._started.discard(name)
        self._stamps[name] = next(self._definitions)

    # ------------------------------------------------------------------ deferred values
    def defer(self, name: str, build: Callable[[], bytes]) -> None:
        self._define(name)
        self._deferred[name] = build

    def write_into(self, folder: Path) -> None:
        """The folder the artifacts will be saved in (`save`): builders started from now on
        write their values there themselves, under a temporary name."""
        self._folder = folder

    def save(self, folder: Path) -> dict[str, str]:
        """Every value as the file `folder / name` (a builder's file moved there, any other
        value written or copied); {name: SHA-256 of the file}. The values are then read from
        there (see `moved`)."""
        self._settle()
        folder.mkdir(parents=True, exist_ok=True)
        digests = {}
        for name in sorted(self._values):
            value = self._values[name]
            target = folder / name
            if isinstance(value, _Saved):
                if _is_part(value):
                    shutil.move(value.path, target)  # (a rename: `write_into` was given this folder)
                elif value.path != target:
                    shutil.copyfile(value.path, target)
                saved = _Saved(target, value.sha256)
            else:
                saved = _write(target, value)
            self._values[name] = saved
            digests[name] = saved.sha256
        self._folder = folder
        return digests

    def moved(self, folder: Path) -> None:
        """The saved files are now in `folder` (the version writer renamed its folder)."""
        for name, value in self._values.items():
            if isinstance(value, _Saved) and value.path.parent == self._folder:
                self._values[name] = _Saved(folder / name, value.sha256)
        self._folder = folder

    def start(self) -> None:
        """Build the deferred values no builder has yet, in the background (no-op when none):
        in a forked process, or in a thread in a process connected to Ray, which must not
        fork."""
        pending = self._pending()
        if pending:
            builder = _ForkedBuild(pending) if fork_is_safe() else _ThreadBuild(pending)
            self._builders.append((builder, {name: self._stamps[name] for name in pending}))
            self._started.update(pending)

    def abandon(self) -> None:
        """The run stops without a version: builders still at work are stopped (a forked one
        ended, a thread waited for) before the caller removes the folder they write into, and
        their files go. The values built so far stay readable."""
        builders, self._builders = self._builders, []
        for builder, _ in builders:
            builder.stop()
        self._deferred, self._started = {}, set()
        for name in [name for name, value in self._values.items() if _is_part(value)]:
            _discard(self._values.pop(name))

    def _pending(self) -> _Pending:
        """The deferred values no builder has, each with the file to write it to (or None: sent
        back as bytes)."""
        pending: dict[str, tuple[Callable[[], bytes], Path | None]] = {}
        for name, build in self._deferred.items():
            if name not in self._started:
                part = None
                if self._folder is not None:
                    self._parts += 1
                    part = self._folder / f".{name}.{self._parts}.part"
                pending[name] = (build, part)
        return pending

    def _settle(self) -> None:
        """Wait for the values being built, and build here those nothing started. A build of
        an earlier definition of its names counts for nothing (its file goes, its error too)."""
        if not self._deferred:
            return
        builders, self._builders = self._builders, []
        outcomes = [(builder.result(), stamps) for builder, stamps in builders]
        pending = self._pending()
        if pending:
            outcomes.append((_build(pending), {name: self._stamps[name] for name in pending}))
        let_go(self._deferred)  # (what the functions closed over: the deciding stage's state)
        self._deferred, self._started = {}, set()
        error: BaseException | None = None
        for (status, built), stamps in outcomes:  # in the order started
            current = {name for name, stamp in stamps.items() if self._stamps.get(name) == stamp}
            if status == "error":
                error = error if error is not None or not current else built
                continue
            for name, data in built.items():
                if name in current:
                    _discard(self._values.get(name))
                    self._values[name] = data
                else:
                    _discard(data)
        if error is not None:
            raise error


# What a run lets go of that the process may leave to its end instead of freeing it object by
# object (`let_go`): a list once the `curate` command asks (`keep_until_exit`; it then ends its
# process at once, `curate.cli.entry`), None for any other caller, who frees it as usual.
_KEPT_UNTIL_EXIT: list[Any] | None = None


def keep_until_exit(keep: bool = True) -> None:
    """From now on, what is let go of (`let_go`) stays until the process ends, unfreed: for a
    process that then ends without freeing anything (`os._exit`). Freeing the near-duplicate
    decision's state object by object took 39 ms at the end of a run of the benchmark, both
    cores idle, and 0.87 s on the copies shape. `keep=False`: no longer (what was kept goes)."""
    global _KEPT_UNTIL_EXIT
    if not keep:
        _KEPT_UNTIL_EXIT = None
    elif _KEPT_UNTIL_EXIT is None:
        _KEPT_UNTIL_EXIT = []


def let_go(value: Any) -> None:
    """Drop a large structure: kept until the process ends if it ends at once
    (`keep_until_exit`), freed now (as the last reference goes) otherwise."""
    if _KEPT_UNTIL_EXIT is not None:
        _KEPT_UNTIL_EXIT.append(value)


def fork_is_safe() -> bool:
    """False in a process connected to Ray: its gRPC threads do not survive a fork (a driver
    that forked the builder was seen waiting forever for its last pass's tasks; Ray's own
    issue #59661 says the same of any fork in the driver after `ray.init`)."""
    ray = sys.modules.get("ray")
    return ray is None or not getattr(ray, "is_initialized", lambda: False)()


# How many bytes a pipe between curate's processes holds (F_SETPIPE_SZ; Linux's default is 64 KiB,
# and 1 MiB the most an unprivileged process may ask for: /proc/sys/fs/pipe-max-size).
PIPE_BYTES = 1 << 20


def widen_pipe(connection: Any) -> None:
    """Let the pipe under a multiprocessing connection hold `PIPE_BYTES`.

    What crosses curate's pipes comes in large messages: a batch of documents (about a
    megabyte), a deferred artifact (the benchmark's near-duplicate index: 32 MB). Through a
    64 KiB pipe the sender fills it and sleeps, the reader wakes, reads 64 KiB and sleeps:
    about 16 round trips per megabyte, each a context switch and a copy into a growing buffer,
    on the driver's side in the process the workers wait for. A pool of 2 returning 225 MB in
    1 MB results (bench/bench_pipes.py): the driver's CPU 0.53 s with 64 KiB pipes, 0.17 s with
    1 MiB ones. Where a pipe cannot be widened (not Linux, a lower limit) it stays as it is:
    only speed differs.
    """
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None) if fcntl is not None else None
    if set_size is None:
        return
    try:
        fcntl.fcntl(connection.fileno(), set_size, PIPE_BYTES)
    except OSError:
        pass


@dataclass(frozen=True)
class _Saved:
    """An artifact kept as a file (`Artifacts.write_into`, `Artifacts.save`)."""

    path: Path
    sha256: str


@dataclass(frozen=True)
class Streamed:
    """A deferred artifact that writes itself into a file (`write`) rather than returning its
    bytes: a builder given a file to write to (`Artifacts.write_into`) then never holds them
    all (the near-duplicate index grows with the corpus). Called, it returns the bytes."""

    write: Callable[[BinaryIO], None]

    def __call__(self) -> bytes:
        buffer = io.BytesIO()
        self.write(buffer)
        return buffer.getvalue()


def _write_streamed(path: Path, build: Streamed) -> _Saved:
    """`build` written to `path` and flushed to disk; its SHA-256 read back from the page cache
    (the writer seeks back to finish what it wrote: a digest taken as it goes would be wrong)."""
    try:
        with path.open("w+b") as file:
            build.write(file)
            file.flush()
            os.fsync(file.fileno())
            file.seek(0)
            digest = hashlib.file_digest(file, "sha256").hexdigest()
    except BaseException:
        path.unlink(missing_ok=True)  # (no part of a failed build is left behind)
        raise
    return _Saved(path, digest)


def _write(path: Path, data: bytes, durable: bool = False) -> _Saved:
    """`data` written to `path`, and with `durable` flushed to disk (`os.fsync`) too."""
    with path.open("wb") as file:
        file.write(data)
        if durable:
            file.flush()
            os.fsync(file.fileno())
    return _Saved(path, hashlib.sha256(data).hexdigest())


def _read(value: bytes | _Saved) -> bytes:
    return value.path.read_bytes() if isinstance(value, _Saved) else value


def _is_part(value: bytes | _Saved | None) -> bool:
    """A builder's file, not yet saved (`Artifacts.save` moves it into place)."""
    return isinstance(value, _Saved) and value.path.name.endswith(".part")


def _discard(value: bytes | _Saved | None) -> None:
    """Remove the file of a value no longer wanted (a builder's, not yet saved)."""
    if _is_part(value):
        assert isinstance(value, _Saved)
        value.path.unlink(missing_ok=True)


def _build(deferred: _Pending) -> tuple[str, Any]:
    """("ok", {name: bytes, or `_Saved` where it has a file to go to}) or ("error", the
    exception), to be re-raised where read."""
    built: dict[str, bytes | _Saved] = {}
    try:
        for name in sorted(deferred):
            build, part = deferred[name]
            if part is None:
                built[name] = build()
                continue
            part.parent.mkdir(parents=True, exist_ok=True)
            # Flushed to disk here, where it overlaps the last pass, and not by the version
            # writer's final fsync of every file (the benchmark's index: 35 MB, ~11 ms).
            if isinstance(build, Streamed):
                built[name] = _write_streamed(part, build)
            else:
                built[name] = _write(part, build(), durable=True)
        return "ok", built
    except BaseException as exc:
        for value in built.values():  # (no file of a failed build is left behind)
            _discard(value)
        return "error", exc


class _ForkedBuild:
    """The deferred values built in a forked process, sent back through a pipe."""

    def __init__(self, deferred: _Pending) -> None:
        context = multiprocessing.get_context("fork")
        self.receive, send = context.Pipe(duplex=False)
        widen_pipe(self.receive)
        self.process = context.Process(
            target=_build_and_send,
            args=(deferred, send, self.receive),
            name="curate-artifacts",
            daemon=True,
        )
        self.process.start()
        send.close()

    def result(self) -> tuple[str, Any]:
        try:
            return self.receive.recv()
        except EOFError:
            return "error", RuntimeError("the process building the artifacts ended early")
        finally:
            self.receive.close()
            self.process.join()

    def stop(self) -> None:
        """Ended where it is (its outcome no longer wanted)."""
        self.process.kill()
        self.process.join()
        self.receive.close()


class _ThreadBuild:
    """The deferred values built in a thread of this process (where forking is unsafe)."""

    def __init__(self, deferred: _Pending) -> None:
        self.outcome: list[tuple[str, Any]] = []
        self.thread = threading.Thread(
            target=lambda: self.outcome.append(_build(deferred)), name="curate-artifacts", daemon=True
        )
        self.thread.start()

    def result(self) -> tuple[str, Any]:
        self.thread.join()
        return self.outcome[0]

    def stop(self) -> None:
        """Waited for: a thread cannot be ended from outside."""
        self.thread.join()


def leave_interrupts_to_the_driver() -> None:
    """In a forked worker or builder: Ctrl-C reaches the whole process group, and the driver
    stops the run (it ends its workers); a worker's own KeyboardInterrupt only printed a traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _build_and_send(deferred: _Pending, send: Any, receive: Any) -> None:
    """In the forked builder: `_build`'s outcome down the pipe.

    The builder first closes its copy of the reading end: were the driver killed, the send
    then fails and the builder ends, instead of waiting forever on a pipe it holds itself
    (and holding, with the rest of what it inherited, the engine's pool pipes open).
    """
    leave_interrupts_to_the_driver()
    receive.close()
    try:
        outcome = _build(deferred)
        try:
            send.send(outcome)
        except Exception:  # an exception that does not pickle
            send.send(("error", RuntimeError(repr(outcome[1]))))
    finally:
        send.close()


def defer_artifact(state: dict[str, Any], name: str, build: Callable[[], bytes]) -> None:
    """`state["artifacts"][name] = build()`, built later in the background when the run's
    artifacts allow it (an `Artifacts`), now otherwise (a plain dict, e.g. in tests). A
    `Streamed` build writes itself into the version's file where there is one."""
    artifacts = state.setdefault("artifacts", Artifacts())
    if isinstance(artifacts, Artifacts):
        artifacts.defer(name, build)
    else:
        artifacts[name] = build()


@dataclass
class RunContext:
    """What a stage may need beyond its own settings: the whole config, the rules, the corpus.

    `rules` is the loaded rule set (see curate.rules) or None when no stage asked for it;
    `parent` is the folder of the version this run builds on (for incremental work), or None;
    `state` is a scratch dict stages may use to hand data to the writer (e.g. an index to save
    with the version: state["artifacts"][filename] = bytes, or `defer_artifact`).

    Services an engine may offer a corpus stage's `decide` (None: do the work in this process;
    a stage must give the same result either way):
    - `group_by(rows)`: rows of (key bytes, value int) -> the lists of values that share a key,
      for keys held by two or more rows (a shuffle on the key; order unspecified).
    - `parallel(function, items)`: [function(item) for item in items], run on the engine's
      workers (the function may use the stage's state: local workers are forked, Ray ships it
      once); results in order.
    """

    config: Any
    rules: Any = None
    parent: Any = None
    state: dict[str, Any] | None = None
    group_by: Callable[[Iterable[tuple[bytes, int]]], list[list[int]]] | None = None
    parallel: Callable[[Callable[[Any], Any], list[Any]], list[Any]] | None = None

    def __post_init__(self) -> None:
        if self.state is None:
            self.state = {"artifacts": Artifacts()}


class Stage:
    """A pipeline step: documents in, documents out."""

    name: ClassVar[str] = "stage"
    Settings: ClassVar[type] = StageSettings

    def __init__(self, settings: Any, context: RunContext) -> None:
        self.settings = settings
        self.context = context

    @classmethod
    def reads_parent(cls, settings: Any) -> bool:
        """Whether, with these settings, what the stage makes depends on the parent version
        (`RunContext.parent`): then the parent's id is part of the version id."""
        return False

    def run(self, docs: Iterable[Document]) -> Iterator[Document]:
        raise NotImplementedError


class DocumentStage(Stage):
    """A stage that works on each document on its own (safe to run in parallel).

    A stage whose work vectorises over several texts (numpy's cost per call, not per
    character, dominates one short document) sets `batch_documents` (and optionally
    `batch_characters`) and overrides `process_batch`; the result must be what `process`
    gives document by document.
    """

    batch_documents: ClassVar[int] = 1
    batch_characters: ClassVar[int] = 0  # 0: no bound on the characters of a batch

    def run(self, docs: Iterable[Document]) -> Iterator[Document]:
        if not self.settings.enabled:
            yield from docs
            return
        for batch in self._batches(docs):
            self.process_batch([d for d in batch if d.status == OK])
            yield from batch

    @classmethod
    def runs_lists(cls) -> bool:
        """Whether `run` is the usual one, so an engine may call `run_list` instead."""
        return cls.run is DocumentStage.run

    def run_list(self, docs: list[Document], before_each: Callable[[], None] | None = None) -> None:
        """`run` over a list, in place: the same batches, each given to `process_batch` (or
        a document at a time to `process`, when that is all `process_batch` does), with no
        generator step per document and stage (an engine's worker holds its task's
        documents as a list). `before_each` is called before each batch (a worker's halt)."""
        if not self.settings.enabled:
            return
        usual = getattr(self.process_batch, "__func__", None) is DocumentStage.process_batch
        if self.batch_documents <= 1 and usual:
            for doc in docs:
                if before_each is not None:
                    before_each()
                if doc.status == OK:
                    self.process(doc)
            return
        for batch in self._batches(docs):
            if before_each is not None:
                before_each()
            self.process_batch([d for d in batch if d.status == OK])

    def _batches(self, docs: Iterable[Document]) -> Iterator[list[Document]]:
        """The documents in batches of `batch_documents`, cut earlier where they reach
        `batch_characters` (a document's length read as it is taken: after the stages before
        this one, when they run a batch at a time too)."""
        size, most = max(1, self.batch_documents), self.batch_characters
        if not most and isinstance(docs, list):  # (slices: no step per document)
            for start in range(0, len(docs), size):
                yield docs[start : start + size]
            return
        batch: list[Document] = []
        characters = 0
        for doc in docs:
            batch.append(doc)
            characters += len(doc.text)
            if len(batch) >= size or 0 < most <= characters:
                yield batch
                batch, characters = [], 0
        if batch:
            yield batch

    def process_batch(self, docs: list[Document]) -> None:
        """`process` of each of `docs` (all of status OK)."""
        for doc in docs:
            self.process(doc)

    def process(self, doc: Document) -> None:
        raise NotImplementedError


class CorpusStage(Stage):
    """A stage that must see every document before it can change any (dolma's "tag, then
    materialize"): `observe` each document and keep only compact state (hashes, signatures),
    `decide` once, then `apply` the decisions document by document.

    Keeping the passes apart lets the engine stream documents through a spill file instead of
    holding the corpus in memory, and compute `summarise` (the expensive, per-document part) in
    worker processes. The default `run` does the three steps in memory.
    """

    def summarise(self, doc: Document) -> Any:
        """Per-document work that needs nothing else (runs in worker processes)."""
        return None

    def summarise_many(self, docs: list[Document]) -> list[Any]:
        """`[summarise(doc) for doc in docs]`: what engines call, on a batch of documents, so a
        stage whose per-document work is vectorised can do a batch in one go."""
        return [self.summarise(doc) for doc in docs]

    def observe(self, summary: Any) -> None:
        """Record what the decision needs of a document, from its `summary` (runs in the main
        process, in input order, for documents whose status is OK; the document itself stays
        with the engine, so a summary carries all the decision needs)."""
        raise NotImplementedError

    def pack_summary(self, summary: Any) -> bytes:
        """A summary as bytes, where an engine moves it as such (`unpack_summary` reverses it):
        pickled, unless the stage has a flatter form of its own."""
        return pickle.dumps(summary, protocol=pickle.HIGHEST_PROTOCOL)

    def unpack_summary(self, data: bytes) -> Any:
        return pickle.loads(data)

    def decide(self) -> None:
        """Called once after every document was observed."""

    def apply(self, doc: Document) -> None:
        """Change `doc` according to the decisions."""
        raise NotImplementedError

    def unchanged_by(self, summary: Any) -> bool:
        """After `decide`: True only when `apply` is sure to leave the document whose
        `summarise` gave `summary` exactly as it is.

        A stage that can tell lets the engine compute the next corpus stage's summaries in the
        same pass as its own, and send only the documents it changes through a second one
        (see `curate.engine`). The default, False, is never wrong.
        """
        return False

    @classmethod
    def tells_unchanged(cls) -> bool:
        return cls.unchanged_by is not CorpusStage.unchanged_by

    def leaves_alone(self, observed: int) -> bool:
        """After `decide`: True only when `apply` is sure to leave the `observed`-th document
        it observed (counted from 0, in input order) exactly as it is.

        A stage that can tell lets the engine run the pass after it ahead of its decision, on
        the cores the decision leaves idle, and keep what that pass made of the documents the
        stage leaves alone (see `curate.engine`). The default, False, is never wrong.
        """
        return False

    @classmethod
    def tells_left_alone(cls) -> bool:
        return cls.leaves_alone is not CorpusStage.leaves_alone

    def probably_changes(self, observed: int) -> bool:
        """Before `decide`: True when `apply` will most likely change the `observed`-th
        document observed (an exact copy of an earlier one, say): the engine does not run it
        ahead of the decision (see `leaves_alone`). Asked as soon as that document is
        observed (from what is known by then) or once every document is. A hint only: no
        output depends on it. The default, False, runs every document ahead."""
        return False

    def run(self, docs: Iterable[Document]) -> Iterator[Document]:
        if not self.settings.enabled:
            yield from docs
            return
        held = list(docs)
        for summary in self.summarise_many([doc for doc in held if doc.status == OK]):
            self.observe(summary)
        self.decide()
        for doc in held:
            if doc.status == OK:
                self.apply(doc)
            yield doc
