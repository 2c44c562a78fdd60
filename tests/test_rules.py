"""The rules engine and its CLI: loading, one-line errors, examples, variants, digest, review."""

from __future__ import annotations

import datetime
import functools
import os
import shutil
import string
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

import pytest
import regex
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from curate import rules as rules_module
from curate.cli import main
from curate.rules import (
    SHIPPED_RULES,
    RuleError,
    configured_folders,
    expand_variants,
    load_rules,
    review_command,
)

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "rules"

GOOD_RULE = """
[[rule]]
id = "x.one"
description = "a rule"
scope = "line"
action = "drop"
pattern = '我要评论'
must_match = ["我要评论"]
must_not_match = ["我要评论一下"]
"""


def pack_folder(tmp_path: Path, body: str, name: str = "p.toml") -> Path:
    folder = tmp_path / "rules"
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(body, encoding="utf-8")
    return folder


def test_shipped_packs_load_and_every_example_passes() -> None:
    rules = load_rules([RULES])
    assert len(rules) >= 40
    assert {r.scope for r in rules.rules} == {"line", "paragraph", "inline", "tail"}
    assert rules.test() == []
    for rule in rules.rules:
        assert rule.must_match and rule.must_not_match, rule.id


def test_each_rule_example_is_checked_individually() -> None:
    """A rule that matched nothing, or everything, would fail its own examples."""
    rules = load_rules([RULES])
    for rule in rules.rules:
        for example in rule.must_match:
            assert rule.check(example.text) is not None, (rule.id, example.text)
        for example in rule.must_not_match:
            assert rule.check(example.text) is None, (rule.id, example.text)


BROKEN = [
    ("bad toml", "[[rule]\nid = 'x'", "not valid TOML"),
    ("bad regex", GOOD_RULE.replace("'我要评论'", "'我要(评论'"), "rule x.one: bad regex"),
    ("unknown action", GOOD_RULE.replace('"drop"', '"delete"'), "rule x.one: unknown action 'delete'"),
    ("unknown scope", GOOD_RULE.replace('"line"', '"page"'), "rule x.one: unknown scope 'page'"),
    ("duplicate id", GOOD_RULE + GOOD_RULE, "rule x.one: duplicate id"),
    ("missing examples", GOOD_RULE.replace('must_match = ["我要评论"]', ""), "rule x.one: missing examples"),
    ("unknown key", GOOD_RULE.replace("scope =", "scop = 1\nscope ="), "rule x.one: unknown key(s) scop"),
    ("meta without group", GOOD_RULE.replace('"drop"', '"meta:author"'), "rule x.one: a meta action needs a capture group"),
    ("missing id", GOOD_RULE.replace('id = "x.one"', ""), "rule #1: missing or bad id"),
    ("pattern and literals", GOOD_RULE.replace("pattern =", 'literals = ["a"]\npattern ='), "exactly one of pattern or literals"),
    ("skip not a list", GOOD_RULE.replace("scope =", 'skip_lines_with = "。"\nscope ='), "skip_lines_with should be a list of non-empty strings"),
    ("skip an empty string", GOOD_RULE.replace("scope =", 'skip_lines_with = [""]\nscope ='), "skip_lines_with should be a list of non-empty strings"),
]


@pytest.mark.parametrize(("case", "body", "expected"), BROKEN, ids=[c[0] for c in BROKEN])
def test_broken_pack_gives_one_line_naming_file_and_rule(tmp_path: Path, case: str, body: str, expected: str) -> None:
    folder = pack_folder(tmp_path, body)
    with pytest.raises(RuleError) as info:
        load_rules([folder])
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(folder / "p.toml") + ":")
    assert expected in message


def test_duplicate_id_across_packs_names_both_files(tmp_path: Path) -> None:
    pack_folder(tmp_path, GOOD_RULE, "a.toml")
    folder = pack_folder(tmp_path, GOOD_RULE, "b.toml")
    with pytest.raises(RuleError, match=r"b\.toml: rule x\.one: duplicate id \(first defined in .*a\.toml\)"):
        load_rules([folder])


def test_allowlist_naming_an_unknown_rule_is_an_error(tmp_path: Path) -> None:
    folder = pack_folder(tmp_path, GOOD_RULE)
    (folder / "allowlist.toml").write_text('[[keep]]\ntext = "我要评论"\nrule = "nope"\n', encoding="utf-8")
    with pytest.raises(RuleError, match="allowlist.toml: entry #1: names unknown rule 'nope'"):
        load_rules([folder])


