"""Response rules: what an answer means, when its status alone does not say it.

A rule is ``{ when = …, action = … }``; the first rule that matches an answer decides:

- ``retry``: try again (the retry policy's attempts and backoff), e.g. a 200 whose body
  says ``"error": "busy"``;
- ``ignore``: no records and no failure (a 404 for a deleted item), counted as ignored;
- ``fail``: a failure of its own name (``message``), e.g. a 200 with ``{"ok": false}``;
- ``rate_limited``: as a 429 — the connector pauses, then the request is tried again;
- ``success``: read the answer's records although its status would fail (a 409).

``when`` is a status (``404``), a status class (``"4xx"``), a list of those, or a JMESPath
expression over ``{status, headers, body}`` (header names in lower case; the body parsed
as JSON, else text) that matches when its value is truthy. Pure: no I/O here.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    PrivateAttr,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from podium.pipeline import Expr, PipelineError

from ._messages import Response

Action = Literal["retry", "ignore", "fail", "rate_limited", "success"]
ACTIONS: tuple[str, ...] = get_args(Action)
_STATUS = re.compile(r"[1-5](?:\d\d|xx)")


def _status_test(value: int | str) -> Callable[[int], bool] | None:
    """A test for one status or status class; None when ``value`` is neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value.__eq__ if 100 <= value <= 599 else None
    text = value.strip().lower()
    if not _STATUS.fullmatch(text):
        return None
    if text.endswith("xx"):
        first = int(text[0])
        return lambda status: status // 100 == first
    exact = int(text)
    return exact.__eq__


class ResponseRule(BaseModel):
    """``when`` an answer looks like this, do ``action``; ``message`` names a failure."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    when: int | str | list[int | str]
    action: Action
    message: str | None = None
    _statuses: tuple[Callable[[int], bool], ...] = PrivateAttr(default=())
    _expr: Expr | None = PrivateAttr(default=None)

    @field_validator("when", mode="before")
    @classmethod
    def _valid_when(cls, value: Any) -> Any:
        """Checked here, so a mistake is reported at ``when`` with what it may be."""
        given = value if isinstance(value, list) else [value]
        if not given or not all(isinstance(v, int | str) and not isinstance(v, bool)
                                for v in given):  # fmt: skip
            raise ValueError(
                'give a status (404), a status class ("4xx"), a list of those, or a '
                f"JMESPath expression; got {value!r}"
            )
        if isinstance(value, str) and _status_test(value) is None:
            try:
                Expr(value)
            except PipelineError as exc:
                raise ValueError(exc.message) from None
        elif any(_status_test(v) is None for v in given):
            bad = next(v for v in given if _status_test(v) is None)
            raise ValueError(f'{bad!r} is not a status: write e.g. 404 or "4xx"')
        return value

    @model_validator(mode="after")
    def _compile(self) -> ResponseRule:
        given = self.when if isinstance(self.when, list) else [self.when]
        tests = [_status_test(v) for v in given]
        if all(t is not None for t in tests):
            self._statuses = tuple(t for t in tests if t is not None)
        else:  # a single string that is no status: an expression (checked above)
            self._expr = Expr(str(self.when))
        return self

    @property
    def reads_body(self) -> bool:
        return self._expr is not None

    def matches(self, status: int, view: Callable[[], Mapping[str, Any]]) -> bool:
        """Whether the rule matches an answer; ``view`` builds {status, headers, body}
        (only an expression asks for it)."""
        if self._expr is None:
            return any(test(status) for test in self._statuses)
        return bool(self._expr.search(view()))

    def describe(self) -> str:
        return f"response rule (when = {self.when!r}, action = {self.action!r})"


def response_view(response: Response) -> dict[str, Any]:
    """What a rule's expression sees of an answer."""
    headers = {name.lower(): value for name, value in response.headers.items()}
    return {"status": response.status, "headers": headers, "body": response.body_value()}


def first_match(rules: Sequence[ResponseRule], response: Response) -> ResponseRule | None:
    """The first rule matching ``response``; the view is built at most once."""
    if not rules:
        return None
    built: dict[str, Any] | None = None

    def view() -> dict[str, Any]:
        nonlocal built
        if built is None:
            built = response_view(response)
        return built

    for rule in rules:
        if rule.matches(response.status, view):
            return rule
    return None


_rules_adapter: TypeAdapter[list[ResponseRule]] = TypeAdapter(list[ResponseRule])


def parse_rules(value: Any, where: str = "rules") -> tuple[ResponseRule, ...]:
    """A fetch stage's ``rules`` list, validated; a PipelineError of one line otherwise."""
    try:
        return tuple(_rules_adapter.validate_python(value))
    except ValidationError as exc:
        raise PipelineError(rules_problem(exc, where)) from None


def rules_problem(exc: ValidationError, where: str = "rules") -> str:
    """One line for a bad rules list: the rule, the key, what is wrong."""
    errors = exc.errors(include_url=False)
    err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = err["loc"]
    path = where + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc)
    if err["type"] == "literal_error":
        given = str(err.get("input"))
        close = difflib.get_close_matches(given, ACTIONS, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        message = f"unknown action {given!r}{hint} (actions: {', '.join(ACTIONS)})"
    elif err["type"] == "extra_forbidden":
        message = f"unknown key {loc[-1]!r} (keys: when, action, message)"
    else:
        message = str(err["msg"]).removeprefix("Value error, ")
    return f"{path}: {message}"
