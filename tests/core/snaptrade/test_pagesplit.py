"""The page splitter returns exactly what a full parse returns, plus each activity's source text."""

import json
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from core.snaptrade.pagesplit import split_page

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text()
    | st.decimals(allow_nan=False, allow_infinity=False, places=6),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(items=st.lists(json_values, max_size=6), extra=st.dictionaries(st.sampled_from(["pagination", "x", "meta"]), json_values),
       indent=st.sampled_from([None, 1]), data_first=st.booleans())  # fmt: skip
def test_split_matches_a_full_parse_and_slices_are_the_items(items, extra, indent, data_first):
    page = {"data": items, **extra} if data_first else {**extra, "data": items}
    text = json.dumps(page, default=str, indent=indent)
    body, slices = split_page(text)
    assert body == json.loads(text, parse_float=Decimal)
    assert slices is not None and len(slices) == len(items)
    assert [json.loads(s, parse_float=Decimal) for s in slices] == body["data"]


def test_exact_numbers_and_source_text_are_kept():
    text = '{"data":[{"id":"a","amount":140.30,"units":0.000000010000000001}],"pagination":{"total":1}}'
    body, slices = split_page(text)
    assert body["data"][0]["amount"] == Decimal("140.30")
    assert body["data"][0]["units"] == Decimal("0.000000010000000001")
    assert slices == ['{"id":"a","amount":140.30,"units":0.000000010000000001}']


def test_unusual_layouts_fall_back_to_a_plain_parse():
    assert split_page("[1, 2]") == ([1, 2], None)
    body, slices = split_page('{"data": {"not": "a list"}}')
    assert body == {"data": {"not": "a list"}} and slices == []
