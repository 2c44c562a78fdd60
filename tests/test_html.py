"""HTML input: decoding, visible text as paragraphs, chrome as traceable drops, title and meta."""

from __future__ import annotations

import json

import pytest

from curate.document import Change, Document
from curate.html import Article, _is_credit_line, decode_html, extract_article, extracted_text

# Article sentences written for these tests (no third-party text).
S1 = "市文化馆今天举办了第三届社区读书节，来自十二个街道的居民参加了开幕式。"
S2 = "主办方介绍，本届读书节为期两周，共安排讲座、书市和亲子阅读等二十余场活动。"
S3 = "一位参加活动的退休教师说，希望这样的活动能够长期办下去，让更多孩子爱上读书。"
S4 = "据了解，读书节期间所有活动均免费向市民开放，部分讲座还将在网上同步直播。"
BODY = [S1, S2, S3, S4]


def page(body: str, head: str = "<title>社区读书节开幕_某某新闻网</title>") -> str:
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'>{head}</head><body>{body}</body></html>"
    )


def article_div(sentences: list[str] = BODY) -> str:
    return "<div class='article-body'>" + "".join(f"<p>{s}</p>" for s in sentences) + "</div>"


def nav() -> str:
    links = "".join(f"<li><a href='/c{i}'>栏目{i}</a></li>" for i in range(8))
    return f"<div class='topbar'><ul>{links}</ul></div>"


def kept_paragraphs(article: Article) -> list[str]:
    text = extracted_text(article)
    return text.split("\n\n") if text else []


def drop_texts(article: Article) -> list[str]:
    return [article.text[d.start : d.end] for d in article.drops]


# ----------------------------------------------------------------------------- decoding


def test_utf8_bytes_behind_a_lying_gb2312_declaration_decode_as_utf8() -> None:
    html = page(
        article_div(), head="<meta http-equiv='Content-Type' content='text/html; charset=gb2312'>"
    )
    text, encoding = decode_html(html.encode("utf-8"))
    assert encoding == "utf-8"
    assert S1 in text
    assert "å" not in text and "\ufffd" not in text


def test_real_gbk_bytes_decode_with_the_gb18030_superset() -> None:
    html = (
        page(article_div(), head="<meta charset='gb2312'>") + "<p>镕</p>"
    )  # 镕 is GBK, not GB2312
    text, encoding = decode_html(html.encode("gbk"))
    assert encoding == "gb18030"
    assert S2 in text and "镕" in text


def test_undeclared_gbk_bytes_are_detected() -> None:
    html = "<html><body>" + "".join(f"<p>{s}</p>" for s in BODY * 3) + "</body></html>"
    text, encoding = decode_html(html.encode("gb18030"))
    assert S3 in text, encoding


def test_bom_wins() -> None:
    text, encoding = decode_html("<p>读书</p>".encode("utf-8-sig"))
    assert text == "<p>读书</p>" and encoding == "utf-8-sig"


# ----------------------------------------------------------------------------- paragraphs


def test_br_separates_paragraphs_and_inline_elements_do_not() -> None:
    body = (
        "<div class='content'>"
        f"<p>{S1[:10]}<b>{S1[10:15]}</b><a href='/x'>{S1[15:20]}</a><span>{S1[20:]}</span></p>"
        f"{S2}<br>{S3}<br/><br/>{S4}"
        "</div>"
    )
    article = extract_article(page(body))
    assert kept_paragraphs(article) == BODY


def test_source_line_breaks_between_han_characters_render_as_nothing() -> None:
    body = (
        f"<div><p>{S1[:12]}\n   {S1[12:]}</p><p>Hello\n  world, this is text.</p><p>{S2}</p></div>"
    )
    article = extract_article(page(body))
    assert article.text.split("\n\n")[0] == S1
    assert "Hello world, this is text." in article.text


