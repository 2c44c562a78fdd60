"""The near-duplicate stage with the engine's services (`RunContext.group_by`, `.parallel`).

`decide` runs as candidates -> verification -> choice; with the services, candidates come from
a shuffle on datasketch's band keys and verifications run ahead on workers. Whatever services
are given (and whatever order the shuffle returns groups in), the plans, edits, flags, index
artifact and statistics must be those of the run without them. The services here are fakes
written in the test: a dict for `group_by`, a list comprehension, a pickled copy of the
function (as Ray ships it) and a fork pool (as the local engine) for `parallel`.
"""

from __future__ import annotations

import multiprocessing
import pickle
import random
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from datasketch import MinHashLSH

from curate import lsh_params, minhash
from curate.document import DUPLICATE, Document, stable_id
from curate.stages import dedup
from curate.stages.base import RunContext
from curate.stages.dedup import INDEX_NAME, DedupSettings, NearDuplicates

from .scale_helpers import articles
from .test_dedup import (
    OWN,
    SHARED,
    SUNITE_COPY,
    chain_sources,
    chain_texts,
    dedup_edits,
    document,
    engine_corpus,
    filler,
    snapshot,
    write_version,
)


# --------------------------------------------------------------------------- fake services
def dict_group_by(rows: Iterable[tuple[bytes, int]]) -> list[list[int]]:
    table: dict[bytes, list[int]] = {}
    for key, value in rows:
        table.setdefault(key, []).append(value)
    return [values for values in table.values() if len(values) > 1]


def shuffled_group_by(seed: int) -> Callable[[Iterable[tuple[bytes, int]]], list[list[int]]]:
    """A shuffle that returns its groups, and the values inside them, in a random order."""

    def group_by(rows: Iterable[tuple[bytes, int]]) -> list[list[int]]:
        rng = random.Random(seed)
        groups = dict_group_by(rows)
        rng.shuffle(groups)
        for group in groups:
            rng.shuffle(group)
        return groups

    return group_by


def list_parallel(function: Callable[[Any], Any], items: list[Any]) -> list[Any]:
    return [function(item) for item in items]


def pickled_parallel(function: Callable[[Any], Any], items: list[Any]) -> list[Any]:
    """As Ray: the function (a bound method of the stage's engine) is pickled once, shipped."""
    copy = pickle.loads(pickle.dumps(function))
    return [copy(item) for item in items]


_FORKED: Callable[[Any], Any] | None = None


def _call_forked(item: Any) -> Any:
    assert _FORKED is not None
    return _FORKED(item)


def fork_parallel(function: Callable[[Any], Any], items: list[Any]) -> list[Any]:
    """As the local engine: workers forked after the state exists, results pickled back."""
    global _FORKED
    _FORKED = function
    try:
        with multiprocessing.get_context("fork").Pool(2) as pool:
            return pool.map(_call_forked, items, chunksize=1)
    finally:
        _FORKED = None


