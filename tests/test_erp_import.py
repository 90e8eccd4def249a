"""Reading real ERP exports (streams.erp_import, issue 18): encodings, Chinese headers, .xlsx, local
times, per-row errors. No broker: bytes in, submissions and row errors out.

Expected times are written out by hand (Asia/Shanghai is UTC+8 all year, no DST since 1991), and
the content-derived event id's known answer is the SHA-1 of its documented input string.
"""

from __future__ import annotations

import codecs
import datetime as dt
import hashlib
import io
import tomllib
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from openpyxl import Workbook

from streams.clients import read_events
from streams.erp_import import (
    BadColumnMap,
    BadImportFile,
    ColumnMap,
    RowContext,
    csv_rows,
    decode_text,
    header_key,
    jsonl_events,
    parse_ship_time,
    read_rows,
    xlsx_rows,
)
from streams.settings import DEFAULT_CONFIG

COLUMNS = ColumnMap.from_mapping(tomllib.loads((DEFAULT_CONFIG.parent / "import_columns.toml").read_text("utf-8")))
SHANGHAI = ZoneInfo("Asia/Shanghai")
CTX = RowContext(SHANGHAI)

# What 店小秘 / 马帮-style exports look like: Chinese headers, a column that is not sent.
HEADER = "营业执照,店铺名称,订单号,物流公司,运单号,发货时间,买家姓名"
ROWS = [
    "91110000600037341L,义乌小店,T-1001,中国邮政,RR123456785CN,2026-11-25 08:00:00,张三",
    "91110000600037341L,义乌小店,T-1002,燕文,UG123456789YP,2026/11/25 9:05,李四",
]


def csv_bytes(lines: list[str], encoding: str = "utf-8", bom: bytes = b"") -> bytes:
    return bom + ("\r\n".join(lines) + "\r\n").encode(encoding)


def read_csv(data: bytes, ctx: RowContext = CTX, columns: ColumnMap = COLUMNS, encoding: str | None = None):
    text, used = decode_text(data, encoding)
    result = read_rows(csv_rows(text), columns, ctx)
    result.encoding = used
    return result


EXPECTED = [
    {
        "license_id": "91110000600037341L",
        "store_id": "义乌小店",
        "order_id": "T-1001",
        "carrier_code": "中国邮政",
        "tracking_no": "RR123456785CN",
        "shipped_at": "2026-11-25T08:00:00+08:00",
    },
    {
        "license_id": "91110000600037341L",
        "store_id": "义乌小店",
        "order_id": "T-1002",
        "carrier_code": "燕文",
        "tracking_no": "UG123456789YP",
        "shipped_at": "2026-11-25T09:05:00+08:00",
    },
]


def without_ids(events: list[dict]) -> list[dict]:
    return [{k: v for k, v in e.items() if k != "event_id"} for e in events]


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        (csv_bytes([HEADER, *ROWS]), "utf-8"),
        (csv_bytes([HEADER, *ROWS], bom=codecs.BOM_UTF8), "utf-8"),  # Excel's "CSV UTF-8"
        (csv_bytes([HEADER, *ROWS], "gb18030"), "gb18030"),
        (csv_bytes([HEADER, *ROWS], "gbk"), "gb18030"),  # GBK is a subset of GB18030
        (codecs.BOM_UTF16_LE + "\r\n".join([HEADER, *ROWS]).replace(",", "\t").encode("utf-16-le"), "utf-16"),
    ],
    ids=["utf8", "utf8-bom", "gb18030", "gbk", "utf16-tabs"],
)
def test_every_encoding_chinese_erps_and_excel_write_reads_the_same(data: bytes, encoding: str):
    result = read_csv(data)
    assert result.errors == []
    assert without_ids(result.events) == EXPECTED
    assert result.encoding == encoding
    assert result.lines == [2, 3] and result.header_line == 1
    assert result.ignored == ["买家姓名"]  # a buyer's name is never sent


def test_a_named_encoding_overrides_detection_and_a_wrong_one_is_said():
    big5 = csv_bytes(["店鋪,訂單號", "台北店,A-1"], "big5")
    with pytest.raises(BadImportFile, match="not utf-8 text"):
        decode_text(big5, "utf-8")
    assert decode_text(big5, "big5")[0].startswith("店鋪")
    with pytest.raises(BadImportFile, match="neither UTF-8 nor GB18030.*--encoding"):
        decode_text(b"\x81\x20\xff\xff")


