"""Fingerprint readers of any method behind one interface: images in, bit logits out.

Detection, calibration and attribution only need a `Decoder`. The codec (ICCV 2021) provides one
here, and so does a scalable-fingerprinting network (ICLR 2022, `ganprint.scalable.network`):

    scalable_decoder(network, device) -> Decoder
        The decoder F of a scalable-fingerprinting network (a full network: G(z, c) and F).
    fingerprinted_images(network, fingerprint, count, seed, device) -> (count, 3, R, R) in [0, 1]
        Images generated as the model fingerprinted with `fingerprint` (L,) of 0/1 floats; used by
        benchmarks/bench_attribution.py.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch

from .data import ImageSource, _warn_skipped, iterate_batches, pil_to_tensor
from .errors import BadImageError, GanprintError

METHODS = ("codec", "scalable")


@dataclass
class Decoder:
    """A fingerprint reader: `decode_logits(images (B, 3, R, R) in [0, 1]) -> logits (B, L)` on the CPU.

    `name` says which decoder it is (shown in outputs), `model_dir` / `weights_file` where its files
    are (its calibration.json lives in `model_dir`, or beside a lone weights file).
    """

    name: str
    method: str
    resolution: int
    fingerprint_length: int
    decode_logits: Callable[[torch.Tensor], torch.Tensor]
    model_dir: Path | None = None
    weights_file: Path | None = None
    # an any-size codec: reads each image at its own size (decode_logits takes a list of (3,H,W));
    # `resolution` is then its working resolution, at which `working_view` shows what it reads
    working_view: Callable[[torch.Tensor], torch.Tensor] | None = None
    check_size: Callable[[torch.Tensor, str], None] | None = None  # raises BadImageError (any-size codecs)

    @property
    def any_size(self) -> bool:
        return self.working_view is not None

    def weights_sha256(self) -> str | None:
        """SHA-256 of the weights file: ties a calibration to exactly these weights."""
        if self.weights_file is None or not Path(self.weights_file).is_file():
            return None
        digest = hashlib.sha256()
        with open(self.weights_file, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()

    def decode_source(
        self,
        source: ImageSource,
        batch_size: int = 64,
        celeba: bool = False,
        strict: bool = False,
        on_bad: Callable[[str, str], None] | None = None,
    ) -> Iterator[tuple[list[str], torch.Tensor]]:
        """(names, logits) a batch at a time over a source; bad images are skipped (or raise if strict)."""
        for names, logits, _ in self.read_source(source, batch_size, celeba, strict, on_bad):
            yield names, logits

    def read_source(
        self,
        source: ImageSource,
        batch_size: int = 64,
        celeba: bool = False,
        strict: bool = False,
        on_bad: Callable[[str, str], None] | None = None,
    ) -> Iterator[tuple[list[str], torch.Tensor, torch.Tensor]]:
        """(names, logits, images) a batch at a time: the images as the decoder saw them, which every
        verdict needs for its texture check (ganprint.texture)."""
        if self.any_size:
            yield from self._read_native(source, batch_size, strict, on_bad)
            return
        for names, images in iterate_batches(source, self.resolution, batch_size, celeba=celeba, strict=strict,
                                             on_bad=on_bad):  # fmt: skip
            yield names, self.decode_logits(images).detach().float().cpu(), images

    def _read_native(self, source: ImageSource, batch_size: int, strict: bool,
                     on_bad: Callable[[str, str], None] | None) -> Iterator[tuple[list[str], torch.Tensor, torch.Tensor]]:  # fmt: skip
        """Images at their own size, `batch_size` at a time; `images` are their working-size views."""
        report = on_bad or _warn_skipped
        names, images, read = [], [], 0
        for i, name in enumerate(source.names):
            try:
                image = pil_to_tensor(source.image(i))
                if self.check_size is not None:
                    self.check_size(image, source.location(i))
            except BadImageError as e:
                if strict:
                    raise
                report(name, str(e))
                continue
            names.append(name)
            images.append(image)
            if len(names) == batch_size:
                read += len(names)
                yield names, self.decode_logits(images).detach().float().cpu(), torch.stack(
                    [self.working_view(x) for x in images])
                names, images = [], []
        if names:
            read += len(names)
            yield names, self.decode_logits(images).detach().float().cpu(), torch.stack(
                [self.working_view(x) for x in images])
        if read == 0:
            raise GanprintError(f"{source.spec}: none of the {len(source)} images could be read")


def codec_decoder(codec, name: str, model_dir: Path | None = None, weights_file: Path | None = None) -> Decoder:
    """The Decoder of a loaded FingerprintCodec."""
    if codec.decoder is None:
        raise GanprintError(f"{name}: this codec has no decoder; give a decoder or a full codec")
    if getattr(codec, "any_size", False):
        return anysize_decoder(codec, name, model_dir, weights_file)
    return Decoder(
        name=name,
        method="codec",
        resolution=codec.config.resolution,
        fingerprint_length=codec.config.fingerprint_length,
        decode_logits=lambda images: codec.decode_logits(images, batch_size=max(1, images.shape[0])),
        model_dir=model_dir,
        weights_file=weights_file,
    )


def anysize_decoder(codec, name: str, model_dir: Path | None = None, weights_file: Path | None = None) -> Decoder:
    """The Decoder of a loaded AnySizeCodec: images at their own size."""
    from .codec.anysize import check_image_size, to_working

    cfg = codec.config

    def check(image: torch.Tensor, label: str) -> None:
        try:
            check_image_size(image.shape[-2], image.shape[-1], cfg, label)
        except GanprintError as e:
            raise BadImageError(str(e)) from None

    return Decoder(
        name=name, method="codec", resolution=cfg.working_resolution, fingerprint_length=cfg.fingerprint_length,
        decode_logits=codec.decode_logits, model_dir=model_dir, weights_file=weights_file,
        working_view=lambda image: to_working(image.unsqueeze(0), cfg.working_resolution)[0], check_size=check,
    )  # fmt: skip


def describe_codec(model: str | os.PathLike, codec) -> Decoder:
    """The Decoder of a codec loaded from `model` (a name, a folder or an original .pth file)."""
    from .codec.importing import ORIGINAL_SUFFIXES
    from .pretrained import resolve_model_dir

    if model is None:  # the default codec for its resolution
        from .pretrained import default_codec

        model = default_codec(None if getattr(codec, "any_size", False) else codec.config.resolution)
    path = Path(model)
    if path.is_file() and path.suffix.lower() in ORIGINAL_SUFFIXES:
        return codec_decoder(codec, os.fspath(model), None, path)
    directory = resolve_model_dir(model)
    return codec_decoder(codec, os.fspath(model), directory, directory / "model.safetensors")


def load_decoder(
    model: str | os.PathLike | None = None,
    method: str = "codec",
    device: str = "auto",
    resolution: int | None = None,
) -> Decoder:
    """A decoder by method: a codec name/folder/original .pth, or a scalable-fingerprinting network."""
    if method == "codec":
        from .codec.importing import load_codec
        from .pretrained import default_codec

        model = default_codec(resolution) if model is None else os.fspath(model)
        return describe_codec(model, load_codec(model, resolution, device))
    if method == "scalable":
        if model is None:
            raise GanprintError("give the scalable-fingerprinting network with --model")
        decoder = scalable_decoder(os.fspath(model), device)
        if resolution is not None and resolution != decoder.resolution:
            raise GanprintError(f"{model}: network works at {decoder.resolution}px, not {resolution}px")
        return decoder
    raise GanprintError(f"unknown method {method!r}; known: {', '.join(METHODS)}")


# --------------------------------------------------------------------------- scalable fingerprinting
def _scalable_network(network: str, device: str):
    from .device import resolve_device
    from .scalable.network import ScalableNetwork, resolve_network_dir

    return ScalableNetwork.from_pretrained(network, resolve_device(device)), resolve_network_dir(network)


def scalable_decoder(network: str, device: str = "cpu") -> Decoder:
    """The decoder F of a scalable-fingerprinting network."""
    net, directory = _scalable_network(network, device)
    if net.F is None:
        raise GanprintError(f"{network}: an exported fingerprinted generator has no decoder; give the full network")
    return Decoder(name=network, method="scalable", resolution=net.config.resolution,
                   fingerprint_length=net.config.fingerprint_size, decode_logits=net.decode_logits,
                   model_dir=directory, weights_file=directory / "model.safetensors")  # fmt: skip


def fingerprinted_images(network: str, fingerprint: torch.Tensor, count: int, seed: int,
                         device: str = "cpu") -> torch.Tensor:  # fmt: skip
    """`count` images (count, 3, R, R) in [0, 1] of the model fingerprinted with `fingerprint` (L,):
    G(z, c) with z ~ N(0, 1) drawn from `seed`."""
    net, _ = _scalable_network(network, device)
    z = torch.randn(count, net.config.z_dim, generator=torch.Generator().manual_seed(seed))
    c = torch.as_tensor(fingerprint).float().reshape(1, -1).expand(count, -1)
    return net.generate(z, c).cpu()
