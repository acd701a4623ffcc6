"""The fingerprint registry: round trips, duplicates, malformed input, concurrent writers, damaged
and locked database files, minimum-distance issuing, degenerate fingerprints, time limits and
read-only use. Tests taking `registry_location` run on SQLite and on a throwaway PostgreSQL server
(tests/conftest.py)."""

from __future__ import annotations

import itertools
import json
import math
import multiprocessing
import os
import random
import socket
import sqlite3
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from ganprint.errors import GanprintError
from ganprint.fingerprints import parse_fingerprint
from ganprint.registry import (
    DEGENERATE_TAIL,
    Registry,
    _connect_within,
    allowed_weights,
    default_min_distance,
    hex_to_bits,
)


def bit_string(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("01") for _ in range(n))


def hamming(a: str, b: str) -> int:
    return sum(x != y for x, y in zip(a, b))


# ------------------------------------------------------------------------------------ formats
@pytest.mark.parametrize("length", [1, 7, 10, 16, 100, 128, 130])
def test_hex_to_bits_matches_the_reference_parser(length):
    rng = random.Random(length)
    strings = [bit_string(rng, length) for _ in range(20)]
    from ganprint.fingerprints import bits_to_hex

    hexes = [bits_to_hex(parse_fingerprint(s, length)) for s in strings]
    got = hex_to_bits(hexes, length)
    assert ["".join(map(str, row)) for row in got.tolist()] == strings


def test_round_trip_through_export_and_import(tmp_path, registry_location):
    rng = random.Random(0)
    with Registry(registry_location, create=True) as reg:
        given = bit_string(rng, 100)
        reg.add("bits-model", given, method="codec", owner="Ann", notes="ünïcode notes\ttab", length=100)
        reg.add("hex-model", "0x" + "ab" * 16, method="scalable", owner="Bob")
        reg.add("odd-length", "1011011101", method="codec")  # 10 bits: hex with leading pad bits
        issued = reg.issue(["issued-1", "issued-2"], 100, owner="Cy", seed=3)
        entries = reg.entries()
        assert [e.model for e in entries] == ["bits-model", "hex-model", "odd-length", "issued-1", "issued-2"]
        assert reg.get("bits-model").bit_string == given
        assert reg.get("odd-length").fingerprint == "2dd" and reg.get("odd-length").length == 10
        assert reg.get("hex-model").length == 128 and reg.get("hex-model").method == "scalable"
        assert reg.count(method="codec", length=100) == 3
        models, bits = reg.fingerprint_bits("codec", 100)
        assert models == ["bits-model", "issued-1", "issued-2"]
        assert "".join(map(str, bits[0])) == given and "".join(map(str, bits[1])) == issued[0].bit_string
        reg.export_file(tmp_path / "out.jsonl")
    with Registry(tmp_path / "b.db", create=True) as reg2:
        assert reg2.import_file(tmp_path / "out.jsonl") == (5, 0)
        reg2.export_file(tmp_path / "again.jsonl")
        assert [e.to_json() for e in reg2.entries()] == [e.to_json() for e in entries]
    assert (tmp_path / "again.jsonl").read_bytes() == (tmp_path / "out.jsonl").read_bytes()
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert lines[0]["notes"] == "ünïcode notes\ttab" and lines[0]["owner"] == "Ann" and "id" not in lines[0]


# ---------------------------------------------------------------------------- bad input, clashes
def test_duplicates_are_refused_and_nothing_changes(registry_location):
    with Registry(registry_location, create=True) as reg:
        reg.add("m1", "0x" + "5a" * 16)
        with pytest.raises(GanprintError, match="model 'm1' is already registered"):
            reg.add("m1", "0x" + "34" * 16)
        with pytest.raises(GanprintError, match="already registered to model 'm1'"):
            reg.add("m2", "0x" + "5a" * 16)
        with pytest.raises(GanprintError, match="already registered to model 'm1'"):  # same value as bits
            reg.add("m2", "01011010" * 16, method="scalable")
        with pytest.raises(GanprintError, match="model 'm1' is already registered"):
            reg.issue("m1", 128)
        assert [e.model for e in reg.entries()] == ["m1"]
        # a same-length fingerprint that differs is fine; so is the same hex at another length
        reg.add("m3", "0x" + "5a" * 15 + "5b")
        reg.add("m4", "12", length=8)
        assert reg.count() == 3


