"""spam-injection: a gambling-site phrase spliced into a sentence, replacing real words.

Example (sample 003): 民族ld体育中国官方网站宣传月 — the span is exactly `ld体育中国官方网站`.

Why several signals and not a keyword list: 体育, 彩票, 官方网站 are everyday news words.
A candidate is a maximal run of lexicon terms and Latin/digit runs (`rules/lexicons/spam.toml`)
that contains a gambling word (a [strong] or [gambling] term or a brand pattern). It scores:
- lexicon: 2 for a strong term or brand shape, 1 per gambling or web term, capped at 2 — the
  list alone can never reach the threshold of 3;
- glued: a lower-case Latin/digit run (a site code, not an acronym like CCTV5) that starts the
  phrase right after a Han character (`民族ld体育`, `作为js333金沙`), or sits between two
  terms: pages do not write site codes into the middle of words;
- reads-broken: the phrase sits inside a Han run and the character after it does not follow
  the phrase's last character in clean prose (bigram surprise >= `spam_break_bits`), i.e. the
  sentence no longer reads once the phrase is in it;
- repeated: the phrase has a strong term and occurs two or more times (injectors replace a
  keyword everywhere in a page).
A candidate scoring at least `spam_min_score` (3) is flagged.

Speed: gambling words are rare, so they are found first with one literal alternation (the
standard `re` module scans those at ~100 MB/s) and the chain is only matched around them. Even
that scan is skipped for a text in which no gambling word can occur: one where the first two
characters of none stand next to each other, those of a Latin word after no letter or digit
(`_prechecks`, looked up for a whole batch of texts at once; 4,344 of the benchmark's 5,123
texts have no such pair, and 4,052 when `le` or `be` inside English words counted too).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from functools import cache

import numpy as np
import regex

from curate import patterncache
from curate.detectors import DetectorContext, SpamLexicon, TextBatch
from curate.document import Document, Flag
from curate.textutil import char_table

LATIN_RUN = r"(?<![A-Za-z0-9])[A-Za-z0-9]{1,12}(?![A-Za-z0-9])"
HAN = regex.compile(r"\p{Han}")
CHAIN_REACH = 40  # characters around an anchor searched for the whole chain


@cache
def _compiled(
    lexicon: SpamLexicon,
) -> tuple[
    list[tuple[re.Pattern | None, re.Pattern]], regex.Pattern, regex.Pattern, dict[str, int]
]:
    """(anchor regexes with their pre-checks, chain regex, token regex, term -> weight)."""
    weights: dict[str, int] = {}
    for weight, terms in (
        (0, lexicon.connectors),
        (1, lexicon.web),
        (1, lexicon.gambling),
        (2, lexicon.strong),
    ):
        for term in terms:
            weights[term] = weight
    anchors = _anchor_words(lexicon)
    # Han anchors as a plain alternation (fast literal scan); Latin ones need word boundaries.
    by_length = sorted(anchors, key=lambda t: (-len(t), t))
    han = "|".join(re.escape(t) for t in by_length if not t.isascii())
    latin = "|".join(re.escape(t) for t in by_length if t.isascii())
    # (pre-check, pattern): the pattern runs only on texts the pre-check finds something in.
    # The Latin pattern opens with a look-behind, which keeps `re` from skipping ahead to the
    # possible first letters, so the bare alternation (a superset of its matches) goes first.
    anchor_res: list[tuple[re.Pattern | None, re.Pattern]] = (
        [(None, patterncache.compile_re(han))] if han else []
    )
    if latin:
        anchor_res.append(
            (re.compile(latin), re.compile(f"(?<![A-Za-z0-9])(?:{latin})(?![A-Za-z0-9])"))
        )
    term_alt = "|".join(_literal(t) for t in sorted(weights, key=lambda t: (-len(t), t)))
    brand_alt = "|".join(f"(?:{p})" for p in lexicon.brand_patterns) or "(?!)"
    # (Long alternations of the lexicon's terms: compiled once, then read from the cache.)
    token_re = patterncache.compile(
        f"(?P<brand>{brand_alt})|(?P<term>{term_alt})|(?P<latin>{LATIN_RUN})"
    )
    chain_re = patterncache.compile(f"(?:{brand_alt}|{_first_of(weights)}(?:{term_alt})|{LATIN_RUN})+")
    return anchor_res, chain_re, token_re, weights


def _first_of(terms: Iterable[str]) -> str:
    """A look-ahead for the first characters of `terms`, put before their alternation in the
    chain regex: where no term can start (most positions of a window), one class test instead
    of a hundred literals tried in turn (by hand, the benchmark's 755 windows, 9 alternated
    rounds: 43-53 -> 15-20 ms). It fails only where every term would, and the alternation's
    order is kept, so the chains are the same."""
    firsts = sorted({term[0] for term in terms if term})
    return f"(?=[{''.join(regex.escape(c) for c in firsts)}])" if firsts else ""


@cache
def _anchor_words(lexicon: SpamLexicon) -> frozenset[str]:
    """The gambling words a candidate chain must hold one of: [strong] and [gambling] terms."""
    return frozenset(lexicon.strong) | frozenset(lexicon.gambling)


# Classes of `_precheck_table`: the first character of a gambling word, its second, the whole of
# a one-character one.
_ANCHOR_FIRST, _ANCHOR_SECOND, _ANCHOR_WHOLE = (1 << bit for bit in range(3))


@cache
def _precheck_table(lexicon: SpamLexicon) -> np.ndarray:
    """The classes of `_prechecks` for this lexicon's gambling words, by code point."""
    anchors = _anchor_words(lexicon)
    firsts = "".join(sorted({t[0] for t in anchors if len(t) > 1}))
    seconds = "".join(sorted({t[1] for t in anchors if len(t) > 1}))
    wholes = "".join(sorted(t for t in anchors if len(t) == 1))
    return char_table([firsts, seconds, wholes])