def test_content_derived_ids_are_stable_and_the_known_answer():
    first, again = read_csv(csv_bytes([HEADER, *ROWS])), read_csv(csv_bytes([HEADER, *ROWS], "gb18030"))
    assert [e["event_id"] for e in first.events] == [e["event_id"] for e in again.events]
    basis = "91110000600037341L|义乌小店|T-1001|中国邮政|RR123456785CN|2026-11-25T08:00:00+08:00"
    assert first.events[0]["event_id"] == "import-" + hashlib.sha1(basis.encode()).hexdigest()[:24]
    given = read_csv(csv_bytes([HEADER + ",event_id", ROWS[0] + ",erp-7"]))
    assert given.events[0]["event_id"] == "erp-7"


def test_english_headers_of_the_old_format_still_read_and_keep_their_ids():
    lines = [
        "license_id,store_id,order_id,carrier_code,tracking_no,shipped_at,source",
        "L1,S1,O1,CHINAPOST,RR123456785CN,2026-11-20T08:00:00+08:00,erp",
    ]
    result = read_csv(csv_bytes(lines), columns=ColumnMap({}))  # the field names map without a file
    basis = "L1|S1|O1|CHINAPOST|RR123456785CN|2026-11-20T08:00:00+08:00"
    assert result.events == [
        {
            "license_id": "L1",
            "store_id": "S1",
            "order_id": "O1",
            "carrier_code": "CHINAPOST",
            "tracking_no": "RR123456785CN",
            "shipped_at": "2026-11-20T08:00:00+08:00",
            "source": "erp",
            "event_id": "import-" + hashlib.sha1(basis.encode()).hexdigest()[:24],
        }
    ]


@pytest.mark.parametrize(
    ("header", "field"),
    [
        ("运单号", "tracking_no"),
        ("物流单号", "tracking_no"),
        ("跟踪号", "tracking_no"),
        ("Tracking Number", "tracking_no"),
        ("承运商", "carrier_code"),
        ("物流商", "carrier_code"),
        ("物流公司", "carrier_code"),
        ("物流渠道", "carrier_code"),
        ("Carrier", "carrier_code"),
        ("发货时间", "shipped_at"),
        ("Ship Date", "shipped_at"),
        ("店铺", "store_id"),
        ("店铺名称", "store_id"),
        ("店铺ID", "store_id"),
        ("Shop Name", "store_id"),
        ("订单号", "order_id"),
        ("平台订单号", "order_id"),
        ("Order No", "order_id"),
        ("营业执照", "license_id"),
        ("执照号", "license_id"),
        ("Business License", "license_id"),
        ("*运单号：", "tracking_no"),  # Excel templates mark required columns; colons, full-width or not
        ("ＴＲＡＣＫＩＮＧ＿ＮＯ", "tracking_no"),
        ("\ufeffstore_id", "store_id"),
    ],
)
def test_the_shipped_mapping_knows_chinese_and_english_headers(header: str, field: str):
    assert COLUMNS.field_of(header) == field


def test_two_columns_for_one_field_the_preferred_spelling_wins():
    header = ["店铺名称", "店铺ID", "订单号", "平台订单号", "运单号", "跟踪号", "物流渠道", "承运商", "发货时间"]
    chosen = COLUMNS.resolve(header)
    assert {name: header[i] for name, i in chosen.items()} == {
        "store_id": "店铺ID",
        "order_id": "平台订单号",
        "tracking_no": "跟踪号",
        "carrier_code": "承运商",
        "shipped_at": "发货时间",
    }