@pytest.mark.parametrize(
    "fingerprint, length, message",
    [
        ("0x12g4", None, "neither a 0/1 string nor hexadecimal"),
        ("", None, "empty fingerprint"),
        ("0101", 8, "a 8-bit fingerprint needs 2 hex digits or 8 0/1 characters"),
        ("0x123", 16, "needs 4 hex digits"),
        ("0xff", 4, "needs 1 hex digits"),
        ("0x3f", 5, "does not fit in 5 bits"),
    ],
)
def test_malformed_fingerprints(registry_location, fingerprint, length, message):
    with Registry(registry_location, create=True) as reg:
        with pytest.raises(GanprintError, match=message):
            reg.add("m", fingerprint, length=length)
        assert reg.count() == 0


def test_bad_names_and_methods(registry_location):
    with Registry(registry_location, create=True) as reg:
        for model in ("", " padded", "x" * 256):
            with pytest.raises(GanprintError, match="model name"):
                reg.add(model, "0101")
        with pytest.raises(GanprintError, match="method 'Codec!'"):
            reg.add("m", "0101", method="Codec!")
        with pytest.raises(GanprintError, match="ISO 8601"):
            reg.add("m", "0101", created="yesterday")


def test_import_is_all_or_nothing_with_line_numbers(tmp_path, registry_location):
    with Registry(registry_location, create=True) as reg:
        reg.add("old", "0x" + "aa" * 16)
        good = json.dumps({"model": "new", "fingerprint": "0x" + "b4" * 16})
        for bad, message in [
            ("{not json", "f.jsonl:2: not valid JSON"),
            (json.dumps({"model": "x"}), "f.jsonl:2: missing 'fingerprint'"),
            (json.dumps({"model": "x", "fingerprint": "0xzz"}), "f.jsonl:2: fingerprint '0xzz'"),
            (json.dumps({"model": "x", "fingerprint": "01", "colour": 1}), "unknown field 'colour'"),
            (json.dumps({"model": "new", "fingerprint": "0x" + "cc" * 16}), "model 'new' also on line 1"),
            (json.dumps({"model": "old", "fingerprint": "0x" + "cc" * 16}), "f.jsonl:2: .*'old' is already registered"),
            (json.dumps({"model": "x", "fingerprint": "01", "length": "2"}), "length must be a positive integer"),
            (json.dumps({"model": "x", "fingerprint": "0" * 64}), "f.jsonl:2: fingerprint 0{16}: degenerate"),
        ]:
            (tmp_path / "f.jsonl").write_text(good + "\n" + bad + "\n", encoding="utf-8")
            with pytest.raises(GanprintError, match=message):
                reg.import_file(tmp_path / "f.jsonl")
            assert [e.model for e in reg.entries()] == ["old"]  # nothing imported
        (tmp_path / "f.jsonl").write_text(good + "\n", encoding="utf-8")
        assert reg.import_file(tmp_path / "f.jsonl") == (1, 0)
        with pytest.raises(GanprintError, match="identical entry: pass --skip-existing"):
            reg.import_file(tmp_path / "f.jsonl")
        assert reg.import_file(tmp_path / "f.jsonl", skip_existing=True) == (0, 1)


