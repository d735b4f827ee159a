"""Chinese line breaking on the LED rows (issue 13): a table of county-bureau texts and their rows.

Each expected break was checked by hand against the rules: no split digit run, number with its
unit (三点, 280元/天, 13:30), ASCII word or masked phone; no row starts with a closing mark or
ends with an opening one; a pause (punctuation, space) in the last three fifths of a row is preferred.
Rows are 128 px of GNU Unifont 16 (eight Chinese characters), the 128x32 panel.
"""

from __future__ import annotations

import re

import pytest
from display_support import UNIFONT
from hypothesis import example, given
from hypothesis import strategies as st
from support import fuzz

from edge.display.linebreak import CLOSING, OPENING, atoms, break_lines
from edge.display.render import Glyphs

GLYPHS = Glyphs(UNIFONT, 16)
ROW_PX = 128

TABLE = [
    ("本周四下午三点 家政技能免费培训", ["本周四下午三点", "家政技能免费培训"]),
    ("借出成功 请按时归还", ["借出成功", "请按时归还"]),
    ("招聘保洁员3名，280元/天，管午饭。", ["招聘保洁员3名，", "280元/天，", "管午饭。"]),
    ("11月25日13:30在县人社局三楼举办专场招聘会", ["11月25日13:30在", "县人社局三楼举办", "专场招聘会"]),
    ("电焊工2名 350元/天 联系电话138****5678", ["电焊工2名", "350元/天", "联系电话", "138****5678"]),
    ("农民工工资拖欠投诉请拨打12333", ["农民工工资拖欠投", "诉请拨打12333"]),
    ("明日（周五）上午8:00-12:00大厅正常开放", ["明日（周五）", "上午8:00-12:00大", "厅正常开放"]),
    (
        "冬季用工专场招聘会将于12月3日举行，欢迎求职者参加。",
        ["冬季用工专场招聘", "会将于12月3日举", "行，欢迎求职者参", "加。"],
    ),
    ("县城区小区保洁 钟点工 25元/时 每天4小时", ["县城区小区保洁", "钟点工", "25元/时", "每天4小时"]),
    ("装卸工日结 200元/天 早7点集合", ["装卸工日结", "200元/天", "早7点集合"]),
    ("缝纫工计件 0.8元/件 多劳多得", ["缝纫工计件", "0.8元/件", "多劳多得"]),
    ("请持身份证到2号窗口办理求职登记", ["请持身份证到", "2号窗口办理求职", "登记"]),
    ("《保障农民工工资支付条例》宣传月", ["《保障农民工工资", "支付条例》宣传月"]),
    ("“春风行动”送岗位下乡活动通知", ["“春风行动”送岗位", "下乡活动通知"]),
    ("温馨提示：请保管好随身物品，谨防诈骗！", ["温馨提示：", "请保管好随身物", "品，谨防诈骗！"]),
    ("叉车司机 需持证 6500元/月 包住宿", ["叉车司机", "需持证", "6500元/月 包住宿"]),
    ("育婴员培训报名截止11月30日", ["育婴员培训报名截", "止11月30日"]),
    ("零工市场开放时间：07:00-19:00", ["零工市场开放时", "间：07:00-19:00"]),
    ("搬运工急招5人 每车150元 现场结算", ["搬运工急招5人", "每车150元", "现场结算"]),
    ("建筑工地小工 240元/天 年龄55岁以下", ["建筑工地小工", "240元/天", "年龄55岁以下"]),
    ("家政服务员 一日三餐 月休四天", ["家政服务员", "一日三餐", "月休四天"]),
    ("请勿相信“先交费后上岗”的招聘信息", ["请勿相信“先交费", "后上岗”的招聘信", "息"]),
    ("免费WiFi已开通，密码见服务台", ["免费WiFi已开通，", "密码见服务台"]),
    ("大棚蔬菜采摘 日结180元 包接送", ["大棚蔬菜采摘", "日结180元 包接送"]),
    ("保安队员 4200元/月 夜班补贴另计", ["保安队员", "4200元/月", "夜班补贴另计"]),
    ("下午两点半在培训室开展电工安全讲座", ["下午两点半在培训", "室开展电工安全讲", "座"]),
    ("工地急需钢筋工10名，联系王经理139****2468", ["工地急需钢筋工", "10名，联系王经理", "139****2468"]),
    ("求职登记请到1号窗口，招聘登记请到3号窗口", ["求职登记请到", "1号窗口，", "招聘登记请到", "3号窗口"]),
    ("雨天路滑，进出大厅请注意安全。", ["雨天路滑，", "进出大厅请注意安", "全。"]),
    ("灵活就业人员社保补贴政策解读（第3期）", ["灵活就业人员社保", "补贴政策解读（第", "3期）"]),
    ("本市最低工资标准调整为每月1900元", ["本市最低工资标准", "调整为每月1900元"]),
    ("A023 号 打印机缺纸 请到窗口", ["A023 号", "打印机缺纸", "请到窗口"]),
]