def test_a_users_mapping_adds_spellings_and_takes_headers_over():
    extra = {"columns": {"tracking_no": ["国际单号"], "store_id": ["店铺"], "order_id": ["参考号", "运单号"]}}
    columns = COLUMNS.extended(extra)
    assert columns.field_of("国际单号") == "tracking_no"
    assert columns.field_of("运单号") == "order_id"  # taken from tracking_no
    assert columns.resolve(["店铺ID", "店铺"]) == {"store_id": 1}  # the user's spelling comes first
    assert COLUMNS.field_of("运单号") == "tracking_no"  # the shipped map is unchanged


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"columns": {"tracking": ["x"]}}, "unknown field 'tracking'"),
        ({"columns": {"tracking_no": "运单号"}}, "must be a list"),
        ({"column": {}}, "unknown section"),
        ({"columns": {"tracking_no": ["编号"], "order_id": ["编号"]}}, "header '编号' already maps to order_id"),
        ({"columns": {"tracking_no": ["Order ID"]}}, "'Order ID' is the name of the field order_id"),
        ({"columns": {"tracking_no": [" - "]}}, "empty header spelling"),
    ],
)
def test_a_bad_mapping_is_an_error_that_names_it(data: dict, message: str):
    with pytest.raises(BadColumnMap, match=message):
        COLUMNS.extended(data, "mine.toml")


def test_header_keys():
    assert header_key(" Tracking_No ") == header_key("tracking no") == header_key("TRACKING-NO") == "trackingno"
    assert header_key("*发货时间：") == "发货时间"


def test_title_rows_above_the_header_are_skipped_and_lines_stay_the_files():
    lines = ["订单导出 2026-11-25,,,,,,", ",,,,,,", HEADER, ROWS[0], "", ROWS[1]]
    result = read_csv(csv_bytes(lines))
    assert result.header_line == 3 and result.lines == [4, 6]
    assert without_ids(result.events) == EXPECTED


def test_a_quoted_cell_over_two_lines_keeps_later_line_numbers_right():
    lines = [HEADER, ROWS[0][: -len(",张三")] + ',"张\n三"', ROWS[1].replace("2026/11/25 9:05", "soon")]
    result = read_csv(csv_bytes(lines))
    assert result.lines == [2] and [e.line for e in result.errors] == [4]


def test_a_header_without_required_columns_is_a_file_error_with_its_line():
    with pytest.raises(BadImportFile, match="lacks the column\\(s\\) license_id, tracking_no") as info:
        read_csv(csv_bytes(["店铺,订单号,物流公司,发货时间", "a,b,c,d"]))
    assert info.value.line == 1
    assert str(info.value.at("erp.csv")).startswith("erp.csv:1: the header row lacks")
    with pytest.raises(BadImportFile, match="empty"):
        read_csv(b"\r\n\r\n")


def test_license_option_fills_the_licence_and_refuses_another():
    header = "店铺,订单号,物流公司,运单号,发货时间"
    row = "义乌小店,T-1001,中国邮政,RR123456785CN,2026-11-25 08:00:00"
    with pytest.raises(BadImportFile, match="license_id"):
        read_csv(csv_bytes([header, row]))
    ctx = RowContext(SHANGHAI, license_id="91110000600037341L")
    assert read_csv(csv_bytes([header, row]), ctx).events[0]["license_id"] == "91110000600037341L"
    with_column = read_csv(csv_bytes(["执照号," + header, "," + row, "OTHER," + row]), ctx)
    assert with_column.events[0]["license_id"] == "91110000600037341L"  # empty cell: filled
    assert with_column.errors[0].line == 3 and "not the --license" in with_column.errors[0].message


def test_bad_rows_are_reported_each_with_its_line_and_the_column_as_the_file_names_it():
    lines = [
        HEADER,
        ROWS[0],
        "91110000600037341L,义乌小店,T-1003,顺丰,,2026-11-25 08:00:00,王五",  # no number
        "91110000600037341L,义乌小店,T-1004,顺丰,SF1234567890123,昨天,王五",  # no time
        "91110000600037341L,义乌小店,T-1005,顺丰,1.23457E+19,2026-11-25,王五",  # Excel rounded it
        "91110000600037341L,,,顺丰,SF1234567890124,2026-02-30 08:00,王五",  # three problems
        "91110000600037341L,义乌小店,T-1007,顺丰",  # a short row
    ]
    result = read_csv(csv_bytes(lines))
    assert [e["order_id"] for e in result.events] == ["T-1001"]
    errors = {e.line: e.message for e in result.errors}
    assert sorted(errors) == [3, 4, 5, 6, 7]
    assert errors[3] == "no value for 运单号 (tracking_no)"
    assert "发货时间 (shipped_at) '昨天' is not a date-time" in errors[4]
    assert "scientific notation" in errors[5] and "'1.23457E+19'" in errors[5]
    assert "no value for 店铺名称 (store_id), 订单号 (order_id)" in errors[6] and "'2026-02-30 08:00'" in errors[6]
    assert "no value for 运单号 (tracking_no), 发货时间 (shipped_at)" in errors[7]
    assert result.rows == 6