# ------------------------------------------------------------------------------------ issuing
def test_issue_keeps_the_minimum_distance(registry_location):
    with Registry(registry_location, create=True) as reg:
        reg.add("given", "0" * 16, allow_degenerate=True)
        reg.issue([f"m{i}" for i in range(20)], 16, min_distance=5, seed=1)
        reg.issue("later", 16, min_distance=5, seed=2)
        reg.add("other-length", "0" * 12, allow_degenerate=True)  # other lengths do not count
        strings = [e.bit_string for e in reg.entries(length=16)]
    assert len(strings) == 22
    assert min(hamming(a, b) for a, b in itertools.combinations(strings, 2)) >= 5
    assert default_min_distance(128) == 32 and default_min_distance(100) == 25


def test_issue_fails_clearly_when_no_fingerprint_is_far_enough(registry_location):
    with Registry(registry_location, create=True) as reg:
        reg.issue(["a", "b"], 6, min_distance=6, seed=0)  # a and its complement: the only pair at distance 6
        with pytest.raises(GanprintError, match="no 6-bit fingerprint at distance >= 6 from the 2 registered"):
            reg.issue("c", 6, min_distance=6, seed=0)
        assert reg.count() == 2
        with pytest.raises(GanprintError, match="minimum distance 9"):
            reg.issue("c", 8, min_distance=9)


# ---------------------------------------------------------------------------------- concurrency
def _writer(location: str, worker: int, count: int, error_dir: str) -> None:
    try:
        with Registry(location, create=True, timeout=60) as reg:
            for i in range(count):
                reg.add(f"w{worker}-{i}", bit_string(random.Random(worker * 1000 + i), 64))
                reg.issue(f"w{worker}-issued-{i}", 24, min_distance=6)
    except Exception as e:  # the parent shows why a worker failed, not just its exit code
        (Path(error_dir) / f"error-{worker}.txt").write_text(f"{type(e).__name__}: {e}")
        raise


def test_concurrent_writers_lose_nothing(tmp_path, registry_location):
    """Four processes add and issue into one registry (that does not exist yet): nothing is lost, the
    issued fingerprints keep their minimum distance, and a failed write changes nothing."""
    # spawn, not fork: a child forked from a process with running threads (torch's) can hang on a lock
    # that one of those threads held at the fork
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_writer, args=(registry_location, w, 8, str(tmp_path))) for w in range(4)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(180)
    errors = [f.read_text() for f in sorted(tmp_path.glob("error-*.txt"))]
    assert [p.exitcode for p in workers] == [0, 0, 0, 0], errors
    with Registry(registry_location) as reg:
        entries = reg.entries()
        models = {e.model for e in entries}
        assert models == {f"w{w}-{i}" for w in range(4) for i in range(8)} | {
            f"w{w}-issued-{i}" for w in range(4) for i in range(8)
        }
        issued = [e.bit_string for e in reg.entries(length=24)]
        # the distance guarantee holds across processes: issuing is serialized
        assert len(issued) == 32
        assert min(hamming(a, b) for a, b in itertools.combinations(issued, 2)) >= 6
        before = reg.count()
        with pytest.raises(GanprintError, match="model 'w0-0' is already registered"):
            reg.add("w0-0", "01" * 32)
        with pytest.raises(GanprintError, match="no 6-bit fingerprint at distance >= 6"):
            reg.issue(["late-a", "late-b", "late-c"], 6, min_distance=6, seed=0)
        assert reg.count() == before  # all or nothing
    if "://" not in registry_location:
        assert sqlite3.connect(registry_location).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


class _WriteLock:
    """Another client in the middle of a long write: SQLite's exclusive lock, or on PostgreSQL the
    table lock `issue` takes (readers pass, writers wait)."""

    def __init__(self, location: str):
        self.location = location

    def __enter__(self):
        if "://" in self.location:
            import psycopg
            from sqlalchemy.engine import make_url

            url = make_url(self.location)
            self.conn = psycopg.connect(host=url.query["host"], dbname=url.database, user=url.username)
            self.conn.execute("LOCK TABLE fingerprints IN SHARE ROW EXCLUSIVE MODE")
        else:
            self.conn = sqlite3.connect(self.location, isolation_level=None)
            self.conn.execute("BEGIN EXCLUSIVE")
        return self

    def __exit__(self, *exc_info):
        self.conn.rollback() if "://" in self.location else self.conn.execute("ROLLBACK")
        self.conn.close()


