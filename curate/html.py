"""HTML input: decode a scraped page and find its article, keeping a record of what is chrome.

Scraped files are often whole web pages. `decode_html` turns the bytes into text without trusting
a `<meta charset>` that lies; `extract_article` turns the page into its *visible* text, one
paragraph per block (`<p>`, `<div>`, `<li>`, `<br>`, table cells ...; inline elements such as
`<a>`, `<span>`, `<b>` never break a sentence), paragraphs joined by a blank line. Nothing visible
is thrown away here: page chrome (navigation, headers and footers, share widgets, related-article
lists, comments, ads, disclaimers, anything outside the article body) stays in `Article.text` and
is listed in `Article.drops` with the element path and a reason. Ingest applies the drops as edits
(kind `html-chrome`), so the report can show why a block is missing and the input can always be
rebuilt. Only what a reader never sees (`<script>`, `<style>`, `<noscript>`, `<template>`, form
controls, elements hidden with `hidden` or `display:none`, comments) contributes no text at all.

Finding the article: every paragraph gets a weight: positive for prose (enough characters, few
link characters, sentence punctuation), negative for link lists, bylines and short fragments.
Elements are marked as chrome by tag (`nav`, `aside`, `footer`, `header`), ARIA role, CSS
hiding, class/id words (share, copyright, disclaimer, recommend, related, footer, comment,
NetEase's `post_statement` ...) or by shape (a list of look-alike items each holding a link
line: menus, "related news", teaser streams). The article body is the element whose subtree has
the largest summed weight, prose inside chrome counting slightly against. Inside the body,
chrome is still dropped, and so are the non-prose fragments before its first and after its last
prose paragraph (headline, byline, like buttons). If believing every chrome mark leaves no real
article (a page that wraps everything in `div.breadcrumb`, WeChat hiding the article until a
script runs), marks on elements that hold most of the prose are not believed. If most of the
chosen body's prose follows a link-only line (a teaser list: linked headline, summary) and the
heading that carries the page title sits elsewhere with real prose around it (a short article
beside a video player), the element around the title is the article.

Credit lines are not chrome: short paragraphs that are only a credit (`责任编辑：X`, `（来源：X）`,
`原标题：X`, `记者 X`, `X 摄`, `原文链接：URL`; Simplified or Traditional) next to the first or
last kept paragraph stay in the text, even outside the body element, so that the boilerplate
stage moves them into metadata. Bylines with a date are read into `Article.meta` and dropped.

`Article.meta` fields: `published`, `author`, `source`, `url` (canonical), `site`; from
JSON-LD, `<meta>` tags and `<link rel=canonical>`, else from byline lines near the article start.

Parser: BeautifulSoup with lxml.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import charset_normalizer
import regex
from bs4 import BeautifulSoup, NavigableString, Tag
from bs4.element import PreformattedString

# ----------------------------------------------------------------------------- decoding

_BOMS = (
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)
# Chinese legacy encodings: decode with the superset so that characters outside GB2312 survive.
_GB_FAMILY = {"gb2312", "gbk", "gb18030", "cp936", "euc_cn", "euc-cn", "x-gbk", "hz"}
_DECLARED_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)


def _canonical_encoding(name: str) -> str:
    """Python codec name for an encoding label, widening the GB family to gb18030."""
    label = name.strip().lower().replace("_", "-")
    if label in _GB_FAMILY or label.replace("-", "_") in _GB_FAMILY:
        return "gb18030"
    if label in {"big5", "big5-hkscs", "cp950"}:
        return "big5hkscs"
    return label


def declared_charset(data: bytes) -> str | None:
    """The charset a page declares in its first 4 KB (`<meta charset>` or http-equiv), if any."""
    match = _DECLARED_CHARSET.search(data[:4096])
    return match.group(1).decode("ascii", "replace") if match else None


def decode_html(data: bytes) -> tuple[str, str]:
    """Decode a page's bytes; returns (text, encoding name).

    Byte-level evidence comes first because declarations lie: many Chinese pages declare gb2312
    and are UTF-8. Order: a byte-order mark; bytes that are valid UTF-8 (GBK text is almost never
    valid UTF-8, so this test is safe); the declared charset if the bytes decode under it without
    error; charset-normalizer's guess; finally gb18030 with replacement characters, which keeps
    every byte visible for the repair stages. GB2312/GBK are always decoded as gb18030.
    """
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return data.decode(codec, errors="replace"), codec
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    declared = declared_charset(data)
    if declared:
        codec = _canonical_encoding(declared)
        if codec not in {"utf-8", "utf8"}:
            try:
                return data.decode(codec), codec
            except (UnicodeDecodeError, LookupError):
                pass
    best = charset_normalizer.from_bytes(data).best()
    if best is not None:
        codec = _canonical_encoding(best.encoding)
        try:
            return data.decode(codec), codec
        except (UnicodeDecodeError, LookupError):
            pass
    return data.decode("gb18030", errors="replace"), "gb18030"


# ----------------------------------------------------------------------------- the result


@dataclass(frozen=True, slots=True)
class Drop:
    """A span of `Article.text` that is page chrome, with the element it came from and why."""

    start: int
    end: int
    path: str
    reason: str


@dataclass(slots=True)
class Article:
    """A page's visible text as paragraphs, which spans of it are chrome, title and metadata."""

    title: str | None
    meta: dict[str, str] = field(default_factory=dict)
    text: str = ""
    drops: list[Drop] = field(default_factory=list)