def test_no_folder_named_is_the_local_rules_else_the_shipped_packs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`run.rules` left empty (the default): `rules/` where curate runs, else the packs shipped
    with curate, the same rules as naming them. Named folders are taken as given."""
    monkeypatch.chdir(tmp_path)
    assert configured_folders([]) == [SHIPPED_RULES]
    assert load_rules(configured_folders([])).digest() == load_rules([RULES]).digest()
    pack_folder(tmp_path, GOOD_RULE)
    assert configured_folders([]) == [Path("rules")]
    assert [r.id for r in load_rules(configured_folders([])).rules] == ["x.one"]
    assert configured_folders(["mine", "rules"]) == [Path("mine"), Path("rules")]


@pytest.mark.parametrize("named", ["myrules", "rules", "./rules", "rules/"])
def test_a_named_folder_that_is_missing_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, named: str
) -> None:
    """Even one named `rules`: a project's configuration run from the wrong folder must not
    fall back to other rules than its own."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RuleError, match="rules folder not found$"):
        load_rules(configured_folders([named]))


def test_a_wheel_ships_the_rule_packs_in_the_package(tmp_path: Path) -> None:
    """What `setup.py build_py` puts in a wheel holds the packs, and that package, with no
    repository beside it, loads them as its default rules: the same rules as the repository's.
    The sdist carries `rules/` (MANIFEST.in), from which a wheel is built."""
    build, metadata = tmp_path / "build", tmp_path / "egg"
    metadata.mkdir()
    stale = build / "curate" / "shipped_rules" / "99_removed_since.toml"
    stale.parent.mkdir(parents=True)
    stale.write_text(GOOD_RULE, encoding="utf-8")
    subprocess.run(
        [sys.executable, "setup.py", "-q", "egg_info", "--egg-base", str(metadata),
         "build_py", "--build-lib", str(build), "sdist", "--dist-dir", str(tmp_path)],
        cwd=ROOT, check=True, capture_output=True,
    )  # fmt: skip
    packs = sorted(p.relative_to(RULES) for p in RULES.rglob("*.toml"))
    shipped = build / "curate" / "shipped_rules"
    assert sorted(p.relative_to(shipped) for p in shipped.rglob("*.toml")) == packs
    (sdist,) = tmp_path.glob("curate-*.tar.gz")
    with tarfile.open(sdist) as archive:
        in_sdist = sorted(
            Path(*Path(name).parts[2:]) for name in archive.getnames()
            if Path(name).parts[1:2] == ("rules",) and name.endswith(".toml")
        )  # fmt: skip
    assert in_sdist == packs
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    probe = (
        "from curate.rules import SHIPPED_RULES, configured_folders, load_rules; "
        "print(SHIPPED_RULES); print(load_rules(configured_folders([])).digest())"
    )
    env = {**os.environ, "PYTHONPATH": str(build), "CURATE_PURE_PYTHON": "1"}
    found = subprocess.run(
        [sys.executable, "-c", probe], cwd=elsewhere, env=env, check=True, capture_output=True, text=True
    ).stdout.split()
    assert found == [str(shipped), load_rules([RULES]).digest()]


def test_subfolders_are_data_not_packs(tmp_path: Path) -> None:
    folder = pack_folder(tmp_path, GOOD_RULE)
    (folder / "lexicons").mkdir()
    (folder / "lexicons" / "spam.toml").write_text("not = [a rule pack", encoding="utf-8")
    rules = load_rules([folder])
    assert [r.id for r in rules.rules] == ["x.one"]


def test_failing_examples_are_reported(tmp_path: Path) -> None:
    body = GOOD_RULE.replace('must_not_match = ["我要评论一下"]', 'must_not_match = ["我要评论"]')
    body = body.replace('must_match = ["我要评论"]', 'must_match = ["发表评论"]')
    failures = load_rules([pack_folder(tmp_path, body)]).test()
    assert sorted(f.check for f in failures) == ["must_match", "must_not_match"]
    assert all("x.one" in str(f) and "\n" not in str(f) for f in failures)


def test_variants_match_traditional_and_half_width() -> None:
    pattern = regex.compile(expand_variants("（来源：(?P<value>[^）]+)）"))
    assert pattern.fullmatch("(來源:蘭州日報)").group("value") == "蘭州日報"
    assert pattern.fullmatch("（来源：兰州日报）")
    # Ranges and escapes are left alone; classes gain the variants.
    assert expand_variants(r"[一-龥]\p{Han}[网]") == r"[一-龥]\p{Han}[网網]"
    assert regex.compile(expand_variants(r"[^网]")).fullmatch("網") is None


