"""Expressions evaluate as GitHub documents them: literals, operators, coercions, functions."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from syrup.ci import expressions
from syrup.errors import InvalidInput

CONTEXTS: dict[str, Any] = {
    "github": {
        "ref": "refs/heads/main",
        "event_name": "push",
        "event": {"commits": [{"id": "a1", "author": {"name": "Ann"}}, {"id": "b2"}]},
    },
    "matrix": {"os": "linux", "python": "3.11"},
    "steps": {"build": {"outputs": {"image": "app:7", "count": "3"}}},
    "needs": {"test": {"result": "success", "outputs": {"list": '["a","b"]'}}},
    "env": {"EMPTY": ""},
    "vars": {"REGION": "eu"},
    "arr": [1, 2, 3],
    "obj": {"a": {"name": "x"}, "b": {"name": "y"}},
}


def scope(workspace: Path | None = None) -> expressions.Scope:
    return expressions.Scope(contexts=CONTEXTS, workspace=workspace)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        # literals
        ("null", None),
        ("true", True),
        ("false", False),
        ("711", 711),
        ("-9.2", -9.2),
        ("0xff", 255),
        ("-2.99e-2", -0.0299),
        ("'It''s open source!'", "It's open source!"),
        # loose equality and coercions to number
        ("'' == 0", True),
        ("null == 0", True),
        ("null == null", True),
        # NB: issue 9 expects `null == false` to be false; GitHub's documented coercion turns
        # both sides into the number 0 (null → 0, false → 0), so GitHub answers true.
        ("null == false", True),
        ("null != false", False),
        ("true == 'true'", False),
        ("null == ''", True),
        ("true == 1", True),
        ("false == 0", True),
        ("'1' == 1", True),
        ("' 0xff ' == 255", True),
        ("'abc' == 0", False),
        ("'abc' == 'ABC'", True),
        ("'3' == 3.0", True),
        ("1 != 2", True),
        ("fromJSON('[]') == fromJSON('[]')", False),
        ("arr == arr", True),
        # comparisons
        ("1 < 2", True),
        ("'2' > 10", False),
        ("'10' > 2", True),
        ("'a' < 'B'", True),
        ("'abc' < 1", False),
        ("null < 1", True),
        ("false < true", True),
        # logical operators return operands
        ("'' || 'fallback'", "fallback"),
        ("'x' && 'y'", "y"),
        ("0 && 'never'", 0),
        ("!''", True),
        ("!'false'", False),
        ("!fromJSON('[]')", False),
        ("github.ref == 'refs/heads/main' && 'prod' || 'dev'", "prod"),
        # property, index, filter
        ("github.event_name", "push"),
        ("GITHUB.EVENT_NAME", "push"),
        ("github['event_name']", "push"),
        ("steps.build.outputs.image", "app:7"),
        ("github.event.commits[0].author.name", "Ann"),
        ("github.event.commits[5]", None),
        ("github.missing.deeper", None),
        ("github.event.commits.*.id", ["a1", "b2"]),
        ("obj.*.name", ["x", "y"]),
        ("arr[1]", 2),
        ("env.EMPTY == ''", True),
        # functions
        ("contains('Hello world', 'WORLD')", True),
        ('contains(fromJSON(\'["push", "pull_request"]\'), github.event_name)', True),
        ("contains(github.event.commits.*.id, 'b2')", True),
        ("startsWith(github.ref, 'refs/HEADS/')", True),
        ("endsWith('file.yml', '.YML')", True),
        ("format('{0}/{1}:{2}', 'reg', 'app', 7)", "reg/app:7"),
        ("format('{{0}} is {0}', 'x')", "{0} is x"),
        ("join(arr, '-')", "1-2-3"),
        ("join('abc')", "abc"),
        ("join(fromJSON(needs.test.outputs.list))", "a,b"),
        ("toJSON(matrix)", '{\n  "os": "linux",\n  "python": "3.11"\n}'),
        ("fromJSON('{\"a\": [1, true, null]}').a[1]", True),
        ("fromJSON(steps.build.outputs.count) > 2", True),
        ("fromJSON('3') == 3", True),
        ("success()", True),
        ("failure()", False),
        ("always()", True),
        ("cancelled()", False),
    ],
)
def test_expression_evaluates_to_github_value(expression: str, expected: Any) -> None:
    assert expressions.evaluate(expression, scope()) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain text", "plain text"),
        ("${{ matrix.os }}", "linux"),
        ("${{ fromJSON('[1,2]') }}", [1, 2]),
        ("${{ true }}", True),
        ("img:${{ matrix.python }}-${{ vars.REGION }}", "img:3.11-eu"),
        ("n=${{ 1.5 }} b=${{ false }} z=${{ null }}", "n=1.5 b=false z="),
    ],
)
def test_interpolation_keeps_a_lone_expression_type_and_splices_strings(
    text: str, expected: Any
) -> None:
    assert expressions.interpolate(text, scope()) == expected


@pytest.mark.parametrize(
    ("condition", "failed", "expected"),
    [
        (None, False, True),
        (None, True, False),
        ("github.event_name == 'push'", False, True),
        ("github.event_name == 'push'", True, False),
        ("${{ github.event_name == 'push' }}", False, True),
        ("always()", True, True),
        ("failure()", True, True),
        ("failure()", False, False),
        ("success() || failure()", True, True),
        ("!cancelled()", True, True),
        (False, False, False),
    ],
)
def test_conditions_get_an_implicit_success_unless_they_call_a_status_function(
    condition: Any, failed: bool, expected: bool
) -> None:
    the_scope = expressions.Scope(contexts=CONTEXTS, status=expressions.Status(failed=failed))
    assert expressions.evaluate_condition(condition, the_scope) is expected


def test_nan_compares_unequal_to_everything() -> None:
    assert math.isnan(expressions.to_number("abc"))
    assert expressions.evaluate("'abc' == 'abc' && fromJSON('[1]') != 1", scope()) is True


@pytest.mark.parametrize(
    "expression",
    ["github.(", "'unterminated", "a ==", "format('{0}')", "nosuch(1)", "contains('a')"],
)
def test_bad_expressions_raise_invalid_input(expression: str) -> None:
    with pytest.raises(InvalidInput):
        expressions.evaluate(expression, scope())


def test_double_quoted_strings_are_an_error_as_on_github() -> None:
    with pytest.raises(InvalidInput, match="bad expression"):
        expressions.parse('"text"')


def test_hash_files_hashes_matching_files_in_path_order_and_is_empty_without_matches(
    tmp_path: Path,
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.lock").write_text("one")
    (tmp_path / "b.lock").write_text("two")
    (tmp_path / "skip.txt").write_text("three")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "c.lock").write_text("ignored")
    the_scope = scope(tmp_path)

    every_lock = expressions.evaluate("hashFiles('**/*.lock')", the_scope)
    assert isinstance(every_lock, str)
    assert len(every_lock) == 64
    assert expressions.evaluate("hashFiles('**/*.lock', '!a/**')", the_scope) != every_lock
    assert expressions.evaluate("hashFiles('*.nothing')", the_scope) == ""

    (tmp_path / "b.lock").write_text("changed")
    assert expressions.evaluate("hashFiles('**/*.lock')", the_scope) != every_lock