@pytest.mark.parametrize(("text", "rows"), TABLE)
def test_county_texts_break_where_a_reader_expects(text, rows):
    assert break_lines(text, GLYPHS.width, ROW_PX) == rows


def test_the_table_is_long_enough_and_keeps_every_character():
    assert len(TABLE) >= 30
    for text, rows in TABLE:
        assert "".join(rows).replace(" ", "") == text.replace(" ", "")  # only spaces at breaks go


def test_the_screens_old_splits_are_gone():
    """What issue 13 saw: `本周四下午三 / 点` and `借出成功 请按时 / 归还`."""
    assert break_lines("本周四下午三点 家政技能免费培训", GLYPHS.width, ROW_PX)[0] == "本周四下午三点"
    assert break_lines("借出成功 请按时归还", GLYPHS.width, ROW_PX) == ["借出成功", "请按时归还"]
    # with a 公告 badge taking 30 px of the first row, 三点 moves down whole
    assert break_lines("本周四下午三点 家政技能免费培训", GLYPHS.width, ROW_PX, 98)[:2] == [
        "本周四下午",
        "三点 家政技能免",
    ]


@pytest.mark.parametrize(
    "atom",
    [
        "三点",
        "三点半",
        "280元/天",
        "25.5元/时",
        "13:30",
        "07:00-19:00",
        "138****5678",
        "A023号",
        "WiFi",
        "0.8元/件",
        "两人",
    ],
)
def test_units_numbers_words_and_phones_are_never_split(atom):
    assert atom in atoms(f"请于{atom}前到场")


def _check_rows(text: str, room: int) -> None:
    rows = break_lines(text, GLYPHS.width, room)
    for i, row in enumerate(rows):
        if GLYPHS.width(row) > room:
            assert len(atoms(row)) == 1, f"only a single unbreakable atom may overflow: {row!r}"
        if i > 0:
            assert row[0] not in CLOSING, f"row starts with a closing mark: {rows}"
            if " " not in text:  # else a space between two numbers is a fair break
                assert not (rows[i - 1][-1:].isdigit() and row[0].isdigit()), f"digits split: {rows}"
                assert not (re.match(r"[A-Za-z]", rows[i - 1][-1:]) and re.match(r"[A-Za-z]", row[0])), rows
        if i < len(rows) - 1:
            assert row[-1] not in OPENING, f"row ends with an opening mark: {rows}"


@pytest.mark.parametrize("room", [64, 96, 128, 256])
def test_every_table_text_keeps_the_rules_at_other_panel_widths(room):
    for text, _ in TABLE:
        _check_rows(text, room)


@fuzz(200)
@given(st.text(alphabet="本周四下午三点元天时人号，。：（）“”《》 0123456789AbcWiFi*-/:", max_size=60))
@example("000000000 ”。。。")  # a space before a closing mark was a break: the row began with ”
def test_any_text_keeps_the_rules(text):
    _check_rows(text, 128)
