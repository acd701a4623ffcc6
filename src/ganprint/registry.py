"""The fingerprint registry: which fingerprint was issued to which model, by whom, with which method.

One table, `fingerprints`, in any database SQLAlchemy reaches. By default a single SQLite file:

    id           integer primary key
    model        text, unique          the model the fingerprint identifies ("attributed to <model>")
    owner        text                  who holds the model
    method       text                  "codec" (ICCV 2021), "scalable" (ICLR 2022) or another name
    length       integer > 0           bits in the fingerprint
    fingerprint  text                  hexadecimal, ceil(length/4) digits, most significant bit first
    created      text                  ISO 8601 UTC time of registration
    notes        text
    unique (length, fingerprint): one fingerprint value identifies one model

plus `ganprint_registry` (key/value: schema_version). A file that holds other tables is refused, so
a registry command never writes into somebody else's database.

Several processes may write at once. SQLite: write-ahead log (readers never wait for a writer), a
busy timeout (a writer waits up to `timeout` seconds for another), and every write in one
`BEGIN IMMEDIATE` transaction, so a check-then-insert (duplicates, minimum distance) cannot
interleave with another writer's. PostgreSQL: `issue` takes a table lock for the same reason; the
unique constraints guard everything else. (WAL needs a local file system, not a network share.)

Nothing waits forever: `timeout` bounds a writer's wait for another's lock (SQLite's busy timeout,
PostgreSQL's lock_timeout), a server's connection (the driver's connect_timeout, and for any
SQLAlchemy URL a deadline on the driver's connect call) and each PostgreSQL statement
(statement_timeout). A registry opened `read_only` never writes, not even to create its tables; an
SQLite registry on storage this process cannot write (a read-only mount, no permission on the file
or its folder) is opened read-only by itself, and writes to it fail with a one-line error.

Fingerprints of extreme Hamming weight (all zeros, all ones, nearly so) are refused unless forced:
a broken decoder stuck at constant bits would match them (see `allowed_weights`).
"""

from __future__ import annotations

import json
import math
import os
import re
import sqlite3
import sys
import threading
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import IO, Callable, Iterable, Iterator, Sequence

import numpy as np
from sqlalchemy import (
    CheckConstraint,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    exc,
    func,
    inspect,
    select,
)
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.pool import NullPool

from .errors import GanprintError
from .fingerprints import bits_to_hex, parse_fingerprint
from .io import atomic_path

SCHEMA_VERSION = 1
KNOWN_METHODS = ("codec", "scalable")
_METHOD = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
DEFAULT_TIMEOUT = 30.0  # seconds a writer waits for another, a connection or a statement may take
DEGENERATE_TAIL = 1e-3  # see allowed_weights

metadata = MetaData()
fingerprints_table = Table(
    "fingerprints",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model", String(255), nullable=False),
    Column("owner", String(255), nullable=False, default=""),
    Column("method", String(64), nullable=False),
    Column("length", Integer, nullable=False),
    Column("fingerprint", String(1024), nullable=False),
    Column("created", String(32), nullable=False),
    Column("notes", Text, nullable=False, default=""),
    UniqueConstraint("model", name="uq_fingerprints_model"),
    UniqueConstraint("length", "fingerprint", name="uq_fingerprints_value"),
    CheckConstraint("length > 0", name="ck_fingerprints_length"),
    sqlite_autoincrement=True,  # ids are never reused after a removal
)
Index("ix_fingerprints_method_length", fingerprints_table.c.method, fingerprints_table.c.length)
info_table = Table(
    "ganprint_registry",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", String(255), nullable=False),
)
_FIELDS = ("model", "fingerprint", "length", "method", "owner", "created", "notes")
_CREATE_LOCK_KEY = 0x67616E7072  # PostgreSQL advisory lock held while creating the tables ("ganpr")


