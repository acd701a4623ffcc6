"""The HTTP application (FastAPI): routes, errors as JSON sentences, access log, metrics.

`create_app(settings)` loads the decoders and opens the registry (a wrong model or registry fails
here, before the server listens). Routes:

    GET  /                      the web page (serve/static/)
    POST /v1/attribute          images -> verdict per image against the registry (attribute --jsonl fields)
    POST /v1/detect             images (+ expected fingerprint) -> bits, p-value, verdict per image
    GET  /v1/models             decoders, their calibration, the limits
    GET  /v1/registry[/{model}] registered fingerprints
    POST /v1/registry/issue|add, DELETE /v1/registry/{model}   with `Authorization: Bearer <token>`
    GET  /healthz, /metrics, /openapi.json, /docs
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..attribution import summarize
from ..detection import DEFAULT_FALSE_POSITIVE_RATE
from ..errors import BadImageError, GanprintError
from ..registry import DEFAULT_TIMEOUT
from ..texture import is_palette_image
from .batching import Batcher
from .limits import BodySizeLimit, Limits, RequestTimeout, ServeError, check_image_count, read_upload
from .metrics import CONTENT_TYPE_LATEST, Metrics
from .service import (
    RegistryAccess,
    ServedModel,
    check_fpr,
    choose_model,
    detection_records,
    load_model,
    parse_expected,
)

access_log = logging.getLogger("ganprint.serve.access")
log = logging.getLogger("ganprint.serve")
STATIC_DIR = Path(__file__).parent / "static"
SETTINGS_ENV = "GANPRINT_SERVE_SETTINGS"  # the settings as JSON, for worker processes


@dataclass
class Settings:
    """Everything a server process needs; JSON-serialisable so worker processes get the same."""

    registry: str
    models: list[str] = field(default_factory=list)  # codecs; none (and no scalable): the CLI's default codec
    scalable: list[str] = field(default_factory=list)  # scalable-fingerprinting networks
    device: str = "cpu"
    token_file: str | None = None
    limits: Limits = field(default_factory=Limits)
    max_batch: int = 32
    false_positive_rate: float = DEFAULT_FALSE_POSITIVE_RATE
    registry_timeout: float = DEFAULT_TIMEOUT

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "Settings":
        raw = json.loads(text)
        return cls(**{**raw, "limits": Limits(**raw["limits"])})


def read_tokens(path: str | os.PathLike) -> list[str]:
    """API tokens, one per line ('#' comments and blank lines skipped); at least 16 characters each."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise GanprintError(f"{path}: cannot read the token file ({e.__class__.__name__})") from None
    tokens = []
    for number, line in enumerate(lines, 1):
        token = line.strip()
        if not token or token.startswith("#"):
            continue
        if len(token) < 16 or any(c.isspace() for c in token):
            raise GanprintError(f"{path}:{number}: a token needs at least 16 characters and no spaces "
                                "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')")  # fmt: skip
        tokens.append(token)
    if not tokens:
        raise GanprintError(f"{path}: no tokens in the token file")
    return tokens


def _route_label(path: str) -> str:
    """A bounded set of metric labels: the route template, never a raw model name or a stray URL."""
    if path.startswith("/v1/registry/") and path not in ("/v1/registry/issue", "/v1/registry/add"):
        return "/v1/registry/{model}"
    if path in _ROUTES or path.startswith("/static/"):
        return "/static" if path.startswith("/static/") else path
    return "other"


_ROUTES = {"/", "/healthz", "/metrics", "/openapi.json", "/docs", "/v1/models", "/v1/detect", "/v1/attribute",
           "/v1/registry", "/v1/registry/issue", "/v1/registry/add"}  # fmt: skip


class AccessLog:
    """One JSON line per request (never headers, so never a token) and the request metrics."""

    def __init__(self, app, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), 500
        request_id = uuid.uuid4().hex[:16]
        state = scope.setdefault("state", {})
        state["request_id"] = request_id

        async def send_with_id(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - start
            route = _route_label(scope["path"])
            self.metrics.requests.labels(route, scope["method"], str(status)).inc()
            self.metrics.latency.labels(route).observe(elapsed)
            kind = state.get("error_kind") or ("internal" if status >= 500 else None)
            if kind:
                self.metrics.errors.labels(kind).inc()
            record = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "request_id": request_id,
                      "client": (scope.get("client") or ["-"])[0], "method": scope["method"], "path": scope["path"],
                      "status": status, "duration_ms": round(elapsed * 1000, 1)}  # fmt: skip
            for key in ("error_kind", "images", "model", "verdicts"):
                if state.get(key) is not None:
                    record[key] = state[key]
            access_log.info(json.dumps(record))


