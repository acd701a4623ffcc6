"""`ganprint serve` under load and faults, on loopback only, bounded in requests and time.

N concurrent clients (httpx) send a seeded mix of fingerprinted images (codec-32, fingerprints issued
in the server's registry), clean photos and hostile uploads (truncated PNG/JPEG, a file that is no
image, an empty file, a bomb's header, a real deflate bomb, a 50 MB non-image, too many images, a
wrong form field, an unknown model). Printed: throughput, p50/p99 latency, answers per kind, server
errors (5xx), wrong verdicts, hostile uploads not answered with their 4xx, server memory (RSS) after
warm-up and at the end.

Modes:
  load      (default) one server.
  restart   the server is stopped with SIGTERM half-way and started again; before that a new model is
            registered through the API, and its images must be attributed after the restart: the
            registry is the only state. Requests refused while it is down are retried.
  replicas  two servers on two ports share one registry: PostgreSQL (a throwaway cluster made with
            initdb, run as the postgres user when this runs as root) or, without PostgreSQL, one SQLite
            file (said in the output). Probe images get identical answers from both; a model registered
            through one is attributed by the other at once; the load alternates between them.
  batching  a server that batches concurrent requests (--max-batch 32) and one that does not (1),
            measured in interleaved rounds; prints both throughputs and their ratio.

Examples:
  python benchmarks/bench_serve.py                       # 2,000 requests from 16 clients
  python benchmarks/bench_serve.py --mode restart
  python benchmarks/bench_serve.py --mode replicas --requests 1000
  python benchmarks/bench_serve.py --mode batching --rounds 4
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from PIL import Image

TOKEN = "bench-token-" + "0123456789abcdef"
MB = 1024 * 1024


# ---------------------------------------------------------------------------------- the server
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`ganprint serve` in a child process on 127.0.0.1."""

    def __init__(self, registry: str, work: Path, name: str, *extra: str, port: int | None = None):
        self.registry, self.work, self.name, self.extra = registry, work, name, list(extra)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> "Server":
        log = open(self.work / f"{self.name}.log", "a")
        # --model codec-32: the payloads are fingerprinted with codec-32, whatever the default decoder is
        command = [sys.executable, "-c", "from ganprint.cli import main; main()", "serve", "--registry", self.registry,
                   "--host", "127.0.0.1", "--port", str(self.port), "--token-file", str(self.work / "tokens.txt"),
                   "--device", "cpu", "--model", "codec-32", *self.extra]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=log, stderr=log)
        deadline = time.monotonic() + 900  # a busy shared machine can take minutes to import torch
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"{self.name} exited with {self.process.returncode}; see {log.name}")
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise SystemExit(f"{self.name} did not come up in 900 s")

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> int:
        """SIGTERM, then the exit code (0: a clean, graceful stop)."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(180)  # in-flight requests finish first; a loaded machine is slow
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


# ---------------------------------------------------------------------------------- PostgreSQL
class Postgres:
    """A throwaway PostgreSQL cluster on a unix socket in a temporary folder (no TCP at all)."""

    def __init__(self):
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        self.bin = found[-1].parent if found else None
        self.root = Path(tempfile.mkdtemp(prefix="bench-pg-"))
        self.prefix: list[str] = []

    def start(self) -> str | None:
        if self.bin is None:
            return None
        if os.geteuid() == 0:  # initdb refuses root
            shutil.chown(self.root, "postgres", "postgres")
            self.prefix = ["runuser", "-u", "postgres", "--"]
        data, sock = self.root / "data", self.root / "sock"
        self._run("initdb", "-D", str(data), "-U", "bench", "-A", "trust", "--no-sync")
        sock.mkdir()
        if self.prefix:
            shutil.chown(sock, "postgres", "postgres")
        options = f"-c listen_addresses='' -c unix_socket_directories='{sock}' -c fsync=off -c max_connections=60"
        self._run("pg_ctl", "-D", str(data), "-l", str(self.root / "log"), "-w", "-o", options, "start")
        self._run("createdb", "-h", str(sock), "-U", "bench", "fingerprints")
        return f"postgresql+psycopg://bench@/fingerprints?host={sock}"

    def _run(self, program: str, *args: str) -> None:
        subprocess.run(self.prefix + [str(self.bin / program), *args], check=True, capture_output=True, cwd=self.root)

    def stop(self) -> None:
        if (self.root / "data" / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "fast", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


# ------------------------------------------------------------------------------------ payloads
def encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@dataclass
class Request:
    kind: str  # fingerprinted, clean, or the hostile upload's name
    files: list
    data: dict = field(default_factory=dict)
    expect_model: str | None = None  # fingerprinted: the model it must be attributed to
    expect_status: int = 200
    expect_error: str | None = None  # hostile: the JSON 'kind' of the 4xx


def fingerprinted_uploads(codec, entries, samples, start: int) -> list[Request]:
    out = []
    for i, entry in enumerate(entries):
        for j in range(4):
            image = codec.embed(samples.image((start + 4 * i + j) % len(samples)), entry.bit_string)
            out.append(Request("fingerprinted", [("images", (f"{entry.model}-{j}.png", encode(image), "image/png"))],
                               expect_model=entry.model))  # fmt: skip
    return out


def build_payloads(registry: str, models: int) -> tuple[list[Request], list[Request], list[Request]]:
    """(fingerprinted, clean, hostile) requests; fingerprints are issued into `registry`."""
    import ganprint
    from ganprint.data import open_source
    from ganprint.registry import Registry

    codec = ganprint.load_codec("codec-32")
    samples = open_source("samples")
    with Registry(registry, create=True) as reg:
        reg.issue([f"model-{i:02d}" for i in range(models)], 100, seed=7)
        entries = reg.entries()
    fingerprinted = fingerprinted_uploads(codec, entries, samples, 0)
    clean = []
    for i in range(len(samples)):
        fmt = "JPEG" if i % 3 == 0 else "PNG"
        clean.append(Request("clean", [("images", (f"photo-{i}.{fmt.lower()}", encode(samples.image(i), fmt),
                                                   f"image/{fmt.lower()}"))]))  # fmt: skip
    good = fingerprinted[0].files[0][1][1]
    jpeg = encode(samples.image(0), "JPEG")
    deflate_bomb = encode(Image.new("L", (12_000, 12_000)))  # 144 Mpixels in about 140 kB
    hostile = [
        Request("truncated-png", [("images", ("cut.png", good[: len(good) // 2], "image/png"))], expect_status=422,
                expect_error="bad_image"),
        Request("truncated-jpeg", [("images", ("cut.jpg", jpeg[: len(jpeg) // 2], "image/jpeg"))], expect_status=422,
                expect_error="bad_image"),
        Request("not-an-image", [("images", ("notes.png", b"plain text, not an image\n" * 40, "image/png"))],
                expect_status=422, expect_error="bad_image"),
        Request("empty-file", [("images", ("empty.png", b"", "image/png"))], expect_status=422,
                expect_error="bad_image"),
        Request("bomb-header", [("images", ("bomb.png", png_header_only(40_000, 40_000), "image/png"))],
                expect_status=422, expect_error="max_pixels"),
        Request("deflate-bomb", [("images", ("bomb.png", deflate_bomb, "image/png"))], expect_status=422,
                expect_error="max_pixels"),
        Request("50MB-non-image", [("images", ("huge.bin", os.urandom(50 * MB), "application/octet-stream"))],
                expect_status=413, expect_error="max_upload_bytes"),
        Request("too-many-images", [("images", (f"{i}.png", good, "image/png")) for i in range(17)],
                expect_status=413, expect_error="max_images"),
        Request("wrong-field", [("file", ("m.png", good, "image/png"))], expect_status=422, expect_error="bad_field"),
        Request("unknown-model", [("images", ("m.png", good, "image/png"))], {"model": "no-such-model"},
                expect_status=422, expect_error="unknown_model"),
    ]  # fmt: skip
    return fingerprinted, clean, hostile


def schedule(count: int, fingerprinted, clean, hostile, seed: int) -> list[Request]:
    """A seeded mix: 55% fingerprinted, 30% clean, 15% hostile (the 50 MB upload at most 10 times)."""
    rng = random.Random(seed)
    out, huge = [], 0
    for _ in range(count):
        u = rng.random()
        if u < 0.55:
            out.append(rng.choice(fingerprinted))
        elif u < 0.85:
            out.append(rng.choice(clean))
        else:
            pick = rng.choice(hostile)
            while pick.kind == "50MB-non-image" and huge >= 10:
                pick = rng.choice(hostile)
            huge += pick.kind == "50MB-non-image"
            out.append(pick)
    return out


# ---------------------------------------------------------------------------------------- load
@dataclass
class Tally:
    latencies: dict = field(default_factory=dict)  # kind -> [seconds]
    answers: dict = field(default_factory=dict)  # (kind, status, error kind or verdict) -> count
    server_errors: int = 0
    wrong: list = field(default_factory=list)
    transport: dict = field(default_factory=dict)
    retried: int = 0
    images: int = 0

    def add(self, kind: str, key: tuple) -> None:
        self.answers[(kind, *key)] = self.answers.get((kind, *key), 0) + 1


def judge(request: Request, response: httpx.Response, tally: Tally) -> None:
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = {}
    if status >= 500:
        tally.server_errors += 1
    if status == 200:
        results = body["results"]
        tally.images += len(results)
        verdict, model = results[0]["verdict"], results[0]["model"]
        tally.add(request.kind, (status, verdict))
        if request.expect_model is not None and (verdict != "attributed" or model != request.expect_model):
            tally.wrong.append(f"{request.files[0][1][0]}: {verdict} {model}, expected {request.expect_model}")
        if request.kind == "clean" and verdict in ("attributed", "fingerprinted-unknown"):
            tally.wrong.append(f"{request.files[0][1][0]}: clean photo called {verdict} ({model})")
    else:
        tally.add(request.kind, (status, body.get("kind", "?")))
    if request.expect_status != 200 and (status != request.expect_status or body.get("kind") != request.expect_error):
        tally.wrong.append(f"{request.kind}: answered {status} {body.get('kind')}, expected {request.expect_status} "
                           f"{request.expect_error}")  # fmt: skip
    if request.expect_status == 200 and status != 200:
        tally.wrong.append(f"{request.kind}: answered {status} {body.get('error', '')[:120]}")


async def run_load(urls: list[str], requests: list[Request], concurrency: int, max_seconds: float, tally: Tally,
                   at_half=None) -> float:  # fmt: skip
    """Send `requests` from `concurrency` clients (request i to urls[i % len(urls)]); seconds taken."""
    queue = list(range(len(requests)))[::-1]  # indices: at_half may replace later requests
    half = len(requests) // 2
    deadline = time.monotonic() + max_seconds
    limits = httpx.Limits(max_connections=concurrency * len(urls), max_keepalive_connections=concurrency * len(urls))

    async with httpx.AsyncClient(timeout=120, limits=limits) as client:

        async def worker():
            while queue and time.monotonic() < deadline:
                i = queue.pop()
                if i == half and at_half is not None:
                    await at_half()
                request = requests[i]
                url = urls[i % len(urls)] + "/v1/attribute"
                for attempt in range(600):  # retried only while the server is down (restart mode)
                    start = time.perf_counter()
                    try:
                        response = await client.post(url, files=request.files, data=request.data)
                    except httpx.TransportError as e:
                        if at_half is not None and attempt < 599:
                            tally.retried += 1
                            await asyncio.sleep(0.1)
                            continue
                        name = type(e).__name__
                        tally.transport[name] = tally.transport.get(name, 0) + 1
                        break
                    tally.latencies.setdefault(request.kind, []).append(time.perf_counter() - start)
                    judge(request, response, tally)
                    break

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - start


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def report(tally: Tally, seconds: float, sent: int) -> None:
    everything = [x for v in tally.latencies.values() for x in v]
    ok = tally.latencies.get("fingerprinted", []) + tally.latencies.get("clean", [])
    print(f"requests answered:  {len(everything)} of {sent} in {seconds:.1f} s: {len(everything) / seconds:.1f} req/s; "
          f"{tally.images / seconds:.1f} images/s verdicts")  # fmt: skip
    print(f"latency, images:    p50 {1000 * percentile(ok, 0.5):.0f} ms, p99 {1000 * percentile(ok, 0.99):.0f} ms")
    print(f"latency, all:       p50 {1000 * percentile(everything, 0.5):.0f} ms, "
          f"p99 {1000 * percentile(everything, 0.99):.0f} ms")  # fmt: skip
    print("answers by kind:")
    for key in sorted(tally.answers, key=str):
        kind, status, what = key
        lat = tally.latencies.get(kind, [])
        print(f"  {kind:<16} {status} {what:<20} {tally.answers[key]:>6}   (p50 {1000 * percentile(lat, 0.5):.0f} ms)")
    print(f"server errors (5xx): {tally.server_errors}")
    print(f"wrong answers:       {len(tally.wrong)}" + "".join(f"\n  {w}" for w in tally.wrong[:10]))
    retried = f"; retried while down: {tally.retried}" if tally.retried else ""
    print(f"transport errors:    {tally.transport or 0}{retried}")


def batching_line(servers: list[Server]) -> str:
    """Decoder calls and images per call, from each server's /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    parts = []
    for s in servers:
        values = {}
        for family in text_string_to_metric_families(httpx.get(s.url + "/metrics", timeout=10).text):
            for sample in family.samples:
                if sample.name.startswith("ganprint_decoder_batch_images_"):
                    values[sample.name.rsplit("_", 1)[1]] = values.get(sample.name.rsplit("_", 1)[1], 0) + sample.value
        calls, images = values.get("count", 0), values.get("sum", 0)
        parts.append(f"{s.name} {int(calls)} decoder calls, {images / max(calls, 1):.2f} images per call")
    return "batching: " + ", ".join(parts)