def default_min_distance(length: int) -> int:
    """Minimum Hamming distance `issue` keeps between fingerprints of one length: a quarter of the
    bits. Two random 128-bit strings differ in 64 +- 5.7 bits, so among a million fingerprints almost
    every fresh draw is accepted, yet no two issued fingerprints are near copies of each other."""
    return max(1, length // 4)


@lru_cache(maxsize=None)
def allowed_weights(length: int) -> tuple[int, int]:
    """(lo, hi): the numbers of one bits a registered `length`-bit fingerprint may have.

    A weight w is refused when a fair random draw is that unbalanced with probability <= 1e-3
    (P[Bin(length, 1/2) <= w] on the low side, its mirror on the high side), and always for all
    zeros or all ones. Why: a decoder stuck at constant bits (NaN weights, a blank image) matches a
    fingerprint of weight w in length - w bits; for every allowed fingerprint that happens by chance
    with probability > 1e-3, so such output can never be attributed at a sensible false-positive
    rate. A fair draw is refused with probability < 2e-3 (`issue` simply draws again).
    Empty (lo > hi) for 1 bit: every 1-bit fingerprint is degenerate.
    """
    from .stats import log_binomial_sf

    limit = math.log(DEGENERATE_TAIL)
    lo = 1  # P[Bin <= w] = P[Bin >= length - w]: grows with w, so the first w above the tail
    while lo < length and log_binomial_sf(length - lo, length) <= limit:
        lo += 1
    return lo, length - lo


def degenerate_reason(bits: np.ndarray) -> str | None:
    """Why a fingerprint (0/1 array) is degenerate, or None when its weight is allowed."""
    length, weight = int(bits.size), int(np.count_nonzero(bits))
    lo, hi = allowed_weights(length)
    if lo > hi:
        return f"every {length}-bit fingerprint is degenerate (all zeros or all ones); use a longer fingerprint"
    if lo <= weight <= hi:
        return None
    return (
        f"degenerate fingerprint: {weight} of its {length} bits are ones (allowed: {lo} to {hi}); a decoder "
        "stuck at constant bits (a broken model, a blank image) would match it"
    )


def now_utc() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Entry:
    """One registered fingerprint."""

    model: str
    fingerprint: str  # hex, ceil(length/4) digits
    length: int
    method: str
    owner: str = ""
    created: str = ""
    notes: str = ""
    id: int | None = None

    @property
    def bits(self) -> np.ndarray:
        """The fingerprint as a (length,) uint8 array of 0/1."""
        return hex_to_bits([self.fingerprint], self.length)[0]

    @property
    def bit_string(self) -> str:
        return "".join(map(str, self.bits.tolist()))

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "id"}


# --------------------------------------------------------------------------------- bit strings
_NIBBLE = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate("0123456789abcdef"):
    _NIBBLE[ord(_c)] = _NIBBLE[ord(_c.upper())] = _i


def hex_to_bits(hexes: Sequence[str], length: int) -> np.ndarray:
    """(N, length) uint8 0/1 from N hex strings of ceil(length/4) digits: vectorized for millions."""
    digits = (length + 3) // 4
    if not hexes:
        return np.zeros((0, length), dtype=np.uint8)
    raw = np.frombuffer("".join(hexes).encode("ascii"), dtype=np.uint8)
    if raw.size != digits * len(hexes):
        raise GanprintError(f"registry holds a {length}-bit fingerprint without {digits} hex digits")
    nibbles = _NIBBLE[raw].reshape(len(hexes), digits)
    if (nibbles == 255).any():
        raise GanprintError("registry holds a fingerprint that is not hexadecimal")
    bits = np.unpackbits((nibbles << 4).astype(np.uint8)[:, :, None], axis=2)[:, :, :4]
    return np.ascontiguousarray(bits.reshape(len(hexes), 4 * digits)[:, 4 * digits - length :])


def normalize_fingerprint(text: str, length: int | None = None) -> tuple[str, int]:
    """(hex, length) of a fingerprint given as 0/1 characters or hexadecimal; GanprintError if malformed."""
    if not isinstance(text, str):
        raise GanprintError(f"fingerprint must be a string of 0/1 characters or hex digits, not {type(text).__name__}")
    bits = parse_fingerprint(text, length)
    return bits_to_hex(bits), int(bits.numel())


def _check_method(method: str) -> str:
    if not isinstance(method, str) or not _METHOD.match(method):
        raise GanprintError(f"method {method!r}: use a short lowercase name such as 'codec' or 'scalable'")
    return method


