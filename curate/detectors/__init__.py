"""Detectors of corrupted spans: one module per kind, each returning `Flag`s on the current text.

A detector is a function `detect(doc, ctx) -> list[Flag]`. It never changes the document: the
corruption stage adds the flags it returns (skipping any that repeat a flag of the same kind
already there) and the policy stage decides what happens to the text. Detectors share a
`DetectorContext`, which holds the tunable thresholds, the spam lexicon and the bigram model, and
the per-character work on the text being examined (its code points, bigram ids and surprise, and
what detectors derive from them, such as their pre-checks), so that several detectors can use it.
The stage joins a batch of documents for that work (numpy's per-call cost dominates on single
documents); a detector gets the same values either way.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from curate.detectors.bigram import BigramModel, default_model
from curate.document import Document, Flag
from curate.textutil import code_points

KINDS = ("mojibake", "obfuscation", "spam-injection", "splice", "truncated", "garbage")
LEXICON_FILE = Path("lexicons") / "spam.toml"


class LexiconError(Exception):
    """A problem with the spam lexicon, reported as one line naming the file."""


@dataclass(frozen=True)
class SpamLexicon:
    """Terms by weight, brand patterns, and the examples that must hold (see rules/lexicons).

    Frozen (tuples), so that compiled patterns can be cached per lexicon.
    """

    strong: tuple[str, ...]
    gambling: tuple[str, ...]
    web: tuple[str, ...]
    connectors: tuple[str, ...]
    brand_patterns: tuple[str, ...]
    spam_examples: tuple[str, ...] = ()
    clean_examples: tuple[str, ...] = ()
    origin: str = ""  # the file it was read from
    name: str = ""  # ... as a flag's evidence names it (`_name_in_folder`)

    @classmethod
    def load(cls, path: str | Path) -> SpamLexicon:
        file = Path(path)
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise LexiconError(f"{file}: cannot read spam lexicon: {exc}") from None

        def strings(section: str, key: str) -> tuple[str, ...]:
            value = data.get(section, {}).get(key, [])
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                raise LexiconError(f"{file}: [{section}] {key} should be a list of strings")
            return tuple(value)

        return cls(
            strong=strings("strong", "terms"),
            gambling=strings("gambling", "terms"),
            web=strings("web", "terms"),
            connectors=strings("connectors", "terms"),
            brand_patterns=strings("brand_patterns", "patterns"),
            spam_examples=strings("examples", "spam"),
            clean_examples=strings("examples", "clean"),
            origin=str(file),
            name=_name_in_folder(file),
        )


def _name_in_folder(file: Path) -> str:
    """A lexicon's name in its rule folder (`lexicons/spam.toml`), else its file name: what a
    flag's evidence names, the same wherever the rules lie (the shipped packs are in the
    installed package). The path itself made the same inputs and rules write other documents
    from another folder. Which lexicon it was the version records elsewhere: the rules digest
    covers a configured folder's lexicon; the shipped one, used when no configured folder has
    one, comes with curate's version."""
    tail = Path(*file.parts[-len(LEXICON_FILE.parts) :])
    return tail.as_posix() if tail == LEXICON_FILE else file.name


def find_lexicon(rule_folders: list[str] | tuple[str, ...], base: str | Path = ".") -> Path | None:
    """The first `<folder>/lexicons/spam.toml` among the configured rule folders."""
    for folder in rule_folders:
        candidate = Path(base) / folder / LEXICON_FILE
        if candidate.is_file():
            return candidate
    return None


def default_lexicon_path() -> Path:
    """The lexicon of the rule packs shipped with curate (used when no rule folder has one)."""
    from curate.rules import SHIPPED_RULES

    return SHIPPED_RULES / LEXICON_FILE


