"""What fields a stage's records are known to have, so bad references fail at load time.

A set is *open* when the stage cannot know all its fields (an API response, a Python
callable): any reference into an open set is allowed. A *closed* set (after ``select``,
or from a group-by) lists exactly the fields records will have.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ._errors import PipelineError


@dataclass(frozen=True, slots=True)
class FieldSet:
    names: frozenset[str] = frozenset()
    open: bool = True

    @classmethod
    def closed(cls, names: Iterable[str]) -> FieldSet:
        return cls(frozenset(names), open=False)

    @classmethod
    def unknown(cls, names: Iterable[str] = ()) -> FieldSet:
        return cls(frozenset(names), open=True)

    def has(self, name: str) -> bool:
        return self.open or name.split(".", 1)[0] in self.names

    def plus(self, names: Iterable[str]) -> FieldSet:
        return FieldSet(self.names | frozenset(names), self.open)

    def minus(self, names: Iterable[str]) -> FieldSet:
        return FieldSet(self.names - frozenset(names), self.open)

    def union(self, other: FieldSet) -> FieldSet:
        return FieldSet(self.names | other.names, self.open or other.open)

    def require(self, names: Iterable[str], *, what: str, source: str) -> None:
        missing = sorted(n for n in names if not self.has(n))
        if missing:
            have = ", ".join(sorted(self.names)) or "no fields"
            raise PipelineError(
                f"{what} uses field {', '.join(repr(m) for m in missing)}, "
                f"which {source} does not produce (it yields: {have})"
            )
