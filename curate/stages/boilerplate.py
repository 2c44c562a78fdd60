"""Boilerplate: apply the rule packs (notices, disclaimers, footers, UI text, credit lines).

Scopes (see rules/README.md):
- `line`: the rule matches a whole line -> the line goes;
- `paragraph`: the rule matches inside a line -> the whole line goes (a notice paragraph);
- `inline`: the rule matches inside a line -> only the match goes (a credit in parentheses);
- `tail`: a footer rule. Tail lines only go as part of a footer block: a block starts at a line
  near the end (the last `tail_lines` non-blank lines) that an anchor tail rule, or a line/
  paragraph rule, matched, and grows up and down through neighbouring lines that some rule
  matched. A body line (no rule matches it) ends the block, so a body paragraph after a footer
  stays.

Precision first: the first rule (in pack order) that matches a line decides; allowlisted text is
never removed; a pattern that exceeds its time limit is reported (a warning for the writer and a
`rule-timeout` flag on the document), never silently skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from curate.config import setting
from curate.document import Change, Document, Flag
from curate.rules import (
    Rule,
    RuleSet,
    SearchWatch,
    TriggerHits,
    configured_folders,
    deadline_of,
    load_rules,
    nonblank_lines,
    time_left,
    watched_searches,
    whole_line_spans,
)
from curate.stages.base import DocumentStage, StageSettings

# Documents whose triggers are found in one scan (see `Boilerplate.run`).
SCAN_BATCH = 64


@dataclass
class BoilerplateSettings(StageSettings):
    """Rule packs: platform notices, disclaimers, site footers, page UI text, credit lines."""

    timeout_seconds: float = setting(
        5.0,
        "Time limit for one rule's pattern on one document; a rule that hits it is reported "
        "(generous: a normal rule takes milliseconds, and a busy machine must not change the output).",
    )
    tail_lines: int = setting(
        12, "Footer (tail) rules start a footer block only within this many last non-blank lines."
    )
    disable: list = setting([], "Rule ids or pack names not to apply.")


@dataclass
class _Hit:
    rule: Rule
    value: str
    anchor: str | None = None  # for tail lines removed as part of a block: the anchor rule id


class Boilerplate(DocumentStage):
    name = "boilerplate"
    Settings = BoilerplateSettings

    def __init__(self, settings: Any, context: Any) -> None:
        super().__init__(settings, context)
        self._rules: RuleSet | None = None
        self._by_scope: dict[tuple[str, ...], list[tuple[str, Rule]]] = {}

    @property
    def ruleset(self) -> RuleSet:
        """The rules the runner loaded, or (outside a run) the configured folders."""
        if self._rules is None:
            rules = self.context.rules
            if rules is None:
                rules = load_rules(configured_folders(self.context.config.run.rules))
                self.context.rules = rules
            self._rules = rules
        return self._rules

    def _scoped(self, scopes: tuple[str, ...]) -> list[tuple[str, Rule]]:
        """The rules of these scopes, in pack order, each with its id (computed once per rule
        set: `_Present.found` reads the ids of every rule for every document)."""
        cached = self._by_scope.get(scopes)
        if cached is None:
            cached = self._by_scope[scopes] = [(r.id, r) for r in self.ruleset.rules if r.scope in scopes]
        return cached

    # ------------------------------------------------------------------ main
    batch_documents = SCAN_BATCH

    def process_batch(self, docs: list[Document]) -> None:
        """The trigger scan runs on the whole batch (numpy's cost per call, not per character,
        dominates the scan of one short document)."""
        todo = [doc for doc in docs if doc.text.strip()]
        lines = [nonblank_lines(doc.text) for doc in todo]
        located = self.ruleset.trigger_index().locate_many([doc.text for doc in todo], lines)
        with watched_searches(self.settings.timeout_seconds) as watch:
            for doc, spans, hits in zip(todo, lines, located, strict=True):
                self._process(doc, spans, hits, watch)

    def process(self, doc: Document) -> None:
        if doc.text.strip():
            with watched_searches(self.settings.timeout_seconds) as watch:
                self._process(doc, nonblank_lines(doc.text), None, watch)

    def _process(
        self,
        doc: Document,
        lines: list[tuple[int, int]],
        hits: TriggerHits | None,
        watch: SearchWatch | None,
    ) -> None:
        """`process`, with the text's `nonblank_lines`, its triggers (found if None) and the
        searches' watch (None: `regex` keeps their time limit)."""
        text = doc.text
        line_text = [text[s:e] for s, e in lines]
        present = _Present(self, doc, text, self.settings.timeout_seconds, lines, line_text, hits, watch)

        decided: dict[int, _Hit] = {}
        # 1. line and paragraph rules, in pack order: the first rule that matches a line decides.
        # Only lines that may hold a match are tried (`candidates`, in order), and the whole-text
        # pre-check runs only once a line matched (a rule no line matches changes nothing whether
        # it is present or not).
        for rule in present.found(self._scoped(("line", "paragraph"))):
            if not present.maybe(rule):
                continue
            confirmed: bool | None = None
            for i in present.candidates(rule):
                if i in decided:
                    continue
                line = line_text[i]
                m = present.match(rule, line)
                if m is None:
                    break
                if not m:
                    continue
                if confirmed is None:
                    confirmed = present(rule, lines[i][0] + m.start())
                if not confirmed:
                    break
                if not self.ruleset.keeps(rule.id, line):
                    value = rule.value(m) if rule.meta_field else ""
                    if not rule.meta_field or value:
                        decided[i] = _Hit(rule, value)

        # 2. footer blocks near the end.
        self._tail(line_text, decided, present)

        # 3. inline rules inside the lines that stay.
        inline: dict[int, list[tuple[int, int, _Hit]]] = {}
        for rule in present.found(self._scoped(("inline",))):
            if not present.maybe(rule):
                continue
            confirmed = None
            for i in present.candidates(rule):
                if i in decided:
                    continue
                found = present.inline(rule, line_text[i])
                if found is None:
                    break
                if not found:
                    continue
                if confirmed is None:
                    confirmed = present(rule, lines[i][0] + found[0].start())
                if not confirmed:
                    break
                taken = inline.setdefault(i, [])
                for m in found:
                    if any(m.start() < e and s < m.end() for s, e, _ in taken):
                        continue
                    if self.ruleset.keeps(rule.id, m.group(0)):
                        continue
                    value = rule.value(m) if rule.meta_field else ""
                    if rule.meta_field and not value:
                        continue
                    taken.append((m.start(), m.end(), _Hit(rule, value)))
        # A line that inline removals leave empty goes as a whole line (no blank line left).
        for i, taken in sorted(inline.items()):
            if not taken:
                del inline[i]
                continue
            if _blank_without(line_text[i], taken) and all(h.rule.action != "flag" for _, _, h in taken):
                taken.sort(key=lambda t: t[0])
                decided[i] = taken[0][2]
                for _, _, hit in taken[1:]:
                    if hit.rule.meta_field:
                        doc.set_meta(hit.rule.meta_field, hit.value)
                del inline[i]

        self._apply(doc, lines, decided, inline)

    # ------------------------------------------------------------------ tail
    def _tail(self, line_text: list[str], decided: dict[int, _Hit], present: _Present) -> None:
        # No whole-text pre-check here: tail patterns start with a free prefix (search would try
        # every position) and only the last lines are looked at anyway.
        # A rule with no candidate line (none of its triggers in any line) cannot match: left out.
        tail_rules = [r for r in present.found(self._scoped(("tail",))) if present.usable(r) and present.anywhere(r)]
        if not tail_rules or not line_text:
            return
        cache: dict[int, _Hit | None] = {}

        def tail_hit(i: int) -> _Hit | None:
            if i not in cache:
                cache[i] = None
                for rule in tail_rules:
                    if not present.could(rule, i):
                        continue
                    m = present.match(rule, line_text[i])
                    if m and not self.ruleset.keeps(rule.id, line_text[i]):
                        value = rule.value(m) if rule.meta_field else ""
                        if not rule.meta_field or value:
                            cache[i] = _Hit(rule, value)
                            break
            return cache[i]

        n = len(line_text)
        zone = range(max(0, n - self.settings.tail_lines), n)
        anchors = []
        for i in zone:
            if i in decided:
                if decided[i].rule.action == "drop":
                    anchors.append((i, decided[i].rule.id))
                continue
            hit = tail_hit(i)
            if hit is not None and hit.rule.anchor:
                anchors.append((i, hit.rule.id))
        block: dict[int, str] = {}
        for start, anchor_id in anchors:
            for step in (-1, 1):
                i = start
                while 0 <= i < n:
                    if i in decided:
                        pass
                    elif tail_hit(i) is not None:
                        block.setdefault(i, anchor_id)
                    else:
                        break
                    i += step
        for i, anchor_id in block.items():
            if i not in decided:
                hit = tail_hit(i)
                assert hit is not None
                decided[i] = _Hit(hit.rule, hit.value, anchor=anchor_id)

    # ------------------------------------------------------------------ edits
    def _apply(
        self,
        doc: Document,
        lines: list[tuple[int, int]],
        decided: dict[int, _Hit],
        inline: dict[int, list[tuple[int, int, _Hit]]],
    ) -> None:
        changes: list[Change] = []
        flags: list[Flag] = []
        removed = {i for i, hit in decided.items() if hit.rule.action != "flag"}
        spans = whole_line_spans(doc.text, lines, removed)
        for i, hit in sorted(decided.items()):
            start, end = lines[i]
            if hit.rule.action == "flag":
                flags.append(self._flag(doc, hit, start, end))
                continue
            cut_start, cut_end = spans[i]
            changes.append(self._change(doc, hit, cut_start, cut_end))
        for i, taken in sorted(inline.items()):
            offset = lines[i][0]
            for s, e, hit in sorted(taken, key=lambda t: t[0]):
                if hit.rule.action == "flag":
                    flags.append(self._flag(doc, hit, offset + s, offset + e))
                else:
                    changes.append(self._change(doc, hit, offset + s, offset + e))
        for flag in flags:  # before apply, which moves flags to follow the text
            doc.add_flag(flag)
        if changes:
            doc.apply(self.name, changes)

    def _change(self, doc: Document, hit: _Hit, start: int, end: int) -> Change:
        rule = hit.rule
        evidence: dict[str, Any] = {"pack": rule.pack, "scope": rule.scope}
        if hit.anchor and hit.anchor != rule.id:
            evidence["footer_anchor"] = hit.anchor
        action = "drop"
        if rule.meta_field:
            doc.set_meta(rule.meta_field, hit.value)
            evidence["value"] = hit.value
            action = rule.action
        return Change(start, end, "", rule.id, rule.reason, action=action, kind=rule.kind, evidence=evidence)

    def _flag(self, doc: Document, hit: _Hit, start: int, end: int) -> Flag:
        return Flag(
            kind=hit.rule.kind, start=start, end=end, text=doc.text[start:end], reason=hit.rule.reason,
            severity="info", detector=f"{self.name}/{hit.rule.id}", evidence={"pack": hit.rule.pack},
        )


