"""`ganprint serve`: the HTTP API (FastAPI's TestClient, and a real uvicorn process for SIGTERM).

Images: 32x32 crops of the shipped photos, fingerprinted with the shipped codec-32 and a registered
fingerprint; clean ones are the photos themselves."""

import asyncio
import io
import json
import logging
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib

import pytest
import torch
from PIL import Image

pytest.importorskip("fastapi", reason="ganprint serve needs the serve extra: pip install -e '.[test]'")
pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx: pip install -e '.[test]'")

from fastapi.testclient import TestClient  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

import ganprint  # noqa: E402
from ganprint.data import open_source  # noqa: E402
from ganprint.registry import Registry  # noqa: E402
from ganprint.serve import Limits, Settings, create_app  # noqa: E402

TOKEN = "test-token-0123456789abcdef"
LIMITS = Limits(max_upload_bytes=1_000_000, max_images=4, max_pixels=1_000_000, request_timeout=60)


def png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height but holds (almost) no data: what a bomb's header says."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def deflate_bomb(side: int) -> bytes:
    """A real PNG of side x side black pixels: a few kB that decode to side^2 bytes."""
    return png(Image.new("L", (side, side)))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A registry with two issued fingerprints, fingerprinted and clean images, a token file."""
    root = tmp_path_factory.mktemp("serve")
    db = root / "fp.db"
    with Registry(db, create=True) as reg:
        reg.issue("acme-gan", 100, seed=1)
        reg.issue("other-gan", 100, seed=2)
        entry = reg.get("acme-gan")
    codec = ganprint.load_codec("codec-32")
    samples = open_source("samples")
    marked = [codec.embed(samples.image(i), entry.bit_string) for i in range(3)]
    (root / "tokens.txt").write_text(f"# API tokens\n{TOKEN}\n")
    images = {
        "marked": [png(m) for m in marked],
        "clean": [png(samples.image(i)) for i in range(10, 13)],
        "flat": png(Image.new("RGB", (32, 32), (128, 128, 128))),
    }
    for name, data in [("marked.png", images["marked"][0]), ("clean.png", images["clean"][0])]:
        (root / name).write_bytes(data)
    return {"root": root, "db": str(db), "entry": entry, "images": images, "tokens": str(root / "tokens.txt")}


def make_client(world, **changes) -> TestClient:
    settings = Settings(registry=world["db"], models=["codec-32"], limits=LIMITS, **changes)
    return TestClient(create_app(settings), raise_server_exceptions=False)


@pytest.fixture(scope="module")
def client(world):
    with make_client(world, token_file=world["tokens"]) as c:
        yield c


def upload(*items: tuple[str, bytes], field: str = "images") -> list:
    return [(field, (name, data, "image/png")) for name, data in items]


def error_of(response, status: int, kind: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["kind"] == kind and isinstance(body["error"], str) and body["error"]
    assert "\n" not in body["error"]  # one sentence, no traceback
    return body


# ----------------------------------------------------------------------------------- verdicts
def test_attribute_gives_the_verdicts_and_fields_of_the_cli(client, world, run_cli):
    images = world["images"]
    r = client.post("/v1/attribute", files=upload(("m0.png", images["marked"][0]), ("m1.png", images["marked"][1]),
                                                  ("c0.png", images["clean"][0]), ("c1.png", images["clean"][1])))  # fmt: skip
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "codec-32" and body["registry_size"] == 2
    verdicts = {x["name"]: (x["verdict"], x["model"]) for x in body["results"]}
    assert verdicts == {"m0.png": ("attributed", "acme-gan"), "m1.png": ("attributed", "acme-gan"),
                        "c0.png": ("not-fingerprinted", None), "c1.png": ("not-fingerprinted", None)}  # fmt: skip
    # the same files through `ganprint attribute --jsonl`: the same records, field for field
    code, out, _ = run_cli("attribute", "--registry", world["db"], "--model", "codec-32", "--jsonl", "-q",
                           world["root"] / "marked.png", world["root"] / "clean.png")  # fmt: skip
    assert code == 0
    cli = {os.path.basename(rec["name"]): rec for rec in map(json.loads, out.splitlines())}
    served = {x["name"]: x for x in body["results"]}
    for cli_name, served_name in [("marked.png", "m0.png"), ("clean.png", "c0.png")]:
        a, b = cli[cli_name], served[served_name]
        assert a.keys() == b.keys()
        for key in a.keys() - {"name", "reason"}:
            assert a[key] == pytest.approx(b[key]) if isinstance(a[key], float) else a[key] == b[key], key


def test_detect_against_an_expected_fingerprint(client, world):
    images, entry = world["images"], world["entry"]
    r = client.post("/v1/detect", files=upload(("m.png", images["marked"][2]), ("c.png", images["clean"][2])),
                    data={"expected": entry.fingerprint})  # fmt: skip
    assert r.status_code == 200, r.text
    marked, clean = r.json()["results"]
    assert marked["detected"] is True and marked["matches"] >= 90 and marked["neg_log10_p"] > 6
    assert clean["detected"] is False and clean["neg_log10_p"] < 6
    assert marked["verdict"] != clean["verdict"]
    # no expected fingerprint: the registry's fingerprints are the candidates
    r = client.post("/v1/detect", files=upload(("m.png", images["marked"][2])))
    assert r.json()["results"][0]["model"] == "acme-gan"
    body = error_of(client.post("/v1/detect", files=upload(("m.png", images["marked"][2])),
                                data={"expected": "0101"}), 422, "bad_field")  # fmt: skip
    assert body["field"] == "expected" and "100" in body["error"]


def test_a_flat_image_gets_the_librarys_verdict_as_given(client, world):
    from ganprint.attribution import VERDICTS

    r = client.post("/v1/attribute", files=upload(("flat.png", world["images"]["flat"])))
    assert r.status_code == 200, r.text
    result = r.json()["results"][0]
    assert result["verdict"] in VERDICTS and result["verdict"] != "attributed"
    if "not-enough-signal" in VERDICTS:  # the texture check of ganprint.texture
        assert result["verdict"] == "not-enough-signal"


def test_concurrent_requests_share_decoder_calls_and_get_their_own_rows(world):
    from ganprint.decoders import load_decoder
    from ganprint.serve.batching import Batcher, decode_images

    decoder = load_decoder("codec-32", "codec", "cpu")
    pictures = [Image.open(io.BytesIO(d)).convert("RGB") for d in world["images"]["marked"] + world["images"]["clean"]]
    alone = [decode_images(decoder, [p])[0] for p in pictures]

    async def run(max_batch):
        sizes = []
        batcher = Batcher(decoder, max_batch, on_batch=sizes.append)
        batcher.start()
        try:
            results = await asyncio.gather(*(batcher.decode([p]) for p in pictures))
        finally:
            await batcher.stop()
        return sizes, results

    for max_batch, expected_sizes in [(32, [6]), (4, [4, 2]), (1, [1] * 6)]:
        sizes, results = asyncio.run(run(max_batch))
        assert sizes == expected_sizes
        for (logits, seen), single in zip(results, alone):
            assert seen.shape == (1, 3, 32, 32)
            torch.testing.assert_close(logits, single, rtol=1e-4, atol=1e-4)


@pytest.mark.skipif("codec-any" not in __import__("ganprint.pretrained").pretrained.shipped_models(),
                    reason="the any-size codec is not shipped in this checkout")  # fmt: skip
def test_an_image_the_decoder_refuses_fails_only_its_own_request(world):
    from ganprint.decoders import load_decoder
    from ganprint.errors import BadImageError
    from ganprint.serve.batching import Batcher

    decoder = load_decoder("codec-any", "codec", "cpu")  # refuses images below its minimum side
    good = Image.open(io.BytesIO(world["images"]["clean"][0])).convert("RGB")
    tiny = Image.new("RGB", (4, 4), (200, 10, 10))

    async def run():
        sizes = []
        batcher = Batcher(decoder, 32, on_batch=sizes.append)
        batcher.start()
        try:
            return sizes, await asyncio.gather(batcher.decode([good], ["good.png"]), batcher.decode([tiny], ["tiny.png"]),
                                               batcher.decode([good], ["good2.png"]), return_exceptions=True)  # fmt: skip
        finally:
            await batcher.stop()

    sizes, (first, refused, third) = asyncio.run(run())
    assert isinstance(refused, BadImageError) and "tiny.png" in str(refused) and "too small" in str(refused)
    assert first[0].shape == third[0].shape == (1, decoder.fingerprint_length)
    torch.testing.assert_close(first[0], third[0])
    assert sizes == [1, 1]  # the shared call failed; the two good requests were then decoded alone


# -------------------------------------------------------------------------------------- limits
def test_every_broken_limit_is_a_4xx_naming_it(client, world):
    marked = world["images"]["marked"][0]
    noise = os.urandom(1_200_000)
    cases = [
        (upload(("big.png", noise)), 413, "max_upload_bytes"),
        (upload(("bomb.png", png_header_only(30_000, 30_000))), 422, "max_pixels"),
        (upload(("bomb.png", deflate_bomb(2000))), 422, "max_pixels"),
        (upload(*[(f"{i}.png", marked) for i in range(5)]), 413, "max_images"),
    ]
    for files, status, limit in cases:
        body = error_of(client.post("/v1/attribute", files=files), status, limit)
        assert body["limit"] == getattr(LIMITS, limit)
    # a body without Content-Length is counted as it streams in
    streamed = client.post("/v1/attribute", content=(noise[i : i + 65536] for i in range(0, len(noise), 65536)),
                           headers={"content-type": "multipart/form-data; boundary=x"})  # fmt: skip
    assert error_of(streamed, 413, "max_upload_bytes")["limit"] == LIMITS.max_upload_bytes


@pytest.mark.parametrize("case", ["non-image", "truncated", "empty", "unknown model", "wrong field", "bad fpr",
                                  "wrong method"])  # fmt: skip
def test_bad_input_is_a_json_error_and_the_server_keeps_serving(client, world, case):
    marked = world["images"]["marked"][0]
    request = {
        "non-image": (upload(("notes.png", b"just some text, not an image\n" * 20)), {}, "bad_image"),
        "truncated": (upload(("cut.png", marked[: len(marked) // 2])), {}, "bad_image"),
        "empty": (upload(("empty.png", b"")), {}, "bad_image"),
        "unknown model": (upload(("m.png", marked)), {"model": "no-such-model"}, "unknown_model"),
        "wrong field": (upload(("m.png", marked), field="file"), {}, "bad_field"),
        "bad fpr": (upload(("m.png", marked)), {"fpr": "2"}, "bad_field"),
        "wrong method": (upload(("m.png", marked)), {"method": "scalable"}, "unknown_model"),
    }[case]
    files, data, kind = request
    body = error_of(client.post("/v1/attribute", files=files, data=data), 422, kind)
    if kind == "bad_image":
        assert body["image"] in body["error"]
    if case == "unknown model":
        assert "no-such-model" in body["error"] and "codec-32" in body["error"]
    ok = client.post("/v1/attribute", files=upload(("m.png", marked)))
    assert ok.status_code == 200 and ok.json()["results"][0]["verdict"] == "attributed"


def test_unknown_routes_are_json_errors(client):
    error_of(client.get("/v1/nothing"), 404, "not_found")
    error_of(client.get("/v1/attribute"), 405, "method_not_allowed")


# ------------------------------------------------------------------------------------ registry
def test_registry_reads_are_open_and_writes_need_the_token(world, caplog):
    caplog.set_level(logging.DEBUG)
    with make_client(world) as no_tokens:  # without --token-file no write is possible
        body = error_of(no_tokens.post("/v1/registry/issue", json={"model": "x"}), 403, "forbidden")
        assert "--token-file" in body["error"]
    with make_client(world, token_file=world["tokens"]) as c:
        listed = c.get("/v1/registry").json()
        assert listed["total"] == 2 and {e["model"] for e in listed["entries"]} == {"acme-gan", "other-gan"}
        assert c.get("/v1/registry/acme-gan").json()["fingerprint"] == world["entry"].fingerprint
        error_of(c.get("/v1/registry/nobody"), 404, "not_found")

        missing = c.post("/v1/registry/issue", json={"model": "new-gan", "length": 100})
        error_of(missing, 401, "unauthorized")
        assert missing.headers["www-authenticate"] == "Bearer"
        wrong = {"Authorization": "Bearer " + TOKEN[::-1]}
        error_of(c.post("/v1/registry/issue", json={"model": "new-gan"}, headers=wrong), 403, "forbidden")
        error_of(c.delete("/v1/registry/acme-gan", headers=wrong), 403, "forbidden")
        assert c.get("/v1/registry").json()["total"] == 2

        auth = {"Authorization": f"Bearer {TOKEN}"}
        issued = c.post("/v1/registry/issue", json={"model": "new-gan", "length": 100, "owner": "t"}, headers=auth)
        assert issued.status_code == 201 and len(issued.json()["fingerprint"]) == 25
        error_of(c.post("/v1/registry/issue", json={"model": "new-gan"}, headers=auth), 409, "conflict")
        value = "".join(str(int(b)) for b in torch.randint(0, 2, (100,), generator=torch.Generator().manual_seed(5)))
        added = c.post("/v1/registry/add", json={"model": "added-gan", "fingerprint": value}, headers=auth)
        assert added.status_code == 201, added.text
        assert "already" in error_of(c.post("/v1/registry/add", json={"model": "other", "fingerprint": value},
                                            headers=auth), 422, "rejected")["error"]  # fmt: skip
        bad = c.post("/v1/registry/add", json={"model": "bad", "fingerprint": "xyz"}, headers=auth)
        error_of(bad, 422, "bad_field")
        r = c.post("/v1/attribute", files=upload(("m.png", world["images"]["marked"][0])))
        assert r.json()["registry_size"] == 4  # the server reads the registry as it is now
        for model in ("new-gan", "added-gan"):
            assert c.delete(f"/v1/registry/{model}", headers=auth).json()["removed"]["model"] == model
        error_of(c.delete("/v1/registry/new-gan", headers=auth), 404, "not_found")
        assert c.get("/v1/registry").json()["total"] == 2
    access = [json.loads(rec.getMessage()) for rec in caplog.records if rec.name == "ganprint.serve.access"]
    assert {"status", "path", "method", "duration_ms", "request_id"} <= access[0].keys()
    assert [a["status"] for a in access if a["path"] == "/v1/registry/issue"] == [403, 401, 403, 201, 409]
    assert TOKEN not in caplog.text and TOKEN[::-1] not in caplog.text


def test_registry_down_is_503_with_a_sentence_and_recovers(world, tmp_path):
    db = tmp_path / "fp.db"
    shutil.copy(world["db"], db)
    marked = world["images"]["marked"][0]
    with make_client({**world, "db": str(db)}) as c:
        assert c.get("/healthz").status_code == 200
        away = tmp_path / "moved-away.db"
        db.rename(away)
        for _ in range(2):  # and again: the reconnection attempt fails the same way
            body = error_of(c.post("/v1/attribute", files=upload(("m.png", marked))), 503, "registry_unavailable")
            assert "registry" in body["error"] and "retry" in body["error"]
            assert c.get("/healthz").status_code == 503
            assert c.get("/v1/registry").status_code == 503
        db.unlink(missing_ok=True)
        away.rename(db)
        r = c.post("/v1/attribute", files=upload(("m.png", marked)))
        assert r.status_code == 200 and r.json()["results"][0]["model"] == "acme-gan"
        assert c.get("/healthz").json()["status"] == "ok"


# ------------------------------------------------------------------------------- observability
def metric_values(text: str) -> dict:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}  # fmt: skip


def test_metrics_count_requests_verdicts_and_errors(world):
    with make_client(world) as c:
        images = world["images"]
        c.post("/v1/attribute", files=upload(("m.png", images["marked"][0]), ("c.png", images["clean"][0])))
        c.post("/v1/attribute", files=upload(("m.png", images["marked"][1])))
        c.post("/v1/attribute", files=upload(("x.png", b"not an image")))
        r = c.get("/metrics")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        values = metric_values(r.text)
    route = ("route", "/v1/attribute")
    assert values[("ganprint_requests_total", (("method", "POST"), route, ("status", "200")))] == 2
    assert values[("ganprint_requests_total", (("method", "POST"), route, ("status", "422")))] == 1
    assert values[("ganprint_request_duration_seconds_count", (route,))] == 3
    assert values[("ganprint_images_total", (("endpoint", "attribute"), ("model", "codec-32")))] == 3
    assert values[("ganprint_verdicts_total", (("endpoint", "attribute"), ("verdict", "attributed")))] == 2
    assert values[("ganprint_verdicts_total", (("endpoint", "attribute"), ("verdict", "not-fingerprinted")))] == 1
    assert values[("ganprint_errors_total", (("kind", "bad_image"),))] == 1


def test_health_models_openapi_and_page(client):
    health = client.get("/healthz").json()
    assert health == {"status": "ok", "models": ["codec-32"], "registered": 2}
    models = client.get("/v1/models").json()
    assert models["default"] == "codec-32" and models["limits"]["max_images"] == LIMITS.max_images
    (codec,) = models["models"]
    assert codec["fingerprint_length"] == 100 and codec["calibration"]["images"] > 0
    spec = client.get("/openapi.json").json()
    assert {"/v1/attribute", "/v1/detect", "/v1/models", "/v1/registry", "/healthz"} <= spec["paths"].keys()
    assert "images" in json.dumps(spec["components"])
    page = client.get("/")
    assert page.status_code == 200 and "<script src=\"/static/app.js\">" in page.text
    assert client.get("/static/app.js").status_code == 200


def test_without_a_model_the_server_loads_the_clis_default_decoder(world):
    from ganprint.decoders import load_decoder

    cli_default = load_decoder(None, "codec", "cpu")  # what `ganprint attribute` reads with when --model is left out
    with TestClient(create_app(Settings(registry=world["db"]))) as c:
        (served,) = c.get("/v1/models").json()["models"]
    assert (served["name"], served["fingerprint_length"]) == (cli_default.name, cli_default.fingerprint_length)


def test_serve_help_and_a_wrong_start_are_cli_errors(run_cli, tmp_path):
    code, out, _ = run_cli("serve", "--help")
    assert code == 0 and "Examples:" in out and "curl" in out
    code, _, err = run_cli("serve", "--registry", tmp_path / "missing.db", "--port", "0")
    assert code == 1 and err.startswith("error:") and "missing.db" in err
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("short\n")
    Registry(tmp_path / "fp.db", create=True).close()
    code, _, err = run_cli("serve", "--registry", tmp_path / "fp.db", "--token-file", tokens, "--port", "0")
    assert code == 1 and "16 characters" in err and "short" not in err


# ---------------------------------------------------------------------------- a real process
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen, seconds: float = 500) -> None:
    """Until /healthz answers (importing torch on a busy shared machine can take minutes)."""
    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited with {process.returncode}: {process.stderr.read()}")
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("the server did not come up")


def test_sigterm_finishes_the_request_in_flight_then_exits_0(world):
    import httpx

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", "from ganprint.cli import main; main()", "serve", "--registry", world["db"],
         "--host", "127.0.0.1", "--port", str(port), "--model", "codec-32"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_up(url, process)
        boundary = "ganprintboundary"
        head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"images\"; filename=\"m.png\"\r\n"
                "Content-Type: image/png\r\n\r\n").encode()  # fmt: skip
        body = head + world["images"]["marked"][0] + f"\r\n--{boundary}--\r\n".encode()
        sent_half = threading.Event()

        def slow_body():  # the request is in flight, half uploaded, when SIGTERM arrives
            yield body[: len(body) // 2]
            sent_half.set()
            time.sleep(1.5)
            yield body[len(body) // 2 :]

        result = {}

        def post():
            result["response"] = httpx.post(url + "/v1/attribute", content=slow_body(), timeout=60,
                                            headers={"content-type": f"multipart/form-data; boundary={boundary}"})  # fmt: skip

        client = threading.Thread(target=post)
        client.start()
        assert sent_half.wait(30)
        time.sleep(0.3)
        process.send_signal(signal.SIGTERM)
        client.join(60)
        response = result["response"]
        assert response.status_code == 200 and response.json()["results"][0]["model"] == "acme-gan"
        assert process.wait(60) == 0
        log_lines = [json.loads(line) for line in process.stderr.read().splitlines() if line.startswith("{")]
        assert {"event": "stopped"} in log_lines
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_scalable_network_is_served_beside_the_codec(world, tmp_path):
    from ganprint.decoders import fingerprinted_images
    from ganprint.data import tensor_to_pil

    db = tmp_path / "fp.db"
    shutil.copy(world["db"], db)
    with Registry(db) as reg:
        (entry,) = reg.issue("scalable-gan", 128, method="scalable", seed=3)
    image = fingerprinted_images("scalable-32", torch.tensor(entry.bits).float(), 1, seed=0)[0]
    settings = Settings(registry=str(db), models=["codec-32"], scalable=["scalable-32"], limits=LIMITS)
    with TestClient(create_app(settings)) as c:
        assert [m["method"] for m in c.get("/v1/models").json()["models"]] == ["codec", "scalable"]
        files = upload(("generated.png", png(tensor_to_pil(image))))
        by_method = c.post("/v1/attribute", files=files, data={"method": "scalable"}).json()
        by_name = c.post("/v1/attribute", files=files, data={"model": "scalable-32"}).json()
        by_default = c.post("/v1/attribute", files=files).json()
    assert by_method["model"] == by_name["model"] == "scalable-32" and by_method["registry_size"] == 1
    assert by_method["results"][0]["verdict"] == "attributed" and by_method["results"][0]["model"] == "scalable-gan"
    assert by_name["results"] == by_method["results"]
    # codec-32 only compares codec fingerprints: the scalable image is nobody's to it
    assert by_default["model"] == "codec-32" and by_default["results"][0]["model"] is None