SERVICES: dict[str, dict[str, Any]] = {
    "group_by": {"group_by": dict_group_by},
    "shuffled-group_by": {"group_by": shuffled_group_by(1)},
    "parallel-list": {"parallel": list_parallel},
    "parallel-pickled": {"parallel": pickled_parallel},
    "parallel-fork": {"parallel": fork_parallel},
    "both-shuffled-fork": {"group_by": shuffled_group_by(2), "parallel": fork_parallel},
}


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of a few verifications, so that small corpora use `parallel` (in many items)."""
    monkeypatch.setattr(dedup._Engine, "_CHUNK", 3)
    monkeypatch.setattr(dedup._Engine, "_INDEX_CHUNK", 2)


# --------------------------------------------------------------------------- corpora and runs
def built_corpus() -> list[Document]:
    """Seeds, the 004 passages and splices, cross-document copies, a paragraph copied into many
    documents, a chain of weak collisions, and generated news with exact and near duplicates."""
    docs = engine_corpus()
    for i in range(12):
        docs.append(document(f"copy-{i}.txt", [filler(100 + i), SHARED, filler(200 + i)]))
    for i in range(3):  # a passage spliced into a paragraph of another document
        docs.append(document(f"passage-{i}.txt", [filler(300 + i), filler(310 + i) + SUNITE_COPY]))
    docs.append(document("inside.txt", [SUNITE_COPY, filler(320), "后来，" + SUNITE_COPY]))
    texts = chain_texts()
    docs.extend(document(src, [texts[i]]) for i, src in enumerate(chain_sources()))
    docs.extend(Document.new(f"gen-{n:03d}.txt", text) for n, text in enumerate(articles(80, 3)))
    return docs


def run(
    docs: list[Document],
    parent: Path | None = None,
    services: dict[str, Any] | None = None,
    **overrides: Any,
) -> tuple[list[Document], RunContext]:
    context = RunContext(config=None, parent=parent, **(services or {}))
    stage = NearDuplicates(DedupSettings(**overrides), context)
    return list(stage.run(docs)), context


def outcome(docs: list[Document], context: RunContext) -> tuple[Any, ...]:
    """Everything the stage decides: documents, edits, flags, status, index bytes, statistics."""
    return (
        [snapshot([d]) for d in docs],
        [[e.to_json() for e in d.edits] for d in docs],
        [d.flags for d in docs],
        context.state["artifacts"][INDEX_NAME],
        context.state["dedup"],
    )


SETTINGS = {
    "defaults": {},
    "weak-links": {
        "paragraph_containment": 0.7,
        "document_jaccard": 0.55,
        "document_containment": 0.7,
        "candidate_threshold": 0.3,
    },
    "within-only": {"across_documents": False},
    "across-only": {"within_documents": False, "max_candidates": 2},
}


# --------------------------------------------------------------------------- identical output
@pytest.mark.parametrize("settings", SETTINGS)
@pytest.mark.parametrize("services", SERVICES)
def test_services_give_the_output_of_the_run_without_them(
    services: str, settings: str, small_chunks: None
) -> None:
    plain_docs, plain_context = run(built_corpus(), **SETTINGS[settings])
    used: list[str] = []
    given = dict(SERVICES[services])
    for name, service in SERVICES[services].items():
        given[name] = lambda *args, service=service, name=name: used.append(name) or service(*args)
    served = outcome(*run(built_corpus(), services=given, **SETTINGS[settings]))
    assert served == outcome(plain_docs, plain_context)
    assert set(used) == set(given)  # every service given was used
    if settings == "defaults":  # the corpus gives every kind of decision something to do
        assert any(d.status == DUPLICATE for d in plain_docs)
        assert any(e.rule == "dedup.paragraph" for d in plain_docs for e in dedup_edits(d))
        assert any(e.rule == "dedup.passage" for d in plain_docs for e in dedup_edits(d))
        assert any(f.kind == "splice" for d in plain_docs for f in d.flags)


def test_services_give_the_output_of_the_run_without_them_with_default_chunks() -> None:
    plain = outcome(*run(built_corpus()))
    served = outcome(
        *run(built_corpus(), services={"group_by": dict_group_by, "parallel": fork_parallel})
    )
    assert served == plain


@pytest.mark.parametrize("files", [1, 2])
@pytest.mark.parametrize("services", ["parallel-pickled", "both-shuffled-fork", "group_by"])
def test_services_give_the_same_incremental_run(
    tmp_path: Path, services: str, files: int, small_chunks: None
) -> None:
    # (files: the parent's index in one file, or in its own and its parent's, merged when
    # read: its signatures then read through `_Taken`, pickled with the engine)
    _, first = run(built_corpus()[:20])
    parent = write_version(tmp_path / "v1", first)
    if files == 2:
        again = [Document.new(d.source, d.reconstruct_input() + "\n\n" + SHARED) for d in built_corpus()[18:20]]
        _, second = run([*built_corpus()[40:46], *again], parent=parent)
        parent = write_version(tmp_path / "v2", second)
        assert len(dedup._read_parent_index(DedupSettings(), RunContext(config=None, parent=parent)).segments) == 2
    new = [
        document("new-c.txt", ["这是一篇新稿件的导语，介绍夜班公交开通后的反响。", SHARED]),
        document("new-d.txt", [OWN["b"][0], filler(400) + SUNITE_COPY, OWN["b"][1]]),
        *built_corpus()[10:40],
    ]
    plain = outcome(*run(new, parent=parent))
    served = outcome(
        *run(
            [Document.new(d.source, d.reconstruct_input()) for d in new],
            parent=parent,
            services=SERVICES[services],
        )
    )
    assert served == plain
    assert plain[4]["signatures_reused"] > 0  # the parent's index was used


def test_group_order_does_not_change_the_output() -> None:
    outcomes = [
        outcome(*run(built_corpus(), services={"group_by": shuffled_group_by(seed)}))
        for seed in (3, 4, 5)
    ]
    assert outcomes[0] == outcomes[1] == outcomes[2] == outcome(*run(built_corpus()))


PASSAGE_SETTINGS = {
    "defaults": {},
    "loose-passages": {"passage_similarity": 0.6, "passage_min_chars": 30, "max_gap": 8},
    "any-passage": {"passage_similarity": 0.0, "passage_min_chars": 0},
    "unchained": {"max_gap": -1},  # (blocks never chained: the bound counts one run of them)
}


@pytest.mark.parametrize("settings", PASSAGE_SETTINGS)
def test_the_alignment_bound_skips_no_passage(
    monkeypatch: pytest.MonkeyPatch, settings: str
) -> None:
    # `_find_passages` skips the alignment when the copy's characters in shared 4-grams are
    # too few for a passage: the same passages without that bound (never below the limit).
    overrides = PASSAGE_SETTINGS[settings]
    bounded = outcome(*run(built_corpus(), **overrides))
    skipped: list[int] = []
    coverage = minhash.gram_coverage

    def unbounded(index: Any, other: Any, max_gap: int | None = None) -> int:
        skipped.append(coverage(index, other, max_gap))
        return 1 << 40

    monkeypatch.setattr(minhash, "gram_coverage", unbounded)
    assert outcome(*run(built_corpus(), **overrides)) == bounded
    limit = overrides.get("passage_similarity", 0.9) * overrides.get("passage_min_chars", 50)
    if settings == "defaults":
        assert any(found < limit for found in skipped)  # the bound did skip some alignments


# Two stock sentences (written for this test): 34 and 27 comparison characters, together more
# than a passage's 45 aligned ones, each fewer.
STOCK = (
    "据气象部门预报，本周末全市将迎来一次明显的降温降雨过程，请市民注意添衣保暖。",
    "相关部门提醒，雨天路面湿滑，驾驶员应减速慢行并保持安全车距。",
)


def test_the_alignment_bound_counts_the_shared_grams_of_one_stretch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A paragraph repeating both stock sentences of another, with other sentences between:
    # candidates (a shared sentence is a shared window), but no passage, since a passage's
    # blocks are chained across gaps of at most max_gap. The bound counts the shared 4-grams of
    # the stretch that has the most; counting all of the paragraph's, the alignment is made.

    def docs() -> list[Document]:
        return [
            document("stock-a.txt", [STOCK[0] + filler(400) + STOCK[1]]),
            document("stock-b.txt", [filler(401) + STOCK[0] + filler(402) + STOCK[1] + filler(403)]),
        ]

    blocks = minhash.matching_blocks
    coverage = minhash.gram_coverage
    aligned: list[int] = []

    def counted(*args: Any, **kwargs: Any) -> Any:
        aligned.append(1)
        return blocks(*args, **kwargs)

    def of_all(index: Any, other: Any, max_gap: int | None = None) -> int:
        return coverage(index, other)

    monkeypatch.setattr(minhash, "matching_blocks", counted)
    one_stretch = outcome(*run(docs()))
    made = len(aligned)
    monkeypatch.setattr(minhash, "gram_coverage", of_all)
    assert outcome(*run(docs())) == one_stretch
    assert one_stretch[1] == [[], []]  # (no passage either way)
    assert made == 0 < len(aligned)


# --------------------------------------------------------------------------- work done
def counting_verifications(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """The verifications made from now on, by kind (those in this process: not in forked
    workers)."""
    counts: dict[str, int] = {}
    verify = dedup._Engine._verify

    def counting(self: Any, key: tuple[Any, ...]) -> Any:
        counts[key[0]] = counts.get(key[0], 0) + 1
        return verify(self, key)

    monkeypatch.setattr(dedup._Engine, "_verify", counting)
    return counts


def count_verifications(
    monkeypatch: pytest.MonkeyPatch, docs: list[Document], **services: Any
) -> dict[str, int]:
    with monkeypatch.context() as counted:
        counts = counting_verifications(counted)
        run(docs, services=services)
    return counts


def test_parallel_verification_does_not_check_every_candidate_pair_of_many_copies(
    monkeypatch: pytest.MonkeyPatch, small_chunks: None
) -> None:
    # 40 documents sharing a paragraph, and 30 copies of one document with a word changed:
    # the candidate pairs grow with the square of the copies, the checks the choice reads not.
    body = [OWN["a"][0], SHARED, OWN["a"][1]]

    def copies() -> list[Document]:
        docs = [
            document(f"p-{i}.txt", [filler(500 + i), SHARED, filler(600 + i)]) for i in range(40)
        ]
        return docs + [
            document(f"d-{i}.txt", [p.replace("四十万", f"{i}万") for p in body]) for i in range(30)
        ]

    serial = count_verifications(monkeypatch, copies())
    ahead = count_verifications(monkeypatch, copies(), parallel=list_parallel)
    # About one check per copy (against the first, kept one), not one per candidate pair
    # (435 document pairs, ~600 paragraph pairs within `max_candidates`); the same ahead.
    assert serial["doc"] < 2 * 30 and serial["whole"] < 2 * 41
    assert ahead == serial


def test_exact_copies_are_known_in_the_decision_and_not_sent_to_the_workers(small_chunks: None) -> None:
    # A corpus scraped twice is mostly documents of the same text: a copy's pair with its
    # first is known equal from the texts (the same compressed bytes) at less cost than
    # sending it to a worker. Near copies (two characters changed) are verified there still.
    texts = [[filler(900 + 4 * i + j) for j in range(4)] for i in range(12)]

    def corpus() -> list[Document]:
        docs = [document(f"{copy}-{i}.txt", paragraphs) for copy in "ab" for i, paragraphs in enumerate(texts)]
        return docs + [document(f"c-{i}.txt", [*p[:3], p[3][:-3] + "王王。"]) for i, p in enumerate(texts)]

    sent: list[tuple[Any, ...]] = []

    def parallel(function: Callable[[Any], Any], items: list[Any]) -> list[Any]:
        sent.extend(key for item in items for key in item if isinstance(key, tuple) and key[0] == "doc")
        return list_parallel(function, items)

    docs, context = run(corpus(), services={"parallel": parallel})
    assert outcome(docs, context) == outcome(*run(corpus()))  # as decided in one process
    assert sum(doc.status == DUPLICATE for doc in docs) == 24  # the second copies, the near ones
    ranked = [doc.text for doc in sorted(corpus(), key=lambda doc: doc.id)]  # (the engine's order)
    assert sent and all(ranked[k] != ranked[c] for _, k, c in sent)


def scraped_many_times() -> list[Document]:
    """Eight texts, each under five sources, and for half of them a near copy (two characters
    changed) under a source whose id comes before theirs (so the near copy is kept, and the
    first exact copy is its duplicate); the other half have their first copy kept."""
    texts = [[filler(1200 + 4 * i + j) for j in range(4)] for i in range(8)]
    docs = [document(f"{copy}-{i}.txt", text) for copy in "abcde" for i, text in enumerate(texts)]
    for i, text in enumerate(texts[:4]):
        first = min(stable_id(f"{copy}-{i}.txt") for copy in "abcde")
        source = next(f"near-{i}-{n}.txt" for n in range(1000) if stable_id(f"near-{i}-{n}.txt") < first)
        docs.append(document(source, [*text[:3], text[3][:-3] + "王王。"]))
    return docs


def decided_in_full(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every later exact copy decided as any other document: its candidates, its checks."""
    monkeypatch.setattr(dedup._Engine, "_earlier_copies", lambda self, keys: {})