def rss_line(servers: list[Server], label: str) -> str:
    return f"server RSS {label}: " + ", ".join(f"{s.name} {s.rss_mb():.0f} MB" for s in servers)


class RssSampler:
    """The servers' largest RSS, sampled every 0.5 s while the block runs."""

    def __init__(self, servers: list[Server]):
        import threading

        self.servers, self.samples, self._stop = servers, {s.name: [] for s in servers}, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.5):
            for s in self.servers:
                self.samples[s.name].append(s.rss_mb())

    def describe(self) -> str:
        """Peak, and the RSS at the end of each quarter of the run: growth shows as a rising row."""
        parts = []
        for name, values in self.samples.items():
            quarters = [values[min(len(values) - 1, (k * len(values)) // 4)] for k in (1, 2, 3, 4)] if values else []
            parts.append(f"{name} {max(values, default=float('nan')):.0f} MB; by quarter "
                         + " / ".join(f"{v:.0f}" for v in quarters))  # fmt: skip
        return ", ".join(parts)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


async def warm_up(urls, fingerprinted, clean, concurrency: int, hostile=()) -> None:
    """Every kind of request a few times, so that 'after warm-up' memory is the steady state's."""
    tally = Tally()
    plan = (fingerprinted + clean)[: 8 * concurrency] + [h for h in hostile for _ in range(3)]
    await run_load(urls, plan, concurrency, 300, tally)
    if tally.wrong or tally.server_errors:
        raise SystemExit(f"warm-up failed: {tally.wrong[:3]}")


# ---------------------------------------------------------------------------------------- modes
def mode_load(args, work: Path) -> None:
    registry = str(work / "fp.db")
    fingerprinted, clean, hostile = build_payloads(registry, args.models)
    server = Server(registry, work, "server").start()
    try:
        asyncio.run(warm_up([server.url], fingerprinted, clean, args.concurrency, hostile))
        before = rss_line([server], "after warm-up")
        plan = schedule(args.requests, fingerprinted, clean, hostile, args.seed)
        tally = Tally()
        with RssSampler([server]) as peak:
            seconds = asyncio.run(run_load([server.url], plan, args.concurrency, args.max_seconds, tally))
        report(tally, seconds, len(plan))
        print(batching_line([server]))
        print(before)
        print(rss_line([server], "at the end") + f" (during the run: peak {peak.describe()})")
    finally:
        print(f"server stopped with SIGTERM: exit code {server.stop()}")


def mode_restart(args, work: Path) -> None:
    import ganprint
    from ganprint.data import open_source
    from ganprint.registry import Entry

    registry = str(work / "fp.db")
    fingerprinted, clean, hostile = build_payloads(registry, args.models)
    server = Server(registry, work, "server").start()
    plan = schedule(args.requests, fingerprinted, clean, hostile, args.seed)
    events = []

    async def at_half():
        # a model registered through the API just before the restart: its images come after it
        async with httpx.AsyncClient(timeout=60) as client:
            r = await client.post(server.url + "/v1/registry/issue", json={"model": "late-model", "length": 100},
                                  headers={"Authorization": f"Bearer {TOKEN}"})  # fmt: skip
        r.raise_for_status()
        entry = Entry(**{k: v for k, v in r.json().items() if k in Entry.__dataclass_fields__})
        late = fingerprinted_uploads(ganprint.load_codec("codec-32"), [entry], open_source("samples"), 40)
        for k in range(len(plan) // 2 + 1, len(plan), 7):  # every 7th later request: the new model's images
            plan[k] = late[k % len(late)]
        started = time.perf_counter()
        code = await asyncio.to_thread(server.stop)
        await asyncio.to_thread(server.start)
        events.append(f"restart: the server stopped with exit code {code} (SIGTERM, in-flight requests finished) and "
                      f"was serving again after {time.perf_counter() - started:.1f} s")  # fmt: skip

    try:
        asyncio.run(warm_up([server.url], fingerprinted, clean, args.concurrency))
        tally = Tally()
        seconds = asyncio.run(run_load([server.url], plan, args.concurrency, args.max_seconds, tally, at_half))
        report(tally, seconds, len(plan))
        print("\n".join(events))
        late = sum(1 for r in plan if r.expect_model == "late-model")
        print(f"after the restart: {late} requests with images of the model registered just before it, each checked "
              "to be attributed to it (a miss would be among the wrong answers above)")
    finally:
        print(f"server stopped with SIGTERM: exit code {server.stop()}")


def mode_replicas(args, work: Path) -> None:
    import ganprint
    from ganprint.data import open_source
    from ganprint.registry import Entry

    postgres = Postgres()
    try:
        url = postgres.start() if not args.sqlite else None
    except (subprocess.CalledProcessError, OSError) as e:
        print(f"PostgreSQL could not be started ({e}); using one SQLite file instead")
        url = None
    registry = url or str(work / "fp.db")
    print(f"registry: {'PostgreSQL (throwaway cluster, unix socket)' if url else 'one shared SQLite file'}")
    servers = []
    try:
        fingerprinted, clean, hostile = build_payloads(registry, args.models)
        for k in "ab":
            servers.append(Server(registry, work, f"replica-{k}"))
            servers[-1].start()
        probes = fingerprinted[:: max(1, len(fingerprinted) // 8)] + clean[::8]

        async def compare() -> tuple[int, int]:
            same = 0
            async with httpx.AsyncClient(timeout=60) as client:
                for p in probes:
                    answers = [(await client.post(s.url + "/v1/attribute", files=p.files)).json() for s in servers]
                    same += answers[0] == answers[1]
                r = await client.post(servers[0].url + "/v1/registry/issue", json={"model": "via-a", "length": 100},
                                      headers={"Authorization": f"Bearer {TOKEN}"})  # fmt: skip
                r.raise_for_status()
                entry = Entry(**{k: v for k, v in r.json().items() if k in Entry.__dataclass_fields__})
                image = fingerprinted_uploads(ganprint.load_codec("codec-32"), [entry], open_source("samples"), 50)[0]
                seen = (await client.post(servers[1].url + "/v1/attribute", files=image.files)).json()
            return same, seen["results"][0]["model"]

        same, seen = asyncio.run(compare())
        print(f"identical answers from both replicas: {same} of {len(probes)} probe images")
        print(f"an image of a model registered through replica a, attributed by replica b to: {seen}")
        asyncio.run(warm_up([s.url for s in servers], fingerprinted, clean, args.concurrency, hostile))
        before = rss_line(servers, "after warm-up")
        plan = schedule(args.requests, fingerprinted, clean, hostile, args.seed)
        tally = Tally()
        with RssSampler(servers) as peak:
            seconds = asyncio.run(run_load([s.url for s in servers], plan, args.concurrency, args.max_seconds, tally))
        report(tally, seconds, len(plan))
        print(batching_line(servers))
        print(before)
        print(rss_line(servers, "at the end") + f" (during the run: peak {peak.describe()})")
    finally:
        codes = [s.stop() for s in servers]
        print(f"replicas stopped with SIGTERM: exit codes {codes}")
        postgres.stop()


def mode_batching(args, work: Path) -> None:
    registry = str(work / "fp.db")
    fingerprinted, clean, _ = build_payloads(registry, args.models)
    servers = {"batched (--max-batch 32)": Server(registry, work, "batched", "--max-batch", "32"),
               "one by one (--max-batch 1)": Server(registry, work, "unbatched", "--max-batch", "1")}  # fmt: skip
    try:
        for s in servers.values():
            s.start()
        for s in servers.values():
            asyncio.run(warm_up([s.url], fingerprinted, clean, args.concurrency))
        rng = random.Random(args.seed)
        totals = {name: [0, 0.0] for name in servers}
        for r in range(args.rounds):
            for name, server in (servers.items() if r % 2 == 0 else reversed(servers.items())):  # interleaved
                plan = [rng.choice(fingerprinted + clean) for _ in range(args.requests // (2 * args.rounds))]
                tally = Tally()
                seconds = asyncio.run(run_load([server.url], plan, args.concurrency, args.max_seconds, tally))
                if tally.wrong or tally.server_errors:
                    raise SystemExit(f"{name}: {tally.wrong[:3]}")
                totals[name][0] += tally.images
                totals[name][1] += seconds
        rates = {name: n / s for name, (n, s) in totals.items()}
        for name, rate in rates.items():
            print(f"{name:<28} {rate:7.1f} images/s")
        a, b = rates.values()
        print(f"batching / one by one: {a / b:.2f}x at concurrency {args.concurrency}, "
              f"{args.rounds} interleaved rounds")
    finally:
        for s in servers.values():
            s.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=["load", "restart", "replicas", "batching"], default="load")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--max-seconds", type=float, default=900, help="stop sending after this long")
    parser.add_argument("--models", type=int, default=8, help="fingerprints issued into the registry")
    parser.add_argument("--rounds", type=int, default=4, help="batching mode: interleaved rounds per server")
    parser.add_argument("--sqlite", action="store_true", help="replicas mode: share an SQLite file, not PostgreSQL")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    (work / "tokens.txt").write_text(TOKEN + "\n")
    print(f"bench_serve --mode {args.mode}: {args.requests} requests, concurrency {args.concurrency}, "
          f"{os.cpu_count()} CPUs; server logs in {work}")  # fmt: skip
    try:
        {"load": mode_load, "restart": mode_restart, "replicas": mode_replicas, "batching": mode_batching}[args.mode](
            args, work)
    finally:
        for log in work.glob("*.log"):
            shutil.copy(log, Path(tempfile.gettempdir()) / f"bench-serve-{log.name}")
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
