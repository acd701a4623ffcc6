"""Requests' images through one decoder together: opportunistic batching off the event loop.

Each request puts its decoded images on a queue and awaits their logits. One task per decoder takes
everything waiting (up to `max_batch` images), runs the decoder on it in a thread of its own, and
hands each request its rows. Nothing waits for a batch to fill: under light load a request is
decoded alone at once; under heavy load the images that arrived while the decoder was busy go
together in the next call, which is where batching raises throughput (benchmarks/bench_serve.py).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence

import torch
from PIL import Image

from ..data import ImageSource
from ..decoders import Decoder


class _Uploads(ImageSource):
    """Images already decoded from uploads, as an ImageSource for Decoder.read_source."""

    def __init__(self, images: Sequence[Image.Image], names: Sequence[str] | None = None):
        self.spec, self.images = "uploads", list(images)
        self.names = list(names) if names is not None else [f"image-{i + 1}" for i in range(len(self.images))]

    def location(self, i: int) -> str:
        return self.names[i]

    def image(self, i: int) -> Image.Image:
        return self.images[i]


def decode_images(decoder: Decoder, images: Sequence[Image.Image],
                  names: Sequence[str] | None = None) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """(logits (N, L), the images (N, 3, R, R) as the decoder saw them) of decoded RGB images,
    preprocessed as the CLI does (Decoder.read_source); the verdicts need both. An image the decoder
    refuses (e.g. too small for it) raises its BadImageError."""
    parts = list(decoder.read_source(_Uploads(images, names), max(1, len(images)), strict=True))
    return torch.cat([p[1] for p in parts]), torch.cat([p[2] for p in parts])


class Batcher:
    """Decode images of concurrent requests in shared decoder calls; `await batcher.decode(images)`."""

    def __init__(self, decoder: Decoder, max_batch: int = 32, on_batch: Callable[[int], None] | None = None):
        self.decoder, self.max_batch, self.on_batch = decoder, max(1, max_batch), on_batch
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None
        # one decoder call at a time: torch already spreads one call over the cores
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"decode-{decoder.name}")

    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._executor.shutdown(wait=True)

    async def decode(self, images: Sequence[Image.Image],
                     names: Sequence[str] | None = None) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """(logits (len(images), L), preprocessed images); a request's images stay in one decoder call."""
        if self._queue is None:
            raise RuntimeError("Batcher.start() was not called")
        future = asyncio.get_running_loop().create_future()
        names = list(names) if names is not None else [f"image-{i + 1}" for i in range(len(images))]
        await self._queue.put((list(images), names, future))
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = [await self._queue.get()]
            count = len(jobs[0][0])
            while count < self.max_batch and not self._queue.empty():
                nxt = self._queue.get_nowait()
                jobs.append(nxt)
                count += len(nxt[0])
            jobs = [job for job in jobs if not job[2].done()]  # requests that timed out meanwhile
            if not jobs:
                continue
            images = [im for batch, _, _ in jobs for im in batch]
            names = [n for _, batch_names, _ in jobs for n in batch_names]
            try:
                logits, seen = await loop.run_in_executor(self._executor, decode_images, self.decoder, images, names)
            except Exception as e:
                if len(jobs) > 1:  # one request's image spoilt the shared call: each request on its own
                    for job in jobs:
                        await self._run_alone(loop, job)
                elif not jobs[0][2].done():
                    jobs[0][2].set_exception(e)
                continue
            if self.on_batch is not None:
                self.on_batch(len(images))
            start = 0
            for batch, _, future in jobs:
                if not future.done():
                    future.set_result((logits[start : start + len(batch)], seen[start : start + len(batch)]))
                start += len(batch)

    async def _run_alone(self, loop, job) -> None:
        images, names, future = job
        try:
            result = await loop.run_in_executor(self._executor, decode_images, self.decoder, images, names)
        except Exception as e:  # this request gets its error; the batcher keeps running
            if not future.done():
                future.set_exception(e)
            return
        if self.on_batch is not None:
            self.on_batch(len(images))
        if not future.done():
            future.set_result(result)