def test_locked_database_gives_a_clear_error_and_readers_still_read(registry_location):
    with Registry(registry_location, create=True) as reg:
        reg.add("m1", "0101")
    with _WriteLock(registry_location), Registry(registry_location, timeout=0.2) as reg:
        assert [e.model for e in reg.entries()] == ["m1"]  # readers do not wait for the writer
        with pytest.raises(GanprintError, match=r"the registry is locked by another process \(waited 0.2 s\)"):
            reg.issue("m2", 16)
        with pytest.raises(GanprintError, match=r"locked by another process"):
            reg.add("m2", "0110")
    with Registry(registry_location, timeout=0.2) as reg:
        reg.add("m2", "0110")
        assert reg.count() == 2


# ----------------------------------------------------------------------------- damaged files
def test_corrupt_and_foreign_files_are_refused_untouched(tmp_path):
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(os.urandom(4096))
    text = tmp_path / "notes.db"
    text.write_text("this is not a database\n" * 100)
    foreign = tmp_path / "foreign.db"
    con = sqlite3.connect(foreign)
    con.execute("CREATE TABLE customers (name TEXT)")
    con.commit()
    con.close()
    real = tmp_path / "real.db"
    with Registry(real, create=True) as reg:
        reg.add("m1", "0101")
    truncated = tmp_path / "truncated.db"
    data = real.read_bytes()
    truncated.write_bytes(b"SQLite format 3\x00" + b"\xff" * 84 + data[100:1000])
    for path, message in [
        (garbage, "not a ganprint registry, or the database file is damaged"),
        (text, "not a ganprint registry, or the database file is damaged"),
        (truncated, "not a ganprint registry, or the database file is damaged"),
        (foreign, r"not a ganprint registry \(the database holds other tables: customers\)"),
    ]:
        before = path.read_bytes()
        for create in (False, True):
            with pytest.raises(GanprintError, match=message):
                Registry(path, create=create)
        assert path.read_bytes() == before, f"{path.name} was modified"
        assert not list(tmp_path.glob(f"{path.name}-wal"))


def test_missing_registry_is_not_silently_created(tmp_path):
    with pytest.raises(GanprintError, match="no registry here; create one with 'ganprint registry add'"):
        Registry(tmp_path / "nope.db")
    assert not (tmp_path / "nope.db").exists()
    with pytest.raises(GanprintError, match="is a folder"):
        Registry(tmp_path, create=True)
    with pytest.raises(GanprintError, match="not a database URL|cannot use this database"):
        Registry("nosuchdialect://x/y")


# -------------------------------------------------------------------------------------- CLI
def test_cli_round_trip(run_cli, tmp_path, registry_location):
    db = registry_location
    code, out, err = run_cli("registry", "issue", "--registry", db, "--model", "acme", "--length", 100,
                         "--owner", "ACME", "--seed", 1, "--json")  # fmt: skip
    assert code == 0, err
    issued = json.loads(out)
    assert issued["model"] == "acme" and len(issued["fingerprint"]) == 25 and issued["owner"] == "ACME"
    code, out, err = run_cli("registry", "add", "--registry", db, "--model", "mine", "--fingerprint",
                         "10" * 50, "--method", "scalable")  # fmt: skip
    assert code == 0 and "registered mine: 100-bit scalable fingerprint" in out
    code, out, err = run_cli("registry", "list", "--registry", db)
    assert code == 0 and out.splitlines()[1].startswith("acme ") and "mine" in out.splitlines()[2]
    code, out, _ = run_cli("registry", "show", "--registry", db, "acme")
    assert code == 0 and f"fingerprint: {issued['fingerprint']}" in out
    code, out, _ = run_cli("registry", "export", "--registry", db)
    assert code == 0 and [json.loads(line)["model"] for line in out.splitlines()] == ["acme", "mine"]
    (tmp_path / "e.jsonl").write_text(out)
    code, out, err = run_cli("registry", "import", "--registry", tmp_path / "copy.db", tmp_path / "e.jsonl")
    assert code == 0 and "imported 2 fingerprints" in out
    code, out, err = run_cli("registry", "remove", "--registry", db, "acme")
    assert code == 2 and "pass --yes" in err
    code, out, err = run_cli("registry", "remove", "--registry", db, "acme", "--yes")
    assert code == 0 and "removed acme" in out
    code, out, err = run_cli("registry", "show", "--registry", db, "acme")
    assert code == 1 and err.strip() == f"error: {db}: no model 'acme' in the registry"
    code, out, err = run_cli("registry", "add", "--registry", db, "--model", "mine", "--fingerprint", "01" * 50)
    assert code == 1 and "model 'mine' is already registered" in err and "Traceback" not in err
    code, out, err = run_cli("registry", "list", "--registry", tmp_path / "missing.db")
    assert code == 1 and "no registry here" in err
    code, out, err = run_cli("registry", "export", "--registry", db, tmp_path / "e.jsonl")
    assert code == 1 and "already exists" in err
    code, out, err = run_cli("registry", "list")
    assert code == 2 and "--registry" in err


