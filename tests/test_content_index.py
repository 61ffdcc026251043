"""The content lookup: exact keywords (own items first, more keywords first, no false
friends across Chinese word boundaries), then BM25 for fuzzy questions above a
relative threshold. Pure: no database, no event loop."""

from __future__ import annotations

import pytest

from handlers.features.content.index import (
    DEFAULT_THRESHOLD,
    ContentIndex,
    Indexable,
    Match,
    build_index,
)


def _item(
    item_id: int, title: str, summary: str, keywords: tuple[str, ...], own: bool = True
) -> Indexable:
    return Indexable(item_id, title, summary, keywords, ("财税",), own)


LIBRARY = (
    _item(
        1,
        "增值税专用发票开具指南",
        "一般纳税人如何开具和认证专用发票，常见错误与补救",
        ("增值税发票", "开票"),
    ),
    _item(2, "外部：发票新政解读", "税务局发布的最新发票政策", ("发票",), own=False),
    _item(3, "社保代缴避坑手册", "灵活就业人员如何缴纳社会保险，代缴机构怎么选", ("社保", "代缴")),
    _item(4, "劳动合同模板合集", "入职、试用期、离职各阶段的劳动合同范本下载", ("合同模板",)),
    _item(5, "会计入门课", "零基础学会计，从借贷记账法讲起", ("会计",), own=False),
    _item(6, "公司注册流程", "从核名到领取营业执照，注册有限公司的步骤和材料清单", ("注册公司",)),
    _item(7, "出口退税实务", "外贸企业出口退税的申报流程、单证要求和退税率查询", ("出口退税",)),
    _item(8, "研究生考试经验", "考研复试准备与导师联系", ("研究生",), own=False),
    _item(9, "API 接入说明", "开放平台的 api 鉴权与回调", ("api",)),
    _item(10, "天气预报接口对比", "几家天气数据服务商的价格和稳定性", ("天气接口",), own=False),
)


@pytest.fixture(scope="module")
def index() -> ContentIndex:
    return build_index(LIBRARY, version=7)


def _ids(matches: list[Match]) -> list[int]:
    return [match.item_id for match in matches]


def test_two_keywords_in_one_message_give_one_list_own_first(index: ContentIndex) -> None:
    matches = index.lookup("有没有发票和社保代缴方面的资料？")
    # 社保 + 代缴 (two keywords) before 增值税 …; the external 发票 item after the own ones
    assert _ids(matches) == [3, 2]
    assert matches[0] == Match(3, 2.0, "keyword", ("社保", "代缴"))
    assert matches[1].keywords == ("发票",)

    matches = index.lookup("增值税发票怎么开？社保呢？")
    assert _ids(matches) == [1, 3, 2]  # own (1, 3) before external (2), whatever the order
    assert all(match.how == "keyword" for match in matches)


def test_more_distinct_keywords_rank_higher_among_own_items(index: ContentIndex) -> None:
    # 3 is hit by two keywords, 1 by one (增值税发票 also contains 发票: item 2, external)
    assert _ids(index.lookup("增值税发票，社保代缴")) == [3, 1, 2]
    # the same keyword twice is still one keyword
    assert index.lookup("社保社保社保")[0].score == 1.0


def test_limit_cuts_after_ranking(index: ContentIndex) -> None:
    assert _ids(index.lookup("增值税发票 社保 合同模板", limit=2)) == [1, 3]
    assert index.lookup("社保", limit=0) == []


def test_traditional_and_full_width_input_still_hit(index: ContentIndex) -> None:
    assert _ids(index.lookup("請問社保代繳怎麼辦")) == [3]  # traditional
    assert _ids(index.lookup("求教ＡＰＩ怎么调")) == [9]  # full-width latin
    assert _ids(index.lookup("增值稅發票")) == [1, 2]


