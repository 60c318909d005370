"""AWS event filtering (FilterCriteria) for event source mappings (items 9 and 23).

A mapping's ``FilterCriteria`` is ``{"Filters": [{"Pattern": "<json>"}, ...]}``; a record is
delivered when ANY pattern matches it. Pattern syntax (Lambda's "Filter rule syntax", the same as
EventBridge): every key of a pattern must match; a nested object recurses; a list holds
alternatives, each one a literal (string, number, boolean, null) or a matcher object:
``prefix``, ``suffix``, ``equals-ignore-case``, ``anything-but`` (value, list, or a
prefix/suffix/equals-ignore-case object), ``numeric`` (``[">", 0, "<=", 5]``), ``exists``,
``wildcard`` and ``cidr``. When the record's value is a list, any element may match. A missing
field only matches ``{"exists": false}``.

Which document a pattern sees depends on the source (see :func:`filter_view`): SQS records with
``body`` parsed as JSON when it is JSON, Kinesis records' ``kinesis`` object with ``data``
base64-decoded and parsed, DynamoDB records as delivered.

Example::

    matcher = FilterMatcher.from_criteria({"Filters": [{"Pattern": '{"body": {"kind": ["a"]}}'}]})
    matcher.matches({"body": {"kind": "a"}})   # True
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["FilterError", "FilterMatcher", "filter_view", "matches_pattern"]


class FilterError(ValueError):
    """A FilterCriteria pattern that is not valid filter syntax."""


_MISSING = object()
_NUMERIC_OPS = {
    "=": lambda a, b: a == b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


@dataclass(frozen=True, slots=True)
class FilterMatcher:
    """The compiled FilterCriteria of one mapping; no patterns means every record matches."""

    patterns: tuple[dict[str, Any], ...] = ()

    @classmethod
    def from_criteria(cls, criteria: dict[str, Any] | None) -> FilterMatcher:
        """Parse and check ``{"Filters": [{"Pattern": "..."}]}``; raise FilterError if invalid."""
        if not criteria:
            return cls()
        patterns: list[dict[str, Any]] = []
        for entry in criteria.get("Filters") or []:
            raw = (entry or {}).get("Pattern")
            if raw is None or raw == "":
                continue
            try:
                pattern = json.loads(raw) if isinstance(raw, str) else raw
            except ValueError as exc:
                raise FilterError(f"filter pattern is not JSON: {raw!r}") from exc
            if not isinstance(pattern, dict):
                raise FilterError(f"filter pattern must be a JSON object: {raw!r}")
            _check_pattern(pattern)
            patterns.append(pattern)
        return cls(tuple(patterns))

    @property
    def active(self) -> bool:
        return bool(self.patterns)

    def matches(self, document: Any) -> bool:
        """True when no patterns are set or any pattern matches ``document``."""
        if not self.patterns:
            return True
        return any(matches_pattern(p, document) for p in self.patterns)


def filter_view(source: str, record: dict[str, Any]) -> dict[str, Any]:
    """The document a pattern is matched against for a record of ``source``.

    ``source`` is ``"sqs"``, ``"kinesis"`` or ``"dynamodb"``; ``record`` is the record exactly as
    the function would receive it.
    """
    if source == "sqs":
        view = dict(record)
        view["body"] = _maybe_json(record.get("body"))
        return view
    if source == "kinesis":
        # Kinesis mappings filter on the kinesis object's fields, with data decoded (item 23).
        view = dict(record.get("kinesis") or {})
        data = view.get("data")
        if isinstance(data, str):
            try:
                decoded = base64.b64decode(data, validate=False).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                decoded = None
            view["data"] = _maybe_json(decoded) if decoded is not None else data
        return view
    return record


def _maybe_json(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def matches_pattern(pattern: dict[str, Any], document: Any) -> bool:
    """True when ``document`` matches every key of ``pattern``."""
    for key, expected in pattern.items():
        value = document.get(key, _MISSING) if isinstance(document, dict) else _MISSING
        if not _match_value(expected, value):
            return False
    return True


def _match_value(expected: Any, value: Any) -> bool:
    if isinstance(expected, dict):
        # A nested pattern: the value must be an object (or a list with a matching object).
        if isinstance(value, list):
            return any(_match_value(expected, v) for v in value)
        if value is _MISSING or not isinstance(value, dict):
            # Only exists:false leaves can match a missing object.
            return _match_missing(expected)
        return matches_pattern(expected, value)
    if isinstance(expected, list):
        if isinstance(value, list):
            if not value:
                return any(_is_exists(m, False) for m in expected)
            return any(_match_rule(m, v) for m in expected for v in value)
        return any(_match_rule(m, value) for m in expected)
    raise FilterError(f"pattern values must be lists or objects, got {expected!r}")


def _match_missing(pattern: dict[str, Any]) -> bool:
    for expected in pattern.values():
        if isinstance(expected, dict):
            if not _match_missing(expected):
                return False
        elif not any(_is_exists(m, False) for m in expected):
            return False
    return True


def _is_exists(rule: Any, flag: bool) -> bool:
    return isinstance(rule, dict) and rule.get("exists") is flag


def _match_rule(rule: Any, value: Any) -> bool:
    if not isinstance(rule, dict):
        return value is not _MISSING and _equal(rule, value)
    if "exists" in rule:
        return (value is not _MISSING) is bool(rule["exists"])
    if value is _MISSING:
        return False
    if "prefix" in rule:
        return _text_rule(rule["prefix"], value, str.startswith)
    if "suffix" in rule:
        return _text_rule(rule["suffix"], value, str.endswith)
    if "equals-ignore-case" in rule:
        return (
            isinstance(value, str)
            and value.casefold() == str(rule["equals-ignore-case"]).casefold()
        )
    if "anything-but" in rule:
        return _anything_but(rule["anything-but"], value)
    if "numeric" in rule:
        return _numeric(rule["numeric"], value)
    if "wildcard" in rule:
        return isinstance(value, str) and _wildcard(rule["wildcard"]).fullmatch(value) is not None
    if "cidr" in rule:
        try:
            return ipaddress.ip_address(str(value)) in ipaddress.ip_network(
                rule["cidr"], strict=False
            )
        except ValueError:
            return False
    raise FilterError(f"unknown filter rule {rule!r}")


def _text_rule(arg: Any, value: Any, test: Any) -> bool:
    if not isinstance(value, str):
        return False
    if isinstance(arg, dict) and "equals-ignore-case" in arg:
        return bool(test(value.casefold(), str(arg["equals-ignore-case"]).casefold()))
    return bool(test(value, str(arg)))


def _anything_but(arg: Any, value: Any) -> bool:
    if isinstance(arg, dict):
        if "prefix" in arg:
            return not _text_rule(arg["prefix"], value, str.startswith)
        if "suffix" in arg:
            return not _text_rule(arg["suffix"], value, str.endswith)
        if "equals-ignore-case" in arg:
            options = arg["equals-ignore-case"]
            options = options if isinstance(options, list) else [options]
            return not (
                isinstance(value, str) and value.casefold() in {str(o).casefold() for o in options}
            )
        raise FilterError(f"unknown anything-but rule {arg!r}")
    options = arg if isinstance(arg, list) else [arg]
    return not any(_equal(o, value) for o in options)


def _numeric(spec: Any, value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if not isinstance(spec, list) or len(spec) % 2:
        raise FilterError(f"numeric rule needs operator/value pairs: {spec!r}")
    return all(
        _NUMERIC_OPS[op](value, bound) for op, bound in zip(spec[::2], spec[1::2], strict=True)
    )


def _equal(expected: Any, value: Any) -> bool:
    if isinstance(expected, bool) or isinstance(value, bool):
        return expected is value
    if isinstance(expected, int | float) and isinstance(value, int | float):
        return float(expected) == float(value)
    return bool(expected == value)


def _wildcard(text: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in str(text).split("*")), re.DOTALL)


def _check_pattern(pattern: dict[str, Any]) -> None:
    """Reject what AWS rejects at CreateEventSourceMapping: leaves must be lists of rules."""
    for key, expected in pattern.items():
        if isinstance(expected, dict):
            _check_pattern(expected)
        elif isinstance(expected, list):
            for rule in expected:
                if isinstance(rule, dict):
                    if len(rule) != 1 and "numeric" not in rule:
                        raise FilterError(
                            f"filter rule for {key!r} must have one operator: {rule!r}"
                        )
                    name = next(iter(rule))
                    if name not in (
                        "prefix",
                        "suffix",
                        "equals-ignore-case",
                        "anything-but",
                        "numeric",
                        "exists",
                        "wildcard",
                        "cidr",
                    ):
                        raise FilterError(f"unknown filter operator {name!r} for {key!r}")
                    if name == "numeric":
                        spec = rule["numeric"]
                        if (
                            not isinstance(spec, list)
                            or len(spec) % 2
                            or any(op not in _NUMERIC_OPS for op in spec[::2])
                        ):
                            raise FilterError(f"invalid numeric rule for {key!r}: {spec!r}")
        else:
            raise FilterError(f"filter pattern value for {key!r} must be a list or an object")