def _check_model(model: str) -> str:
    if not isinstance(model, str) or not model.strip() or len(model) > 255 or model != model.strip():
        raise GanprintError(f"model name {model!r}: give 1-255 characters without leading or trailing spaces")
    return model


# ---------------------------------------------------------------------------------- database
def _is_url(location: str) -> bool:
    return "://" in location


def _writable(path: Path) -> bool:
    """May this process write the SQLite file and create its journal beside it? (os.access answers
    no on a read-only mount, even for root.)"""
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)


def _connect_within(connect: Callable[[], object], seconds: float, where: str):
    """`connect()` on a helper thread, given up after `seconds`: a deadline for any database driver,
    even one without a connect timeout of its own, on a server that accepts and never answers. A
    connection that arrives after the deadline is closed."""
    state: dict = {}
    lock = threading.Lock()
    done = threading.Event()

    def run() -> None:
        try:
            conn = connect()
        except BaseException as e:  # handed over to the waiting thread
            with lock:
                state["error"] = e
        else:
            with lock:
                late = state.get("abandoned", False)
                if not late:
                    state["connection"] = conn
            if late:
                with suppress(Exception):
                    conn.close()
        done.set()

    threading.Thread(target=run, name="ganprint-registry-connect", daemon=True).start()
    done.wait(seconds)
    with lock:
        if "error" in state:
            raise state["error"]
        if "connection" in state:
            return state["connection"]
        state["abandoned"] = True
    raise GanprintError(_no_answer(where, seconds))


def _no_answer(where: str, seconds: float) -> str:
    return (
        f"{where}: no answer from the database server within {seconds:g} s; check that it is running and "
        "that the URL (host, port) is right, or give a longer --timeout"
    )


