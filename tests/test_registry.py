"""The fingerprint registry: round trips, duplicates, malformed input, concurrent writers, damaged
and locked database files, and minimum-distance issuing."""

from __future__ import annotations

import itertools
import json
import multiprocessing
import os
import random
import sqlite3
from pathlib import Path

import pytest

from ganprint.errors import GanprintError
from ganprint.fingerprints import parse_fingerprint
from ganprint.registry import Registry, default_min_distance, hex_to_bits


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


def test_round_trip_through_export_and_import(tmp_path):
    rng = random.Random(0)
    with Registry(tmp_path / "a.db", create=True) as reg:
        given = bit_string(rng, 100)
        reg.add("bits-model", given, method="codec", owner="Ann", notes="ünïcode notes\ttab", length=100)
        reg.add("hex-model", "0x" + "ab" * 16, method="scalable", owner="Bob")
        reg.add("odd-length", "1" * 10, method="codec")  # 10 bits: hex with leading pad bits
        issued = reg.issue(["issued-1", "issued-2"], 100, owner="Cy", seed=3)
        entries = reg.entries()
        assert [e.model for e in entries] == ["bits-model", "hex-model", "odd-length", "issued-1", "issued-2"]
        assert reg.get("bits-model").bit_string == given
        assert reg.get("odd-length").fingerprint == "3ff" and reg.get("odd-length").length == 10
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
def test_duplicates_are_refused_and_nothing_changes(tmp_path):
    with Registry(tmp_path / "r.db", create=True) as reg:
        reg.add("m1", "0x" + "12" * 16)
        with pytest.raises(GanprintError, match="model 'm1' is already registered"):
            reg.add("m1", "0x" + "34" * 16)
        with pytest.raises(GanprintError, match="already registered to model 'm1'"):
            reg.add("m2", "0x" + "12" * 16)
        with pytest.raises(GanprintError, match="already registered to model 'm1'"):  # same value as bits
            reg.add("m2", "00010010" * 16, method="scalable")
        with pytest.raises(GanprintError, match="model 'm1' is already registered"):
            reg.issue("m1", 128)
        assert [e.model for e in reg.entries()] == ["m1"]
        # a same-length fingerprint that differs is fine; so is the same hex at another length
        reg.add("m3", "0x" + "12" * 15 + "13")
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
def test_malformed_fingerprints(tmp_path, fingerprint, length, message):
    with Registry(tmp_path / "r.db", create=True) as reg:
        with pytest.raises(GanprintError, match=message):
            reg.add("m", fingerprint, length=length)
        assert reg.count() == 0


def test_bad_names_and_methods(tmp_path):
    with Registry(tmp_path / "r.db", create=True) as reg:
        for model in ("", " padded", "x" * 256):
            with pytest.raises(GanprintError, match="model name"):
                reg.add(model, "0101")
        with pytest.raises(GanprintError, match="method 'Codec!'"):
            reg.add("m", "0101", method="Codec!")
        with pytest.raises(GanprintError, match="ISO 8601"):
            reg.add("m", "0101", created="yesterday")


