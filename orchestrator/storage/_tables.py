"""Writing records into tables: batched upserts through SQLAlchemy Core.

A store's table either comes from a SQLModel class or is inferred from the records:
columns typed from the first non-null value, new columns added when they appear. Each
batch is one ``INSERT … ON CONFLICT (key) DO UPDATE`` executed as a driver-level
executemany with tuples — statements are compiled once per column set, because per-row
ORM or dict binding would cost more CPU than the whole HTTP side of a run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from loguru import logger

from podium.pipeline import Record, Store, StoreError

from ._database import Database
from ._dialects import dialect_insert

Converter = Callable[[Any], Any]
RowBuilder = Callable[[Record], tuple[Any, ...]]


def infer_type(value: Any) -> sa.types.TypeEngine[Any]:
    """The column type for a Python value (bool before int: bool is an int subclass)."""
    if isinstance(value, bool):
        return sa.Boolean()
    if isinstance(value, int):
        return sa.BigInteger()
    if isinstance(value, float):
        return sa.Double()
    if isinstance(value, Decimal):
        return sa.Numeric()
    if isinstance(value, datetime):
        return sa.DateTime(timezone=True)
    if isinstance(value, date):
        return sa.Date()
    if isinstance(value, dict | list):
        return sa.JSON()
    return sa.Text()


def _first_value(rows: Sequence[Record], column: str) -> Any:
    for row in rows:
        value = row.get(column)
        if value is not None:
            return value
    return None


class TableWriter:
    """Upserts batches into one table; owns that table's schema decisions for a run."""

    def __init__(self, database: Database, stage: Store) -> None:
        self.db = database
        self.stage = stage
        self.keys = tuple(stage.key)
        self.dialect = database.dialect
        self._table: sa.Table | None = None
        self._inferred = stage.model is None
        self._statements: dict[tuple[str, ...], tuple[str, RowBuilder]] = {}
        self._ignored: set[str] = set()

    @property
    def table_name(self) -> str:
        return self.stage.table

    async def write(
        self, rows: list[Record], *, also: Callable[[sa.Connection], None] | None = None
    ) -> int:
        """Upsert ``rows`` in one transaction — with ``also(connection)``, the caller's own
        writes that must commit or roll back with them; returns how many rows were written."""
        if not rows:
            return 0
        try:
            return await self.db.run(
                f"writing {len(rows)} rows to table {self.table_name!r}",
                self._write,
                rows,
                also,
                on_retry=self._forget,
            )
        except BaseException:
            self._forget()
            raise

    def _forget(self) -> None:
        # The transaction rolled back, DDL included: forget what this writer believed
        # about the table and read it again next time.
        self._table = None
        self._statements.clear()

    def _write(
        self,
        conn: sa.Connection,
        rows: list[Record],
        also: Callable[[sa.Connection], None] | None,
    ) -> int:
        seen: set[str] = set().union(*rows)  # every field of the batch, collected once
        table = self._prepare(conn, rows, seen)
        columns = self._columns_for(table, seen)
        sql, to_tuple = self._statement(table, columns)
        try:
            conn.exec_driver_sql(sql, [to_tuple(r) for r in rows])
        except OverflowError:  # SQLite's driver, before the database saw the row
            raise self._too_large(rows) from None
        if also is not None:
            also(conn)
        return len(rows)

    def _too_large(self, rows: list[Record]) -> StoreError:
        """Name the first integer the database cannot hold (SQLite's are 64-bit)."""
        for row in rows:
            for field, value in row.items():
                if isinstance(value, int) and not -(2**63) <= value < 2**63:
                    return StoreError(
                        f"table {self.table_name!r}: field {field!r} holds {value}, larger "
                        "than the database's 64-bit integers; store it as text with "
                        f'coerce = {{ {field} = "str" }} in a transform'
                    )
        return StoreError(f"table {self.table_name!r}: a value too large for the database")

    def _prepare(self, conn: sa.Connection, rows: list[Record], seen: set[str]) -> sa.Table:
        if self._table is None:
            self._table = self._load_or_create(conn, rows)
        if self._inferred:
            self._add_new_columns(conn, self._table, rows, seen)
        return self._table

    def _load_or_create(self, conn: sa.Connection, rows: list[Record]) -> sa.Table:
        if self.stage.model is not None:
            table: sa.Table = self.stage.model.__table__  # type: ignore[attr-defined]
            table.create(conn, checkfirst=True)
            self._check_key_is_unique(table)
            return table
        name = self.table_name
        metadata = sa.MetaData()
        if sa.inspect(conn).has_table(name):
            table = sa.Table(name, metadata, autoload_with=conn)
            self._check_key_is_unique(table)
            return table
        columns: dict[str, None] = dict.fromkeys(self.keys)
        for row in rows:
            columns.update(dict.fromkeys(row))
        table = sa.Table(name, metadata, *(self._new_column(c, rows) for c in columns))
        table.create(conn, checkfirst=True)
        logger.info("created table {} with columns {}", name, ", ".join(columns))
        return table

    def _new_column(self, name: str, rows: list[Record]) -> sa.Column[Any]:
        type_ = infer_type(_first_value(rows, name))
        sqlite = self.dialect.name == "sqlite"
        if sqlite and self.keys == (name,) and isinstance(type_, sa.BigInteger):
            # SQLite's INTEGER PRIMARY KEY is the rowid itself: no second index to maintain.
            type_ = sa.Integer()
        return sa.Column(name, type_, primary_key=name in self.keys, autoincrement=False)

    def _check_key_is_unique(self, table: sa.Table) -> None:
        missing = [k for k in self.keys if k not in table.c]
        if missing:
            raise StoreError(f"table {table.name!r} has no key column {', '.join(missing)}")
        unique_sets = [{c.name for c in table.primary_key.columns}]
        unique_sets += [
            {c.name for c in con.columns}
            for con in table.constraints
            if isinstance(con, sa.UniqueConstraint)
        ]
        unique_sets += [{c.name for c in ix.columns} for ix in table.indexes if ix.unique]
        if set(self.keys) not in unique_sets:
            raise StoreError(
                f"table {table.name!r}: key ({', '.join(self.keys)}) is not its primary key "
                "or a unique constraint, so rows cannot be upserted by it"
            )

    def _add_new_columns(
        self, conn: sa.Connection, table: sa.Table, rows: list[Record], seen: set[str]
    ) -> None:
        new = [c for c in seen if c not in table.c]
        for column in sorted(new):
            col = sa.Column(column, infer_type(_first_value(rows, column)))
            type_sql = col.type.compile(dialect=self.dialect)
            quote = self.dialect.identifier_preparer.quote
            conn.exec_driver_sql(
                f"ALTER TABLE {quote(table.name)} ADD COLUMN {quote(column)} {type_sql}"
            )
            table.append_column(col)
            self._statements.clear()
            logger.info("table {}: added column {} ({})", table.name, column, type_sql)

    def _columns_for(self, table: sa.Table, seen: set[str]) -> tuple[str, ...]:
        unknown = seen.difference(table.c.keys())
        if unknown - self._ignored:
            fresh = sorted(unknown - self._ignored)
            self._ignored.update(fresh)
            logger.warning(
                "table {} has no column for {}; those fields are not stored",
                table.name,
                ", ".join(fresh),
            )
        return tuple(c.name for c in table.columns if c.name in seen or c.name in self.keys)

    def _statement(self, table: sa.Table, columns: tuple[str, ...]) -> tuple[str, RowBuilder]:
        cached = self._statements.get(columns)
        if cached is not None:
            return cached
        insert = dialect_insert(self.dialect.name)
        stmt = insert(table).values({c: sa.bindparam(c) for c in columns})
        updates = [c for c in columns if c not in self.keys]
        if updates:
            stmt = stmt.on_conflict_do_update(
                index_elements=list(self.keys),
                set_={c: stmt.excluded[c] for c in updates},
            )
        else:
            stmt = stmt.on_conflict_do_nothing(index_elements=list(self.keys))
        compiled = stmt.compile(dialect=self.dialect)
        order = tuple(compiled.positiontup or ())
        if set(order) != set(columns):
            raise StoreError(f"cannot build an upsert for table {table.name!r}")
        converters = [self._converter(table.c[c]) for c in order]
        cached = (str(compiled), _tuple_builder(order, converters))
        self._statements[columns] = cached
        return cached

    def _converter(self, column: sa.Column[Any]) -> Converter | None:
        process = column.type.dialect_impl(self.dialect).bind_processor(self.dialect)
        if self.dialect.name == "sqlite" and isinstance(column.type, sa.DateTime):
            return _sqlite_datetime
        return process