class Registry:
    """A fingerprint registry at a path (SQLite file) or an SQLAlchemy URL.

    `create=False` (reading) refuses a missing file: an empty registry would silently make every
    image "not fingerprinted". `read_only=True` never writes (SQLite: `PRAGMA query_only`; PostgreSQL:
    read-only transactions); writes then raise GanprintError. `timeout` bounds every wait (see the
    module's docstring). Use as a context manager or call `close()`.
    """

    def __init__(self, location: str | os.PathLike, create: bool = False, timeout: float = DEFAULT_TIMEOUT,
                 read_only: bool = False):  # fmt: skip
        if create and read_only:
            raise GanprintError("a registry cannot be created read-only")
        self.location = os.fspath(location)
        self.timeout = float(timeout)
        if not 0 <= self.timeout < math.inf:  # NaN too
            raise GanprintError(f"timeout {timeout}: give a finite number of seconds >= 0")
        self.read_only = bool(read_only)
        # why writes are refused (None: they are not)
        self._no_writes = "opened read-only; open it without read_only to write" if read_only else None
        self._read_only_storage: Path | None = None  # an SQLite file this process cannot write
        if _is_url(self.location):
            try:
                url = make_url(self.location)
            except exc.ArgumentError:
                raise GanprintError(f"{self.location}: not a database URL") from None
            # as given, unless that shows a password
            self.where = self.location if url.password is None else url.render_as_string(hide_password=True)
        else:
            path = Path(self.location)
            if path.is_dir():
                raise GanprintError(f"{path}: is a folder; give the registry's database file (e.g. registry.db)")
            if not path.exists():
                if not create:
                    raise GanprintError(
                        f"{path}: no registry here; create one with 'ganprint registry add' or 'ganprint registry issue'"
                    )
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                except OSError as e:
                    raise GanprintError(f"{path}: cannot create the registry's folder ({e.strerror}); "
                                        "choose a writable place") from None  # fmt: skip
                if not os.access(path.parent, os.W_OK):
                    raise GanprintError(f"{path}: cannot create a registry here, {path.parent} is not writable; "
                                        "choose a writable place")  # fmt: skip
            elif not _writable(path):
                self._read_only_storage = path
                self._no_writes = (
                    "cannot write to this registry: this process may not write the file or its folder (or the "
                    "file system is read-only), and SQLite writes its journal beside the file; ask for write "
                    "access or work on a copy"
                )
            url = URL.create("sqlite", database=str(path))
            self.where = str(path)
        self.is_sqlite = url.get_backend_name() == "sqlite"
        try:
            self.engine = self._make_engine(url)
        except (exc.ArgumentError, exc.NoSuchModuleError, ImportError) as e:
            raise GanprintError(f"{self.where}: cannot use this database ({_first_line(e)})") from None
        self._open(create)

    @property
    def writable(self) -> bool:
        return self._no_writes is None

    # -------------------------------------------------------------------------------- plumbing
    def _make_engine(self, url: URL):
        if not self.is_sqlite:
            return self._server_engine(url)
        if self._read_only_storage is not None:
            engine = create_engine("sqlite://", poolclass=NullPool, creator=self._read_only_sqlite)
        else:
            engine = create_engine(url, poolclass=NullPool, connect_args={"timeout": self.timeout})
        timeout_ms = int(self.timeout * 1000)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection, _record):
            dbapi_connection.isolation_level = None  # transactions are begun below, not by the driver
            dbapi_connection.execute(f"PRAGMA busy_timeout = {timeout_ms}")
            if self.read_only:  # SQLite itself refuses every write on this connection
                dbapi_connection.execute("PRAGMA query_only = 1")

        @event.listens_for(engine, "begin")
        def _on_begin(conn):
            # IMMEDIATE takes the write lock at the start, so two writers queue instead of deadlocking
            conn.exec_driver_sql(f"BEGIN {conn.get_execution_options().get('sqlite_begin', 'DEFERRED')}")

        return engine

    def _read_only_sqlite(self) -> sqlite3.Connection:
        """A connection to an SQLite file on storage this process cannot write. `mode=ro` reads a
        write-ahead-logged file only where its -shm index exists or can be created; failing that the
        file is opened immutable, which reads it exactly as long as nobody writes it meanwhile and no
        write waits in its -wal file (checked: refused rather than read without it)."""
        path = self._read_only_storage
        uri = path.resolve().as_uri()
        conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=self.timeout)
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.OperationalError:
            conn.close()
        wal = Path(f"{path}-wal")
        if wal.exists() and wal.stat().st_size > 0:
            raise GanprintError(
                f"{self.where}: its latest writes are still in {wal.name}, which cannot be read without write "
                "access to its folder; open it once where it is writable (any registry command) and retry"
            )
        return sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True)

    def _server_engine(self, url: URL):
        """A database server: the connection, each statement and each lock wait within `timeout`."""
        connect_seconds = max(2, math.ceil(self.timeout))  # libpq's shortest connect_timeout is 2 s
        args: dict = {}
        if url.get_backend_name() == "postgresql" and url.get_driver_name() in ("psycopg", "psycopg2"):
            if "connect_timeout" not in url.query:  # one the URL gives wins
                args["connect_timeout"] = connect_seconds
            settings = [f"-c statement_timeout={max(1000, round(self.timeout * 1000))}",
                        f"-c lock_timeout={max(1, round(self.timeout * 1000))}"]  # fmt: skip
            if self.read_only:
                settings.append("-c default_transaction_read_only=on")
            given = url.query.get("options")
            args["options"] = " ".join(([given] if isinstance(given, str) else []) + settings)
        engine = create_engine(url, pool_pre_ping=True, connect_args=args)

        @event.listens_for(engine, "do_connect")
        def _connect(dialect, _record, cargs, cparams):
            # any driver: its connect call gets a deadline even if it has no timeout of its own
            return _connect_within(lambda: dialect.connect(*cargs, **cparams), connect_seconds, self.where)

        self._connect_seconds = connect_seconds
        return engine

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Database exceptions -> one-line GanprintErrors naming the registry."""
        try:
            yield
        except exc.IntegrityError as e:
            raise GanprintError(f"{self.where}: rejected by the database ({_first_line(e.orig or e)})") from None
        except exc.SQLAlchemyError as e:
            raise GanprintError(self._explain(e)) from None

    def _explain(self, e: exc.SQLAlchemyError) -> str:
        if not isinstance(e, exc.DBAPIError):
            return f"{self.where}: database error ({_first_line(e)})"
        message = _first_line(e.orig or e)
        text = message.lower()
        if "locked" in text or "busy" in text or "lock timeout" in text:
            return (f"{self.where}: the registry is locked by another process (waited {self.timeout:g} s); "
                    "try again or give a longer --timeout")  # fmt: skip
        if "statement timeout" in text:
            return (f"{self.where}: a database statement took longer than {self.timeout:g} s (a busy server?); "
                    "try again or give a longer --timeout")  # fmt: skip
        if "timeout expired" in text or "timed out" in text:
            return _no_answer(self.where, getattr(self, "_connect_seconds", self.timeout))
        if "readonly database" in text or "read-only transaction" in text:
            return f"{self.where}: {self._no_writes or 'the database is read-only'} ({message})"
        if "permission denied" in text:
            return (f"{self.where}: the database refuses this user ({message}); ask its administrator for the "
                    "rights, or only read (registry list/show/export, attribute)")  # fmt: skip
        if "unable to open" in text:
            return f"{self.where}: cannot open the registry database ({message})"
        if isinstance(e, exc.OperationalError):
            return f"{self.where}: database error ({message})"
        if isinstance(e, exc.DatabaseError):
            return f"{self.where}: not a ganprint registry, or the database file is damaged ({message})"
        return f"{self.where}: database error ({message})"

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._errors(), self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def _write(self, lock_table: bool = False) -> Iterator[Connection]:
        if self._no_writes:
            raise GanprintError(f"{self.where}: {self._no_writes}")
        with self._errors(), self.engine.connect() as conn:
            conn.execution_options(sqlite_begin="IMMEDIATE")
            with conn.begin():
                if lock_table and conn.dialect.name == "postgresql":
                    conn.exec_driver_sql("LOCK TABLE fingerprints IN SHARE ROW EXCLUSIVE MODE")
                yield conn

    def _open(self, create: bool) -> None:
        with self._read() as conn:
            state = self._state(conn)
        if state == "empty":
            if not create:
                raise GanprintError(f"{self.where}: an empty database, not a ganprint registry")
            with self._write() as conn:
                if conn.dialect.name == "postgresql":
                    # SQLite's BEGIN IMMEDIATE serializes creators; PostgreSQL needs a lock of its own,
                    # or two processes creating the tables at once collide in its catalogue
                    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_CREATE_LOCK_KEY})")
                if self._state(conn) == "empty":  # another process may have created it meanwhile
                    metadata.create_all(conn)
                    conn.execute(info_table.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))
                else:
                    self._state(conn)
        if self.is_sqlite and self.writable:
            with self._errors():  # outside any transaction: on the driver's connection
                raw = self.engine.raw_connection()
                try:
                    if raw.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                        raw.execute("PRAGMA journal_mode=WAL")
                finally:
                    raw.close()

    def _state(self, conn: Connection) -> str:
        """'empty', or 'ok' for a registry this version reads; GanprintError for anything else."""
        tables = set(inspect(conn).get_table_names())
        if info_table.name not in tables:
            if tables:
                shown = ", ".join(sorted(tables)[:3])
                raise GanprintError(f"{self.where}: not a ganprint registry (the database holds other tables: {shown})")
            return "empty"
        version = conn.execute(select(info_table.c.value).where(info_table.c.key == "schema_version")).scalar()
        if version is None or not version.isdigit() or "fingerprints" not in tables:
            raise GanprintError(f"{self.where}: damaged ganprint registry (no schema version or no fingerprints table)")
        if int(version) > SCHEMA_VERSION:
            raise GanprintError(
                f"{self.where}: registry schema version {version} is newer than this ganprint reads "
                f"({SCHEMA_VERSION}); upgrade ganprint"
            )
        return "ok"

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> "Registry":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # ------------------------------------------------------------------------------------ reads
    @staticmethod
    def _entry(row) -> Entry:
        return Entry(model=row.model, fingerprint=row.fingerprint, length=row.length, method=row.method,
                     owner=row.owner, created=row.created, notes=row.notes, id=row.id)  # fmt: skip

    def entries(self, method: str | None = None, length: int | None = None) -> list[Entry]:
        """All entries, in registration order, optionally of one method and/or length."""
        t = fingerprints_table
        query = select(t).order_by(t.c.id)
        if method is not None:
            query = query.where(t.c.method == method)
        if length is not None:
            query = query.where(t.c.length == int(length))
        with self._read() as conn:
            return [self._entry(r) for r in conn.execute(query)]

    def count(self, method: str | None = None, length: int | None = None) -> int:
        t = fingerprints_table
        query = select(func.count()).select_from(t)
        if method is not None:
            query = query.where(t.c.method == method)
        if length is not None:
            query = query.where(t.c.length == int(length))
        with self._read() as conn:
            return int(conn.execute(query).scalar())

    def _row(self, conn: Connection, model: str):
        """The row of `model`; GanprintError if it is not registered."""
        t = fingerprints_table
        row = conn.execute(select(t).where(t.c.model == model)).first()
        if row is None:
            raise GanprintError(f"{self.where}: no model {model!r} in the registry")
        return row

    def get(self, model: str) -> Entry:
        with self._read() as conn:
            return self._entry(self._row(conn, model))

    def fingerprint_bits(self, method: str | None, length: int) -> tuple[list[str], np.ndarray]:
        """(model names, bits (N, length) uint8) of every fingerprint of that length (and method):
        what attribution compares against. Fast for millions of rows."""
        t = fingerprints_table
        query = select(t.c.model, t.c.fingerprint).where(t.c.length == int(length)).order_by(t.c.id)
        if method is not None:
            query = query.where(t.c.method == method)
        with self._read() as conn:
            rows = conn.execute(query).all()
        models = [r[0] for r in rows]
        return models, hex_to_bits([r[1] for r in rows], int(length))

    # ----------------------------------------------------------------------------------- writes
    def _prepare(self, model, fingerprint, method, owner, notes, length, created, allow_degenerate=True) -> dict:
        hex_, n = normalize_fingerprint(fingerprint, length)
        if not allow_degenerate:
            reason = degenerate_reason(hex_to_bits([hex_], n)[0])
            if reason is not None:
                raise GanprintError(
                    f"fingerprint {hex_}: {reason}; issue a random one with 'ganprint registry issue', or pass "
                    "--allow-degenerate (allow_degenerate=True) to register it anyway"
                )
        for name, value in (("owner", owner), ("notes", notes), ("created", created)):
            if not isinstance(value, str):
                raise GanprintError(f"{name} must be text, not {type(value).__name__}")
        if len(owner) > 255:
            raise GanprintError("owner: at most 255 characters")
        if created and not _valid_time(created):
            raise GanprintError(f"created {created!r}: not an ISO 8601 time")
        return {"model": _check_model(model), "fingerprint": hex_, "length": n, "method": _check_method(method),
                "owner": owner, "created": created or now_utc(), "notes": notes}  # fmt: skip

    def _conflict(self, conn: Connection, row: dict) -> Entry | None:
        """The registered entry that clashes with `row` (same model, or same fingerprint value)."""
        t = fingerprints_table
        hit = conn.execute(
            select(t).where((t.c.model == row["model"]) | ((t.c.length == row["length"]) & (t.c.fingerprint == row["fingerprint"])))
        ).first()  # fmt: skip
        return self._entry(hit) if hit is not None else None

    def _duplicate_error(self, row: dict, other: Entry) -> GanprintError:
        if other.model == row["model"]:
            return GanprintError(
                f"{self.where}: model {row['model']!r} is already registered (fingerprint {other.fingerprint}, "
                f"{other.method}, {other.created}); remove it first to change it"
            )
        return GanprintError(
            f"{self.where}: fingerprint {row['fingerprint']} ({row['length']} bits) is already registered to "
            f"model {other.model!r}; one fingerprint can identify only one model"
        )

    def _insert(self, conn: Connection, row: dict) -> Entry:
        try:
            with conn.begin_nested():
                result = conn.execute(fingerprints_table.insert().values(**row))
        except exc.IntegrityError:  # a writer outside our locking (another database client) got there first
            other = self._conflict(conn, row)
            if other is not None:
                raise self._duplicate_error(row, other) from None
            raise
        return Entry(**row, id=int(result.inserted_primary_key[0]))

    def add(self, model: str, fingerprint: str, method: str = "codec", owner: str = "", notes: str = "",
            length: int | None = None, created: str = "", allow_degenerate: bool = False) -> Entry:  # fmt: skip
        """Register a given fingerprint (0/1 characters or hex) for `model`. A degenerate one (see
        `allowed_weights`) is refused unless `allow_degenerate`."""
        row = self._prepare(model, fingerprint, method, owner, notes, length, created, allow_degenerate)
        with self._write() as conn:
            other = self._conflict(conn, row)
            if other is not None:
                raise self._duplicate_error(row, other)
            return self._insert(conn, row)

    def issue(self, models: str | Sequence[str], length: int, method: str = "codec", owner: str = "",
              notes: str = "", min_distance: int | None = None, seed: int | None = None) -> list[Entry]:  # fmt: skip
        """Register new random fingerprints, each at Hamming distance >= `min_distance` (default:
        length // 4) from every registered fingerprint of the same length and from each other.

        Draws fair random bits (from the operating system's entropy unless `seed` is given) and keeps
        a draw only if it is far enough and not degenerate (`allowed_weights`); everything happens in one locked transaction, so concurrent
        issuers cannot hand out two fingerprints that are too close.
        """
        from .attribution import hamming, min_distances, pack_bits

        models = [models] if isinstance(models, str) else list(models)
        if not models:
            return []
        if len(set(models)) != len(models):
            raise GanprintError("the same model name is given twice")
        length = int(length)
        if not 1 <= length <= 4096:
            raise GanprintError(f"fingerprint length {length}: use 1 to 4096 bits")
        min_distance = default_min_distance(length) if min_distance is None else int(min_distance)
        if not 0 <= min_distance <= length:
            raise GanprintError(f"minimum distance {min_distance}: use 0 to {length} for {length}-bit fingerprints")
        lo, hi = allowed_weights(length)
        if lo > hi:
            raise GanprintError(f"cannot issue a {length}-bit fingerprint: {degenerate_reason(np.zeros(length))}")
        rows = [self._prepare(m, "0" * length, method, owner, notes, length, "") for m in models]
        rng = np.random.default_rng(seed)
        with self._write(lock_table=True) as conn:
            for row in rows:
                other = self._conflict(conn, {**row, "length": -1})  # model names only
                if other is not None:
                    raise self._duplicate_error(row, other)
            _, existing = self._bits_in(conn, length)
            taken = pack_bits(existing)  # grows with every accepted draw
            chosen: list[np.ndarray] = []
            tries = 0
            while len(chosen) < len(rows):
                batch = rng.integers(0, 2, size=(256, length), dtype=np.uint8)
                packed = pack_bits(batch)
                tries += len(batch)
                weights = batch.sum(axis=1, dtype=np.int64)
                far = (min_distances(packed, taken) >= min_distance) & (weights >= lo) & (weights <= hi)
                inner = hamming(packed, packed)  # draws of one batch must be far from each other too
                accepted: list[int] = []
                for j in np.nonzero(far)[0]:
                    if accepted and inner[j, accepted].min() < min_distance:
                        continue
                    accepted.append(int(j))
                    if len(chosen) + len(accepted) == len(rows):
                        break
                chosen.extend(batch[accepted])
                taken = np.concatenate([taken, packed[accepted]])
                if len(chosen) < len(rows) and tries >= 100_000:
                    raise GanprintError(
                        f"no {length}-bit fingerprint at distance >= {min_distance} from the {len(existing)} "
                        f"registered ones found in {tries} random draws; lower --min-distance"
                    )
            out = []
            for row, bits in zip(rows, chosen):
                row["fingerprint"] = bits_to_hex(_as_tensor(bits))
                out.append(self._insert(conn, row))
            return out

    def _bits_in(self, conn: Connection, length: int) -> tuple[list[str], np.ndarray]:
        t = fingerprints_table
        rows = conn.execute(select(t.c.model, t.c.fingerprint).where(t.c.length == length)).all()
        return [r[0] for r in rows], hex_to_bits([r[1] for r in rows], length)

    def remove(self, model: str) -> Entry:
        with self._write() as conn:
            row = self._row(conn, model)
            conn.execute(fingerprints_table.delete().where(fingerprints_table.c.id == row.id))
        return self._entry(row)

    # ------------------------------------------------------------------------------ JSON lines
    def export_jsonl(self, out: IO[str]) -> int:
        """Write one JSON object per entry (registration order); the number written."""
        n = 0
        for entry in self.entries():
            out.write(json.dumps(entry.to_json(), ensure_ascii=False) + "\n")
            n += 1
        return n

    def export_file(self, path: str | os.PathLike, overwrite: bool = False) -> int:
        path = Path(path)
        if path.exists() and not overwrite:
            raise GanprintError(f"{path} already exists; pass --overwrite to replace it")
        with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
            return self.export_jsonl(f)

    def import_jsonl(self, lines: Iterable[str], source: str = "<input>", skip_existing: bool = False,
                     allow_degenerate: bool = False) -> tuple[int, int]:  # fmt: skip
        """Add every entry of a JSON-lines export in one transaction: all or nothing.

        An entry identical to a registered one (model, fingerprint, length, method) is skipped with
        `skip_existing` and is an error otherwise, as is any other clash; a degenerate fingerprint is
        an error unless `allow_degenerate`. Returns (added, skipped).
        """
        rows, seen_models, seen_values = [], {}, {}
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            where = f"{source}:{number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise GanprintError(f"{where}: not valid JSON ({e.msg})") from None
            if not isinstance(record, dict):
                raise GanprintError(f"{where}: expected a JSON object")
            unknown = sorted(set(record) - set(_FIELDS) - {"id"})
            if unknown:
                raise GanprintError(f"{where}: unknown field {unknown[0]!r} (fields: {', '.join(_FIELDS)})")
            for required in ("model", "fingerprint"):
                if required not in record:
                    raise GanprintError(f"{where}: missing {required!r}")
            length = record.get("length")
            if length is not None and (not isinstance(length, int) or isinstance(length, bool) or length < 1):
                raise GanprintError(f"{where}: length must be a positive integer")
            try:
                row = self._prepare(record["model"], record["fingerprint"], record.get("method", "codec"),
                                    record.get("owner", ""), record.get("notes", ""), length,
                                    record.get("created", ""), allow_degenerate)  # fmt: skip
            except GanprintError as e:
                raise GanprintError(f"{where}: {e}") from None
            if row["model"] in seen_models:
                raise GanprintError(f"{where}: model {row['model']!r} also on line {seen_models[row['model']]}")
            value = (row["length"], row["fingerprint"])
            if value in seen_values:
                raise GanprintError(f"{where}: fingerprint {row['fingerprint']} also on line {seen_values[value]}")
            seen_models[row["model"]], seen_values[value] = number, number
            rows.append((where, row))
        added = skipped = 0
        with self._write() as conn:
            for where, row in rows:
                other = self._conflict(conn, row)
                if other is not None:
                    same = (other.model, other.fingerprint, other.length, other.method) == (
                        row["model"], row["fingerprint"], row["length"], row["method"])  # fmt: skip
                    if same and skip_existing:
                        skipped += 1
                        continue
                    hint = " (identical entry: pass --skip-existing)" if same else ""
                    raise GanprintError(f"{where}: {self._duplicate_error(row, other)}{hint}; nothing imported")
                self._insert(conn, row)
                added += 1
        return added, skipped

    def import_file(self, path: str | os.PathLike, skip_existing: bool = False,
                    allow_degenerate: bool = False) -> tuple[int, int]:  # fmt: skip
        if os.fspath(path) == "-":
            return self.import_jsonl(sys.stdin, "<stdin>", skip_existing, allow_degenerate)
        path = Path(path)
        if not path.is_file():
            raise GanprintError(f"{path}: no such file")
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError) as e:
            raise GanprintError(f"{path}: not a readable JSON-lines file ({e.__class__.__name__})") from None
        return self.import_jsonl(text.splitlines(), str(path), skip_existing, allow_degenerate)


def _as_tensor(bits: np.ndarray):
    import torch

    return torch.from_numpy(bits.astype(np.float32))


def _valid_time(text: str) -> bool:
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
        return True
    except ValueError:
        return False


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else e.__class__.__name__
