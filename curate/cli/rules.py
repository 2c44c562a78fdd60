"""CLI commands for rules: `curate rules list`, `curate rules test`, `curate review`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import tomli_w

from curate import config as config_module
from curate.cli.common import fail, rich_console
from curate.rules import (
    ALLOWLIST_FILE,
    BUILTIN_RULE_IDS,
    SHIPPED_RULES,
    RuleError,
    RuleSet,
    configured_folders,
    load_rules,
    normalise_for_compare,
)


def rule_folders(config_path: str | None, rules_dirs: tuple[str, ...]) -> list[Path]:
    """--rules DIR (repeatable) if given, else run.rules of the configuration."""
    if rules_dirs:
        return [Path(d) for d in rules_dirs]
    try:
        cfg = config_module.load(config_path)
    except config_module.ConfigError as exc:
        fail(str(exc))
    return configured_folders(cfg.run.rules)


def load(config_path: str | None, rules_dirs: tuple[str, ...]) -> RuleSet:
    try:
        return load_rules(rule_folders(config_path, rules_dirs))
    except RuleError as exc:
        fail(str(exc))


def rules_options(func: Any) -> Any:
    func = click.option(
        "--rules", "rules_dirs", multiple=True, type=click.Path(), metavar="DIR",
        help="Rules folder (repeatable; default: run.rules of the configuration).",
    )(func)
    return click.option(
        "--config", "config_path", type=click.Path(dir_okay=False), default=None,
        help="Configuration file (default: ./curate.toml, else [tool.curate] in ./pyproject.toml).",
    )(func)


@click.group("rules")
def rules_group() -> None:
    """Rule packs: list them, test their examples."""


@rules_group.command("list")
@rules_options
@click.option("--pack", "pack_filter", default=None, help="Only this pack.")
def list_rules(config_path: str | None, rules_dirs: tuple[str, ...], pack_filter: str | None) -> None:
    """Show the packs and their rules (id, scope, action, description, examples)."""
    ruleset = load(config_path, rules_dirs)
    from rich.table import Table

    console = rich_console(no_color=not sys.stdout.isatty(), soft_wrap=not sys.stdout.isatty())
    packs = [p for p in ruleset.packs if pack_filter in (None, p.name)]
    if pack_filter and not packs:
        fail(f"no pack named {pack_filter!r} (packs: {', '.join(p.name for p in ruleset.packs)})")
    for pack in packs:
        table = Table(title=f"{pack.name} — {pack.description}  ({pack.file})", title_justify="left")
        for column in ("id", "scope", "action"):
            table.add_column(column, no_wrap=True)
        table.add_column("description", overflow="fold")
        table.add_column("examples", no_wrap=True)
        for rule in pack.rules:
            table.add_row(
                rule.id, rule.scope, rule.action, rule.description,
                f"+{len(rule.must_match)} -{len(rule.must_not_match)}",
            )
        console.print(table)
    console.print(
        f"{len(ruleset.rules)} rules in {len(ruleset.packs)} packs, "
        f"{len(ruleset.allowlist)} allowlist entries; digest {ruleset.digest()[:16]}"
    )


@rules_group.command("test")
@rules_options
def test_rules(config_path: str | None, rules_dirs: tuple[str, ...]) -> None:
    """Run every rule's examples and the allowlist; exit 1 on any failure."""
    ruleset = load(config_path, rules_dirs)
    failures = ruleset.test()
    examples = sum(len(r.must_match) + len(r.must_not_match) for r in ruleset.rules)
    for failure in failures:
        click.echo(f"FAIL {failure}")
    summary = (
        f"{len(ruleset.rules)} rules, {examples} examples, "
        f"{len(ruleset.allowlist)} allowlist entries: "
    )
    if failures:
        click.echo(summary + f"{len(failures)} failed")
        sys.exit(1)
    click.echo(summary + "all pass")


@click.command("review")
@rules_options
@click.option("--keep", "keep_text", default=None, help="Text that was wrongly removed and must be kept.")
@click.option("--rule", "rule_id", default=None, help="The rule that removed it (default: every rule).")
@click.option("--note", default="", help="Why it is kept (for the next maintainer).")
@click.option("--list", "list_entries", is_flag=True, help="Show the allowlist entries.")
def review(
    config_path: str | None,
    rules_dirs: tuple[str, ...],
    keep_text: str | None,
    rule_id: str | None,
    note: str,
    list_entries: bool,
) -> None:
    """Record a wrong removal: the next run keeps TEXT, and `curate rules test` checks it.

    The entry goes to allowlist.toml in the first rules folder (`--rules DIR` to choose).
    `curate.rules.review_command(text, rule)` gives the command for a report to print.
    """
    ruleset = load(config_path, rules_dirs)
    if list_entries:
        for entry in ruleset.allowlist:
            click.echo(f"{entry.file}: rule={entry.rule or '*'} text={entry.text!r} note={entry.note!r}")
        click.echo(f"{len(ruleset.allowlist)} entries")
        return
    if keep_text is None:
        fail("review: give --keep TEXT (or --list)")
    if len(normalise_for_compare(keep_text)) < 4:
        fail("review: --keep text is too short to review safely (at least 4 visible characters)")
    if rule_id is not None and ruleset.get(rule_id) is None and rule_id not in BUILTIN_RULE_IDS:
        fail(f"review: unknown rule {rule_id!r} (see `curate rules list`)")
    if ruleset.folders == [SHIPPED_RULES] and not rules_dirs:
        # (no rules/ here: the allowlist would go into curate's own packs, shared by every
        # project and, installed, overwritten by the next upgrade)
        fail(
            f"review: no rules folder here to keep the entry in (the run uses the packs shipped "
            f"with curate, {SHIPPED_RULES}): name one with --rules DIR, or copy those packs to ./rules"
        )
    target = ruleset.folders[0] / ALLOWLIST_FILE
    key = normalise_for_compare(keep_text)
    for entry in ruleset.allowlist:
        if entry.key == key and entry.rule == rule_id:
            click.echo(f"already kept in {entry.file}")
            return
    entry: dict[str, str] = {"text": keep_text}
    if rule_id:
        entry["rule"] = rule_id
    if note:
        entry["note"] = note
    # (one `[[keep]]` table per entry, written as such: tomli-w 1.2 writes a one-element list
    # of tables as `keep = [{...}]`, which a second entry appended would define again)
    block = "[[keep]]\n" + tomli_w.dumps(entry)
    existing = target.read_text(encoding="utf-8") if target.is_file() else ""
    separator = "" if not existing or existing.endswith("\n\n") else ("\n" if existing.endswith("\n") else "\n\n")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(existing + separator + block, encoding="utf-8")
    try:  # the file must still load (a bad edit by hand would show here, not in the next run)
        reloaded = load_rules(ruleset.folders)
    except RuleError as exc:
        target.write_text(existing, encoding="utf-8")
        fail(f"review: not recorded: {exc}")
    failures = [
        f for f in reloaded.test()
        if f.check == "allowlist" and normalise_for_compare(f.example) == key
    ]
    click.echo(f"kept in {target}: {keep_text!r}" + (f" (rule {rule_id})" if rule_id else " (all rules)"))
    if failures:
        click.echo(
            f"note: {len(failures)} rule(s) still match this text; `curate rules test` fails until "
            "they are fixed: " + ", ".join(sorted({f.rule for f in failures}))
        )


def register(group: click.Group) -> None:
    group.add_command(rules_group)
    group.add_command(review)
