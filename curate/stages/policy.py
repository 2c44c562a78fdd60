"""Per-kind policy for flags: keep and report, drop the span, drop the sentence, or quarantine.

Actions (setting `actions`, kind -> action; kinds not listed use `default_action`):
- `flag`: keep the text and report the span (the default for every kind: for spam injections and
  splices the original words cannot be recovered, so removing the span would not give them back);
- `drop-span`: remove exactly the flagged characters;
- `drop-sentence`: remove the sentence(s) the flag touches;
- `quarantine`: the whole document goes to the version's quarantine file, text untouched, with
  its flags and a one-line reason — never silently gone.
A document whose flags cover more than `quarantine_share` of its characters is quarantined too.

What becomes of a flag whose text is removed: it stays in `doc.flags`, collapsed to zero width
at the place the text was (so the report can still show where it was), keeping its original
`text`, with `evidence["policy"]` set to the action. The removal itself is an ordinary edit
(stage "policy", rule "policy.<kind>", kind = the flag's kind) whose evidence lists the flags
it acted on, so the removed text can always be put back from the edit log.
"""

from __future__ import annotations

from dataclasses import dataclass

from curate.config import setting
from curate.document import QUARANTINED, Change, Document, Flag
from curate.stages.base import DocumentStage, StageSettings
from curate.textutil import sentence_spans

ACTIONS = ("flag", "drop-span", "drop-sentence", "quarantine")


@dataclass
class PolicySettings(StageSettings):
    """What happens to flagged spans, per kind."""

    actions: dict = setting(
        {
            "spam-injection": "flag",
            "splice": "flag",
            "mojibake": "flag",
            "truncated": "flag",
            "garbage": "flag",
            "obfuscation": "flag",
        },
        "Kind -> flag | drop-span | drop-sentence | quarantine.",
    )
    default_action: str = setting("flag", "Action for kinds not listed in `actions`.")
    quarantine_share: float = setting(
        0.3, "Quarantine a document whose flags cover more than this share of its characters."
    )


class Policy(DocumentStage):
    """Applies the configured action to every flag of a document."""

    name = "policy"
    Settings = PolicySettings

    def __init__(self, settings: PolicySettings, context) -> None:
        super().__init__(settings, context)
        for kind, action in {
            **settings.actions,
            "(default_action)": settings.default_action,
        }.items():
            if action not in ACTIONS:
                raise ValueError(
                    f"[policy] actions.{kind}: unknown action {action!r} (known: {', '.join(ACTIONS)})"
                )

    def action_for(self, kind: str) -> str:
        return self.settings.actions.get(kind, self.settings.default_action)

    def process(self, doc: Document) -> None:
        flags = [f for f in doc.flags if f.end > f.start]
        if not flags:
            return
        quarantining = [f for f in flags if self.action_for(f.kind) == "quarantine"]
        if quarantining:
            kinds = sorted({f.kind for f in quarantining})
            quarantine(
                doc, f"policy: quarantine for {', '.join(kinds)} ({len(quarantining)} span(s))"
            )
            return
        share = covered_share(doc.text, flags)
        if share > self.settings.quarantine_share:
            quarantine(
                doc,
                f"policy: flags cover {share:.0%} of the text (more than "
                f"{self.settings.quarantine_share:.0%})",
            )
            return
        self._drop(doc, flags)

    def _drop(self, doc: Document, flags: list[Flag]) -> None:
        """Remove the spans (or sentences) of flags whose action drops text, as one batch."""
        wanted: list[tuple[int, int, Flag, str]] = []
        for flag in flags:
            action = self.action_for(flag.kind)
            if action == "drop-span":
                wanted.append((flag.start, flag.end, flag, action))
            elif action == "drop-sentence":
                start, end = enclosing_sentences(doc.text, flag.start, flag.end)
                wanted.append((start, end, flag, action))
        if not wanted:
            return
        wanted.sort(key=lambda w: (w[0], w[1]))
        merged: list[list] = []  # [start, end, [(flag, action), ...]]
        for start, end, flag, action in wanted:
            if merged and start < merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
                merged[-1][2].append((flag, action))
            else:
                merged.append([start, end, [(flag, action)]])
        changes = []
        for start, end, acted in merged:
            first_flag, first_action = acted[0]
            for flag, action in acted:
                flag.evidence = {**(flag.evidence or {}), "policy": action}
            changes.append(
                Change(
                    start,
                    end,
                    "",
                    rule=f"policy.{first_flag.kind}",
                    reason=f"{first_action} for {first_flag.kind}: {first_flag.reason}",
                    kind=first_flag.kind,
                    evidence={"flags": [f.to_json() for f, _ in acted]},
                )
            )
        doc.apply("policy", changes)


def quarantine(doc: Document, reason: str) -> None:
    doc.status = QUARANTINED
    doc.status_reason = reason


def covered_share(text: str, flags: list[Flag]) -> float:
    """Share of the text's characters inside at least one flag."""
    if not text:
        return 0.0
    covered = 0
    cursor = 0
    for flag in sorted(flags, key=lambda f: (f.start, f.end)):
        start = max(flag.start, cursor)
        if flag.end > start:
            covered += flag.end - start
            cursor = flag.end
    return covered / len(text)


def enclosing_sentences(text: str, start: int, end: int) -> tuple[int, int]:
    """The span of the sentence(s) of `text` that overlap [start, end), within its line."""
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    line_end = len(text) if line_end == -1 else line_end
    sentence_start, sentence_end = start, end
    for s, e in sentence_spans(text, line_start, line_end):
        if s < end and start < e:
            sentence_start = min(sentence_start, s)
            sentence_end = max(sentence_end, e)
    return sentence_start, sentence_end