def extracted_text(article: Article) -> str:
    """The article text: `article.text` without its drops (what ingest's edits leave)."""
    pieces = []
    cursor = 0
    for drop in article.drops:
        pieces.append(article.text[cursor : drop.start])
        cursor = drop.end
    pieces.append(article.text[cursor:])
    return "".join(pieces)


# ----------------------------------------------------------------------------- tag classes

# Elements whose content a reader never sees as text.
_INVISIBLE = frozenset(
    "script style noscript template head title meta link base select option optgroup textarea "
    "input button datalist iframe frame frameset object embed applet svg canvas audio video "
    "source track map area param progress meter".split()
)
# Elements that start and end a paragraph (CSS display: block, list-item, table parts).
_BLOCK = frozenset(
    "address article aside blockquote body center dd details dialog dir div dl dt fieldset "
    "figcaption figure footer form h1 h2 h3 h4 h5 h6 header hgroup hr html legend li main menu "
    "nav ol p pre section summary table caption thead tbody tfoot tr td th ul".split()
)
_CHROME_TAGS = {
    "nav": "navigation (<nav>)",
    "aside": "side box (<aside>)",
    "footer": "footer (<footer>)",
    "header": "page header (<header>)",
    "menu": "menu (<menu>)",
    "dialog": "dialog (<dialog>)",
}
_CHROME_ROLES = {
    "navigation": "navigation (role)",
    "banner": "page banner (role)",
    "contentinfo": "page footer (role)",
    "complementary": "side box (role)",
    "search": "search box (role)",
    "menu": "menu (role)",
    "menubar": "menu (role)",
    "dialog": "dialog (role)",
}
# class/id words that mark chrome. Long words match inside a token ("bdshare", "sharebox");
# short ones only as a whole token ("ad" must not match "head" or "adapt").
_CHROME_SUBSTRINGS = (
    ("share", "share widget"),
    ("fenxiang", "share widget"),
    ("copyright", "copyright notice"),
    ("banquan", "copyright notice"),
    ("disclaimer", "disclaimer"),
    ("mianze", "disclaimer"),
    ("statement", "statement / notice"),
    ("recommend", "recommended articles"),
    ("tuijian", "recommended articles"),
    ("related", "related articles"),
    ("relevant", "related articles"),
    ("xiangguan", "related articles"),
    ("footer", "footer"),
    ("comment", "comments"),
    ("pinglun", "comments"),
    ("breadcrumb", "breadcrumb navigation"),
    ("crumbs", "breadcrumb navigation"),
    ("sidebar", "sidebar"),
    ("advert", "advertisement"),
    ("guanggao", "advertisement"),
    ("qrcode", "QR code"),
    ("erweima", "QR code"),
    ("toolbar", "toolbar"),
    ("navbar", "navigation"),
    ("subscribe", "subscription box"),
    ("login", "login box"),
    ("popup", "pop-up"),
    ("hotnews", "popular articles"),
    ("pagination", "page links"),
    ("reflist", "reference list"),
    ("navbox", "navigation box"),
    ("player", "media player controls"),
)
_CHROME_TOKENS = {
    "ad": "advertisement",
    "ads": "advertisement",
    "adv": "advertisement",
    "gg": "advertisement",
    "nav": "navigation",
    "menu": "menu",
    "header": "page header",
    "foot": "footer",
    "side": "sidebar",
    "hot": "popular articles",
    "rank": "popular articles",
    "ranking": "popular articles",
    "search": "search box",
    "social": "share widget",
    "sns": "share widget",
    "tags": "tag list",
    "pager": "page links",
    "references": "reference list",
}
_TOKEN_SPLIT = re.compile(r"[^a-z0-9]+")
# Atomic-CSS utility classes ("Trs($adTranslate)", "D(f)!") describe looks, not roles.
_WORDLIKE_CLASS = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.I)

# ----------------------------------------------------------------------------- text helpers

# Characters between which a source line break renders as nothing (CSS Text 3 segment breaks):
# Han, kana and full-width forms. Korean uses spaces, so Hangul is not listed.
_WIDE = r"\p{Han}\p{Hiragana}\p{Katakana}\u3000-\u303f\uff00-\uffef"
_SEGMENT_BREAK = regex.compile(rf"(?<=[{_WIDE}])[ \t\r\f]*\n[ \t\n\r\f]*(?=[{_WIDE}])")
_SPACE_RUN = re.compile(r"[ \t\n\r\f]+")
_EDGE_SPACE = " \t\n\r\f\u00a0\u3000"
# Sentence punctuation: evidence that a paragraph is prose, not a menu.
# ASCII marks count only before a space or the end ("18,652.59" is not prose).
_PROSE_PUNCT = re.compile(r"[，。！？；：、“”]|[,.!?;:](?=\s|$)")
# Words that make a short line a byline or credit: author, source, views, editor, date label.
_BYLINE_MARK = regex.compile(
    r"(?:作者|来源|來源|编辑|編輯|责编|浏览|阅读数|发布时间|发布于|發布時間|时间)\s*[:：丨|｜]"
)
# Han characters or several space-separated words: not an id, a hash or a URL.
_WORDS = regex.compile(r"\p{Han}|\S\s+\S+\s+\S+\s+\S")
_NONSPACE = re.compile(r"\S")