@dataclass
class TextBatch:
    """Texts joined end to end, so that per-character work runs once for all of them instead of
    once per text (numpy's per-call cost dominates on texts of a few hundred characters): their
    code points, the bigram symbol ids and surprise (computed when first asked for), and what
    detectors derive from them (`derived`, per kind, filled by the detector on first use)."""

    texts: list[str]
    starts: np.ndarray  # text i is [starts[i], starts[i + 1]) of the joined arrays
    codes: np.ndarray  # code point of every character (`curate.textutil.code_points`)
    model: BigramModel = field(repr=False)
    derived: dict[str, list[Any]] = field(default_factory=dict)
    _index: dict[int, int] = field(default_factory=dict, repr=False)
    _ids: np.ndarray | None = field(default=None, repr=False)
    _surprise: np.ndarray | None = field(default=None, repr=False)

    @classmethod
    def of(cls, texts: list[str], model: BigramModel) -> TextBatch:
        starts = np.zeros(len(texts) + 1, dtype=np.intp)
        np.cumsum([len(text) for text in texts], out=starts[1:])
        return cls(
            texts=list(texts),
            starts=starts,
            codes=code_points("".join(texts)),
            model=model,
            _index={id(text): i for i, text in enumerate(texts)},
        )

    @property
    def ids(self) -> np.ndarray:
        """Bigram-model symbol id of every character."""
        if self._ids is None:
            self._ids = self.model.ids_of_codes(self.codes)
        return self._ids

    @property
    def surprise(self) -> np.ndarray:
        """Bigram surprise of every character (each text starting after <bos>)."""
        if self._surprise is None:
            self._surprise = self.model.surprise_of_ids(self.ids, self.starts[:-1])
        return self._surprise

    def surprise_of(self, i: int, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Bigram surprise of text i's characters [start, stop) (offsets in the text, as a
        slice takes them): the batch's where computed, else those characters' own (the same
        values: each depends on its character and the one before, <bos> at a text's start).
        Few texts are asked about (spam and mojibake, for a span or two: 11% of the
        benchmark's characters as whole texts), and the garbage detector's pre-check does
        without the batch's."""
        span = self.span(i)
        if self._surprise is not None:
            return self._surprise[span][start:stop]
        chosen = range(span.start, span.stop)[start:stop]  # (in the batch, as a slice takes them)
        if not chosen:
            return np.zeros(0, dtype=np.float32)
        first, end = chosen.start, chosen.stop
        before = first - 1 if first > span.start else first  # (the character the first follows)
        codes = self.codes[before:end]
        ids = self._ids[before:end] if self._ids is not None else self.model.ids_of_codes(codes)
        return self.model.surprise_of_ids(ids, np.zeros(1, dtype=np.intp))[first - before :]

    def find(self, text: str) -> int | None:
        """Index of this very text object in the batch (None if it is not there)."""
        i = self._index.get(id(text))
        return i if i is not None and self.texts[i] is text else None

    def span(self, i: int) -> slice:
        return slice(int(self.starts[i]), int(self.starts[i + 1]))

    def classes(self, table: np.ndarray) -> np.ndarray:
        """`table[c]` (see `curate.textutil.char_table`) of every character c."""
        return table.take(self.codes)

    def per_text(self, positions: np.ndarray) -> np.ndarray:
        """How many of `positions` (sorted offsets in the joined texts) fall in each text."""
        return np.searchsorted(positions, self.starts[1:]) - np.searchsorted(positions, self.starts[:-1])

    def held(self, marks: np.ndarray) -> np.ndarray:
        """Per text, the bits of `marks` (from `classes`) some character of it has: one pass
        over the marked characters, whatever the number of bits."""
        marked = np.flatnonzero(marks != 0)  # (on a bool array: several times faster)
        owner = np.searchsorted(self.starts, marked, side="right") - 1
        held = np.zeros(len(self.texts), dtype=marks.dtype)
        np.bitwise_or.at(held, owner, marks[marked])
        return held

    def pair_starts(self, marks: np.ndarray, first: int, second: int) -> np.ndarray:
        """Positions (in the joined texts, ascending) of the characters with a bit of `first` in
        `marks` that come right before one with a bit of `second` in the same text."""
        starting = ((marks[:-1] & first) != 0) & ((marks[1:] & second) != 0)
        # A pair starting on a text's last character ends in the next text.
        last = self.starts[1:-1] - 1
        starting[last[(last >= 0) & (last < starting.size)]] = False
        return np.flatnonzero(starting)

    def within_texts(self, positions: np.ndarray, reach: int) -> np.ndarray:
        """Those of `positions` (in the joined texts) whose text goes on for `reach` more
        characters: what starts there and spans `reach` + 1 characters lies in one text."""
        ends = self.starts[1:] - 1  # the last character of each text (or -1, one before, if empty)
        owner = np.searchsorted(self.starts, positions, side="right") - 1
        return positions[positions + reach <= ends.take(owner)] if positions.size else positions

    def holding_pair(self, marks: np.ndarray, first: int, second: int) -> np.ndarray:
        """How many times, in each text, a character with a bit of `first` in `marks` comes
        right before one with a bit of `second` (pairs across two texts are not counted)."""
        return self.per_text(self.pair_starts(marks, first, second))


@dataclass
class DetectorContext:
    """What detectors share: thresholds, lexicon, model, and the per-text work (ids, surprise)
    of the current batch of texts (see `prepare`) or of the last text asked about."""

    lexicon: SpamLexicon
    model: BigramModel = field(default_factory=default_model)
    spam_min_score: int = 3
    spam_break_bits: float = 12.0
    garbage_window: int = 16
    garbage_min_bits: float = 17.0
    garbage_margin_bits: float = 8.0
    truncated_min_chars: int = 20
    _batch: TextBatch | None = field(default=None, repr=False)
    _single: TextBatch | None = field(default=None, repr=False)
    _located: tuple[str, TextBatch, int] | None = field(default=None, repr=False)

    def prepare(self, texts: list[str]) -> None:
        """Join `texts` into one batch: per-character work asked for one of these text objects
        is then done for all of them at once (until the next `prepare`). The results are the
        same as for each text alone: joining texts changes no value, only the number of numpy
        calls."""
        self._batch = TextBatch.of(texts, self.model)
        self._located = None

    def locate(self, text: str) -> tuple[TextBatch, int]:
        """The batch holding `text` and its index there (a batch of its own if not prepared).
        The last answer is kept until the batches change: the detectors ask about one text in
        turn (3-5 times a document)."""
        located = self._located
        if located is not None and located[0] is text:
            return located[1], located[2]
        for batch in (self._batch, self._single):
            if batch is not None and (i := batch.find(text)) is not None:
                self._located = (text, batch, i)
                return batch, i
        self._single = TextBatch.of([text], self.model)
        self._located = (text, self._single, 0)
        return self._single, 0

    def surprise(self, text: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Bigram surprise of the characters [start, stop) of `text` (all by default)."""
        batch, i = self.locate(text)
        return batch.surprise_of(i, start, stop)

    def derived(
        self, kind: str, text: str, compute: Callable[[TextBatch, DetectorContext], list]
    ) -> Any:
        """`compute(batch, ctx)[i]` for `text`: a detector's own per-text work, done once for
        every text of the batch holding it (see garbage.windows)."""
        batch, i = self.locate(text)
        if kind not in batch.derived:
            batch.derived[kind] = compute(batch, self)
        return batch.derived[kind][i]


Detector = Callable[[Document, DetectorContext], list[Flag]]


@cache
def detectors() -> dict[str, Detector]:
    """Kind -> detector function, in the order they run (built once: it is asked per document)."""
    from curate.detectors import garbage, mojibake, obfuscation, spam, splice, truncated

    return {
        "mojibake": mojibake.detect,
        "obfuscation": obfuscation.detect,
        "spam-injection": spam.detect,
        "splice": splice.detect,
        "truncated": truncated.detect,
        "garbage": garbage.detect,
    }


def overlaps(flag: Flag, others: list[Flag], same_kind_only: bool = True) -> bool:
    """Whether `flag` overlaps (or, for zero-width flags, touches) one of `others`."""
    for other in others:
        if same_kind_only and other.kind != flag.kind:
            continue
        if flag.start < other.end and other.start < flag.end:
            return True
        if (flag.start == flag.end or other.start == other.end) and (
            other.start <= flag.start <= other.end or flag.start <= other.start <= flag.end
        ):
            return True
    return False


# Kinds that only explain text no other flag explains: a seam already flagged as a splice is not
# also "truncated", and a mojibake span is not also "garbage" (a garbage window that merely
# contains a few U+FFFD flagged as mojibake is still reported).
DEFER_TO_OTHER_KINDS = frozenset({"truncated", "garbage"})


def mostly_explained(flag: Flag, others: list[Flag]) -> bool:
    """Whether flags of other kinds cover at least half of `flag` (or touch a zero-width one)."""
    if flag.end <= flag.start:
        return overlaps(flag, others, same_kind_only=False)
    covered = set()
    for other in others:
        if other.kind != flag.kind:
            covered.update(range(max(flag.start, other.start), min(flag.end, other.end)))
    return len(covered) * 2 >= flag.end - flag.start


def run_detectors(
    doc: Document, ctx: DetectorContext, kinds: list[str] | tuple[str, ...] = KINDS
) -> list[Flag]:
    """Flags from every enabled detector, skipping repeats of a same-kind flag already on `doc`."""
    found: list[Flag] = []
    for kind, detect in detectors().items():
        if kind not in kinds:
            continue
        defers = kind in DEFER_TO_OTHER_KINDS
        for flag in detect(doc, ctx):
            if overlaps(flag, doc.flags) or overlaps(flag, found):
                continue
            if defers and mostly_explained(flag, doc.flags + found):
                continue
            found.append(flag)
    found.sort(key=lambda f: (f.start, f.end, f.kind))
    return found