def test_uscc_mode_rejects_bad_licence_ids_client_side():
    ctx = RowContext(SHANGHAI, license_id_format="uscc")
    lines = [HEADER, ROWS[0], ROWS[1].replace("91110000600037341L", "91110000600037341N")]
    result = read_csv(csv_bytes(lines), ctx)
    assert [e.line for e in result.errors] == [3]
    assert "check digit of a Unified Social Credit Code" in result.errors[0].message
    assert len(read_csv(csv_bytes(lines)).events) == 2  # "any": both sent


@pytest.mark.parametrize(
    ("value", "zone", "expected"),
    [
        ("2026-11-25 08:00:00", "Asia/Shanghai", "2026-11-25T08:00:00+08:00"),
        ("2026-11-25T08:00:00", "Asia/Shanghai", "2026-11-25T08:00:00+08:00"),
        ("2026/11/25 8:05", "Asia/Shanghai", "2026-11-25T08:05:00+08:00"),
        ("2026.11.25 08:05:09", "Asia/Shanghai", "2026-11-25T08:05:09+08:00"),
        ("2026-11-25 08:00:00.25", "Asia/Shanghai", "2026-11-25T08:00:00.250+08:00"),
        ("2026年11月25日 8时5分9秒", "Asia/Shanghai", "2026-11-25T08:05:09+08:00"),
        ("2026年11月25日", "Asia/Shanghai", "2026-11-25T00:00:00+08:00"),  # a date alone: midnight
        ("２０２６－１１－２５　０８：００", "Asia/Shanghai", "2026-11-25T08:00:00+08:00"),  # full-width
        ("2026-01-15 08:00", "Europe/Berlin", "2026-01-15T08:00:00+01:00"),
        ("2026-07-15 08:00", "Europe/Berlin", "2026-07-15T08:00:00+02:00"),
        ("2026-11-01 01:30", "America/New_York", "2026-11-01T01:30:00-04:00"),  # ambiguous: the earlier
        # With an offset: kept as is, whatever the zone
        ("2026-11-25T08:00:00+08:00", "Europe/Berlin", "2026-11-25T08:00:00+08:00"),
        ("2026-11-25T00:00:00Z", "Asia/Shanghai", "2026-11-25T00:00:00Z"),
        ("2026/11/25 08:00 +0530", "Asia/Shanghai", "2026-11-25T08:00:00+05:30"),
        ("2026-11-25 08:00Z", "Asia/Shanghai", "2026-11-25T08:00:00+00:00"),
        # Not times
        ("昨天", "Asia/Shanghai", None),
        ("25/11/2026 08:00", "Asia/Shanghai", None),  # day first: ambiguous with month first, refused
        ("2026-02-30 08:00", "Asia/Shanghai", None),
        ("2026-11-25 25:00", "Asia/Shanghai", None),
        ("2026-11-25 08:00 +2500", "Asia/Shanghai", None),
        (46000.5, "Asia/Shanghai", None),  # an Excel serial number: the cell lost its date format
    ],
)
def test_ship_times(value, zone: str, expected: str | None):
    assert parse_ship_time(value, ZoneInfo(zone)) == expected


def test_excel_date_cells_are_local_times():
    assert parse_ship_time(dt.datetime(2026, 11, 25, 8, 0), SHANGHAI) == "2026-11-25T08:00:00+08:00"
    assert parse_ship_time(dt.date(2026, 11, 25), SHANGHAI) == "2026-11-25T00:00:00+08:00"
    aware = dt.datetime(2026, 11, 25, 8, 0, tzinfo=dt.UTC)
    assert parse_ship_time(aware, SHANGHAI) == "2026-11-25T08:00:00+00:00"