# A credit line: a short paragraph that is nothing but a credit (editor, source, author, original
# title, link to the original, photo credit), Simplified or Traditional, full- or half-width
# colon, optionally in brackets. Kept in the text next to the article body so the boilerplate
# stage can move it into metadata. A line with a date is a byline (read here into meta, dropped).
_CREDIT_OPEN = r"^[(（\[【]?\s*"
_CREDIT_CLOSE = r"\s*[)）\]】]?\s*$"
_CREDIT_LINE = regex.compile(
    "|".join(
        (
            # 责任编辑：X, 来源：X, 作者/X, 图片来源：X, （来源：X 编辑：Y）
            _CREDIT_OPEN
            + r"(?:(?:本文|文章|稿件|新闻|新聞|信息|資訊|图片|圖片|照片)?(?:来源|來源|稿源|出处|出處)"
            r"|(?:责任|責任|网络|網絡|本期|实习|實習|值班|新媒体|新媒體)?(?:编辑|編輯)|责编|責編"
            r"|(?:本报|本報|本刊|本台|本网|本網|特约|特約|实习|實習|见习|見習)?(?:记者|記者)"
            r"|作者|撰文|通讯员|通訊員|图源|圖源|摄影|攝影|图|圖|文)"
            r"\s*[:：/／]\s*[^\s:：，,。！？；;!?][^，,。！？；;!?]{0,29}" + _CREDIT_CLOSE,
            # 记者 李四, 本报记者 王一 刘二, 编辑 张三
            _CREDIT_OPEN
            + r"(?:本报|本報|本刊|本台|本网|本網|特约|特約|实习|實習|见习|見習|驻\p{Han}{1,4}|駐\p{Han}{1,4})?"
            r"(?:记者|記者|通讯员|通訊員|作者|(?:责任|責任)?(?:编辑|編輯))"
            r"[ \u3000]+\p{Han}{2,4}(?:[ \u3000、]+\p{Han}{2,4}){0,5}" + _CREDIT_CLOSE,
            # 新华社记者 张三 摄, 记者李四摄, 王五 攝 (a bare name needs the space before 摄)
            _CREDIT_OPEN
            + r"(?:(?:[\p{Han}A-Za-z]{2,10})?(?:记者|記者|通讯员|通訊員)\s*(?:[\p{Han}·]{2,5}[ \u3000、]*){1,4}"
            r"|(?:[\p{Han}·]{2,5}[ \u3000、]+){1,4})(?:摄|攝|拍摄|拍攝)" + _CREDIT_CLOSE,
            # 原标题：X
            _CREDIT_OPEN + r"(?:原标题|原標題)\s*[:：].{1,150}?" + _CREDIT_CLOSE,
            # 原文链接：URL
            _CREDIT_OPEN
            + r"(?:原文|本文|文章)?(?:链接|鏈接|地址|网址|網址)\s*[:：]\s*https?://\S{3,300}"
            + _CREDIT_CLOSE,
        )
    )
)
_CLOCK = re.compile(r"\d{1,2}:\d{2}")


def _is_credit_line(text: str) -> bool:
    """A short paragraph that is only a credit line (see `_CREDIT_LINE`), without a date."""
    if "\n" in text or len(text) > 320:
        return False
    if _DATE.search(text) or _CLOCK.search(text):
        return _CREDIT_LINE.match(text) is not None and text.lstrip("(（[【 ").startswith(
            ("原文", "本文链接", "文章链接", "原标题", "原標題")
        )
    return _CREDIT_LINE.match(text) is not None


def _normalise_inline(raw: str) -> str:
    """Collapse HTML whitespace the way a browser renders it; no space between wide characters."""
    text = _SEGMENT_BREAK.sub("", raw)
    return _SPACE_RUN.sub(" ", text).strip(_EDGE_SPACE)