@pytest.mark.parametrize("command", ["registry", "registry add", "registry issue", "registry list", "registry show",
                                     "registry remove", "registry import", "registry export"])  # fmt: skip
def test_help_has_examples(run_cli, command):
    code, out, _ = run_cli(*command.split(), "--help")
    assert code == 0 and "Example" in out and "ganprint registry" in out


# ---------------------------------------------------------------------------- degenerate fingerprints
def _lower_tail(weight: int, length: int) -> float:
    return sum(math.comb(length, i) for i in range(weight + 1)) / 2**length


@pytest.mark.parametrize("length", [2, 8, 16, 24, 64, 100, 128])
def test_allowed_weights_are_the_binomial_tails(length):
    lo, hi = allowed_weights(length)
    assert lo + hi == length and lo >= 1  # all zeros and all ones are never allowed
    assert _lower_tail(lo, length) > DEGENERATE_TAIL
    assert lo == 1 or _lower_tail(lo - 1, length) <= DEGENERATE_TAIL
    assert allowed_weights(100) == (35, 65)


def test_degenerate_fingerprints_are_refused_unless_forced(registry_location):
    lo, hi = allowed_weights(100)
    with Registry(registry_location, create=True) as reg:
        for name, bits in [("zeros", "0" * 100), ("ones", "1" * 100), ("light", "1" * (lo - 1) + "0" * (101 - lo)),
                           ("heavy", "1" * (hi + 1) + "0" * (99 - hi))]:  # fmt: skip
            with pytest.raises(GanprintError, match=r"degenerate fingerprint: .* pass --allow-degenerate"):
                reg.add(name, bits)
        assert reg.count() == 0
        reg.add("lightest", "1" * lo + "0" * (100 - lo))  # the edges of the allowed range are fine
        reg.add("heaviest", "1" * hi + "0" * (100 - hi))
        reg.add("zeros", "0" * 100, allow_degenerate=True)
        assert [e.model for e in reg.entries()] == ["lightest", "heaviest", "zeros"]


def test_issue_never_issues_a_degenerate_fingerprint(registry_location):
    with Registry(registry_location, create=True) as reg:
        # 6 bits: 62 of the 64 values are allowed; issuing them all must skip 000000 and 111111
        issued = reg.issue([f"m{i}" for i in range(62)], 6, min_distance=1, seed=0)
        assert sorted(e.bit_string for e in issued) == sorted(
            format(v, "06b") for v in range(64) if v not in (0, 63)
        )
        with pytest.raises(GanprintError, match="no 6-bit fingerprint at distance >= 1"):
            reg.issue("one-more", 6, min_distance=1, seed=0)
        with pytest.raises(GanprintError, match="every 1-bit fingerprint is degenerate"):
            reg.issue("tiny", 1, min_distance=0)
        assert reg.count() == 62