def test_digest_follows_content_not_comments(tmp_path: Path) -> None:
    folder = pack_folder(tmp_path, GOOD_RULE)
    first = load_rules([folder]).digest()
    (folder / "p.toml").write_text("# a comment\n" + GOOD_RULE, encoding="utf-8")
    assert load_rules([folder]).digest() == first
    (folder / "p.toml").write_text(GOOD_RULE.replace("a rule", "another rule"), encoding="utf-8")
    assert load_rules([folder]).digest() != first
    (folder / "lexicons").mkdir()
    (folder / "lexicons" / "words.txt").write_text("词", encoding="utf-8")
    assert load_rules([folder]).digest() not in (first,)


def test_rule_files_are_read_as_tomllib_parses_them_cached_or_not(tmp_path: Path) -> None:
    # The parsed packs are kept between runs (by the text's SHA-256): the first read (parsed,
    # stored) and the next (from the cache) give what tomllib gives, for the shipped packs and
    # for a file with data JSON would not give back as it is (a date: parsed every time).
    files = sorted(RULES.glob("*.toml"))
    dated = pack_folder(tmp_path, GOOD_RULE.replace("[[rule]]", "[pack]\nsince = 2024-05-01\n\n[[rule]]"))
    files.append(dated / "p.toml")
    for _ in range(2):
        for file in files:
            assert rules_module._read_toml(file) == tomllib.loads(file.read_text(encoding="utf-8")), file
    assert isinstance(rules_module._read_toml(dated / "p.toml")["pack"]["since"], datetime.date)
    # A file changed in place is read as it is now, and kept once however often it changes.
    folder = pack_folder(tmp_path, GOOD_RULE)
    assert load_rules([folder]).rules[0].description == "a rule"
    for n in range(5):
        (folder / "p.toml").write_text(GOOD_RULE.replace("a rule", f"rule {n}"), encoding="utf-8")
        assert load_rules([folder]).rules[0].description == f"rule {n}"
    memo = rules_module._memo("rule-files")
    assert sum(str(tmp_path) in argument for argument in memo._loaded()) == 1
    # Each read is an object of its own: a caller's change is not the next read's data.
    first = rules_module._read_toml(folder / "p.toml")
    first["rule"].append({"id": "changed"})
    assert rules_module._read_toml(folder / "p.toml") == tomllib.loads((folder / "p.toml").read_text(encoding="utf-8"))
    # What is kept for the file that is not its data (a cache file edited by hand) is not read.
    memo.keep(str((folder / "p.toml").resolve()), memo._loaded()[str((folder / "p.toml").resolve())][0], "42")
    assert rules_module._read_toml(folder / "p.toml")["rule"][0]["description"] == "rule 4"


# --------------------------------------------------------------------------- CLI
def test_cli_rules_test_and_list() -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["rules", "test", "--rules", str(RULES)])
    assert result.exit_code == 0, result.output
    assert "all pass" in result.output
    listing = runner.invoke(main, ["rules", "list", "--rules", str(RULES)])
    assert listing.exit_code == 0
    assert "notice.selfmedia.zh" in listing.output and "footer.icp" in listing.output


def test_cli_rules_test_exits_1_listing_each_failure(tmp_path: Path) -> None:
    body = GOOD_RULE.replace('must_match = ["我要评论"]', 'must_match = ["发表评论", "查看评论"]')
    result = CliRunner().invoke(main, ["rules", "test", "--rules", str(pack_folder(tmp_path, body))])
    assert result.exit_code == 1
    assert result.output.count("FAIL ") == 2


def test_cli_broken_pack_exits_2_with_one_line(tmp_path: Path) -> None:
    folder = pack_folder(tmp_path, GOOD_RULE.replace('"drop"', '"delete"'))
    result = CliRunner().invoke(main, ["rules", "test", "--rules", str(folder)])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0 and "unknown action" in result.output


def test_cli_rules_folder_from_config(tmp_path: Path) -> None:
    folder = pack_folder(tmp_path, GOOD_RULE)
    config = tmp_path / "curate.toml"
    config.write_text(f'[run]\nrules = ["{folder.as_posix()}"]\n', encoding="utf-8")
    result = CliRunner().invoke(main, ["rules", "list", "--config", str(config)])
    assert result.exit_code == 0 and "x.one" in result.output