def test_nested_layout_tables_keep_the_article_cell_and_drop_the_menu_cell() -> None:
    menu = "".join(f"<tr><td><a href='/m{i}'>菜单项目{i}</a></td></tr>" for i in range(10))
    body = (
        "<table><tr>"
        f"<td><table>{menu}</table></td>"
        "<td><table><tr><td>" + "".join(f"<p>{s}</p>" for s in BODY) + "</td></tr></table></td>"
        "</tr></table>"
    )
    article = extract_article(page(body))
    assert kept_paragraphs(article) == BODY
    assert any("菜单项目3" in t for t in drop_texts(article))


def test_preformatted_text_keeps_its_lines() -> None:
    code = "for i in range(3):\n    print(i)"
    body = article_div() + f"<pre>{code}</pre>"
    article = extract_article(page(body))
    assert code in article.text


# ----------------------------------------------------------------------------- chrome


def test_netease_post_statement_is_dropped_with_its_element_path() -> None:
    notice = "特别声明：以上内容(如有图片或视频亦包括在内)为自媒体平台“网易号”用户上传并发布，本平台仅提供信息存储服务。"
    body = f"<div id='main'>{article_div()}<div class='post_statement'><p>{notice}</p></div></div>"
    article = extract_article(page(body))
    assert kept_paragraphs(article) == BODY
    drops = [d for d in article.drops if notice in article.text[d.start : d.end]]
    assert len(drops) == 1
    assert drops[0].path.endswith("div#main>div.post_statement")
    assert "statement" in drops[0].reason


@pytest.mark.parametrize(
    ("marker", "chrome_text"),
    [
        ("class='share-box'", "分享到：微信 微博 QQ空间"),
        ("class='copyright'", "版权所有，未经授权不得转载，违者必究。本站保留追究法律责任的权利。"),
        (
            "id='disclaimer'",
            "免责声明：本文仅代表作者个人观点，与本网无关，本网对其原创性不作任何保证。",
        ),
        (
            "class='comment-list'",
            "网友评论：这个活动真不错，我家孩子也想参加，希望明年还能继续办下去。",
        ),
        ("class='recommend'", "推荐阅读：图书馆延长开放时间，市民可以晚上去看书了，读者纷纷点赞。"),
        ("class='footer'", "联系我们 | 关于本站 | 网站地图，本站地址：某某市某某路一号。"),
    ],
)
def test_chrome_classes_are_dropped_and_the_body_kept(marker: str, chrome_text: str) -> None:
    body = f"{nav()}<div class='wrap'>{article_div()}<div {marker}><p>{chrome_text}</p></div></div>"
    article = extract_article(page(body))
    assert kept_paragraphs(article) == BODY
    assert chrome_text in article.text  # nothing lost: still in the text, as a drop
    assert chrome_text not in extracted_text(article)


def test_chrome_tags_and_link_lists_outside_the_article_are_dropped() -> None:
    related = "".join(f"<li><a href='/n{i}'>另一条新闻标题第{i}条</a></li>" for i in range(6))
    body = (
        f"<header><p>某某新闻网 首页</p></header><nav>{nav()}</nav>"
        f"<div class='main'>{article_div()}</div>"
        f"<div class='box'><ul>{related}</ul></div>"
        "<footer><p>Copyright 2024 某某新闻网</p></footer>"
    )
    article = extract_article(page(body))
    assert kept_paragraphs(article) == BODY
    reasons = " ".join(d.reason for d in article.drops)
    assert "<footer>" in reasons and "<header>" in reasons


def test_a_teaser_stream_bigger_than_the_article_does_not_win() -> None:
    teasers = "".join(
        f"<li class='item'><h3><a href='/t{i}'>推荐文章标题{i}</a></h3><p>{S4}{S3}{S2}</p></li>"
        for i in range(8)
    )
    body = f"<h1>社区读书节开幕</h1>{article_div([S1, S2])}<ul class='stream'>{teasers}</ul>"
    article = extract_article(page(body))
    assert kept_paragraphs(article) == [S1, S2]