def test_cli_refuses_a_degenerate_fingerprint_and_says_what_to_do(run_cli, tmp_path):
    db = tmp_path / "fp.db"
    code, out, err = run_cli("registry", "add", "--registry", db, "--model", "m", "--fingerprint", "0" * 100)
    assert code == 1 and "degenerate fingerprint: 0 of its 100 bits are ones (allowed: 35 to 65)" in err
    assert "ganprint registry issue" in err and "--allow-degenerate" in err and len(err.strip().splitlines()) == 1
    code, out, err = run_cli("registry", "add", "--registry", db, "--model", "m", "--fingerprint", "0" * 100,
                             "--allow-degenerate")  # fmt: skip
    assert code == 0 and "registered m" in out
    code, out, _ = run_cli("registry", "export", "--registry", db, tmp_path / "e.jsonl")
    code, out, err = run_cli("registry", "import", "--registry", tmp_path / "copy.db", tmp_path / "e.jsonl")
    assert code == 1 and "e.jsonl:1: fingerprint" in err and "--allow-degenerate" in err
    code, out, err = run_cli("registry", "import", "--registry", tmp_path / "copy.db", tmp_path / "e.jsonl",
                             "--allow-degenerate")  # fmt: skip
    assert code == 0 and "imported 1 fingerprints" in out