def test_keywords_inside_other_words_are_not_hits(index: ContentIndex) -> None:
    # 会计 straddles 大会|计划, 研究生 straddles 研究|生命, api sits inside rapid
    assert index.keyword_matches("大会计划明天公布") == []
    assert index.keyword_matches("研究生命科学的团队") == []
    assert index.keyword_matches("rapid prototyping") == []
    # … but a keyword inside a longer word of the same meaning still counts
    assert _ids(index.keyword_matches("会计师事务所哪家好")) == [5]
    assert _ids(index.keyword_matches("在哪里开发票")) == [2]


def test_fuzzy_question_finds_the_right_item_among_distractors(index: ContentIndex) -> None:
    for question, expected in [
        ("我想开一家有限公司，要准备哪些材料？", 6),
        ("外贸企业出口的退税怎么申报", 7),
        ("灵活就业人员的社会保险怎么交", 3),
        ("劳动合同范本哪里能下载", 4),
    ]:
        matches = index.lookup(question)
        assert matches, question
        assert matches[0].item_id == expected, question
        assert matches[0].how == "bm25"
        assert matches[0].score >= DEFAULT_THRESHOLD


def test_fuzzy_matches_put_own_items_first() -> None:
    library = (
        _item(1, "外部：出口退税流程", "出口退税申报流程", ("外部退税",), own=False),
        _item(2, "出口退税实务", "外贸企业出口退税的申报流程和单证", ("出口退税实务",)),
    )
    matches = build_index(library, version=1).lookup("出口的退税流程怎么走")
    assert _ids(matches) == [2, 1]
    assert matches[1].score > matches[0].score  # the external one scores higher, ranks lower


@pytest.mark.parametrize(
    "text",
    ["今天天气不错，中午吃什么", "哈哈哈哈", "好的收到", "大家早上好", "谢谢分享", ""],
)
def test_small_talk_finds_nothing(index: ContentIndex, text: str) -> None:
    assert index.lookup(text) == []


def test_threshold_decides(index: ContentIndex) -> None:
    question = "外贸企业出口的退税怎么申报"
    score = index.lookup(question)[0].score
    assert index.lookup(question, threshold=score + 0.01) == []
    assert _ids(index.lookup(question, threshold=0.01))[0] == 7


def test_admit_leaves_items_out_before_the_limit(index: ContentIndex) -> None:
    assert _ids(index.lookup("增值税发票 社保", limit=1, admit=lambda item: item != 1)) == [3]
    assert index.lookup("社保", admit=lambda item: False) == []
    assert _ids(index.lookup("外贸企业出口的退税怎么申报", admit=lambda item: item != 7)) == []


def test_empty_library_finds_nothing() -> None:
    empty = build_index((), version=0)
    assert empty.version == 0
    assert len(empty) == 0
    assert empty.lookup("增值税发票怎么开") == []


def test_items_without_keywords_or_text() -> None:
    bare = build_index((Indexable(1, "", "", (), (), True),), version=3)
    assert bare.lookup("增值税发票") == []
    titled = build_index((_item(1, "出口退税实务", "外贸出口退税申报", ()),), version=4)
    assert _ids(titled.lookup("出口退税怎么申报")) == [1]


def test_version_is_kept(index: ContentIndex) -> None:
    assert index.version == 7
    assert len(index) == len(LIBRARY)


def test_characters_past_the_bmp_keep_offsets_right(index: ContentIndex) -> None:
    # emoji are two UTF-16 units: offsets after them must still be character offsets
    assert _ids(index.lookup("😀👍社保代缴怎么办")) == [3]
    assert index.candidates("😀社保")[0][:2] == (1, 3)


def test_bytes_across_two_characters_are_not_a_keyword() -> None:
    # 社 is U+793E; 乹 U+4E79 then 㸀 U+3E00 carry the bytes 79 3E across their border
    single = build_index((_item(1, "社", "", ("社",)),), version=1)
    assert single.candidates("\u4e79\u3e00") == []
    assert single.candidates("社") == [(0, 1, ((1, "社"),))]