def test_review_records_a_keep_and_rules_test_gains_it(tmp_path: Path) -> None:
    folder = tmp_path / "rules"
    shutil.copytree(RULES, folder, ignore=shutil.ignore_patterns("README.md"))
    runner = CliRunner()
    result = runner.invoke(
        main,
        ["review", "--rules", str(folder), "--keep", "转载请注明出处", "--rule", "disclaimer.reprint_line",
         "--note", "title of a column"],
    )
    assert result.exit_code == 0, result.output
    assert "still match" in result.output
    rules = load_rules([folder])
    (entry,) = rules.allowlist
    assert (entry.text, entry.rule, entry.note) == ("转载请注明出处", "disclaimer.reprint_line", "title of a column")
    assert rules.keeps("disclaimer.reprint_line", "转载请注明出处")
    assert "# Reviewed text" in (folder / "allowlist.toml").read_text(encoding="utf-8")  # comments kept
    tested = runner.invoke(main, ["rules", "test", "--rules", str(folder)])
    assert tested.exit_code == 1 and "allowlist" in tested.output
    again = runner.invoke(main, ["review", "--rules", str(folder), "--keep", "转载请注明出处", "--rule", "disclaimer.reprint_line"])
    assert again.exit_code == 0 and "already kept" in again.output
    assert len(load_rules([folder]).allowlist) == 1
    other = runner.invoke(main, ["review", "--rules", str(folder), "--keep", "本站部分信息由相关部门提供"])
    assert other.exit_code == 0, other.output
    assert [e.text for e in load_rules([folder]).allowlist] == ["转载请注明出处", "本站部分信息由相关部门提供"]


def test_review_without_a_rules_folder_here_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where a run would use the shipped packs, `review` refuses in one line rather than
    write into curate's own packs (shared by every project, replaced by an upgrade)."""
    monkeypatch.chdir(tmp_path)
    allowlist = SHIPPED_RULES / "allowlist.toml"
    before = allowlist.read_bytes()
    result = CliRunner().invoke(main, ["review", "--keep", "转载请注明出处"])
    assert result.exit_code == 2
    assert "review: no rules folder here" in result.output and "--rules DIR" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert allowlist.read_bytes() == before
    assert not (tmp_path / "rules").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--keep", "正文里的一句话", "--rule", "no.such.rule"], "unknown rule"),
        ([], "give --keep"),
        (["--keep", "  a "], "too short"),
    ],
)
def test_review_usage_errors_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    folder = pack_folder(tmp_path, GOOD_RULE)
    result = CliRunner().invoke(main, ["review", "--rules", str(folder), *args])
    assert result.exit_code == 2 and message in result.output
    assert not (folder / "allowlist.toml").exists()


def test_review_command_for_reports_is_shell_quoted() -> None:
    assert review_command("版权所有 'x'", "footer.copyright") == (
        "curate review --keep '版权所有 '\"'\"'x'\"'\"'' --rule footer.copyright"
    )
    assert review_command("a b") == review_command("a b", "") == "curate review --keep 'a b'"
    assert review_command("ab", "x y") == "curate review --keep ab --rule 'x y'"


# --------------------------------------------------------------------------- trigger pre-filter
def test_triggers_are_required_strings_of_the_pattern() -> None:
    from curate.rules import fold, pattern_triggers

    def triggers(pattern: str) -> set[str] | None:
        found = pattern_triggers(regex.compile(expand_variants(pattern), regex.MULTILINE))
        return None if found is None else set(found)

    assert len(triggers("我要评论")) == 1  # one string, its S/T spellings folded together
    assert len(triggers("(?:版权所有|免责声明)[：:]")) == 2
    assert triggers(r"\p{Han}{2,4}") is None  # nothing literal
    assert triggers("(?:记者)?张三|李四") is not None
    assert triggers("(?:记者)?|李四") is None  # a branch that needs nothing
    # Case-insensitive ASCII letters are literals, folded with every character they match
    # (simple case folding); under full case folding (ß matches "ss") or a locale they are not.
    assert triggers("(?i)copyright") == {fold("copyright")} == {fold("COPYRİGHT")}
    assert triggers("(?if)copyright") is None
    assert triggers("(?i)straße") == {fold("stra")}  # ß is no ASCII letter: not a literal
    assert triggers("(?x)(?(DEFINE)(?P<w> 记者 ))(?&w)") is not None  # calls resolve
    assert triggers(r"\X+") is None  # not a literal: nothing required
    assert triggers(r"a\Xbc") == {"bc"}