def found_in_text(pattern: Any, text: str, start: int, timeout: float | None) -> bool:
    """`pattern.search(text) is not None` (a `regex` pattern), searched first from `start`
    (where the pattern matched in one of the text's lines): a match found from there is one of
    the whole text (`^`, `\\A`, lookbehinds and `\\b` see the text before it; not `\\G`,
    which matches where a search starts: such a pattern is searched whole), most often the
    line's own, found without scanning the text before it again. On the benchmark every one of
    the boilerplate stage's 2,406 checks was true, and the searches from the text's start took
    46 ms of the stage's 360 (credit.photo.reporter, whose match ends a paragraph, 55 us a
    text). Where nothing is found from `start`, the whole text is searched. The two searches
    share `timeout` (`rules.deadline_of`): where the first runs out of time, so has the check
    (`TimeoutError`, as a whole search that ran out). A match found from `start` within the
    limit confirms the rule even where a search of the whole text would have run out first.
    """
    if 0 < start < len(text) and "\\G" not in pattern.pattern:
        deadline = deadline_of(timeout)
        if pattern.search(text, start, timeout=time_left(deadline)) is not None:
            return True
        return pattern.search(text, timeout=time_left(deadline)) is not None
    return pattern.search(text, timeout=timeout) is not None


class _Present:
    """Per-document rule evaluation with the time limit, reporting every timeout once.

    `present(rule)` is a cheap pre-check (one search over the whole text): most rules are absent
    from most documents, so they are skipped without looking at each line. Before that search,
    the rule set's trigger index (one literal scan of the text for all rules, see
    curate.rules.TriggerIndex) rules out the rules none of whose required strings occur: their
    search could not match, so it is not run. The same scan says in which lines each rule's
    triggers occur (`TriggerHits`): `candidates(rule)` / `could(rule, i)` answer from that,
    without looking at each (rule, line) pair.

    The time limit (`limit` seconds of CPU a search, or the searches of a line or pre-check that
    share one) is kept by `watch` where the stage armed one (`rules.watched_searches`), else by
    `regex` (`timeout`, None when watched).
    """

    def __init__(
        self,
        stage: Boilerplate,
        doc: Document,
        text: str,
        timeout: float,
        lines: list[tuple[int, int]],
        line_text: list[str],
        hits: TriggerHits | None = None,
        watch: SearchWatch | None = None,
    ) -> None:
        self.stage = stage
        self.doc = doc
        self.text = text
        self.limit = timeout
        self.watch = watch
        self.timeout = None if watch is not None else timeout
        self.lines = lines
        self.line_text = line_text
        self.disabled = set(stage.settings.disable)
        self.timed_out: set[str] = set()
        self._present: dict[str, bool] = {}
        # Where the rules' triggers occur in the text: one scan for all rules.
        self.hits: TriggerHits = hits if hits is not None else stage.ruleset.trigger_index().locate(text, lines)
        self._widths: list[int] | None = None

    def found(self, rules: list[tuple[str, Rule]]) -> list[Rule]:
        """Those of `rules` (in order, with their ids) one of whose triggers occurs in the text
        (or without any)."""
        ids = self.hits.rules
        return [rule for rule_id, rule in rules if rule_id in ids]

    @property
    def widths(self) -> list[int]:
        """Length of each line without surrounding whitespace (what `max_len` limits)."""
        if self._widths is None:
            self._widths = [len(line.strip()) for line in self.line_text]
        return self._widths

    def maybe(self, rule: Rule) -> bool:
        """Not disabled, not timed out, and some trigger of the rule occurs in the text."""
        if rule.id in self.disabled or rule.pack in self.disabled or rule.id in self.timed_out:
            return False
        return rule.id in self.hits.rules

    def candidates(self, rule: Rule) -> list[int]:
        """Indices, in order, of the lines the rule may match in: not too long for its `max_len`
        and holding one of its triggers (every line for a rule without triggers). Exactly the
        lines for which `could` is true."""
        found = self.hits.lines(rule.id)
        order = range(len(self.line_text)) if found is None else sorted(found)
        limit = rule.max_len
        if limit is None:
            return list(order)
        widths = self.widths
        return [i for i in order if widths[i] <= limit]

    def could(self, rule: Rule, i: int) -> bool:
        """False when the rule cannot match in line `i` (too long, or none of its triggers)."""
        if rule.max_len is not None and self.widths[i] > rule.max_len:
            return False
        found = self.hits.lines(rule.id)
        return found is None or i in found

    def anywhere(self, rule: Rule) -> bool:
        """Whether one of the rule's triggers occurs in some line (for a rule without triggers:
        whether there is a line). `max_len` is not looked at."""
        if rule.id not in self.hits.rules:
            return False
        found = self.hits.lines(rule.id)
        return bool(self.line_text if found is None else found)

    def __call__(self, rule: Rule, start: int = 0) -> bool:
        """Whether the rule's pattern matches somewhere in the text; `start`: where it matched in
        a line, in the text, from where the search is tried first (`found_in_text`)."""
        if rule.id in self.disabled or rule.pack in self.disabled:
            return False
        if rule.id not in self._present:
            if rule.id not in self.hits.rules:
                self._present[rule.id] = False
                return False
            found = self._searched(rule, found_in_text, rule.pattern, self.text, start, self.timeout)
            self._present[rule.id] = bool(found)
        return self._present[rule.id] and rule.id not in self.timed_out

    def usable(self, rule: Rule) -> bool:
        """Not disabled and not timed out (without the whole-text pre-check)."""
        return not (rule.id in self.disabled or rule.pack in self.disabled or rule.id in self.timed_out)

    def match(self, rule: Rule, line: str) -> Any:
        """The rule's match in the line, False if none, None if the rule timed out (stop)."""
        if rule.id in self.timed_out:
            return None
        found = self._searched(rule, rule.match_line, line, self.timeout)
        return found or (None if rule.id in self.timed_out else False)

    def inline(self, rule: Rule, line: str) -> list[Any] | None:
        """The rule's matches in the line, None if the rule timed out (stop)."""
        if rule.id in self.timed_out:
            return None
        return self._searched(rule, rule.iter_inline, line, self.timeout)

    def _searched(self, rule: Rule, search: Any, *args: Any) -> Any:
        """`search(*args)` within the time limit (watched, or given `timeout`); None if the rule
        ran out of time (reported)."""
        watch = self.watch
        try:
            if watch is not None:
                watch.enter()
            return search(*args)
        except TimeoutError:
            self._timeout(rule)
            return None
        finally:
            if watch is not None:
                # (stored here, not by `watch.leave()`: a call's entry is where CPython runs a
                # pending handler, and a tick there would raise out of this `finally`)
                watch.inside = False

    def _timeout(self, rule: Rule) -> None:
        if rule.id in self.timed_out:
            return
        self.timed_out.add(rule.id)
        message = (
            f"rule {rule.id} ({rule.file}) timed out after "
            f"{self.limit}s and was not applied to this document"
        )
        self.doc.warnings.append(message)  # on the document: it survives worker processes
        self.doc.add_flag(
            Flag(
                kind="rule-timeout", start=0, end=0, text="", reason=message, severity="warning",
                detector=f"{self.stage.name}/{rule.id}", evidence={"rule": rule.id, "file": rule.file},
            )
        )


def _blank_without(line: str, taken: list[tuple[int, int, Any]]) -> bool:
    """Whether `line` is blank once the spans `taken` (start, end, ...; not overlapping) are
    cut out of it: the text between them read, not the line copied a character at a time
    (7 us for a line of 226 characters, against 0.7)."""
    cursor = 0
    for start, end, _ in sorted(taken, key=itemgetter(0)):
        if line[cursor:start].strip():
            return False
        cursor = max(cursor, end)
    return not line[cursor:].strip()