# ------------------------------------------------------------------------------------- bodies
class IssueRequest(BaseModel):
    model: str = Field(description="Name of the model the new fingerprint identifies (unique).")
    length: int = Field(100, ge=1, le=4096, description="Bits (the decoder's fingerprint length).")
    method: str = "codec"
    owner: str = ""
    notes: str = ""
    min_distance: int | None = Field(None, ge=0)


class AddRequest(BaseModel):
    model: str
    fingerprint: str = Field(description="0/1 characters or hexadecimal.")
    length: int | None = Field(None, ge=1, le=4096)
    method: str = "codec"
    owner: str = ""
    notes: str = ""


ImagesField = Annotated[list[UploadFile], File(description="One or more image files (PNG, JPEG, WebP, ...).")]
ModelField = Annotated[str | None, Form(description="A model of GET /v1/models [default: the first].")]
MethodField = Annotated[str | None, Form(description="codec or scalable: the first model of that method.")]
FprField = Annotated[float | None, Form(description="False-positive rate [default: the server's --fpr].")]
ExpectedField = Annotated[str | None, Form(description="The fingerprint to test for: 0/1 characters or hex.")]


def create_app(settings: Settings) -> FastAPI:
    """The application: decoders loaded and registry opened now (GanprintError if either is wrong)."""
    limits = settings.limits
    tokens = read_tokens(settings.token_file) if settings.token_file else []
    registry = RegistryAccess(settings.registry, settings.registry_timeout)
    # no model at all: the codec `ganprint attribute` uses without --model (load_decoder(None) decides)
    codecs = settings.models if settings.models or settings.scalable else [None]
    served = [load_model(m, "codec", settings.device) for m in codecs]
    served += [load_model(m, "scalable", settings.device) for m in settings.scalable]
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        for m in served:
            m.batcher = Batcher(m.decoder, settings.max_batch,
                                on_batch=lambda n, name=m.name: metrics.batch_size.labels(name).observe(n))  # fmt: skip
            m.batcher.start()
        log.info(json.dumps({"event": "ready", "models": [m.name for m in served], "registry": registry.where}))
        yield
        for m in served:
            await m.batcher.stop()
        registry.close()
        log.info(json.dumps({"event": "stopped"}))

    app = FastAPI(
        title="ganprint",
        summary="Detect and attribute fingerprinted images of generative models.",
        description="Each image gets a verdict with its evidence, the fields of `ganprint attribute --jsonl`. "
        "Errors are JSON: `{\"error\": sentence, \"kind\": ...}`, plus `limit` when a limit was broken.",
        version=_version(),
        lifespan=lifespan,
    )
    app.state.settings, app.state.metrics, app.state.registry, app.state.models = settings, metrics, registry, served
    app.add_middleware(BodySizeLimit, limits=limits)
    app.add_middleware(RequestTimeout, limits=limits)
    app.add_middleware(AccessLog, metrics=metrics)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    # ------------------------------------------------------------------------------ errors
    def error_response(request: Request, error: ServeError) -> JSONResponse:
        request.state.error_kind = error.kind
        headers = {"Retry-After": str(error.extra["retry_after"])} if "retry_after" in error.extra else {}
        if error.status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        return JSONResponse(error.body(), status_code=error.status, headers=headers)

    @app.exception_handler(ServeError)
    async def on_serve_error(request: Request, error: ServeError):
        return error_response(request, error)

    @app.exception_handler(GanprintError)
    async def on_library_error(request: Request, error: GanprintError):
        if isinstance(error, BadImageError):
            return error_response(request, ServeError(422, "bad_image", str(error)))
        # the library refused to give a verdict (e.g. a decoder's non-finite output): the server's fault
        return error_response(request, ServeError(500, "no_verdict", f"{error}"))

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, error: RequestValidationError):
        problems = []
        for e in error.errors():
            where = ".".join(str(p) for p in e.get("loc", ()) if p not in ("body", "query", "path"))
            problems.append(f"{where or 'request'}: {e.get('msg', 'invalid')}")
        hint = ("; send images as multipart/form-data files named 'images'"
                if request.url.path in ("/v1/detect", "/v1/attribute") else "")  # fmt: skip
        fields = sorted({str(e["loc"][-1]) for e in error.errors() if e.get("loc")})
        return error_response(request, ServeError(422, "bad_field", "; ".join(problems) + hint, fields=fields))

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, error: StarletteHTTPException):
        if isinstance(error.__cause__, ServeError):  # raised while FastAPI read the body (size limit)
            return error_response(request, error.__cause__)
        if error.status_code == 404:
            message = f"no such endpoint: {request.method} {request.url.path}; the API is described at /docs"
            return error_response(request, ServeError(404, "not_found", message))
        if error.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}; see /docs"
            return error_response(request, ServeError(405, "method_not_allowed", message))
        return error_response(request, ServeError(error.status_code, "bad_request", f"{error.detail}"))

    # -------------------------------------------------------------------------------- auth
    def require_token(request: Request) -> None:
        if not tokens:
            raise ServeError(403, "forbidden", "registry writes are disabled on this server; start it with "
                             "--token-file to allow them")  # fmt: skip
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if not header:
            raise ServeError(401, "unauthorized", "registry writes need an API token: send the header "
                             "'Authorization: Bearer <token>'")  # fmt: skip
        given = given.strip().encode()
        ok = scheme.lower() == "bearer" and any(hmac.compare_digest(given, t.encode()) for t in tokens)
        if not ok:
            raise ServeError(403, "forbidden", "the API token is not one this server accepts")

    # ------------------------------------------------------------------------------ images
    async def read_images(request: Request, images: list[UploadFile]) -> tuple[list[str], list]:
        check_image_count(len(images), limits)
        names, decoded = [], []
        for i, upload in enumerate(images):
            name = Path(upload.filename or f"image-{i + 1}").name
            data = await upload.read()
            decoded.append(await asyncio.to_thread(read_upload, data, name, limits))
            names.append(name)
        request.state.images = len(names)
        return names, decoded

    def count(request: Request, endpoint: str, model: ServedModel, records: list[dict]) -> None:
        metrics.images.labels(endpoint, model.name).inc(len(records))
        verdicts: dict[str, int] = {}
        for r in records:
            verdicts[r["verdict"]] = verdicts.get(r["verdict"], 0) + 1
        for verdict, n in verdicts.items():
            metrics.verdicts.labels(endpoint, verdict).inc(n)
        request.state.model, request.state.verdicts = model.name, verdicts

    async def attribute_images(request, images, model, method, fpr, endpoint="attribute") -> dict:
        chosen = choose_model(served, model, method)
        fpr = check_fpr(fpr) or settings.false_positive_rate
        attributor = await asyncio.to_thread(registry.attributor, chosen, fpr)  # first: a 503 costs no inference
        names, decoded = await read_images(request, images)
        logits, seen = await chosen.batcher.decode(decoded, names)
        # the palette check looks at each image as uploaded, before resizing mixed its colours (as the CLI)
        results = await asyncio.to_thread(attributor.attribute_logits, logits, names, images=seen,
                                          is_palette=lambda j: is_palette_image(decoded[j]))  # fmt: skip
        records = [r.to_json() for r in results]
        count(request, endpoint, chosen, records)
        return {"model": chosen.name, "method": chosen.method, "false_positive_rate": fpr,
                "registry_size": attributor.registry_size, "decision_radius": attributor.decision_radius,
                "summary": summarize(results), "results": records}  # fmt: skip

    # ------------------------------------------------------------------------------ routes
    @app.post("/v1/attribute", summary="Attribute images to registered models")
    async def attribute(request: Request, images: ImagesField, model: ModelField = None, method: MethodField = None,
                        fpr: FprField = None) -> dict:  # fmt: skip
        """Per image: verdict (attributed, fingerprinted-unknown, not-fingerprinted), the model, the Hamming
        distance to the nearest registered fingerprint, p-values corrected for the registry's size, the
        decoder's confidence and the decoded bits: the fields of `ganprint attribute --jsonl`."""
        return await attribute_images(request, images, model, method, fpr)

    @app.post("/v1/detect", summary="Detect a fingerprint in images")
    async def detect(request: Request, images: ImagesField, model: ModelField = None, method: MethodField = None,
                     expected: ExpectedField = None,
                     fpr: FprField = None) -> dict:  # fmt: skip
        """With `expected`: per image the matching bits, bit accuracy, p-value, -log10 p and a verdict
        (fingerprinted when p <= fpr). Without it: every registered fingerprint is the candidate, the
        same answer as /v1/attribute."""
        if expected is None:
            return await attribute_images(request, images, model, method, fpr, endpoint="detect")
        chosen = choose_model(served, model, method)
        fpr = check_fpr(fpr) or settings.false_positive_rate
        bits = parse_expected(expected, chosen)
        names, decoded = await read_images(request, images)
        logits, seen = await chosen.batcher.decode(decoded, names)
        records = await asyncio.to_thread(detection_records, chosen, logits, seen, names, bits, fpr)
        count(request, "detect", chosen, records)
        return {"model": chosen.name, "method": chosen.method, "false_positive_rate": fpr, "results": records}

    @app.get("/v1/models", summary="Loaded decoders, their calibration and the server's limits")
    async def models() -> dict:
        return {"default": served[0].name, "models": [m.describe() for m in served],
                "false_positive_rate": settings.false_positive_rate, "limits": asdict(limits)}  # fmt: skip

    @app.get("/v1/registry", summary="Registered fingerprints")
    async def registry_list(method: str | None = None, length: Annotated[int | None, Query(ge=1)] = None,
                            offset: Annotated[int, Query(ge=0)] = 0,
                            limit: Annotated[int, Query(ge=1, le=10_000)] = 1000) -> dict:  # fmt: skip
        entries = await asyncio.to_thread(registry.read, lambda reg: reg.entries(method=method, length=length))
        return {"total": len(entries), "offset": offset,
                "entries": [e.to_json() for e in entries[offset : offset + limit]]}  # fmt: skip

    @app.get("/v1/registry/{model:path}", summary="One registered model's fingerprint")
    async def registry_show(model: str) -> dict:
        entry = await asyncio.to_thread(registry.write, lambda reg: reg.get(model), 404, "not_found")
        return entry.to_json()

    async def name_is_free(model: str) -> None:
        """409 when the model already has a fingerprint; the registry's other refusals (a fingerprint
        too close to another, a degenerate one) are 422 with the registry's own sentence."""
        try:
            await asyncio.to_thread(registry.write, lambda reg: reg.get(model), 404, "not_found")
        except ServeError as e:
            if e.kind == "not_found":
                return
            raise
        raise ServeError(409, "conflict", f"model {model!r} already has a registered fingerprint; remove it "
                         "first to register another")  # fmt: skip

    @app.post("/v1/registry/issue", status_code=201, dependencies=[Depends(require_token)],
              summary="Issue and register a new fingerprint (needs a token)")  # fmt: skip
    async def registry_issue(body: IssueRequest) -> dict:
        await name_is_free(body.model)
        (entry,) = await asyncio.to_thread(registry.write, lambda reg: reg.issue(
            body.model, body.length, method=body.method, owner=body.owner, notes=body.notes,
            min_distance=body.min_distance), 422, "rejected")  # fmt: skip
        return entry.to_json()

    @app.post("/v1/registry/add", status_code=201, dependencies=[Depends(require_token)],
              summary="Register a fingerprint chosen elsewhere (needs a token)")  # fmt: skip
    async def registry_add(body: AddRequest) -> dict:
        from ..registry import normalize_fingerprint

        try:  # a malformed value is the request's fault, not a conflict
            normalize_fingerprint(body.fingerprint, body.length)
        except GanprintError as e:
            raise ServeError(422, "bad_field", f"fingerprint: {e}", field="fingerprint") from None
        await name_is_free(body.model)
        entry = await asyncio.to_thread(registry.write, lambda reg: reg.add(
            body.model, body.fingerprint, method=body.method, owner=body.owner, notes=body.notes,
            length=body.length), 422, "rejected")  # fmt: skip
        return entry.to_json()

    @app.delete("/v1/registry/{model:path}", dependencies=[Depends(require_token)],
                summary="Remove a model's fingerprint (needs a token)")  # fmt: skip
    async def registry_remove(model: str) -> dict:
        entry = await asyncio.to_thread(registry.write, lambda reg: reg.remove(model), 404, "not_found")
        return {"removed": entry.to_json()}

    @app.get("/healthz", summary="Liveness and readiness: 200 when the registry answers, else 503")
    async def healthz() -> JSONResponse:
        try:
            size = await asyncio.to_thread(registry.read, lambda reg: reg.count())
        except ServeError as e:
            return JSONResponse({"status": "unavailable", "error": str(e)}, status_code=503,
                                headers={"Retry-After": "5"})  # fmt: skip
        return JSONResponse({"status": "ok", "models": [m.name for m in served], "registered": size})

    @app.get("/metrics", summary="Prometheus metrics (text format)")
    async def metrics_route() -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    return app


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ganprint")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0"


def app_from_environment() -> FastAPI:
    """The app factory uvicorn's worker processes call: settings from GANPRINT_SERVE_SETTINGS."""
    if not logging.getLogger("ganprint.serve").handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logging.getLogger("ganprint.serve").addHandler(handler)
        logging.getLogger("ganprint.serve").setLevel(logging.INFO)
    return create_app(Settings.from_json(os.environ[SETTINGS_ENV]))