def workbook(rows: list[list]) -> bytes:
    book = Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_xlsx_rows_numbers_dates_and_rounded_numbers():
    data = workbook(
        [
            ["店铺ID", "平台订单号", "承运商", "跟踪号", "发货时间", "收货地址"],
            [1001, 20261125001, "中国邮政", "RR123456785CN", dt.datetime(2026, 11, 25, 8, 0), "浙江省义乌市"],
            [],
            [1001, 20261125002.0, "EMS", 123456789012, "2026-11-25 09:00:00", None],
            [1001, "T-3", "EMS", 1.2345678901234567e19, 46000.5, None],
        ]
    )
    result = read_rows(xlsx_rows(data), COLUMNS, RowContext(SHANGHAI, license_id="L1"))
    assert without_ids(result.events) == [
        {
            "store_id": "1001",
            "order_id": "20261125001",
            "carrier_code": "中国邮政",
            "tracking_no": "RR123456785CN",
            "shipped_at": "2026-11-25T08:00:00+08:00",
            "license_id": "L1",
        },
        {
            "store_id": "1001",
            "order_id": "20261125002",  # Excel's 20261125002.0
            "carrier_code": "EMS",
            "tracking_no": "123456789012",
            "shipped_at": "2026-11-25T09:00:00+08:00",
            "license_id": "L1",
        },
    ]
    assert result.lines == [2, 4]  # the sheet's row numbers: the empty row 3 counts
    assert [e.line for e in result.errors] == [5]
    assert "a number Excel has rounded" in result.errors[0].message
    assert "'46000.5' is not a date-time" in result.errors[0].message
    assert result.ignored == ["收货地址"]


def test_the_same_rows_as_csv_and_as_xlsx_give_the_same_submissions():
    cells = [line.split(",") for line in [HEADER, *ROWS]]
    from_xlsx = read_rows(xlsx_rows(workbook(cells)), COLUMNS, CTX)
    assert from_xlsx.events == read_csv(csv_bytes([HEADER, *ROWS])).events


def test_not_a_workbook():
    with pytest.raises(BadImportFile, match="not an .xlsx workbook"):
        list(xlsx_rows(b"PK\x03\x04 not really a zip"))


def test_json_lines_are_sent_as_written_and_bad_lines_are_row_errors():
    result = jsonl_events('{"a": 1}\n\n[1]\n{"b": "\u2028"}\nnope\n')
    assert result.events == [{"a": 1}, {"b": "\u2028"}] and result.lines == [1, 4]
    assert [(e.line, e.message[:14]) for e in result.errors] == [(3, "each line must"), (5, "not a JSON obj")]
    with pytest.raises(BadImportFile, match="not a JSON object") as info:
        jsonl_events("order,number\n")
    assert info.value.line == 1


def test_read_events_names_the_file_and_reads_each_kind(tmp_path: Path):
    gb = tmp_path / "店小秘导出.csv"
    gb.write_bytes(csv_bytes([HEADER, *ROWS], "gb18030"))
    result = read_events(gb, columns=COLUMNS)
    assert without_ids(result.events) == EXPECTED and result.encoding == "gb18030"
    book = tmp_path / "马帮.xlsx"
    book.write_bytes(workbook([line.split(",") for line in [HEADER, *ROWS]]))
    assert read_events(book, columns=COLUMNS).events == result.events
    bad = tmp_path / "bad.csv"
    bad.write_bytes(csv_bytes(["店铺,订单号", "a,b"]))
    with pytest.raises(BadImportFile, match=f"^{bad}:1: the header row lacks"):
        read_events(bad, columns=COLUMNS)
    old = tmp_path / "old.xls"
    old.write_bytes(b"\xd0\xcf\x11\xe0")
    with pytest.raises(BadImportFile, match="Excel 97-2003"):
        read_events(old)
    gbk_lines = tmp_path / "gbk.jsonl"
    gbk_lines.write_bytes('{"店铺": "义乌"}\n'.encode("gbk"))
    with pytest.raises(BadImportFile, match="not UTF-8"):
        read_events(gbk_lines)
    assert read_events(gbk_lines, encoding="gbk").events == [{"店铺": "义乌"}]