@pytest.mark.parametrize("limit", [1, 2, 256])
@pytest.mark.parametrize("services", ["none", "both-shuffled-fork", "parallel-list"])
def test_later_exact_copies_decide_as_their_first_copy_did(
    monkeypatch: pytest.MonkeyPatch, small_chunks: None, limit: int, services: str
) -> None:
    # A corpus scraped many times: a later exact copy takes its first copy's decision (its
    # duplicate status, or a duplicate of it when kept), its own candidates not gathered nor
    # checked. The decisions are those of deciding every copy in full, whatever the limit of
    # candidates a group gives (1: a copy's candidates may be its first copy's only).
    given = SERVICES.get(services, {})
    checked = counting_verifications(monkeypatch)
    docs, context = run(scraped_many_times(), services=given, max_group_candidates=limit)
    taken = checked.get("doc", 0)
    with monkeypatch.context() as full:
        decided_in_full(full)
        checked.clear()
        expected = outcome(*run(scraped_many_times(), services=given, max_group_candidates=limit))
    assert outcome(docs, context) == expected
    if services != "both-shuffled-fork":  # (checks in forked workers are not counted here)
        assert taken < checked.get("doc", 0)
    by_id = {doc.id: doc for doc in docs}
    duplicates = [doc for doc in docs if doc.status == DUPLICATE]
    assert len(duplicates) >= 4 * 8  # every later copy
    # Some copies took their first copy's status: a duplicate of the near copy.
    assert any(by_id[doc.duplicate_of].source.startswith("near-") for doc in duplicates if doc.source[0] in "abcde")