def test_case_twins_are_every_character_an_ascii_letter_matches_without_case() -> None:
    from curate.rules import fold

    everything = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000)
    for letter in string.ascii_letters:
        matched = set(regex.findall("(?i)" + letter, everything))
        assert {fold(c) for c in matched} == {fold(letter)}, letter


def test_trigger_index_never_rules_out_a_matching_rule() -> None:
    rules = load_rules([RULES])
    index = rules.trigger_index()
    for rule in rules.rules:
        for example in rule.must_match:
            assert rule.id in index.maybe(example.text), (rule.id, example.text)
            # and in a longer text, in the other script and with a neighbour line
            assert rule.id in index.maybe("正文第一段。\n" + example.text + "\n"), rule.id


INLINE_CREDIT = """
[[rule]]
id = "x.credit"
description = "a credit"
scope = "inline"
action = "meta:author"
pattern = '^[ ]*作者：(?P<value>\\p{Han}{2,3})$'
skip_lines_with = SKIP
must_match = [{ text = "作者：王小明", value = "王小明" }]
must_not_match = ["作者们说了很多"]
"""


def test_a_line_holding_a_skip_string_is_not_searched(tmp_path: Path) -> None:
    # The author's word is taken at search time (here it is wrong: " 作者：王小明" matches the
    # pattern; `rules test` says so, see the next test).
    rule = load_rules([pack_folder(tmp_path, INLINE_CREDIT.replace("SKIP", '["。", " "]'))]).rules[0]
    assert rule.skip_lines_with == ("。", " ")
    assert [m.group("value") for m in rule.iter_inline("作者：王小明")] == ["王小明"]
    assert rule.iter_inline(" 作者：王小明") == [] and rule.match_line(" 作者：王小明") is None
    assert [m.group("value") for m in rule.iter_inline(" 作者：王小明", skip=False)] == ["王小明"]
    assert rule.match_line(" 作者：王小明", skip=False) is not None
    assert rule.check(" 作者：王小明") is None and rule.check(" 作者：王小明", skip=False) is not None


def test_rules_test_takes_skip_lines_with_at_its_word_only_where_it_holds(tmp_path: Path) -> None:
    # A full stop at the start, middle or end of the example stops the pattern (anchored at
    # both ends of the line): the claim holds. A space does not: at the start the pattern
    # allows it, so that variant matches and is reported; in the middle or at the end it does not.
    holds = load_rules([pack_folder(tmp_path, INLINE_CREDIT.replace("SKIP", '["。"]'))])
    assert holds.test() == []
    (tmp_path / "rules" / "p.toml").unlink()
    wrong = load_rules([pack_folder(tmp_path, INLINE_CREDIT.replace("SKIP", '[" "]'))])
    failures = wrong.test()
    assert failures and {f.check for f in failures} == {"skip_lines_with"}
    assert [f.example for f in failures] == [" 作者：王小明"]  # only the variant that still matches
    assert all("\n" not in str(f) and "x.credit" in str(f) for f in failures)
    # each line of an example is tried alone: a string in one line says nothing of the others
    (tmp_path / "rules" / "p.toml").unlink()
    two_lines = INLINE_CREDIT.replace("SKIP", '["。"]').replace('text = "作者：王小明"', 'text = "前言。\\n作者：王小明"')
    assert load_rules([pack_folder(tmp_path, two_lines)]).test() == []
    # an example holding the string contradicts the claim: it no longer matches
    (tmp_path / "rules" / "p.toml").unlink()
    contradiction = INLINE_CREDIT.replace("SKIP", '["王"]')
    assert {f.check for f in load_rules([pack_folder(tmp_path, contradiction)]).test()} >= {"must_match"}


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_the_multi_author_credit_never_matches_a_line_with_a_full_stop(data: st.DataObject) -> None:
    """What credit.multi.author's skip_lines_with says: no line holding 。 is made only of
    credits. Lines built from its own examples (which it matches) and credit-like pieces, with
    a full stop put anywhere, searched without the skip."""
    rule = _multi_author()
    pieces = [e.text for e in rule.must_match] + ["作者：", "记者", "通讯员", "编辑：", "来源：", " ", "、", "（", "）", "王小明", "示例日报"]
    parts = data.draw(st.lists(st.sampled_from(pieces), min_size=1, max_size=5))
    line = "".join(parts)
    at = data.draw(st.integers(0, len(line)))
    held = line[:at] + "。" + line[at:]
    assert rule.iter_inline(held, skip=False) == []


@functools.cache
def _multi_author():
    return next(r for r in load_rules([RULES]).rules if r.id == "credit.multi.author")
