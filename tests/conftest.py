import itertools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

# Tests run on the CPU with few threads so that they behave the same on every machine.
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture
def tiny_config():
    from ganprint.codec import CodecConfig

    return CodecConfig(resolution=32, fingerprint_length=16, channels=8, message_channels=2)


@pytest.fixture
def tiny_codec(tiny_config):
    from ganprint.codec import FingerprintCodec

    torch.manual_seed(0)
    return FingerprintCodec(tiny_config).eval()


@pytest.fixture
def run_cli(capsys):
    """Runs `ganprint ARGS...` in this process: returns (exit code, stdout, stderr)."""
    from ganprint.cli import main

    def run(*args) -> tuple[int, str, str]:
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture(scope="session")
def photo_crops(tmp_path_factory):
    """make(count): a new folder of `count` 32x32 PNGs, random crops of the built-in photos (the same
    images for the same count, and the first n of a larger count are those of count n)."""
    from ganprint.data import open_source

    def make(count: int):
        root = tmp_path_factory.mktemp("photos")
        samples = open_source("samples")
        rng = np.random.default_rng(0)
        for i in range(count):
            x, y = rng.integers(0, 33, size=2)
            samples.image(i % len(samples)).crop((x, y, x + 32, y + 32)).save(root / f"{i:03d}.png")
        return root

    return make


# ------------------------------------------------------------------------------- PostgreSQL
def _postgres_programs() -> Path | None:
    """The folder holding PostgreSQL's initdb and pg_ctl: on PATH, or Debian's versioned layout."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).parent
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)  # fmt: skip
    return found[-1].parent if found else None


class PostgresServer:
    """A throwaway PostgreSQL server in a temporary folder, listening only on a unix socket there
    (no TCP port to collide with), fsync off: a test database, not a durable one."""

    superuser = "ganprint"

    def __init__(self, programs: Path):
        self.programs = programs
        self.root = Path(tempfile.mkdtemp(prefix="ganprint-pg-"))  # short: socket paths are limited
        self.data, self.socket_dir, self.log = self.root / "data", self.root / "sock", self.root / "server.log"
        self._as_owner: list[str] = []
        if os.geteuid() == 0:  # initdb refuses to run as root: the server runs as the postgres user
            import pwd

            owner = pwd.getpwnam("postgres")
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            self._as_owner = ["runuser", "-u", "postgres", "--"]
        self._databases = itertools.count()

    def _run(self, *args: str) -> None:
        done = subprocess.run(self._as_owner + [str(self.programs / args[0]), *args[1:]], cwd=self.root,
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stderr.strip()}\n{log}")

    def start(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", self.superuser, "-A", "trust", "-E", "UTF8", "--no-sync")
        self.socket_dir.mkdir()
        if self._as_owner:
            shutil.chown(self.socket_dir, "postgres", "postgres")
        settings = (f"-c listen_addresses='' -c unix_socket_directories='{self.socket_dir}' -c fsync=off "
                    "-c synchronous_commit=off -c full_page_writes=off -c max_connections=50")  # fmt: skip
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "-o", settings, "start")

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str, user: str = superuser) -> str:
        """SQLAlchemy URL of a database, through the unix socket."""
        return f"postgresql+psycopg://{user}@/{database}?host={self.socket_dir}"

    def execute(self, *statements: str, database: str = "postgres") -> None:
        import psycopg

        with psycopg.connect(host=str(self.socket_dir), dbname=database, user=self.superuser, autocommit=True) as c:
            for statement in statements:
                c.execute(statement)

    def create_database(self) -> str:
        name = f"test_{next(self._databases)}"
        self.execute(f'CREATE DATABASE "{name}"')
        return name


@pytest.fixture(scope="session")
def postgres_server():
    """A PostgreSQL server for the whole test session, stopped and deleted at the end (also when tests
    fail). Skipped where PostgreSQL or psycopg is not installed, unless GANPRINT_TEST_REQUIRE_POSTGRES=1
    (CI sets it: there a missing server is a failure, not a skip)."""
    required = os.environ.get("GANPRINT_TEST_REQUIRE_POSTGRES") == "1"
    programs = _postgres_programs()
    missing = None
    if programs is None:
        missing = "PostgreSQL's initdb and pg_ctl not found (install the postgresql package)"
    else:
        try:
            import psycopg  # noqa: F401
        except ImportError:
            missing = "psycopg is not installed (pip install -e '.[test]')"
    if missing:
        if required:
            pytest.fail(f"GANPRINT_TEST_REQUIRE_POSTGRES=1 but {missing}")
        pytest.skip(missing)
    server = PostgresServer(programs)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server):
    """SQLAlchemy URL of a new, empty database on the session's server; dropped after the test."""
    name = postgres_server.create_database()
    yield postgres_server.url(name)
    postgres_server.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def registry_location(request, tmp_path):
    """Where a new registry goes (not created yet), once per backend: an SQLite file, and an empty
    database on a throwaway PostgreSQL server."""
    if request.param == "sqlite":
        return str(tmp_path / "registry.db")
    return request.getfixturevalue("postgres_url")
