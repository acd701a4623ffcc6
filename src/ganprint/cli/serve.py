"""`ganprint serve`: the detection and attribution service (HTTP API + web page), ganprint.serve.

Exit codes as for every command: 0 after a clean stop (SIGTERM: in-flight requests finish first);
1 an error at start (no registry, unknown model, port taken); 2 a usage error; 130 interrupted.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile

import click

from ..errors import GanprintError
from . import options as opt
from .registry import registry_option, timeout_option

DEFAULT_PORT = 8000


@click.command()
@registry_option
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; 0.0.0.0 for every interface (put a reverse proxy in front).")
@click.option("--port", type=click.IntRange(0, 65535), default=DEFAULT_PORT, show_default=True, help="TCP port.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Server processes (each loads the decoders; they share the registry).")
@click.option("--model", "models", multiple=True, metavar="NAME|PATH",
              help="A codec to serve (repeatable): a name, folder or original *_decoder.pth "
              "[default: the codec `ganprint attribute` uses without --model].")
@click.option("--scalable", "scalable", multiple=True, metavar="PATH",
              help="A scalable-fingerprinting network to serve (repeatable).")
@click.option("--token-file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="API tokens for registry writes, one per line (>= 16 characters); without it writes are refused.")
@click.option("--max-upload-mb", type=click.FloatRange(min=0, min_open=True), default=20, show_default=True,
              help="Largest request body, in MB.")
@click.option("--max-images", type=click.IntRange(min=1), default=16, show_default=True,
              help="Images per request.")
@click.option("--max-pixels", type=click.IntRange(min=1), default=40_000_000, show_default=True,
              help="Pixels per image (width x height): larger ones, such as decompression bombs, are refused unread.")
@click.option("--request-timeout", type=click.FloatRange(min=0, min_open=True), default=60, show_default=True,
              help="Seconds a request may take before it is answered 408.")
@click.option("--max-batch", type=click.IntRange(min=1), default=32, show_default=True,
              help="Images of concurrent requests decoded in one decoder call (1: no batching).")
@opt.fpr
@opt.device
@click.option("--forwarded-allow-ips", default="127.0.0.1", show_default=True,
              help="Proxies whose X-Forwarded-For / -Proto headers are trusted (comma-separated, or '*').")
@timeout_option
def serve(location, host, port, workers, models, scalable, token_file, max_upload_mb, max_images, max_pixels,
          request_timeout, max_batch, false_positive_rate, device, forwarded_allow_ips, timeout) -> None:  # fmt: skip
    """Serve detection and attribution over HTTP: a JSON API (POST /v1/attribute, /v1/detect; GET
    /v1/models, /v1/registry, /healthz, /metrics; OpenAPI at /openapi.json and /docs) and a web page
    at / where images can be dropped. Needs the serve extra: pip install "ganprint[serve]".

    \b
    Examples:
      ganprint serve --registry fp.db
      curl -F images=@photo.png http://127.0.0.1:8000/v1/attribute
      ganprint serve --registry postgresql+psycopg://fp@db/fingerprints --host 0.0.0.0 --workers 2 \\
          --token-file tokens.txt
      ganprint serve --registry fp.db --model codec-32 --scalable nets/scalable-32-robust --port 9000
    See docs/serve.md for the API, limits, reverse proxies and replicas.
    """
    try:
        import uvicorn

        from ..serve.app import SETTINGS_ENV, Settings, app_from_environment, create_app
        from ..serve.limits import MB, Limits
    except ImportError as e:
        raise GanprintError(f"ganprint serve needs the serve extra ({e.name} is missing): "
                            "pip install \"ganprint[serve]\"") from None  # fmt: skip
    limits = Limits(max_upload_bytes=int(max_upload_mb * MB), max_images=max_images, max_pixels=max_pixels,
                    request_timeout=request_timeout)  # fmt: skip
    settings = Settings(registry=location, models=list(models), scalable=list(scalable), device=device,
                        token_file=token_file, limits=limits, max_batch=max_batch,
                        false_positive_rate=false_positive_rate, registry_timeout=timeout)  # fmt: skip
    os.environ[SETTINGS_ENV] = settings.to_json()  # holds the token file's path, never a token
    app = app_from_environment()  # a wrong registry, model or token file fails here, before listening
    common = dict(host=host, port=port, access_log=False, proxy_headers=True,
                  forwarded_allow_ips=forwarded_allow_ips, timeout_graceful_shutdown=int(request_timeout) + 5)  # fmt: skip
    # uvicorn re-raises the signal it stopped for; a SIGTERM stop is a clean exit (0), not a kill
    signal.signal(signal.SIGTERM, lambda *_: None)
    if workers == 1:
        uvicorn.run(app, **common)
        return
    del app  # each worker process builds its own
    metrics_dir = tempfile.mkdtemp(prefix="ganprint-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir  # /metrics sums every worker's counters
    try:
        uvicorn.run(f"{create_app.__module__}:app_from_environment", factory=True, workers=workers, **common)
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