def test_import_is_all_or_nothing_with_line_numbers(tmp_path):
    with Registry(tmp_path / "r.db", create=True) as reg:
        reg.add("old", "0x" + "aa" * 16)
        good = json.dumps({"model": "new", "fingerprint": "0x" + "bb" * 16})
        for bad, message in [
            ("{not json", "f.jsonl:2: not valid JSON"),
            (json.dumps({"model": "x"}), "f.jsonl:2: missing 'fingerprint'"),
            (json.dumps({"model": "x", "fingerprint": "0xzz"}), "f.jsonl:2: fingerprint '0xzz'"),
            (json.dumps({"model": "x", "fingerprint": "01", "colour": 1}), "unknown field 'colour'"),
            (json.dumps({"model": "new", "fingerprint": "0x" + "cc" * 16}), "model 'new' also on line 1"),
            (json.dumps({"model": "old", "fingerprint": "0x" + "cc" * 16}), "f.jsonl:2: .*'old' is already registered"),
            (json.dumps({"model": "x", "fingerprint": "01", "length": "2"}), "length must be a positive integer"),
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
def test_issue_keeps_the_minimum_distance(tmp_path):
    with Registry(tmp_path / "r.db", create=True) as reg:
        reg.add("given", "0" * 16)
        reg.issue([f"m{i}" for i in range(20)], 16, min_distance=5, seed=1)
        reg.issue("later", 16, min_distance=5, seed=2)
        reg.add("other-length", "0" * 12)  # other lengths do not count
        strings = [e.bit_string for e in reg.entries(length=16)]
    assert len(strings) == 22
    assert min(hamming(a, b) for a, b in itertools.combinations(strings, 2)) >= 5
    assert default_min_distance(128) == 32 and default_min_distance(100) == 25


def test_issue_fails_clearly_when_no_fingerprint_is_far_enough(tmp_path):
    with Registry(tmp_path / "r.db", create=True) as reg:
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


def check_concurrent_writers_lose_nothing(location: str, error_dir: Path) -> None:
    """Four processes add and issue into one registry (that does not exist yet): nothing is lost and
    the issued fingerprints keep their minimum distance."""
    # spawn, not fork: a child forked from a process with running threads (torch's) can hang on a lock
    # that one of those threads held at the fork
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_writer, args=(location, w, 8, str(error_dir))) for w in range(4)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(180)
    errors = [f.read_text() for f in sorted(error_dir.glob("error-*.txt"))]
    assert [p.exitcode for p in workers] == [0, 0, 0, 0], errors
    with Registry(location) as reg:
        entries = reg.entries()
        models = {e.model for e in entries}
        assert models == {f"w{w}-{i}" for w in range(4) for i in range(8)} | {
            f"w{w}-issued-{i}" for w in range(4) for i in range(8)
        }
        issued = [e.bit_string for e in reg.entries(length=24)]
    assert len(issued) == 32
    # the distance guarantee holds across processes: issuing is serialized
    assert min(hamming(a, b) for a, b in itertools.combinations(issued, 2)) >= 6


def test_concurrent_writers_lose_nothing(tmp_path):
    path = tmp_path / "shared.db"  # not created yet: the writers race to create it too
    check_concurrent_writers_lose_nothing(str(path), tmp_path)
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


POSTGRES_URL = os.environ.get("GANPRINT_TEST_POSTGRES_URL")  # e.g. postgresql+psycopg://user@host:port/db


@pytest.mark.skipif(not POSTGRES_URL, reason="set GANPRINT_TEST_POSTGRES_URL to an empty scratch database")
def test_postgresql_registry(tmp_path):
    """The same registry on PostgreSQL: its tables are dropped first, so give a scratch database."""
    from sqlalchemy import create_engine, text

    engine = create_engine(POSTGRES_URL)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS fingerprints, ganprint_registry CASCADE"))
    engine.dispose()
    check_concurrent_writers_lose_nothing(POSTGRES_URL, tmp_path)
    with Registry(POSTGRES_URL) as reg:
        before = reg.count()
        with pytest.raises(GanprintError, match="already registered|duplicate|rejected"):
            reg.add("w0-0", "1" * 64)  # a name taken above
        assert reg.count() == before
        with pytest.raises(GanprintError, match="no 6-bit fingerprint at distance >= 6"):
            reg.issue(["pg-a", "pg-b", "pg-c"], 6, min_distance=6, seed=0)
        assert reg.count() == before  # all or nothing


def test_locked_database_gives_a_clear_error_and_readers_still_read(tmp_path):
    path = tmp_path / "r.db"
    with Registry(path, create=True) as reg:
        reg.add("m1", "0101")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process in the middle of a long write
    try:
        with Registry(path, timeout=0.2) as reg:
            assert [e.model for e in reg.entries()] == ["m1"]  # WAL: reading does not wait
            with pytest.raises(GanprintError, match=r"r.db: the registry is locked by another process \(waited 0.2 s\)"):
                reg.add("m2", "0110")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    with Registry(path, timeout=0.2) as reg:
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
def test_cli_round_trip(run_cli, tmp_path):
    db = tmp_path / "fp.db"
    code, out, err = run_cli("registry", "issue", "--registry", db, "--model", "acme", "--length", 100,
                         "--owner", "ACME", "--seed", 1, "--json")  # fmt: skip
    assert code == 0, err
    issued = json.loads(out)
    assert issued["model"] == "acme" and len(issued["fingerprint"]) == 25 and issued["owner"] == "ACME"
    code, out, err = run_cli("registry", "add", "--registry", db, "--model", "mine", "--fingerprint",
                         "1" * 100, "--method", "scalable")  # fmt: skip
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
    code, out, err = run_cli("registry", "add", "--registry", db, "--model", "mine", "--fingerprint", "0" * 100)
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