def test_an_article_inside_a_box_marked_as_chrome_is_not_lost() -> None:
    body = f"{nav()}<div class='breadcrumb'><div class='row'>{article_div()}</div></div>"
    article = extract_article(page(body))
    assert kept_paragraphs(article) == BODY


def test_an_article_hidden_until_a_script_runs_is_kept() -> None:
    body = f"<div id='js_content' style='visibility: hidden; opacity: 0'>{article_div()}</div>"
    article = extract_article(page(body))
    assert kept_paragraphs(article) == BODY


def test_hostile_page_script_style_and_attributes_never_leak_into_the_text() -> None:
    body = (
        "<script>document.write('恶意脚本文字')</script>"
        "<style>.x{content:'样式文字'}</style>"
        "<noscript>请启用脚本文字</noscript>"
        "<template><p>模板文字</p></template>"
        "<form action='/s'><input value='表单文字'><button>搜索按钮</button></form>"
        f"<img src=x onerror=\"alert('属性文字')\">"
        "<!-- 注释文字 -->"
        f"<div class='content'><p>{S1}<script>var a='句中脚本';</script></p>"
        + "".join(f"<p>{s}</p>" for s in BODY[1:])
        + "</div>"
    )
    article = extract_article(page(body))
    for leaked in (
        "恶意脚本",
        "样式文字",
        "请启用脚本",
        "模板文字",
        "表单文字",
        "搜索按钮",
        "属性文字",
        "alert",
        "注释文字",
        "句中脚本",
    ):
        assert leaked not in article.text
    assert kept_paragraphs(article) == BODY


def test_a_page_wrapped_in_one_form_keeps_its_article() -> None:
    body = f"<form id='form1' method='post'>{nav()}{article_div()}</form>"
    article = extract_article(page(body))
    assert kept_paragraphs(article) == BODY


# ----------------------------------------------------------------------------- title and meta


def test_title_and_meta_from_meta_tags() -> None:
    head = (
        "<title>社区读书节开幕_某某新闻网</title>"
        "<meta property='og:title' content='社区读书节开幕'>"
        "<meta name='author' content='张三'>"
        "<meta property='article:published_time' content='2024-05-20T08:00:00+08:00'>"
        "<meta name='source' content='某某日报'>"
        "<link rel='canonical' href='https://news.example.cn/a/1.html'>"
    )
    article = extract_article(page(article_div(), head=head))
    assert article.title == "社区读书节开幕"
    assert article.meta["author"] == "张三"
    assert article.meta["published"] == "2024-05-20T08:00:00+08:00"
    assert article.meta["source"] == "某某日报"
    assert article.meta["url"] == "https://news.example.cn/a/1.html"


def test_title_and_meta_from_json_ld() -> None:
    data = {
        "@context": "https://schema.org",
        "@graph": [
            {"@type": "WebSite", "name": "某某新闻网"},
            {
                "@type": "NewsArticle",
                "headline": "读书节开幕",
                "datePublished": "2024-05-21",
                "author": [{"@type": "Person", "name": "李四"}],
                "publisher": {"@type": "Organization", "name": "某某新闻网"},
            },
        ],
    }
    head = f"<title>x</title><script type='application/ld+json'>{json.dumps(data, ensure_ascii=False)}</script>"
    article = extract_article(page(article_div(), head=head))
    assert article.title == "读书节开幕"
    assert article.meta["published"] == "2024-05-21"
    assert article.meta["author"] == "李四"
    assert article.meta["source"] == "某某新闻网"
    assert "读书节开幕" not in article.text  # JSON-LD is script: not visible text