def _pair_keys(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """One int64 per pair of code points (code points are below 2**21)."""
    return (first.astype(np.int64) << 21) | second


@cache
def _anchor_openings(lexicon: SpamLexicon) -> tuple[np.ndarray, np.ndarray]:
    """`_pair_keys` of the first two characters of every gambling word, sorted, and for each
    whether only Latin words open with it (their pattern wants no letter or digit before)."""
    words = [word for word in _anchor_words(lexicon) if len(word) > 1]
    openings = _pair_keys(np.array([ord(w[0]) for w in words], np.int64), np.array([ord(w[1]) for w in words], np.int64))
    latin_only: dict[int, bool] = {}
    for key, word in zip(openings.tolist(), words, strict=True):
        latin_only[key] = latin_only.get(key, True) and word.isascii()
    keys = sorted(latin_only)
    return np.array(keys, dtype=np.int64), np.array([latin_only[k] for k in keys], dtype=bool)


def _prechecks(batch: TextBatch, ctx: DetectorContext) -> list[bool]:
    """Per text of `batch`: whether a gambling word may occur in it, i.e. the first two
    characters of one are next to each other somewhere, those of a Latin word after no letter
    or digit (or a one-character word is there). A text without that has no anchor, so no
    candidate: `candidates` would return nothing."""
    marks = batch.classes(_precheck_table(ctx.lexicon))
    # A first character of some word followed by a second one of some word, in one text...
    at = batch.pair_starts(marks, _ANCHOR_FIRST, _ANCHOR_SECOND)
    # ...that are the first two of the same word...
    keys = _pair_keys(batch.codes.take(at), batch.codes.take(at + 1))
    openings, latin_only = _anchor_openings(ctx.lexicon)  # (never empty when `at` is not)
    found = np.searchsorted(openings, keys).clip(max=max(openings.size - 1, 0))
    if at.size:
        kept = openings.take(found) == keys
        # ...those only Latin words open with, after no letter or digit (a few a batch).
        latin = kept & latin_only.take(found)
        kept[latin] = _starts_word(batch, at[latin])
        at = at[kept]
    wholes = batch.held(marks & _ANCHOR_WHOLE)
    return ((batch.per_text(at) > 0) | (wholes != 0)).tolist()


def _starts_word(batch: TextBatch, at: np.ndarray) -> np.ndarray:
    """Per position (in the joined texts): whether no ASCII letter or digit is before it in its
    text (`LATIN_RUN`'s and the Latin anchors' look-behind)."""
    starts = batch.starts
    first = starts.take(np.searchsorted(starts, at).clip(max=starts.size - 1)) == at
    before = batch.codes.take(at - 1)  # (at 0: the last code, but `first` holds there)
    folded = before | 0x20  # (A-Z onto a-z, and nothing else onto them)
    letter = (folded >= ord("a")) & (folded <= ord("z"))
    digit = (before >= ord("0")) & (before <= ord("9"))
    return first | ~(letter | digit)


def _literal(term: str) -> str:
    """A term as a regex; Latin terms must not be part of a longer Latin word."""
    escaped = re.escape(term)
    if term.isascii():
        return f"(?<![A-Za-z0-9]){escaped}(?![A-Za-z0-9])"
    return escaped


def candidates(text: str, lexicon: SpamLexicon) -> list[tuple[int, int, dict]]:
    """(start, end, info) of every chain of lexicon terms that contains a gambling word."""
    anchor_res, chain_re, token_re, weights = _compiled(lexicon)
    gambling_words = _anchor_words(lexicon)
    spans: dict[tuple[int, int], None] = {}
    anchors = [
        m
        for precheck, anchor_re in anchor_res
        if precheck is None or precheck.search(text)
        for m in anchor_re.finditer(text)
    ]
    for anchor in sorted(anchors, key=lambda m: m.start()):
        lo = max(0, anchor.start() - CHAIN_REACH)
        hi = min(len(text), anchor.end() + CHAIN_REACH)
        for match in chain_re.finditer(text, lo, hi):
            # Chains come in order and do not overlap: the first to end after the anchor's start
            # is the only one that may hold it, and no later one does.
            if match.end() > anchor.start():
                if match.start() <= anchor.start():
                    spans[match.span()] = None
                break
    out = []
    for start, end in sorted(spans):
        tokens = []
        pos = start
        while pos < end:
            tok = token_re.match(text, pos, end)
            if tok is None:  # cannot happen: a chain is made of tokens
                break
            tokens.append((tok.lastgroup or "term", tok.group()))
            pos = tok.end()
        strong = [t for k, t in tokens if k == "brand" or (k == "term" and weights.get(t) == 2)]
        weak = [t for k, t in tokens if k == "term" and weights.get(t) == 1]
        if not strong and not any(t in gambling_words for t in weak):
            continue
        latin = [t for _, t in tokens if t.isascii()]
        out.append((start, end, {"strong": strong, "weak": weak, "latin": latin, "tokens": tokens}))
    return out


def detect(doc: Document, ctx: DetectorContext) -> list[Flag]:
    text = doc.text
    if not ctx.derived("spam", text, _prechecks):
        return []
    found = candidates(text, ctx.lexicon)
    if not found:
        return []
    phrase_counts = Counter(text[s:e] for s, e, _ in found)
    flags = []
    for start, end, info in found:
        phrase = text[start:end]
        lexicon_points = min(2, 2 * len(info["strong"]) + len(info["weak"]))
        before = text[start - 1] if start > 0 else ""
        after = text[end] if end < len(text) else ""
        glued = _brand_code(info["tokens"][0][1]) and bool(HAN.match(before))
        glued = glued or _code_between_terms(info["tokens"])
        broken_bits = 0.0
        if HAN.match(before) and HAN.match(after):
            broken_bits = float(ctx.surprise(text, end, end + 1)[0])
        broken = broken_bits >= ctx.spam_break_bits
        repeated = bool(info["strong"]) and phrase_counts[phrase] >= 2
        score = lexicon_points + int(glued) + int(broken) + int(repeated)
        if score < ctx.spam_min_score:
            continue
        signals = [
            n
            for n, on in (("glued", glued), ("reads-broken", broken), ("repeated", repeated))
            if on
        ]
        flags.append(
            Flag(
                kind="spam-injection",
                start=start,
                end=end,
                text=phrase,
                reason=f"gambling-spam phrase spliced into the text ({', '.join(signals)})",
                severity="warning",
                detector="spam",
                evidence={
                    "score": score,
                    "strong": info["strong"],
                    "terms": info["weak"],
                    "latin": info["latin"],
                    "signals": signals,
                    "break_bits": round(broken_bits, 2),
                    "occurrences": phrase_counts[phrase],
                    "lexicon": ctx.lexicon.name,
                },
            )
        )
    return flags


def _brand_code(token: str) -> bool:
    """A Latin/digit token written like a site code (ld, js333, bt365), not an acronym (CCTV5).

    Upper-case acronyms (NBA, CCTV5, GDP) are everyday in news; spam codes are lower case.
    """
    return token.isascii() and not any(c.isupper() for c in token)


def _code_between_terms(tokens: list[tuple[str, str]]) -> bool:
    """A site code with lexicon terms on both sides (体育xx官网)."""
    for i in range(1, len(tokens) - 1):
        if (
            _brand_code(tokens[i][1])
            and not tokens[i - 1][1].isascii()
            and not tokens[i + 1][1].isascii()
        ):
            return True
    return False