# --------------------------------------------------------------------------------- time limits
@pytest.fixture
def silent_server():
    """A TCP server on 127.0.0.1 that accepts connections and never answers: a hung database server."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])  # kept open, never read, never written
            except TimeoutError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for conn in accepted + [listener]:
        conn.close()
    assert accepted, "nothing connected to the silent server"


@pytest.mark.timeout(120)  # today's failure is a hang: fail it instead of waiting for the global limit
def test_a_server_that_never_answers_gives_a_clean_error(run_cli, silent_server, tmp_path):
    url = f"postgresql+psycopg://ganprint@127.0.0.1:{silent_server}/registry"
    with pytest.raises(GanprintError, match=r"127.0.0.1:\d+/registry: no answer from the database server within 2 s"):
        Registry(url, timeout=1)
    code, out, err = run_cli("registry", "list", "--registry", url, "--timeout", 3)
    assert code == 1 and err.strip().splitlines() == [
        f"error: {url}: no answer from the database server within 3 s; check that it is running and that the URL "
        "(host, port) is right, or give a longer --timeout"
    ]  # fmt: skip
    (tmp_path / "a.png").write_bytes(b"")  # the registry is opened before any image is read
    code, out, err = run_cli("attribute", "--registry", url, "--timeout", 2, tmp_path / "a.png")
    assert code == 1 and "no answer from the database server within 2 s" in err and "Traceback" not in err


def test_connect_deadline_works_for_any_driver():
    """The deadline on a driver's connect call: a result in time is returned, an error is raised, and
    a connection that arrives too late is closed, not leaked."""

    class Connection:
        def __init__(self):
            self.closed = threading.Event()

        def close(self):
            self.closed.set()

    assert isinstance(_connect_within(Connection, 5, "db"), Connection)
    with pytest.raises(ZeroDivisionError):
        _connect_within(lambda: 1 / 0, 5, "db")
    release, late = threading.Event(), Connection()

    def slow():
        release.wait(60)
        return late

    with pytest.raises(GanprintError, match="db: no answer from the database server within 0.2 s"):
        _connect_within(slow, 0.2, "db")
    assert not late.closed.is_set()
    release.set()
    assert late.closed.wait(60)  # closed by the helper thread as soon as it arrives


def test_postgresql_sessions_carry_the_time_limits(postgres_url):
    with Registry(postgres_url, create=True, timeout=1.5) as reg:
        with reg.engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "1500ms"
            assert conn.exec_driver_sql("SHOW lock_timeout").scalar() == "1500ms"
            assert conn.exec_driver_sql("SHOW default_transaction_read_only").scalar() == "off"
        with pytest.raises(GanprintError, match=r"a database statement took longer than 1.5 s .*--timeout"):
            with reg._read() as conn:  # a statement stuck on the server
                conn.exec_driver_sql("SELECT pg_sleep(30)")


# ------------------------------------------------------------------------------------ read-only
def test_read_only_opening_never_writes(registry_location):
    with Registry(registry_location, create=True) as reg:
        reg.add("m1", "0101")
    before = Path(registry_location).read_bytes() if "://" not in registry_location else None
    with Registry(registry_location, read_only=True) as reg:
        assert [e.model for e in reg.entries()] == ["m1"] and reg.get("m1").fingerprint == "5"
        with pytest.raises(GanprintError, match="opened read-only"):
            reg.add("m2", "0110")
        with pytest.raises(GanprintError, match="opened read-only"):
            reg.remove("m1")
        with reg.engine.connect() as conn:  # the database refuses writes too, not only this class
            with pytest.raises(Exception, match="readonly|read-only"):
                conn.exec_driver_sql("DELETE FROM fingerprints")
    if before is not None:
        assert Path(registry_location).read_bytes() == before
    with pytest.raises(GanprintError, match="cannot be created read-only"):
        Registry(registry_location, create=True, read_only=True)
    for timeout in (math.nan, math.inf, -1):
        with pytest.raises(GanprintError, match="give a finite number of seconds >= 0"):
            Registry(registry_location, timeout=timeout)
    with Registry(registry_location) as reg:
        assert reg.count() == 1


def test_postgresql_read_only_user(run_cli, postgres_server, postgres_url):
    """A database user with SELECT rights only: reads work, writes give a clear error."""
    with Registry(postgres_url, create=True) as reg:
        reg.add("m1", "0101")
    from sqlalchemy.engine import make_url

    database = make_url(postgres_url).database
    reader = f"reader_{database}"
    postgres_server.execute(f'CREATE ROLE "{reader}" LOGIN')
    postgres_server.execute(f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{reader}"', database=database)
    url = postgres_server.url(database, user=reader)
    try:
        code, out, err = run_cli("registry", "list", "--registry", url)
        assert code == 0 and out.splitlines()[1].startswith("m1 "), err
        code, out, err = run_cli("registry", "add", "--registry", url, "--model", "m2", "--fingerprint", "0110")
        assert code == 1 and "the database refuses this user (permission denied for table fingerprints)" in err
    finally:
        postgres_server.execute(f'DROP OWNED BY "{reader}"', database=database)  # its rights, so the role can go
        postgres_server.execute(f'DROP ROLE "{reader}"')


def _fingerprinted_pngs(folder: Path, fingerprint: str, count: int = 2) -> None:
    """`count` sample photo crops carrying `fingerprint` (the shipped codec), saved as PNGs."""
    import ganprint
    import torch
    from ganprint.data import open_source, pil_to_tensor, preprocess, tensor_to_pil

    codec = ganprint.load_codec("codec-32")
    source = open_source("samples")
    clean = torch.stack([pil_to_tensor(preprocess(source.image(i), 32)) for i in range(count)])
    marked = codec.embed(clean, parse_fingerprint(fingerprint))
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(marked):
        tensor_to_pil(image).save(folder / f"marked-{i}.png")


def test_attribute_reads_the_registry(run_cli, tmp_path, registry_location):
    with Registry(registry_location, create=True) as reg:
        (acme,) = reg.issue("acme", 100, seed=5)
        reg.issue([f"other-{i}" for i in range(3)], 100, seed=6)
    _fingerprinted_pngs(tmp_path / "images", acme.bit_string)
    code, out, err = run_cli("attribute", "--registry", registry_location, "--model", "codec-32", "--jsonl", "-q",
                             tmp_path / "images")
    records = [json.loads(line) for line in out.splitlines()]
    assert code == 0, err
    assert [(r["verdict"], r["model"], r["registry_size"]) for r in records] == [("attributed", "acme", 4)] * 2


# Runs ganprint commands (a JSON list of argument lists) in one process: [(exit code, out, err)] as JSON.
_RUN_COMMANDS = """
import contextlib, io, json, sys
from ganprint.cli import main
results = []
for args in json.loads(sys.argv[1]):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(args)
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    results.append((code, out.getvalue(), err.getvalue()))
print(json.dumps(results))
"""


@pytest.fixture
def read_only_folder(tmp_path):
    """(folder, run): run(commands) runs ganprint commands (lists of arguments) in one subprocess for
    which `folder` is truly read-only, returning [(exit code, stdout, stderr)]. As root (whom file
    permissions do not stop) the subprocess gets a private mount namespace in which the folder is a
    read-only bind mount; otherwise the folder and its files lose their write permissions."""
    folder = tmp_path / "registry"
    folder.mkdir()
    as_root = os.geteuid() == 0
    if as_root:
        probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"], capture_output=True)
        if probe.returncode != 0:
            pytest.skip(f"running as root and cannot make a read-only mount: {probe.stderr.decode().strip()}")

    def run(commands: list[list]) -> list[tuple[int, str, str]]:
        command = [sys.executable, "-c", _RUN_COMMANDS, json.dumps([[str(a) for a in args] for args in commands])]
        if as_root:
            mount = f"mount --bind '{folder}' '{folder}' && mount -o remount,bind,ro '{folder}' && exec \"$@\""
            command = ["unshare", "--mount", "--propagation", "private", "sh", "-c", mount, "sh", *command]
        else:
            for path in [*folder.rglob("*"), folder]:
                path.chmod(0o555 if path.is_dir() else 0o444)
        # a guard against a hang, inside the global test timeout (a starved CPU makes this slow, not wrong)
        done = subprocess.run(command, capture_output=True, text=True, timeout=540)
        assert done.returncode == 0, done.stderr
        return [tuple(r) for r in json.loads(done.stdout)]

    yield folder, run
    for path in [folder, *folder.rglob("*")]:
        if path.is_dir():
            path.chmod(stat.S_IRWXU)  # so that pytest can delete it


def test_sqlite_registry_on_read_only_storage(read_only_folder):
    """attribute, list, show and export read it; add, issue and remove fail with a clear error; the
    folder is left exactly as it was (no journal, no -wal/-shm files)."""
    folder, run = read_only_folder
    db = folder / "fp.db"
    with Registry(db, create=True) as reg:
        (acme,) = reg.issue("acme", 100, seed=5)
    _fingerprinted_pngs(folder / "images", acme.bit_string)
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    writes = [["add", "--model", "m2", "--fingerprint", "01" * 50], ["issue", "--model", "m2"], ["remove", "acme", "--yes"]]
    results = run([["attribute", "--registry", db, "--model", "codec-32", "--jsonl", "-q", folder / "images"],
                   ["registry", "list", "--registry", db],
                   ["registry", "show", "--registry", db, "acme", "--json"],
                   ["registry", "export", "--registry", db]]
                  + [["registry", args[0], "--registry", db, *args[1:]] for args in writes])  # fmt: skip
    (code, out, err), listed, shown, exported = results[:4]
    assert code == 0, err
    assert [(r["verdict"], r["model"]) for r in map(json.loads, out.splitlines())] == [("attributed", "acme")] * 2
    assert listed[0] == 0 and listed[1].splitlines()[1].startswith("acme "), listed[2]
    assert shown[0] == 0 and json.loads(shown[1])["fingerprint"] == acme.fingerprint, shown[2]
    assert exported[0] == 0 and json.loads(exported[1])["model"] == "acme", exported[2]
    for code, out, err in results[4:]:
        assert code == 1 and err.strip().splitlines() == [
            f"error: {db}: cannot write to this registry: this process may not write the file or its folder (or "
            "the file system is read-only), and SQLite writes its journal beside the file; ask for write access "
            "or work on a copy"
        ], err  # fmt: skip
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == before