def test_h1_title_and_byline_go_to_meta_and_are_dropped_from_the_body() -> None:
    body = (
        "<div class='article'><h1>社区读书节开幕</h1>"
        "<div class='info'>2024-05-20 10:30 来源：某某日报 作者：王五</div>"
        f"{article_div()}</div>"
    )
    article = extract_article(page(body, head="<title>社区读书节开幕_某某新闻网</title>"))
    assert article.title == "社区读书节开幕"
    assert article.meta["source"] == "某某日报"
    assert article.meta["author"] == "王五"
    assert article.meta["published"].startswith("2024-05-20")
    assert kept_paragraphs(article) == BODY
    title_drops = [
        d for d in article.drops if article.text[d.start : d.end].strip() == "社区读书节开幕"
    ]
    assert title_drops and "meta.title" in title_drops[0].reason


# ----------------------------------------------------------------------------- drops as edits


def test_drops_apply_as_edits_and_the_input_can_be_rebuilt() -> None:
    body = (
        f"{nav()}<div class='wrap'><h1>标题</h1>{article_div()}"
        "<div class='share'>分享到：微信 微博</div></div><footer><p>版权所有 某某网</p></footer>"
    )
    article = extract_article(page(body))
    assert article.drops
    spans = [(d.start, d.end) for d in article.drops]
    assert spans == sorted(spans)
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:], strict=False))
    assert all(d.path.startswith("body") for d in article.drops)

    doc = Document.new("page.html", article.text)
    doc.apply(
        "ingest",
        [
            Change(
                d.start,
                d.end,
                "",
                "html.chrome",
                d.reason,
                kind="html-chrome",
                evidence={"path": d.path, "reason": d.reason},
            )
            for d in article.drops
        ],
    )
    assert doc.text == extracted_text(article) == "\n\n".join(BODY)
    assert doc.reconstruct_input() == article.text
    assert all(e.kind == "html-chrome" and e.evidence["path"] for e in doc.edits)


def test_empty_and_broken_pages_do_not_crash() -> None:
    assert extract_article("").text == ""
    assert extract_article("<html><body><div><p>未闭合的段落").text == "未闭合的段落"
    deep = "<div>" * 3000 + "深层文字。" + "</div>" * 3000
    assert "深层文字。" in extract_article(deep).text


def test_extraction_is_deterministic() -> None:
    html = page(nav() + article_div() + "<div class='share'>分享</div>")
    assert extract_article(html) == extract_article(html)


# ----------------------------------------------------------------------------- credit lines


@pytest.mark.parametrize(
    "credit",
    [
        "责任编辑：张三",
        "（来源：新华社）",
        "本文来源：某某日报",
        "原标题：社区读书节开幕 居民踊跃参加",
        "记者 李四",
        "本报记者 王一 刘二",
        "图片来源：某某图片社",
        "编辑：赵六",
        "【责任编辑:王五】",
        "責任編輯:陳大文",
        "(來源：某某通訊社)",
        "原標題：社區讀書節開幕",
        "圖片來源：某某圖片社",
        "某某社记者 孙七 摄",
        "原文链接：https://news.example.cn/a/1.html",
    ],
)
def test_a_credit_line_after_the_body_is_kept_for_the_boilerplate_stage(credit: str) -> None:
    body = (
        f"{nav()}<div class='wrap'><div class='article-body'>"
        + "".join(f"<p>{s}</p>" for s in BODY)
        + f"<p>{credit}</p></div></div><footer><p>版权所有 某某网</p></footer>"
    )
    article = extract_article(page(body))
    assert kept_paragraphs(article) == [*BODY, credit]
    assert not any(credit in t for t in drop_texts(article))


def test_credit_lines_before_the_body_are_kept_and_the_headline_dropped() -> None:
    body = (
        "<div class='article'><h1>社区读书节开幕</h1>"
        "<p>记者 李四</p><p>来源：某某日报</p>"
        f"{article_div()}</div>"
    )
    article = extract_article(page(body))
    assert kept_paragraphs(article) == ["记者 李四", "来源：某某日报", *BODY]
    assert article.meta["source"] == "某某日报"
    assert any("meta.title" in d.reason for d in article.drops)