def _sqlite_datetime(value: Any) -> Any:
    """Datetimes as SQLite text in SQLAlchemy's own layout, normalised to UTC.

    SQLite has no time zone type: aware values become the UTC instant, so rows written
    from APIs in different zones compare and sort correctly.
    """
    if isinstance(value, datetime):
        # str() is isoformat(" ") in C, several times cheaper than isoformat with a
        # timespec; SQLAlchemy reads both with and without microseconds.
        if value.tzinfo is None:
            return str(value)
        if value.tzinfo is not UTC:
            value = value.astimezone(UTC)
        return str(value)[:-6]  # drops the "+00:00"
    if isinstance(value, date):
        return f"{value.isoformat()} 00:00:00"
    return value


def _tuple_builder(order: tuple[str, ...], converters: list[Converter | None]) -> RowBuilder:
    """A function record → parameter tuple, generated for this column list.

    This runs once per stored row; a generated expression with one ``get`` per column
    costs a third of a generic loop. Column names reach the code only as arguments.
    """
    parts = []
    for i, conv in enumerate(converters):
        if conv is None:
            parts.append(f"get(k{i})")
        else:
            parts.append(f"(None if (v{i} := get(k{i})) is None else c{i}(v{i}))")
    args = [f"k{i}=order[{i}]" for i in range(len(order))]
    args += [f"c{i}=converters[{i}]" for i, conv in enumerate(converters) if conv is not None]
    source = (
        f"def make(order, converters):\n"
        f"    def build(record, {', '.join(args)}):\n"
        f"        get = record.get\n"
        f"        return ({', '.join(parts)},)\n"
        f"    return build\n"
    )
    namespace: dict[str, Any] = {}
    exec(compile(source, "<podium row builder>", "exec"), namespace)
    build: RowBuilder = namespace["make"](order, converters)
    return build