def _normalise_pre(raw: str) -> str:
    """Keep the lines of preformatted text; trim trailing spaces and blank edges."""
    lines = [line.rstrip() for line in raw.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    return "\n".join(lines).strip("\n")


def _nonspace_len(text: str) -> int:
    return len(text) - sum(1 for c in text if c.isspace())


# ----------------------------------------------------------------------------- page walk


@dataclass(slots=True)
class _Element:
    """An element the walk entered: enough to name it, find its parent, judge it as chrome."""

    tag: str
    parent: int  # index into the element list; -1 for the root
    label: str  # "div#main", "div.post_statement"
    kind: str  # tag and classes, without the id: what list items share
    chrome: str | None  # why this element marks chrome, or None
    firm: bool = False  # chrome even if it holds most of the prose (a list of links)


@dataclass(slots=True)
class _Paragraph:
    """One paragraph of the visible text, and the evidence for judging it."""

    owner: int  # innermost block element
    text: str = ""
    chars: int = 0  # non-space characters
    link_chars: int = 0
    punct: int = 0
    inline_chrome: int = -1  # an inline chrome element that holds most of this paragraph
    start: int = 0  # offset in Article.text


def _label(tag: Tag) -> str:
    ident = tag.get("id")
    if isinstance(ident, str) and ident.strip():
        return f"{tag.name}#{ident.strip().split()[0]}"
    classes = tag.get("class")
    if isinstance(classes, list) and classes:
        return tag.name + "".join("." + c for c in classes[:3])
    return tag.name


def _kind(tag: Tag) -> str:
    classes = tag.get("class")
    return tag.name + ("." + ".".join(classes) if isinstance(classes, list) else "")


def _chrome_reason(tag: Tag) -> str | None:
    """Why this element's tag, role, class/id or style marks it as page chrome (None if not)."""
    reason = _CHROME_TAGS.get(tag.name)
    if reason:
        return reason
    if tag.has_attr("hidden"):
        return "hidden (hidden attribute)"
    style = tag.get("style")
    if isinstance(style, str) and _HIDDEN_STYLE.search(style):
        # Kept as text, not skipped: some sites (WeChat) hide the article until a script runs.
        return "hidden (CSS)"
    role = tag.get("role")
    if isinstance(role, str) and role.strip().lower() in _CHROME_ROLES:
        return _CHROME_ROLES[role.strip().lower()]
    classes = tag.get("class")
    names = [c for c in classes if _WORDLIKE_CLASS.match(c)] if isinstance(classes, list) else []
    ident = tag.get("id")
    if isinstance(ident, str) and _WORDLIKE_CLASS.match(ident.strip()):
        names.append(ident.strip())
    if not names:
        return None
    joined = " ".join(names)
    for token in _TOKEN_SPLIT.split(joined.lower()):
        if token in _CHROME_TOKENS:
            return f"{_CHROME_TOKENS[token]} (class/id '{token}')"
    lowered = joined.lower()
    for word, reason in _CHROME_SUBSTRINGS:
        if word in lowered:
            return f"{reason} (class/id '{word}')"
    return None


def _form_holds_page(tag: Tag) -> bool:
    """ASP.NET-style pages wrap the whole page in one <form>: that form is not a form control."""
    return tag.find(["p", "article", "h1", "table"]) is not None


class _Walker:
    """Depth-first walk of the page producing paragraphs and the elements they sit in."""

    def __init__(self) -> None:
        self.elements: list[_Element] = []
        self.paragraphs: list[_Paragraph] = []
        self._raw: list[str] = []
        self._current: _Paragraph | None = None
        self._pre_depth = 0
        self._link_depth = 0
        self._block_stack: list[int] = []
        self._inline_chrome: list[tuple[int, int]] = []  # (element, paragraph count at entry)
        self._chrome_chars: dict[int, int] = {}

    # -- paragraphs
    def _break(self) -> None:
        para = self._current
        self._current = None
        if para is None:
            return
        raw = "".join(self._raw)
        self._raw = []
        para.text = _normalise_pre(raw) if para.punct < 0 else _normalise_inline(raw)
        para.punct = len(_PROSE_PUNCT.findall(para.text))
        para.chars = _nonspace_len(para.text)
        if para.chars == 0:
            return
        para.link_chars = min(para.link_chars, para.chars)
        for element, count in self._chrome_chars.items():
            if count * 10 >= para.chars * 9:
                para.inline_chrome = element
                break
        self._chrome_chars = {}
        self.paragraphs.append(para)

    def _add_text(self, text: str) -> None:
        if self._current is None:
            if not text.strip(_EDGE_SPACE) and not self._pre_depth:
                return
            self._current = _Paragraph(owner=self._block_stack[-1] if self._block_stack else -1)
            if self._pre_depth:
                self._current.punct = -1  # marks preformatted until _break
            self._chrome_chars = {}
        self._raw.append(text)
        visible = len(_NONSPACE.findall(text))
        if self._link_depth:
            self._current.link_chars += visible
        for element, _ in self._inline_chrome:
            self._chrome_chars[element] = self._chrome_chars.get(element, 0) + visible

    # -- elements
    def walk(self, root: Tag) -> None:
        # An explicit stack instead of recursion: scraped pages can nest thousands deep.
        stack: list[tuple[Any, bool, int]] = [(root, False, -1)]
        while stack:
            node, leaving, parent = stack.pop()
            if leaving:
                self._leave(node)
                continue
            if isinstance(node, NavigableString):
                if not isinstance(node, PreformattedString):
                    self._add_text(str(node))
                continue
            if not isinstance(node, Tag):
                continue
            name = node.name
            if name in _INVISIBLE or (name == "input" and node.get("type") == "hidden"):
                continue
            if name == "form" and not _form_holds_page(node):
                continue
            if name in {"br", "hr"}:
                self._break()
                continue
            index = len(self.elements)
            self.elements.append(
                _Element(
                    tag=name,
                    parent=parent,
                    label=_label(node),
                    kind=_kind(node),
                    chrome=_chrome_reason(node),
                )
            )
            node.curate_index = index  # type: ignore[attr-defined]
            self._enter(node, index)
            stack.append((node, True, parent))
            for child in reversed(node.contents):
                stack.append((child, False, index))

    def _enter(self, node: Tag, index: int) -> None:
        if node.name in _BLOCK:
            self._break()
            self._block_stack.append(index)
        elif self.elements[index].chrome:
            self._inline_chrome.append((index, len(self.paragraphs)))
        if node.name == "pre":
            self._pre_depth += 1
        if node.name == "a" and node.has_attr("href"):
            self._link_depth += 1

    def _leave(self, node: Tag) -> None:
        index = node.curate_index  # type: ignore[attr-defined]
        if node.name in _BLOCK:
            self._break()
            self._block_stack.pop()
        elif self._inline_chrome and self._inline_chrome[-1][0] == index:
            self._inline_chrome.pop()
        if node.name == "pre":
            self._pre_depth -= 1
        if node.name == "a" and node.has_attr("href"):
            self._link_depth -= 1

    def finish(self) -> None:
        self._break()


# ----------------------------------------------------------------------------- judging


def _prose_weight(para: _Paragraph) -> float:
    """Positive for prose, negative for link lists and fragments (see the module docstring)."""
    own = para.chars - para.link_chars
    density = para.link_chars / para.chars
    if para.chars <= 60 and _BYLINE_MARK.search(para.text):
        return -0.2 * para.chars  # a byline or credit line, not a sentence of the body
    long_words = own >= 30 and _WORDS.search(para.text) is not None
    if density <= 0.5 and (long_words or (own >= 8 and para.punct >= 1)):
        return own * (1.0 - density)
    if density > 0.5:
        return -0.5 * para.chars
    return -0.2 * para.chars


def _ancestors(elements: list[_Element], index: int) -> Iterator[int]:
    while index >= 0:
        yield index
        index = elements[index].parent


@dataclass(slots=True)
class _Judgement:
    body: int  # the article element
    drop_path: list[str | None]  # per paragraph: element path of the drop, or None (kept)
    drop_reason: list[str]


def _path(elements: list[_Element], index: int) -> str:
    labels = []
    for i in _ancestors(elements, index):
        if elements[i].tag == "html":
            break
        labels.append(elements[i].label)
    return ">".join(reversed(labels))


# Weight per character of chrome text when choosing the article: enough to keep a chrome box
# out of the choice, small enough that a long reference list does not outweigh the article.
_CHROME_PENALTY = 0.2
# Prose characters below which a chrome-free candidate is not believed to be the article.
_MIN_ARTICLE_PROSE = 150


def _is_linky(para: _Paragraph) -> bool:
    return para.chars >= 4 and para.link_chars >= 0.7 * para.chars


def _mark_link_lists(
    elements: list[_Element], paragraphs: list[_Paragraph], chains: list[list[int]]
) -> None:
    """Mark lists of links to other pages (menus, "related news", teaser streams) as chrome.

    A list is an element with at least three text-bearing children that look alike (same tag
    and class) and hold most of its text, most of which hold a link-only line, and which are
    short (median): the shape of a menu or of a stream of headlines with summaries, not of
    article paragraphs.
    """
    item_chars: dict[int, int] = {}
    item_linky: dict[int, bool] = {}
    for chain, para in zip(chains, paragraphs, strict=True):
        for i in chain:
            item_chars[i] = item_chars.get(i, 0) + para.chars
            if _is_linky(para):
                item_linky[i] = True
    children: dict[int, list[int]] = {}
    for i in sorted(item_chars):
        parent = elements[i].parent
        if parent >= 0:
            children.setdefault(parent, []).append(i)
    for parent, items in children.items():
        if len(items) < 3 or elements[parent].chrome:
            continue
        kinds = Counter(elements[i].kind for i in items)
        kind, count = kinds.most_common(1)[0]
        alike = [i for i in items if elements[i].kind == kind]
        if count < 3 or count < 0.6 * len(items):
            continue
        linky = sum(1 for i in alike if item_linky.get(i))
        lengths = sorted(item_chars[i] for i in alike)
        covered = sum(lengths) >= 0.6 * sum(item_chars[i] for i in items)
        if covered and linky >= 0.7 * len(alike) and lengths[len(lengths) // 2] <= 500:
            elements[parent].chrome = f"list of links ({len(items)} items)"
            elements[parent].firm = True


def _judge(
    elements: list[_Element], paragraphs: list[_Paragraph], title: str | None = None
) -> _Judgement:
    chains = [list(_ancestors(elements, p.owner)) for p in paragraphs]
    _mark_link_lists(elements, paragraphs, chains)
    raw = [_prose_weight(p) for p in paragraphs]
    positive_total = sum(w for w in raw if w > 0) or 1.0

    # Prose held by each element, to tell a chrome box from a mislabelled article container.
    prose_in = [0.0] * len(elements)
    for chain, weight in zip(chains, raw, strict=True):
        if weight > 0:
            for i in chain:
                prose_in[i] += weight

    def chrome_marker(chain: list[int], para: _Paragraph, limit: float) -> int:
        """Outermost chrome element on the chain (below nothing protected), or -1."""
        found = -1
        for i in chain:
            if elements[i].chrome and (elements[i].firm or prose_in[i] <= limit):
                found = i
        if found < 0 and para.inline_chrome >= 0:
            found = para.inline_chrome
        return found

    def choose(limit: float) -> tuple[int, float, list[float], list[float]]:
        """The element with the largest summed weight and the prose it holds outside chrome.

        Text inside chrome counts a little against (not as much as its length: an article may
        contain a long reference list or a video player); link lists and fragments count
        against. Ties go to the innermost element.
        """
        score = [0.0] * len(elements)
        free = [0.0] * len(elements)
        for chain, para, weight in zip(chains, paragraphs, raw, strict=True):
            if chrome_marker(chain, para, limit) >= 0:
                weight = min(weight, 0.0) - _CHROME_PENALTY * para.chars
            elif weight > 0:
                for i in chain:
                    free[i] += weight
            for i in chain:
                score[i] += weight
        best = max(range(len(elements)), key=lambda i: (score[i], i))
        if score[best] <= 0:
            return 0, 0.0, score, free  # no prose anywhere: keep what is not marked as chrome
        return best, free[best], score, free

    # First believe every chrome mark. If that leaves no real article (the page put its article
    # in a box whose class says "share" or hid it until a script runs), marks on elements that
    # hold most of the prose are not believed.
    limit = float("inf")
    body, free_prose, score, free = choose(limit)
    if free_prose < _MIN_ARTICLE_PROSE and free_prose < 0.25 * positive_total:
        limit = 0.5 * positive_total
        body, free_prose, score, free = choose(limit)
    if free_prose > 0 and _teaser_share(elements, paragraphs, chains, raw, body) >= 0.6:
        body = _title_anchor(elements, paragraphs, chains, body, free, title) or body

    drop_path: list[str | None] = []
    drop_reason: list[str] = []
    for chain, para in zip(chains, paragraphs, strict=True):
        if body in chain:
            inner = chain[: chain.index(body)]
            marker = chrome_marker(inner, para, limit)
            if marker < 0:
                drop_path.append(None)
                drop_reason.append("")
                continue
            drop_path.append(_path(elements, marker))
            drop_reason.append(elements[marker].chrome or "chrome")
            continue
        # Outside the article: name the subtree beside the article that holds it.
        body_chain = set(_ancestors(elements, body))
        top = para.owner
        for i in chain:
            if i in body_chain:
                break
            top = i
        marker = chrome_marker([i for i in chain if i not in body_chain], para, float("inf"))
        where = elements[marker].chrome if marker >= 0 else None
        reason = "outside the article body" + (f"; {where}" if where else "")
        drop_path.append(_path(elements, top))
        drop_reason.append(reason)
    _trim_edges(elements, paragraphs, raw, drop_path, drop_reason)
    _keep_edge_credits(elements, paragraphs, chains, raw, body, drop_path, drop_reason)
    return _Judgement(body=body, drop_path=drop_path, drop_reason=drop_reason)


def _teaser_share(
    elements: list[_Element],
    paragraphs: list[_Paragraph],
    chains: list[list[int]],
    weights: list[float],
    body: int,
) -> float:
    """Share of the body's prose that sits right after a link-only line: a teaser list.

    Teasers are a linked headline followed by a summary; an article's paragraphs rarely follow a
    line that is all link.
    """
    total = teased = 0.0
    for k, (chain, weight) in enumerate(zip(chains, weights, strict=True)):
        if weight <= 0 or body not in chain:
            continue
        total += weight
        if k and body in chains[k - 1] and _is_linky(paragraphs[k - 1]):
            teased += weight
    return teased / total if total else 0.0


_HEADINGS = frozenset({"h1", "h2"})


def _title_anchor(
    elements: list[_Element],
    paragraphs: list[_Paragraph],
    chains: list[list[int]],
    body: int,
    free: list[float],
    title: str | None,
) -> int | None:
    """The element around the page's title heading that holds the article, if the chosen body
    is elsewhere (a teaser list beside a short article).

    From the heading whose text is the page title, go up to the first element with real prose
    of its own (at least half the chosen body's), stopping at an element that holds the chosen
    body (then the title and the body belong together and nothing changes).
    """
    if not title:
        return None
    body_up = _ancestor_set(elements, body)
    for para, chain in zip(paragraphs, chains, strict=True):
        if para.text != title or elements[para.owner].tag not in _HEADINGS:
            continue
        if body in chain or any(elements[i].firm for i in chain):
            continue  # the title is inside the chosen body, or in a list of links
        for i in chain[1:]:
            if i in body_up:
                break  # the title and the chosen body belong together
            if free[i] >= max(_MIN_TITLE_PROSE, 0.5 * free[body]):
                return i
    return None


def _ancestor_set(elements: list[_Element], index: int) -> set[int]:
    return set(_ancestors(elements, index))


# Prose weight an element around the title heading needs to be taken as the article.
_MIN_TITLE_PROSE = 50.0
# Longest non-credit fragment skipped between the article and a credit line.
_SKIPPABLE_CHARS = 20


def _keep_edge_credits(
    elements: list[_Element],
    paragraphs: list[_Paragraph],
    chains: list[list[int]],
    weights: list[float],
    body: int,
    drop_path: list[str | None],
    drop_reason: list[str],
) -> None:
    """Keep credit lines next to the first and last kept paragraph (责任编辑：X, 来源：X, 原标题：X).

    They are not prose, so the edge trim or the body choice would drop them; the boilerplate
    stage moves them into metadata instead. Walking outwards from the article, credit lines are
    kept, up to two short fragments in between ("分享到：") stay dropped, and the walk stops at
    prose, a heading, a longer fragment, a list of links or hidden text.
    """
    kept = [i for i, path in enumerate(drop_path) if path is None]
    if not kept:
        return
    body_chain = _ancestor_set(elements, body)

    def blocked(k: int) -> bool:
        for i in chains[k]:
            if i in body_chain:
                break
            reason = elements[i].chrome or ""
            if elements[i].firm or reason.startswith("hidden"):
                return True
        return False

    for start, step in ((kept[0] - 1, -1), (kept[-1] + 1, 1)):
        skipped = 0
        k = start
        while 0 <= k < len(paragraphs) and drop_path[k] is not None:
            para = paragraphs[k]
            if weights[k] > 0 or elements[para.owner].tag in _HEADINGS or blocked(k):
                break
            if _is_credit_line(para.text):
                drop_path[k] = None
                drop_reason[k] = ""
                skipped = 0
            elif para.chars <= _SKIPPABLE_CHARS and skipped < 2:
                skipped += 1
            else:
                break
            k += step


def _trim_edges(
    elements: list[_Element],
    paragraphs: list[_Paragraph],
    weights: list[float],
    drop_path: list[str | None],
    drop_reason: list[str],
) -> None:
    """Drop the fragments before the first and after the last prose paragraph of the article.

    These are headline, byline, "listen to this article", like buttons, report links: no
    sentence of the body. Their dates, sources and credits are read into metadata first.
    """
    kept = [i for i, path in enumerate(drop_path) if path is None]
    prose = [i for i in kept if weights[i] > 0]
    if not prose:
        return
    for i in kept:
        if prose[0] <= i <= prose[-1]:
            continue
        where = "before" if i < prose[0] else "after"
        drop_path[i] = _path(elements, paragraphs[i].owner)
        drop_reason[i] = f"{where} the article text, not prose"


def _layout(paragraphs: list[_Paragraph], judgement: _Judgement) -> tuple[str, list[Drop]]:
    """Join paragraphs with blank lines; merge dropped runs (with their separators) into Drops.

    The separator after a dropped paragraph goes with it; a dropped run at the very end takes the
    separator before it. Removing every drop then leaves the kept paragraphs joined by exactly
    one blank line.
    """
    pieces = []
    offset = 0
    for i, para in enumerate(paragraphs):
        if i:
            pieces.append("\n\n")
            offset += 2
        para.start = offset
        pieces.append(para.text)
        offset += len(para.text)
    text = "".join(pieces)

    paths = judgement.drop_path
    reasons = judgement.drop_reason
    last_kept = max((i for i, p in enumerate(paths) if p is None), default=-1)
    drops: list[Drop] = []
    i = 0
    while i < len(paragraphs):
        path = paths[i]
        if path is None:
            i += 1
            continue
        j = i
        while j + 1 < len(paragraphs) and (paths[j + 1], reasons[j + 1]) == (path, reasons[i]):
            j += 1
        start = paragraphs[i].start
        end = paragraphs[j].start + len(paragraphs[j].text)
        if j + 1 < len(paragraphs):
            end += 2  # the separator after a dropped paragraph goes with it
        if i - 1 == last_kept >= 0:
            start -= 2  # the first run after the last kept paragraph takes the one before
        drops.append(Drop(start, end, path, reasons[i]))
        i = j + 1
    return text, drops


# ----------------------------------------------------------------------------- title and meta

_META_FIELDS: dict[str, str] = {
    # <meta name|property|itemprop=...> -> Article.meta field; first one found wins.
    "article:published_time": "published",
    "og:release_date": "published",
    "datepublished": "published",
    "pubdate": "published",
    "publishdate": "published",
    "publish_date": "published",
    "publish-date": "published",
    "publishtime": "published",
    "dc.date.issued": "published",
    "dc.date": "published",
    "weibo:article:create_at": "published",
    "author": "author",
    "article:author": "author",
    "dc.creator": "author",
    "byl": "author",
    "source": "source",
    "contentsource": "source",
    "mediaid": "source",
    "og:url": "url",
    "og:site_name": "site",
    "og:title": "title",
    "twitter:title": "title",
}
_JSONLD_TYPES = {"newsarticle", "article", "blogposting", "reportagenewsarticle", "webpage"}
_DATE = regex.compile(
    r"(?<!\d)((?:19|20)\d\d)\s*[-年/.]\s*(\d{1,2})\s*[-月/.]\s*(\d{1,2})\s*日?"
    r"(?:\s*(\d{1,2}:\d{2}(?::\d{2})?))?"
)
_BYLINE_FIELD = {
    "source": regex.compile(r"(?:来源|來源|稿源|出处)\s*[:：]\s*([^\s|｜/]{2,30})"),
    "author": regex.compile(r"(?:作者|记者|記者|编辑|文)\s*[:：丨|｜]\s*([^\s|｜/]{2,20})"),
}
_TITLE_SEPARATORS = regex.compile(r"\s*(?:[_|｜]|\s[-–—]\s|-{1,2}(?=[^\d]))\s*")


def _first_str(value: Any) -> str | None:
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, dict):
        return _first_str(value.get("name") or value.get("@id") or value.get("url"))
    if isinstance(value, list):
        names = [n for n in (_first_str(v) for v in value) if n]
        return "、".join(names) if names else None
    return None


def _jsonld_objects(soup: BeautifulSoup) -> Iterator[dict[str, Any]]:
    for script in soup.find_all("script", attrs={"type": "application/ld+json"}):
        try:
            data = json.loads(script.string or "")
        except (ValueError, TypeError):
            continue
        todo = data if isinstance(data, list) else [data]
        while todo:
            item = todo.pop(0)
            if not isinstance(item, dict):
                continue
            if isinstance(item.get("@graph"), list):
                todo.extend(item["@graph"])
            kind = item.get("@type")
            kinds = kind if isinstance(kind, list) else [kind]
            if any(isinstance(k, str) and k.lower() in _JSONLD_TYPES for k in kinds):
                yield item


def _page_meta(soup: BeautifulSoup) -> dict[str, str]:
    """Metadata the page states in <meta>, <link rel=canonical> and JSON-LD."""
    meta: dict[str, str] = {}
    for item in _jsonld_objects(soup):
        for key, field_name in (
            ("headline", "title"),
            ("datePublished", "published"),
            ("author", "author"),
            ("publisher", "source"),
            ("url", "url"),
        ):
            value = _first_str(item.get(key))
            if value and field_name not in meta:
                meta[field_name] = value
    for tag in soup.find_all("meta"):
        key = tag.get("property") or tag.get("name") or tag.get("itemprop")
        content = tag.get("content")
        if not isinstance(key, str) or not isinstance(content, str) or not content.strip():
            continue
        field_name = _META_FIELDS.get(key.strip().lower())
        if field_name and field_name not in meta:
            meta[field_name] = " ".join(content.split())
    canonical = soup.find("link", rel="canonical")
    if (
        canonical is not None
        and isinstance(canonical.get("href"), str)
        and canonical["href"].strip()
    ):
        meta["url"] = canonical["href"].strip()
    return meta


def _clean_title(title: str) -> str:
    """`<title>` without the site name: the longest part between separators."""
    parts = [p for p in _TITLE_SEPARATORS.split(title) if p.strip()]
    return max(parts, key=len).strip() if parts else title.strip()


def _find_title(soup: BeautifulSoup, stated: str | None) -> str | None:
    head_title = soup.title.get_text(" ", strip=True) if soup.title else ""
    headings = [h.get_text(" ", strip=True) for h in soup.find_all("h1", limit=5)]
    headings = [" ".join(h.split()) for h in headings if h]
    for heading in headings:
        if len(heading) >= 4 and heading in head_title:
            return heading
    if stated:
        return _clean_title(stated) if stated == head_title else stated
    if headings:
        return headings[0]
    return _clean_title(head_title) if head_title else None


def _byline_meta(paragraphs: list[_Paragraph], first_kept: int) -> dict[str, str]:
    """Date, source and author from the short lines around the start of the article."""
    found: dict[str, str] = {}
    window = paragraphs[max(0, first_kept - 8) : first_kept + 3]
    for para in window:
        if para.chars > 120:
            continue
        if "published" not in found:
            match = _DATE.search(para.text)
            if match:
                found["published"] = match.group(0).strip()
        for field_name, pattern in _BYLINE_FIELD.items():
            if field_name not in found:
                match = pattern.search(para.text)
                if match:
                    found[field_name] = match.group(1)
    return found


# ----------------------------------------------------------------------------- entry point


def extract_article(html: str, *, source: str = "") -> Article:
    """The page's visible text as paragraphs, its chrome as drops, its title and metadata.

    `source` names the page in error messages. Never raises on malformed HTML: an empty page gives
    an Article with empty text.
    """
    try:
        soup = BeautifulSoup(html, "lxml")
    except Exception as exc:  # lxml rejects some binary junk
        raise ValueError(f"{source or '<html>'}: cannot parse HTML ({exc})") from exc
    stated = _page_meta(soup)
    title = _find_title(soup, stated.pop("title", None))

    root = soup.body or soup.find("html") or soup
    walker = _Walker()
    if isinstance(root, Tag):
        walker.walk(root)
    walker.finish()
    paragraphs = walker.paragraphs
    if not paragraphs:
        return Article(title=title, meta=stated, text="", drops=[])

    judgement = _judge(walker.elements, paragraphs, title)
    if title:
        for i, para in enumerate(paragraphs):
            if judgement.drop_path[i] is not None and para.text == title:
                judgement.drop_reason[i] = "the page title (kept as meta.title)"
    text, drops = _layout(paragraphs, judgement)

    first_kept = next((i for i, p in enumerate(judgement.drop_path) if p is None), 0)
    meta = dict(stated)
    for key, value in _byline_meta(paragraphs, first_kept).items():
        meta.setdefault(key, value)
    return Article(title=title, meta=meta, text=text, drops=drops)