def test_credit_lines_beside_the_body_element_are_kept_past_a_share_button() -> None:
    body = (
        f"{nav()}<div class='main'>{article_div()}"
        "<div class='share-box'>分享到：</div>"
        "<div class='article-editor'>（责任编辑：张三）</div>"
        "<div class='info'>来源：某某日报</div></div>"
    )
    article = extract_article(page(body))
    assert kept_paragraphs(article) == [*BODY, "（责任编辑：张三）", "来源：某某日报"]
    assert any("分享到" in t for t in drop_texts(article))


@pytest.mark.parametrize(
    "after",
    [
        # beyond a list of links: not next to the article
        "<ul class='news'>"
        + "".join(f"<li><a href='/n{i}'>另一条新闻标题第{i}条</a></li>" for i in range(6))
        + "</ul><p>责任编辑：张三</p>",
        # hidden from the reader
        "<p style='display:none'>责任编辑：张三</p>",
        # beyond a longer fragment that is not a credit
        "<p>本站所有内容仅供参考 联系电话 12345678</p><p>责任编辑：张三</p>",
        # a byline with a date is read into meta, not kept
        "<p>来源：某某日报 2024-05-20 10:30</p>",
    ],
)
def test_credit_lines_that_are_not_next_to_the_body_stay_dropped(after: str) -> None:
    body = f"<div class='main'>{article_div()}</div>{after}"
    article = extract_article(page(body))
    assert kept_paragraphs(article) == BODY


@pytest.mark.parametrize("fragment", ["编辑部的故事", "来源不明", "记者会现场", "作者简介", "图集"])
def test_fragments_that_only_start_like_a_credit_stay_dropped(fragment: str) -> None:
    body = f"<div class='main'>{article_div()}<div class='x'>{fragment}</div></div>"
    article = extract_article(page(body))
    assert kept_paragraphs(article) == BODY


@pytest.mark.parametrize(
    "line",
    [
        "记者：你怎么看这件事？",  # an interview line
        "来源：网络，仅供参考。",
        "作者：我觉得这个问题很复杂，需要慢慢讨论",
        "编辑：请问您当时在现场吗？",
        "图为活动现场，市民排队入场。",
    ],
)
def test_sentences_are_not_credit_lines(line: str) -> None:
    assert not _is_credit_line(line)


# ----------------------------------------------------------------------------- teaser lists


def _short_article_beside_teasers(title_tag: str = "h1") -> str:
    player_ui = "".join(
        f"<div>{w}</div>" for w in ("会员跳过广告", "正在为您切换到高清", "播放速度", "设置成功")
    )
    teasers = "".join(
        f"<li class='pack'><h3><a href='/t{i}'>另一篇报道的标题第{i}条</a></h3><p>{S3}{S4[:20]}</p></li>"
        for i in range(2)
    )
    return (
        f"{nav()}<div class='main'><div class='left'>"
        f"<div id='news'><{title_tag}>社区读书节开幕</{title_tag}>"
        f"<div class='video-player'>{player_ui * 12}</div>"
        f"<p>{S1}{S2}</p></div>"
        f"<div class='tabs'><ul class='top-news'>{teasers}</ul></div>"
        "</div></div>"
    )


def test_a_short_article_after_the_title_beats_a_two_item_teaser_list() -> None:
    article = extract_article(page(_short_article_beside_teasers()))
    assert kept_paragraphs(article) == [S1 + S2]
    assert any(S3 + S4[:20] in t for t in drop_texts(article))


def test_a_long_article_with_linked_section_headings_is_not_replaced_by_its_lead() -> None:
    sections = "".join(
        f"<h3><a href='/p{i}'>第{i}家书店</a></h3><p>{S1}{S2}{S3}</p>" for i in range(5)
    )
    body = (
        "<div class='main'><div class='head'><h1>社区读书节开幕</h1>"
        f"<p class='lead'>{S4}</p></div>"
        f"<div class='content'>{sections}</div></div>"
    )
    article = extract_article(page(body))
    assert S1 + S2 + S3 in kept_paragraphs(article)
