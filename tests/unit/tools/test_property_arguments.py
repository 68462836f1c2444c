"""Random and adversarial argument strings never raise: a value or an error for the model."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from k2nb.tools.arguments import parse_arguments
from k2nb.tools.interpreter.code_interpreter import CodeArguments

fragments = st.sampled_from(['{', '}', '"code"', ':', '"', '\\', ',', '[', ']', 'null', 'print(1)',
                             '\n', '"\\u12', '{"code": ', '}}', "'", 'NaN', '1e999', '\x00'])
adversarial = st.lists(fragments, max_size=12).map("".join)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=200), adversarial))
def test_any_string_gives_values_or_an_error(raw):
    parsed = parse_arguments("code_interpreter", raw, CodeArguments)
    if parsed.values is None:
        assert parsed.error and "code_interpreter" in parsed.error
    else:
        assert isinstance(parsed.values["code"], str)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=100))
def test_valid_json_round_trips_exactly(code):
    parsed = parse_arguments("code_interpreter", json.dumps({"code": code}), CodeArguments)
    assert parsed.values == {"code": code} and not parsed.repaired
