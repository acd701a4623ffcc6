"""`ganprint serve`: detection and attribution over HTTP, with a web page (docs/serve.md).

    app.py       the FastAPI application: routes, JSON errors, access log
    service.py   loaded decoders + calibrations, the registry connection, per-image records
    limits.py    upload size, images per request, pixels, timeout; uploads decoded by ganprint.data
    batching.py  concurrent requests' images through one decoder call, off the event loop
    metrics.py   Prometheus counters and histograms
    static/      the page at / (plain HTML + JavaScript, no build step, works offline)

Needs the `serve` extra: pip install "ganprint[serve]".
"""

from .app import Settings, create_app
from .limits import Limits

__all__ = ["Limits", "Settings", "create_app"]