def test_a_copy_whose_first_copy_is_not_its_candidate_is_decided_as_the_first_copy(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The parent version holds a text; this run holds three copies of it. With one candidate
    # a group, each copy's only candidate is the parent's document; let its check fail (as
    # for a colliding signature): in full, the first copy is kept and so are the later ones,
    # which never see it. With two, the later ones are its duplicates. The same either way.
    text = [filler(1300 + j) for j in range(4)]
    _, context = run([document("old.txt", text)])
    parent = write_version(tmp_path / "v1", context)
    verify = dedup._Engine._verify

    def parent_never_passes(self: Any, key: tuple[Any, ...]) -> Any:
        if key[0] == "doc" and self.docs[key[2]].summary is None:
            return 0.0, 0.0
        return verify(self, key)

    monkeypatch.setattr(dedup._Engine, "_verify", parent_never_passes)

    def copies() -> list[Document]:
        return [document(f"new-{i}.txt", text) for i in range(3)]

    for limit, duplicates in ((1, 0), (2, 2)):
        docs, context = run(copies(), parent=parent, max_group_candidates=limit)
        with monkeypatch.context() as full:
            decided_in_full(full)
            expected = outcome(*run(copies(), parent=parent, max_group_candidates=limit))
        assert outcome(docs, context) == expected
        assert sum(doc.status == DUPLICATE for doc in docs) == duplicates


def test_a_key_that_needs_nothing_for_good_is_not_asked_again() -> None:
    # Each round of verifications ahead asks the keys after the one being decided what they
    # need. A key that needs nothing, having read only decisions already made, needs nothing
    # in any later round (the copies shape asked 196,000 such keys again in each of five).
    # Keys 0-599: each needs ("v", k); then every third from 102 on ("w", k); then every third
    # from 300 on ("x", k). All read the decision of key 0 only.
    rounds: list[int] = []

    def parallel(function: Callable[[Any], Any], items: list[Any]) -> list[Any]:
        rounds.append(len(decided))
        return list_parallel(function, items)

    engine = dedup._Engine(DedupSettings(), RunContext(config=None, parallel=parallel), None)
    engine._verify = lambda key: "checked"  # type: ignore[method-assign]
    order = list(range(600))
    asked: dict[int, list[int]] = {k: [] for k in order}  # key -> the key decided at each ask
    decided: list[int] = []

    def needs(k: int) -> tuple[list[tuple[Any, ...]], int]:
        asked[k].append(len(decided))
        stages = ["v"] + (["w"] if k % 3 == 0 and k >= 102 else []) + (["x"] if k % 3 == 0 and k >= 300 else [])
        missing = [(stage, k) for stage in stages if (stage, k) not in engine._verified]
        return missing[:1], 0

    def decide(k: int) -> None:
        assert needs(k)[0] == []  # everything it reads was verified ahead, in rounds
        decided.append(k)

    engine._in_waves(order, needs, decide)
    assert decided == order
    assert rounds == [0, 102, 300]  # (the rounds ahead: at keys 0, 102 and 300)
    # The keys after 300 that need no "w": asked in round 1, then in round 2, where they need
    # nothing, having read key 0's decision; not in round 3 nor before their own decision
    # (`decide` asks once more, to check). The others: in the three rounds, then at their
    # decision, then by `decide`.
    assert all(len(asked[k]) == 3 for k in order if k > 300 and k % 3)
    assert all(len(asked[k]) == 5 for k in order if k > 300 and k % 3 == 0)


# --------------------------------------------------------------------------- candidates
def test_signatures_are_stacked_whatever_their_rows() -> None:
    # Rows as the summaries hold them (uint32 views of one record each) are joined as bytes;
    # rows of another type or not contiguous take numpy's way; the same rows either way.
    rng = np.random.default_rng(4)
    table = rng.integers(0, 1 << 32, size=(6, 8), dtype=np.uint64)
    expected = table.astype(np.uint32)
    records = [np.frombuffer(row.astype(np.uint32).tobytes() + b"tail", np.uint8)[:32].view(np.uint32) for row in table]
    strided = [np.ascontiguousarray(np.stack([row, row], axis=1).astype(np.uint32))[:, 0] for row in table]
    for rows in (records, strided, list(table), records[:3] + list(table[3:])):
        stacked = dedup._stack(rows, 8)
        assert stacked.dtype == np.uint32 and stacked.shape == (6, 8)
        assert (stacked == expected).all()
    with pytest.raises(ValueError, match="6 signatures of 7 values"):
        dedup._stack(records, 7)
    assert dedup._stack([], 8).shape == (0, 8)


def test_packed_lexsort_orders_as_numpy_lexsort() -> None:
    # Keys of narrow ranges (packed into one integer), negative ones, repeats (a stable order
    # of equal rows), and ranges too wide to pack together (numpy's own `lexsort`).
    rng = np.random.default_rng(7)
    for trial in range(300):
        size = int(rng.integers(0, 60))
        keys = []
        for _ in range(int(rng.integers(1, 5))):
            span = int(rng.choice([1, 3, 50, 1 << 20, 1 << 40, 1 << 62]))
            low = int(rng.integers(-span, span + 1))
            keys.append(rng.integers(low, low + span, size=size, dtype=np.int64))
        keys_tuple = tuple(keys)
        assert dedup._lexsort(keys_tuple).tolist() == np.lexsort(keys_tuple).tolist(), trial
    wide = (np.array([1 << 62, 0, 5], np.int64), np.array([3, 3, -(1 << 62)], np.int64))
    assert dedup._lexsort(wide).tolist() == np.lexsort(wide).tolist() == [2, 1, 0]
    assert dedup._lexsort((np.empty(0, np.int64),)).tolist() == []


def random_signatures(rng: np.random.Generator, count: int, num_perm: int) -> np.ndarray:
    """Signatures with copies, rows sharing some bands, and near collisions (one value off)."""
    sigs = rng.integers(0, 2**32, size=(count, num_perm), dtype=np.uint64).astype(np.uint32)
    for i in range(1, count):
        roll = rng.random()
        j = int(rng.integers(0, i))
        if roll < 0.15:
            sigs[i] = sigs[j]  # a copy
        elif roll < 0.5:  # shares a random subset of columns (whole bands or not) with row j
            same = rng.random(num_perm) < rng.uniform(0.2, 0.9)
            sigs[i, same] = sigs[j, same]
        elif roll < 0.7:  # a copy with one value changed: all bands but one collide
            sigs[i] = sigs[j]
            sigs[i, int(rng.integers(0, num_perm))] ^= np.uint32(1 << int(rng.integers(0, 32)))
    return sigs


def query_candidates(
    threshold: float, num_perm: int, sigs: np.ndarray, keys: list[int] | None = None
) -> dict[int, set[int]]:
    """What `MinHashLSH.query` finds for each row (`sigs[i]` of `keys[i]`, default i) among the
    rows of smaller keys (the candidates every decision reads), for the rows that have any."""
    keys = list(range(len(sigs))) if keys is None else keys
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    for key, sig in zip(keys, sigs, strict=True):
        lsh.insert(key, minhash.lean(sig), check_duplication=False)
    found = {
        key: {c for c in lsh.query(minhash.lean(sig)) if c < key} for key, sig in zip(keys, sigs, strict=True)
    }
    return {key: others for key, others in found.items() if others}


@pytest.mark.parametrize(("threshold", "num_perm"), [(0.6, 128), (0.6, 32), (0.3, 128), (0.9, 64)])
def test_band_key_candidates_are_what_minhashlsh_query_returns(
    threshold: float, num_perm: int
) -> None:
    rng = np.random.default_rng(int(threshold * 100) + num_perm)
    sigs = random_signatures(rng, 400, num_perm)
    keys = list(range(400))
    expected = query_candidates(threshold, num_perm, sigs)
    assert sum(map(len, expected.values())) > 100  # many collisions, some near misses
    for context in (None, RunContext(config=None), RunContext(config=None, group_by=dict_group_by)):
        engine = dedup._Engine(DedupSettings(), context, None)
        found = dict(engine._candidates(threshold, num_perm, keys, sigs, lambda key: True))
        assert {k: v for k, v in found.items() if v} == expected
    shuffled = RunContext(config=None, group_by=shuffled_group_by(9))
    found = dict(
        dedup._Engine(DedupSettings(), shuffled, None)._candidates(
            threshold, num_perm, keys, sigs, lambda key: key % 2 == 0
        )
    )
    assert found == {k: v for k, v in expected.items() if k % 2 == 0}


@pytest.mark.parametrize("group_by", [None, dict_group_by])
def test_candidates_let_go_of_the_signatures_and_the_bands_groups_before_the_first(group_by: Any) -> None:
    # The caller decides key after key (verifying on the way) while the generator waits: what
    # it needs no more must not wait with it: the signatures, and a list of keys per band and
    # group, all held at once (measured by hand: the driver's peak 1,119 -> 930 MB on 213,000
    # one-sentence documents in groups of 12 copies).
    import inspect
    import weakref

    rng = np.random.default_rng(5)
    sigs = np.repeat(random_signatures(rng, 50, 128), 4, axis=0)  # 50 groups of 4 copies
    expected = query_candidates(0.6, 128, sigs)
    kept = weakref.ref(sigs)
    engine = dedup._Engine(DedupSettings(), RunContext(config=None, group_by=group_by), None)
    found = engine._candidates(0.6, 128, list(range(200)), sigs, lambda key: True)
    del sigs
    first = next(found)
    assert kept() is None  # released once grouped
    assert {first[0]: first[1], **dict(found)} == expected
    assert inspect.isgeneratorfunction(dedup._band_groups)  # groups made band by band, as used


def test_band_columns_are_each_bands_values_whatever_the_bands() -> None:
    # Transposed a few columns at a time: bands in order, one wider than those few, one going
    # back, one at the end of a block; each is its columns of the signatures, row after row.
    rng = np.random.default_rng(6)
    sigs = rng.integers(0, 1 << 32, size=(2500, 80), dtype=np.uint64).astype(np.uint32)
    bands = ((0, 5), (5, 10), (30, 32), (32, 70), (3, 8), (75, 80))
    for band, (start, end) in zip(dedup._band_columns(bands, sigs), bands, strict=True):
        assert band.shape == (end - start, 2500)
        assert (band == sigs[:, start:end].T).all()


def test_a_band_gives_a_group_the_band_before_made_only_if_its_rows_differ() -> None:
    # Copies share every band: their group is given once, not once a band (the caller keeps
    # one of each anyway: a tuple and a dict entry for each it is given). A group is given
    # again when its rows differ from the band before's group of its smallest row: one
    # more, one fewer, or another row instead of one.
    grouping = [  # per band, each row's group (None: alone)
        [1, 1, 1, 1, None, None],  # {0, 1, 2, 3}
        [1, 1, 1, 1, None, None],  # the same: not given
        [1, 1, 1, None, 1, None],  # {0, 1, 2, 4}: the same size and smallest row, another row
        [1, 1, 1, 1, 1, None],  # {0, 1, 2, 3, 4}: one more
        [1, 1, 1, 1, None, None],  # {0, 1, 2, 3}: one fewer (and made two bands before)
        [1, 1, 1, 2, 2, None],  # {0, 1, 2} and {3, 4}
        [2, 2, 2, 1, 1, None],  # the same two: not given
        [None, None, None, None, None, None],  # none
        [1, 1, 1, 2, 2, None],  # {0, 1, 2} and {3, 4} again: not the band before's
    ]
    rng = np.random.default_rng(3)
    sigs = rng.integers(1 << 20, 1 << 31, size=(6, 2 * len(grouping)), dtype=np.uint32)
    for band, groups in enumerate(grouping):
        for row, group in enumerate(groups):
            if group is not None:
                sigs[row, 2 * band : 2 * band + 2] = group
    bands = tuple((2 * band, 2 * band + 2) for band in range(len(grouping)))
    keys = [100 + 7 * row for row in range(6)]
    given = sorted(tuple(sorted(group)) for group in dedup._band_groups(bands, keys, sigs))
    expected = [(0, 1, 2, 3), (0, 1, 2, 4), (0, 1, 2, 3, 4), (0, 1, 2, 3), (0, 1, 2), (3, 4), (0, 1, 2), (3, 4)]
    assert given == sorted(tuple(keys[row] for row in group) for group in expected)
    # Rows before `first_wanted` (a parent's): the groups of those rows alone are left out.
    for first_wanted in (1, 3, 4, 5, 6):
        given = sorted(tuple(sorted(group)) for group in dedup._band_groups(bands, keys, sigs, first_wanted))
        kept = [group for group in expected if max(group) >= first_wanted]
        assert given == sorted(tuple(keys[row] for row in group) for group in kept)


@pytest.mark.parametrize("block", [7, 64, 1024])
def test_signatures_stacked_from_parts_band_as_the_joined_array(monkeypatch: pytest.MonkeyPatch, block: int) -> None:
    # A parent's rows picked from its index's array, then the run's: read a block of rows at a
    # time (blocks crossing from one part to the next), the same groups and band keys as the
    # array the parts make joined.
    monkeypatch.setattr(dedup, "_TRANSPOSE_ROWS", block)
    rng = np.random.default_rng(12)
    index = np.repeat(random_signatures(rng, 40, 128), 3, axis=0)
    picked = rng.permutation(index.shape[0])[:70]
    run = np.concatenate([index[picked[:10]], random_signatures(rng, 30, 128)])
    joined = np.concatenate([index[picked], run])
    stacked = dedup._Stacked([(index, picked), (np.empty((0, 128), np.uint32), None), (run, None)], 128)
    assert stacked.shape == joined.shape and np.array_equal(stacked.block(0, joined.shape[0]), joined)
    assert np.array_equal(stacked.block(65, 75), joined[65:75]) and stacked.block(200, 300).shape == (0, 128)
    bands = lsh_params.bands(0.6, 128)
    keys = list(range(joined.shape[0]))
    groups = sorted(map(sorted, dedup._band_groups(bands, keys, joined)))
    assert groups and sorted(map(sorted, dedup._band_groups(bands, keys, stacked))) == groups
    lsh = MinHashLSH(threshold=0.6, num_perm=128)
    assert list(dedup._band_rows(lsh, keys, stacked)) == list(dedup._band_rows(lsh, keys, joined))


def test_candidates_of_the_wanted_rows_are_the_same_when_the_rows_before_them_are_not_grouped() -> None:
    # A parent's rows come first and are never asked for: grouping them among themselves
    # (`first_wanted`) changes no candidates of a run's row, whatever the group limit.
    rng = np.random.default_rng(8)
    copies = np.repeat(random_signatures(rng, 30, 128), 5, axis=0)  # 30 groups of 5, in the parent
    run = np.concatenate([copies[::25], random_signatures(rng, 20, 128)])  # 6 copies, 20 others
    partial = random_signatures(rng, 10, 128)
    partial[:, :40] = copies[7, :40]  # some bands shared with a parent group
    sigs = np.concatenate([copies, run, partial])
    keys = list(range(len(sigs)))
    first = copies.shape[0]
    for limit in (1, 3, 256):
        engine = dedup._Engine(DedupSettings(max_group_candidates=limit), RunContext(config=None), None)
        every = dict(engine._candidates(0.6, 128, keys, sigs, lambda key: key >= first))
        assert any(min(found) < first for found in every.values())  # (candidates in the parent
        assert any(min(found) >= first for found in every.values())  # and in the run alone)
        assert dict(engine._candidates(0.6, 128, keys, sigs, lambda key: key >= first, first_wanted=first)) == every


@pytest.mark.parametrize("group_by", [None, dict_group_by])
def test_candidates_of_keys_that_are_not_row_numbers(group_by: Any) -> None:
    rng = np.random.default_rng(11)
    sigs = random_signatures(rng, 300, 128)
    keys = [1000 + 7 * i for i in range(300)][::-1]  # in no particular order
    expected = query_candidates(0.6, 128, sigs, keys)
    engine = dedup._Engine(DedupSettings(), RunContext(config=None, group_by=group_by), None)
    found = list(engine._candidates(0.6, 128, keys, sigs, lambda key: True))
    assert dict(found) == expected
    assert [key for key, _ in found] == [key for key in keys if key in expected]  # keys' order


@pytest.mark.parametrize("group_by", [None, dict_group_by])
def test_a_row_is_a_candidate_of_at_most_the_first_rows_of_a_group(group_by: Any) -> None:
    # 600 copies of one signature (one group in every band), then rows that share a few bands
    # with some of them: each row gets the earliest `max_group_candidates` rows before it of
    # each group it is in, so the pairs grow with the rows, not with their square.
    rng = np.random.default_rng(21)
    sigs = np.repeat(random_signatures(rng, 1, 128), 600, axis=0)
    partial = random_signatures(rng, 60, 128)
    partial[:, :40] = sigs[0, :40]  # the first bands of the copies
    sigs = np.concatenate([sigs, partial])
    keys = list(range(len(sigs)))
    everything = query_candidates(0.6, 128, sigs)
    for limit in (1, 16, 1000):
        engine = dedup._Engine(
            DedupSettings(max_group_candidates=limit), RunContext(config=None, group_by=group_by), None
        )
        found = dict(engine._candidates(0.6, 128, keys, sigs, lambda key: True))
        assert found.keys() == everything.keys()
        for key, others in found.items():
            assert others <= everything[key]
            if key < 600:  # a copy: the first rows, as many as the limit allows
                assert others == set(range(min(key, limit)))
            else:  # the copies' group of its shared bands, and the groups of its own bands
                assert set(range(min(600, limit))) <= others
        assert sum(map(len, found.values())) <= len(sigs) * limit * len(engine_bands(0.6, 128))
        if limit == 1000:
            assert found == everything


def engine_bands(threshold: float, num_perm: int) -> tuple[tuple[int, int], ...]:
    from curate import lsh_params

    return lsh_params.bands(threshold, num_perm)


def test_passages_ranked_a_chunk_at_a_time_are_ranked_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(4)
    windows_per_para = rng.integers(1, 6, size=200)
    owner = np.array([(p, w) for p, n in enumerate(windows_per_para) for w in range(n)], dtype=np.int64)
    candidates = [
        (key, {int(c) for c in rng.integers(0, key, size=int(rng.integers(1, 30)))})
        for key in range(1, len(owner))
        if rng.random() < 0.7
    ]
    whole = dedup._rank_passages(owner, iter(candidates), 4)
    assert len(whole) > 100
    for chunk in (1, 7, 100, 1000):
        monkeypatch.setattr(dedup, "_RANK_CHUNK_HITS", chunk)
        assert dedup._rank_passages(owner, iter(candidates), 4) == whole


def test_thousands_of_near_copies_of_a_paragraph_are_removed_in_linear_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 400 documents with the same paragraph, one character changed in each: all but one lose
    # it, and the candidate pairs the decision reads stay within the per-group limit.
    rng = random.Random(5)
    shared = SHARED
    docs = []
    for i in range(400):
        at = rng.randrange(10, len(shared) - 10)
        docs.append(document(f"n-{i:03d}.txt", [filler(900 + i), shared[:at] + "甲" + shared[at + 1 :]]))
    pairs: list[int] = []
    candidates = dedup._Engine._candidates

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        for key, found in candidates(self, *args, **kwargs):
            pairs.append(len(found))
            yield key, found

    monkeypatch.setattr(dedup._Engine, "_candidates", counted)
    out, _ = run(docs, max_group_candidates=8)
    removed = [d for d in out if any(e.rule == "dedup.paragraph" for e in d.edits)]
    assert len(removed) == 399  # all but the kept one (the smallest id's)
    (kept,) = [d for d in out if d not in removed]
    assert all(e.link["doc"] == kept.id for d in removed for e in d.edits)
    assert sum(pairs) < 400 * 8 * 40  # (about 40 rows per copy: the paragraph and its windows)
    assert max(pairs) <= 8 * len(engine_bands(0.6, 128))


def test_band_hash_collisions_never_join_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    # With a zero base the sorted hash of a band is its last value only: rows that differ in
    # the other values of the band collide, and must still not be candidates of each other.
    monkeypatch.setattr(dedup, "_BAND_HASH_BASE", np.uint64(0))
    rng = np.random.default_rng(12)
    sigs = random_signatures(rng, 300, 32)
    sigs[:, 4::5] = rng.integers(0, 3, size=sigs[:, 4::5].shape)  # last values of the bands
    engine = dedup._Engine(DedupSettings(), None, None)
    found = dict(engine._candidates(0.6, 32, list(range(300)), sigs, lambda key: True))
    assert found == query_candidates(0.6, 32, sigs)


def test_band_keys_are_datasketchs_with_the_band_number() -> None:
    rng = np.random.default_rng(5)
    sigs = rng.integers(0, 2**32, size=(20, 32), dtype=np.uint64).astype(np.uint32)
    lsh = MinHashLSH(threshold=0.6, num_perm=32)
    rows = list(dedup._band_rows(lsh, list(range(20)), sigs))
    assert len(rows) == 20 * len(lsh.hashranges)
    expected = [
        (band.to_bytes(2, "big") + lsh._H(sigs[key][start:end]), key)
        for band, (start, end) in enumerate(lsh.hashranges)
        for key in range(20)
    ]
    assert rows == expected
    # What an insert files the row under, band by band.
    lsh.insert(7, minhash.lean(sigs[7]))
    assert [table.keys() for table in lsh.hashtables] == [
        {key[2:]} for key, value in expected if value == 7
    ]


def test_the_engine_pickles_as_its_inputs_and_verifies_the_same(tmp_path: Path) -> None:
    _, first = run(built_corpus()[:15])
    parent = write_version(tmp_path / "v1", first)
    context = RunContext(config=None, parent=parent, parallel=list_parallel)
    stage = NearDuplicates(DedupSettings(), context)
    summaries = [stage.summarise(doc) for doc in built_corpus()[10:30]]
    engine = dedup._Engine(stage.settings, context, stage._parent)
    engine.decide(summaries)
    copy = pickle.loads(pickle.dumps(engine._verify_chunk)).__self__
    assert copy.context is None and not copy._cache and not copy.pending
    assert [(d.id, d.rank, d.position) for d in copy.docs] == [
        (d.id, d.rank, d.position) for d in engine.docs
    ]
    assert any(d.summary is None for d in copy.docs)  # documents known from the parent only
    assert any(p is None for p in copy.paras)  # (paragraphs are made when first read)
    assert [(p.doc, p.start, p.end, p.text_hash) for p in map(copy._para, range(len(copy.paras)))] == [
        (p.doc, p.start, p.end, p.text_hash) for p in map(engine._para, range(len(engine.paras)))
    ]
    rng = random.Random(1)
    keys = [("doc", rng.randrange(len(engine.docs)), 0) for _ in range(5)]
    keys += [("whole", rng.randrange(len(engine.paras)), 1) for _ in range(5)]
    keys += [("passage", rng.randrange(len(engine.paras)), 2, -1) for _ in range(5)]
    assert copy._verify_chunk(keys) == engine._verify_chunk(keys)
    edited = [(d, [(0, 1)]) for d, doc in enumerate(engine.docs) if doc.summary is not None][:3]
    assert [(b.texts, b.para_sigs.tolist(), n) for b, n in copy._edited_blocks(edited)] == [
        (b.texts, b.para_sigs.tolist(), n) for b, n in engine._edited_blocks(edited)
    ]


# --------------------------------------------------------------------------- run paragraphs
@pytest.mark.parametrize("packed", [False, True], ids=["summaries", "records"])
@pytest.mark.parametrize("with_parent", [False, True], ids=["alone", "on-a-parent"])
def test_run_paragraphs_are_made_when_read_as_their_summaries_say(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, packed: bool, with_parent: bool
) -> None:
    """A run document's paragraphs are made objects only when one of them is read (`_para`),
    all of that document's then, from its summary: what the decision reads of them (their
    spans, hashes, windows, signatures, the documents' characters, and which of them take part)
    is what the summary holds, and what each rule of eligibility says of each paragraph."""
    parent = None
    if with_parent:
        _, first = run(built_corpus()[:15])
        parent = write_version(tmp_path / "v1", first)
    context = RunContext(config=None, parent=parent)
    stage = NearDuplicates(DedupSettings(), context)
    docs = built_corpus()[10:]
    docs[3:3] = [Document.new("empty.txt", ""), Document.new("blank.txt", "\n \n")]  # (no paragraph)
    summaries = [stage.summarise(doc) for doc in docs]
    assert sum(summary.dims[1] == 0 for summary in summaries) == 2
    if packed:  # (as documents travel between processes: `_Record`s)
        summaries = [stage.unpack_summary(stage.pack_summary(summary)) for summary in summaries]
    engine = dedup._Engine(stage.settings, context, stage._parent)
    grouped: dict[str, tuple[list[int], np.ndarray]] = {}
    rows_to_group = dedup._Engine._rows_to_group

    def capture(self: Any, kind: str, *args: Any) -> Any:
        grouped[kind] = (list(args[-2]), np.array(args[-1]))
        return rows_to_group(self, kind, *args)

    monkeypatch.setattr(dedup._Engine, "_rows_to_group", capture)
    engine.decide(summaries)
    first = engine._run_paras_from()
    made = [k for k in range(first, len(engine.paras)) if engine.paras[k] is not None]
    assert made and len(made) < len(engine.paras) - first  # (only documents with a candidate)
    s = stage.settings
    for doc_index, doc in enumerate(engine.docs):
        summary = doc.summary
        if summary is None:
            continue
        windows = np.concatenate([[0], np.cumsum(summary.win_counts)]).astype(int)
        assert doc.chars == int((summary.cf[:, 1] - summary.cf[:, 0]).sum())
        for index, k in enumerate(doc.paras):
            para = engine._para(k)
            assert engine._para(k) is para  # (one object a paragraph)
            assert (para.doc, para.index) == (doc_index, index)
            assert (para.start, para.end) == tuple(summary.spans[index].tolist())
            assert (para.cf0, para.cf1) == tuple(summary.cf[index].tolist())
            assert para.text_hash == int(summary.hashes[index])
            w0, w1 = windows[index], windows[index + 1]
            assert para.windows.tolist() == summary.win_spans[w0:w1].tolist()
            assert para.window_sigs.tolist() == summary.win_sigs[w0:w1].tolist()
            assert para.sig.tolist() == summary.para_sigs[index].tolist()
    # Which run paragraphs (and windows) took part: those of a document not a duplicate, of
    # `min_chars` or more compared characters; their windows of `window_min_chars` or more.
    eligible = [
        k
        for k in range(first, len(engine.paras))
        if not engine.docs[engine._para(k).doc].duplicate
        and engine._para(k).cf1 - engine._para(k).cf0 >= s.min_chars
    ]
    assert any(engine.docs[engine._para(k).doc].duplicate for k in range(first, len(engine.paras)))
    assert any(engine._para(k).cf1 - engine._para(k).cf0 < s.min_chars for k in range(first, len(engine.paras)))
    keys, sigs = grouped["para"]
    assert keys == eligible
    assert sigs.tolist() == [engine._para(k).sig.tolist() for k in eligible]
    run_windows = [
        (k, w)
        for k in eligible
        for w, (start, end) in enumerate(engine._para(k).windows.tolist())
        if end - start >= s.window_min_chars
    ]
    owners = [tuple(row) for row in engine.window_owner.tolist() if row[0] >= first]
    assert owners == run_windows
    _, window_sigs = grouped["win"]
    assert window_sigs.tolist() == [engine._para(k).window_sigs[w].tolist() for k, w in run_windows]
    # What a re-signed document reuses: the first run paragraph with each text hash.
    first_with: dict[int, int] = {}
    for k in range(first, len(engine.paras)):
        first_with.setdefault(engine._para(k).text_hash, k)
    hashes = list(first_with)
    found = engine._signatures().lookup_all(hashes)
    assert [(sig.tolist(), wins.tolist()) for sig, wins in found] == [
        (engine._para(first_with[h]).sig.tolist(), engine._para(first_with[h]).window_sigs.tolist()) for h in hashes
    ]
