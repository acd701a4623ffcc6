"""What the robustness grid evaluates: a *subject* yields fingerprinted images with the fingerprints
they should carry, reads fingerprints back from images, and names the network that model-level
attacks perturb.

Subjects:
- `CodecSubject`: a FingerprintCodec on a set of clean images; every image gets its own random
  fingerprint. Clean counterparts exist, so image quality (PSNR/SSIM against the clean image) and a
  false-positive control (clean images under the same attack) are measured. Model attacks perturb the
  encoder (does an 8-bit or noisy deployment of it still embed?).
- `FolderSubject`: images on disk with an expected-fingerprints file, read by a codec's decoder; no
  clean images and no model.
- `AnySizeCodecSubject` and `NativeFolderSubject`: the same two for an any-size codec (`codec.any_size`):
  images at their native sizes, never resized or cropped to a resolution. They cannot be stacked, and
  a folder of 4K photos does not fit in memory: these subjects are `NativeSubject`s, which hand the
  grid one image at a time (`images()`), and the grid attacks each image at its own size.
- `GeneratorSubject`: any generator with a decoder: `generate(model)` returns (images, expected bits)
  for a fixed set of latents, so a model-attacked copy is compared image by image with the original.
  `scalable_subject` builds one from a scalable-fingerprinting network (ganprint.scalable);
  `gan_subject` from a GAN trained on fingerprinted data (ganprint.gan): it samples the GAN with fixed
  latents, expects the training set's one fingerprint, and reads it with the codec that embedded it.
  See docs/robustness.md.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import torch
from torch import nn

from ..codec.folders import EMBEDDED_FILE
from ..data import iterate_batches, open_source, pil_to_tensor, split_indices, unique_output_names
from ..errors import BadImageError, GanprintError
from ..fingerprints import parse_fingerprint, read_fingerprint_file
from ..detection import NullModel
from ..model_attacks import FinetuneLoss


def calibrated_null(decoder) -> NullModel | None:
    """The calibrated null model of a ganprint.decoders.Decoder, if it has a calibration.json."""
    from ..calibration import load_calibration

    calibration = load_calibration(decoder)
    return calibration.null_model() if calibration is not None else None


def to_8bit(images: torch.Tensor) -> torch.Tensor:
    """Round to the 256 levels a PNG holds: what a saved fingerprinted image is."""
    return torch.round(images.clamp(0, 1) * 255) / 255


@dataclass
class Sample:
    images: torch.Tensor  # fingerprinted images (N, 3, R, R) in [0, 1], 8-bit levels, on the CPU
    expected: torch.Tensor  # fingerprints they should carry, (N, L) 0/1
    clean: torch.Tensor | None = None  # the same images without a fingerprint, when they exist


class Subject:
    """Base class; subclasses set `name`, `kind`, `fingerprint_length` and implement the methods.

    `null` is the decoder's null model for p-values and verdicts: its calibration (`ganprint
    calibrate`, calibration.json beside the decoder) when there is one, else fair coins (None)."""

    name: str
    kind: str
    fingerprint_length: int
    null: NullModel | None = None
    native = False  # True: a NativeSubject (images of any size, one at a time)

    def sample(self, model: nn.Module | None = None) -> Sample:
        """The evaluation images; with `model`, made by that (attacked) copy of `attack_target()`."""
        raise NotImplementedError

    def decode_logits(self, images: torch.Tensor) -> torch.Tensor:
        """Bit logits (N, L) on the CPU; bit = logit > 0."""
        raise NotImplementedError

    def attack_target(self) -> nn.Module | None:
        """The network model-level attacks perturb, or None (then they do not apply)."""
        return None

    def finetune_loss(self) -> FinetuneLoss | None:
        """Loss on clean data for the `finetune` attack, or None."""
        return None

    def describe(self) -> dict:
        null = self.null.description if self.null is not None else "fair coins (binomial)"
        return {"name": self.name, "kind": self.kind, "fingerprint_length": self.fingerprint_length, "null": null}


# ------------------------------------------------------------------------------------------ codec
class CodecSubject(Subject):
    kind = "codec"

    def __init__(self, codec, images: torch.Tensor, name: str, seed: int = 0, batch_size: int = 256,
                 finetune_images: torch.Tensor | None = None, source: str = "", refine_steps: int = 0):  # fmt: skip
        if codec.encoder is None or codec.decoder is None:
            raise GanprintError(f"{name}: evaluating a codec needs both its encoder and its decoder")
        self.codec, self.name, self.batch_size, self.source = codec, name, batch_size, source
        self.refine_steps = refine_steps  # informed embedding after the encoder (0: none)
        if refine_steps:
            from ..codec.refine import Refiner

            self.refiner = Refiner(steps=refine_steps, progress=True)
        self.fingerprint_length = codec.config.fingerprint_length
        self.clean = images.float().cpu()
        g = torch.Generator().manual_seed(seed)
        self.bits = torch.randint(0, 2, (len(images), self.fingerprint_length), generator=g).float()
        self.finetune_images = finetune_images

    def _embed(self, encoder: nn.Module, images: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
        encoder.eval()
        device = next(encoder.parameters()).device
        mean_preserving = getattr(encoder, "mean_preserving", False)
        out = []
        for s in range(0, images.shape[0], self.batch_size):
            x, b = images[s : s + self.batch_size].to(device), bits[s : s + self.batch_size].to(device)
            with torch.no_grad():
                marked = encoder(x, b)  # ResidualEncoder and OriginalEncoder share (x, bits)
            if self.refine_steps:
                marked = self.refiner(self.codec.decoder, x, b, marked, mean_preserving)
            out.append(marked.cpu())
        return torch.cat(out)

    def sample(self, model: nn.Module | None = None) -> Sample:
        marked = self._embed(model if model is not None else self.codec.encoder, self.clean, self.bits)
        return Sample(to_8bit(marked), self.bits, self.clean)

    def decode_logits(self, images: torch.Tensor) -> torch.Tensor:
        return self.codec.decode_logits(images, self.batch_size)

    def attack_target(self) -> nn.Module:
        return self.codec.encoder

    def finetune_loss(self) -> FinetuneLoss | None:
        # An adversary who holds clean images tunes the encoder to give them back unchanged.
        if self.finetune_images is None or len(self.finetune_images) == 0:
            return None
        images, length = self.finetune_images, self.fingerprint_length

        def loss(encoder: nn.Module, g: torch.Generator) -> torch.Tensor:
            idx = torch.randint(0, len(images), (min(16, len(images)),), generator=g)
            bits = torch.randint(0, 2, (len(idx), length), generator=g).float()
            device = next(encoder.parameters()).device
            x = images[idx].to(device)
            return torch.nn.functional.mse_loss(encoder(x, bits.to(device)), x)

        return loss

    def describe(self) -> dict:
        c = self.codec.config
        return {**super().describe(), "arch": c.arch, "resolution": c.resolution, "images": len(self.clean),
                "data": self.source, "refine_steps": self.refine_steps}  # fmt: skip


# ----------------------------------------------------------------------------------------- folder
class FolderSubject(Subject):
    kind = "folder"

    def __init__(self, images: torch.Tensor, expected: torch.Tensor, decoder, name: str, batch_size: int = 256):
        self.images, self.expected, self.decoder, self.name = images, expected, decoder, name
        self.batch_size = batch_size
        self.fingerprint_length = expected.shape[1]

    def sample(self, model: nn.Module | None = None) -> Sample:
        return Sample(self.images, self.expected, None)

    def decode_logits(self, images: torch.Tensor) -> torch.Tensor:
        return self.decoder.decode_logits(images, self.batch_size)

    def describe(self) -> dict:
        return {**super().describe(), "images": len(self.images)}


# -------------------------------------------------------------------------------------- generator
class GeneratorSubject(Subject):
    """A generator and a decoder. `generate(model) -> (images in [0,1], expected bits (N, L))` must
    use fixed latents so that outputs of an attacked copy line up with the original's."""

    kind = "generator"

    def __init__(self, name: str, model: nn.Module, generate: Callable[[nn.Module], tuple[torch.Tensor, torch.Tensor]],
                 decode_logits: Callable[[torch.Tensor], torch.Tensor], fingerprint_length: int,
                 finetune_loss: FinetuneLoss | None = None, info: dict | None = None):  # fmt: skip
        self.name, self.model, self._generate, self._decode = name, model, generate, decode_logits
        self.fingerprint_length = fingerprint_length
        self._finetune_loss = finetune_loss
        self.info = info or {}

    def sample(self, model: nn.Module | None = None) -> Sample:
        images, expected = self._generate(model if model is not None else self.model)
        return Sample(to_8bit(images.cpu()), expected.float().cpu(), None)

    def decode_logits(self, images: torch.Tensor) -> torch.Tensor:
        return self._decode(images)

    def attack_target(self) -> nn.Module:
        return self.model

    def finetune_loss(self) -> FinetuneLoss | None:
        return self._finetune_loss

    def describe(self) -> dict:
        return {**super().describe(), **self.info}


# ------------------------------------------------------------------------------- native sizes
@dataclass
class NativeImage:
    """One image of a NativeSubject, at its own size."""

    name: str
    marked: torch.Tensor  # fingerprinted (3, H, W) in [0, 1], 8-bit levels, on the CPU
    expected: torch.Tensor  # the fingerprint it should carry, (L,) 0/1
    clean: torch.Tensor | None = None  # the same image without a fingerprint, when it exists


class NativeSubject(Subject):
    """Images of any size, handed to the grid one at a time (memory stays flat in their number),
    read by an any-size codec's decoder. Subclasses implement `images()` (and `remark` for model
    attacks)."""

    native = True

    def __init__(self, codec, name: str):
        if codec.decoder is None:
            raise GanprintError(f"{name}: this codec has no decoder")
        self.codec, self.name = codec, name
        self.fingerprint_length = codec.config.fingerprint_length
        self.seen_sizes: list[tuple[int, int]] = []  # (H, W) of the images handed out, for describe()

    def images(self) -> Iterator[NativeImage]:
        raise NotImplementedError

    def remark(self, image: NativeImage, model: nn.Module) -> torch.Tensor:
        """The image fingerprinted by `model`, an attacked copy of `attack_target()` (model attacks)."""
        raise NotImplementedError

    def sample(self, model: nn.Module | None = None) -> Sample:
        raise GanprintError(f"{self.name}: images of any size come one at a time (use images())")

    def decode_logits(self, images: Sequence[torch.Tensor]) -> torch.Tensor:
        """Bit logits (N, L) of (3, H, W) images of any sizes."""
        return self.codec.decode_logits(list(images))

    def decoder_view(self, image: torch.Tensor) -> torch.Tensor:
        """(3, W, W): the image at the decoder's working resolution, which its texture check measures."""
        from ..codec.anysize import to_working

        return to_working(image.unsqueeze(0).float(), self.codec.config.working_resolution)[0]

    def check_readable(self, image: torch.Tensor, what: str) -> None:
        """A clear error when `image` is outside the sizes the codec reads (what: how it came to be)."""
        from ..codec.anysize import check_image_size

        h, w = image.shape[-2:]
        try:
            check_image_size(h, w, self.codec.config, what)
        except GanprintError as exc:
            raise GanprintError(f"{exc}: evaluate on larger images (--data) or leave out that attack level") from None

    def _read(self, source, order: Sequence[int], strict: bool, limit: int | None = None) -> Iterator[tuple[str, torch.Tensor]]:
        """(name, (3, H, W) float) of the source's images in `order`, at their own size; unreadable
        images and sizes the codec does not read are skipped with a warning (an error if `strict`)."""
        from ..codec.anysize import check_image_size

        read = 0
        for i in order:
            if limit is not None and read >= limit:
                break
            name = source.names[i]
            try:
                image = pil_to_tensor(source.image(i))
                check_image_size(image.shape[-2], image.shape[-1], self.codec.config, source.location(i))
            except (BadImageError, GanprintError) as exc:
                if strict:
                    raise GanprintError(str(exc)) from None
                print(f"warning: skipped {exc}", file=sys.stderr)
                continue
            read += 1
            self.seen_sizes.append((int(image.shape[-2]), int(image.shape[-1])))
            yield name, image
        if read == 0:
            raise GanprintError(f"{source.spec}: none of the {len(order)} images could be read at a size this codec "
                                "reads")  # fmt: skip

    def describe(self) -> dict:
        sizes = self.seen_sizes
        shape = {}
        if sizes:
            pixels = sorted(h * w for h, w in sizes)
            shape = {"smallest": "{1}x{0}".format(*min(sizes, key=lambda s: s[0] * s[1])),
                     "largest": "{1}x{0}".format(*max(sizes, key=lambda s: s[0] * s[1])),
                     "median_megapixels": round(pixels[len(pixels) // 2] / 1e6, 3)}  # fmt: skip
        return {**super().describe(), "native_size": True, "working_resolution": self.codec.config.working_resolution,
                "images": len(sizes), **shape}  # fmt: skip


class AnySizeCodecSubject(NativeSubject):
    """An any-size codec on the images of `data` at their native sizes: each image gets its own random
    fingerprint (drawn in order from `seed`), is embedded at its own size and rounded to 8 bits.
    Model attacks perturb the encoder."""

    kind = "codec"

    def __init__(self, codec, data: str, name: str, count: int = 256, split: str = "all", seed: int = 0,
                 strict: bool = False):  # fmt: skip
        if codec.encoder is None:
            raise GanprintError(f"{name}: evaluating a codec needs both its encoder and its decoder")
        super().__init__(codec, name)
        self.source = open_source(data)
        self.data, self.count, self.seed, self.strict = data, count, seed, strict
        n = len(self.source)
        if split == "val":
            self.order = split_indices(n)[1]
        elif split == "train":
            self.order = split_indices(n)[0]
        elif split == "all":
            self.order = list(range(n))
        else:
            raise GanprintError(f"unknown split {split!r}; choose all, val or train")

    def _mark(self, encoder: nn.Module, clean: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
        from ..codec.anysize import to_native, to_working

        h, w = clean.shape[-2:]
        x = clean.unsqueeze(0).to(self.codec.device)
        with torch.inference_mode():
            r = encoder(to_working(x, self.codec.config.working_resolution), bits.view(1, -1).to(x.device))
            marked = (x + to_native(r, h, w)).clamp(0, 1)[0].cpu()
        return to_8bit(marked)

    def images(self) -> Iterator[NativeImage]:
        self.seen_sizes = []
        g = torch.Generator().manual_seed(self.seed)
        for name, clean in self._read(self.source, self.order, self.strict, self.count):
            bits = torch.randint(0, 2, (self.fingerprint_length,), generator=g).float()
            marked = to_8bit(self.codec.embed(clean, bits).cpu())
            yield NativeImage(name, marked, bits, clean)

    def remark(self, image: NativeImage, model: nn.Module) -> torch.Tensor:
        model.eval()
        return self._mark(model, image.clean, image.expected)

    def attack_target(self) -> nn.Module:
        return self.codec.encoder

    def describe(self) -> dict:
        return {**super().describe(), "data": self.data}


class NativeFolderSubject(NativeSubject):
    """Fingerprinted images on disk at their own sizes with expected fingerprints, read by an any-size
    codec; no clean images, no model."""

    kind = "folder"

    def __init__(self, codec, source, order: Sequence[int], expected: Callable[[str], torch.Tensor], name: str,
                 strict: bool = False):  # fmt: skip
        super().__init__(codec, name)
        self.source, self.order, self.expected, self.strict = source, list(order), expected, strict

    def images(self) -> Iterator[NativeImage]:
        self.seen_sizes = []
        for name, image in self._read(self.source, self.order, self.strict):
            yield NativeImage(name, to_8bit(image), self.expected(name), None)


# ---------------------------------------------------------------------------------------- loaders
def subject_name(spec: str | os.PathLike, taken: set[str] | None = None) -> str:
    """A short, unique display name for a model given by name or path (`run/final` -> `run/final`)."""
    path = Path(spec)
    name = str(spec) if not path.exists() else path.name
    if path.exists() and (path.name == "final" or path.name.startswith("snapshot-")):
        name = f"{path.parent.name}/{path.name}"
    if taken is not None:
        base, k = name, 2
        while name in taken:
            name, k = f"{base}-{k}", k + 1
        taken.add(name)
    return name


def load_images(spec: str, resolution: int, count: int, split: str = "all", batch_size: int = 256,
                strict: bool = False) -> tuple[list[str], torch.Tensor]:  # fmt: skip
    """Up to `count` preprocessed images of a source: all in source order, or (`split="val"`) the
    held-out split a codec trainer with default --val_fraction and --seed uses on the same data."""
    source = open_source(spec)
    if split == "val":
        order = split_indices(len(source))[1]
    elif split == "train":
        order = split_indices(len(source))[0]
    elif split == "all":
        order = list(range(len(source)))
    else:
        raise GanprintError(f"unknown split {split!r}; choose all, val or train")
    order = order[:count]
    names, batches = [], []
    for batch_names, images in iterate_batches(source, resolution, batch_size, strict=strict, order=order):
        names += batch_names
        batches.append(images)
    return names, torch.cat(batches)


def codec_subject(spec: str, data: str | None, count: int = 256, split: str = "all", seed: int = 0,
                  device: str = "cpu", batch_size: int = 256, name: str | None = None,
                  finetune_count: int = 256, refine_steps: int = 0) -> CodecSubject:  # fmt: skip
    """A codec (shipped name, folder or original .pth) evaluated on images of `data`. Images for the
    `finetune` attack come from the other split (the training split when `split="val"`).
    `refine_steps`: informed embedding after the encoder (codec/refine.py). An any-size codec gets an
    AnySizeCodecSubject: the images at their native sizes. `data` None: the built-in samples (64 px
    crops; fixed-resolution codecs only)."""
    from ..codec.importing import load_codec
    from ..decoders import describe_codec

    codec = load_codec(spec, device=device)
    if getattr(codec, "any_size", False):
        if refine_steps:
            raise GanprintError(f"{spec}: informed embedding (--refine-steps) is for fixed-resolution codecs")
        if data is None:
            raise GanprintError(f"{spec} is an any-size codec: give images to evaluate it on at their own sizes with "
                                "--data DIR (the built-in samples are 64 px crops)")  # fmt: skip
        subject = AnySizeCodecSubject(codec, data, name or subject_name(spec), count, split, seed)
        subject.null = calibrated_null(describe_codec(spec, codec))
        return subject
    data = "samples" if data is None else data
    r = codec.config.resolution
    _, images = load_images(data, r, count, split, batch_size)
    if split == "val":
        tune = load_images(data, r, finetune_count, "train", batch_size)[1]
    else:
        tune = images  # the adversary's clean images are the evaluation images themselves (a strong attacker)
    subject = CodecSubject(codec, images, name or subject_name(spec), seed, batch_size, tune, source=data,
                           refine_steps=refine_steps)  # fmt: skip
    subject.null = calibrated_null(describe_codec(spec, codec))
    return subject


def folder_subject(folder: str, expected: str, decoder_spec: str | None = None, count: int | None = None,
                   device: str = "cpu", batch_size: int = 256, strict: bool = False,
                   name: str | None = None) -> FolderSubject:  # fmt: skip
    """Images of `folder` with expected fingerprints: an embedded_fingerprints.txt (names as written
    by `ganprint codec embed`, i.e. flattened `.png` names), its folder, or one bits/hex fingerprint
    for all images. Read by a codec's decoder (default: the shipped codec); an any-size codec reads
    them at their native sizes (a NativeFolderSubject)."""
    from ..codec.importing import load_codec
    from ..decoders import describe_codec
    from ..pretrained import DEFAULT_CODEC

    decoder_spec = decoder_spec or DEFAULT_CODEC
    codec = load_codec(decoder_spec, device=device)
    length, r = codec.config.fingerprint_length, codec.config.resolution
    source = open_source(folder)
    out_names = dict(zip(source.names, unique_output_names(source.names)))
    path = Path(expected)
    if path.is_dir():
        path = path / EMBEDDED_FILE
    if path.is_file():
        table = read_fingerprint_file(path)
        first = next(iter(table.values()))
        if first.numel() != length:
            raise GanprintError(f"{path}: fingerprints have {first.numel()} bits; the decoder reads {length}")
        lookup = lambda n: table.get(out_names[n], table.get(n))  # noqa: E731
    else:
        bits = parse_fingerprint(expected, length)
        lookup = lambda n: bits  # noqa: E731
    keep = [i for i, n in enumerate(source.names) if lookup(n) is not None]
    if not keep:
        raise GanprintError(f"{expected}: none of the images of {folder} has an expected fingerprint")
    keep = keep[:count] if count else keep
    if getattr(codec, "any_size", False):
        subject = NativeFolderSubject(codec, source, keep, lambda n: lookup(n).float(), name or subject_name(folder),
                                      strict)  # fmt: skip
        subject.null = calibrated_null(describe_codec(decoder_spec, codec))
        return subject
    names, batches = [], []
    for batch_names, images in iterate_batches(source, r, batch_size, strict=strict, order=keep):
        names += batch_names
        batches.append(images)
    expected_bits = torch.stack([lookup(n) for n in names]).float()
    subject = FolderSubject(torch.cat(batches), expected_bits, codec, name or subject_name(folder), batch_size)
    subject.null = calibrated_null(describe_codec(decoder_spec, codec))
    return subject


def scalable_subject(spec: str, count: int = 256, seed: int = 0, decoder_spec: str | None = None,
                     device: str = "cpu", batch_size: int = 64, name: str | None = None) -> GeneratorSubject:  # fmt: skip
    """A scalable-fingerprinting network (ganprint.scalable): fixed latents, a random code per image
    (or, for an exported fingerprinted model, its own fingerprint); read by its decoder F (an exported
    model has none: give the full network it came from as `decoder_spec`). Model attacks perturb G."""
    from ..decoders import scalable_decoder
    from ..scalable.network import ScalableNetwork

    net = ScalableNetwork.from_pretrained(spec, device=device)
    reader = net if net.F is not None else (ScalableNetwork.from_pretrained(decoder_spec, device=device)
                                            if decoder_spec else None)  # fmt: skip
    if reader is None or reader.F is None:
        raise GanprintError(f"{spec}: an exported fingerprinted generator has no decoder; give the full network too")
    c = net.config
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(count, c.z_dim, generator=g)
    if net.is_fingerprinted:
        codes = net.fingerprint.expand(count, -1).clone()
    else:
        codes = torch.randint(0, 2, (count, c.fingerprint_size), generator=g).float()

    @torch.no_grad()
    def generate(G: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        G.eval()
        dev = next(G.parameters()).device
        out = []
        for s in range(0, count, batch_size):
            zc = None if net.is_fingerprinted else codes[s : s + batch_size].to(dev)
            out.append(((G(z[s : s + batch_size].to(dev), zc, noise_mode="const") + 1) / 2).clamp(0, 1).cpu())
        return torch.cat(out), codes

    info = {"resolution": c.resolution, "images": count, "fingerprinted_export": net.is_fingerprinted}
    subject = GeneratorSubject(name or subject_name(spec), net.G, generate,
                               lambda images: reader.decode_logits(images, batch_size), c.fingerprint_size,
                               info=info)  # fmt: skip
    subject.null = calibrated_null(scalable_decoder(spec if net.F is not None else decoder_spec, device))
    return subject


def _one_fingerprint(expected: str, length: int) -> torch.Tensor:
    """The single fingerprint of a GAN's training set: bits/hex, or an embedded_fingerprints.txt (or
    its folder) in which every image has the same one."""
    path = Path(expected)
    if path.is_dir():
        path = path / EMBEDDED_FILE
    if not path.is_file():
        return parse_fingerprint(expected, length)
    distinct = {tuple(int(b) for b in bits.tolist()) for bits in read_fingerprint_file(path).values()}
    if len(distinct) != 1:
        raise GanprintError(f"{path}: the images carry {len(distinct)} different fingerprints; a GAN's training "
                            "set fingerprinted for transfer carries one (codec embed --identical_fingerprints)")  # fmt: skip
    bits = torch.tensor(distinct.pop(), dtype=torch.float32)
    if bits.numel() != length:
        raise GanprintError(f"{path}: fingerprints have {bits.numel()} bits; the decoder reads {length}")
    return bits


def gan_subject(spec: str, expected: str, decoder_spec: str | None = None, count: int = 256, seed: int = 0,
                device: str = "cpu", batch_size: int = 64, name: str | None = None) -> GeneratorSubject:  # fmt: skip
    """A GAN trained on data fingerprinted with one fingerprint (ganprint.gan; a run or model folder):
    fixed latents from `seed`, every image expected to carry `expected` (bits, hex, or the training
    set's embedded_fingerprints.txt), read by the codec that fingerprinted the data (default: the
    shipped codec). Model attacks perturb the generator."""
    from ..codec.importing import load_codec
    from ..decoders import describe_codec
    from ..gan.network import GanNetwork
    from ..pretrained import CODEC_32, FIXED_RESOLUTION_CODECS

    net = GanNetwork.from_pretrained(spec, device=device)
    # the shipped codec of the GAN's resolution (else codec-32, and the check below says why not)
    decoder_spec = decoder_spec or FIXED_RESOLUTION_CODECS.get(net.config.resolution, CODEC_32)
    codec = load_codec(decoder_spec, device=device)
    if net.config.resolution != codec.config.resolution:
        raise GanprintError(f"{spec}: makes {net.config.resolution} px images; the codec {decoder_spec} reads "
                            f"{codec.config.resolution} px")  # fmt: skip
    length = codec.config.fingerprint_length
    fingerprint = _one_fingerprint(expected, length)
    z = torch.randn(count, net.config.z_dim, generator=torch.Generator().manual_seed(seed))

    @torch.no_grad()
    def generate(G: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        G.eval()
        dev = next(G.parameters()).device
        out = [((G(z[s : s + batch_size].to(dev), None, noise_mode="const") + 1) / 2).clamp(0, 1).cpu()
               for s in range(0, count, batch_size)]  # fmt: skip
        return torch.cat(out), fingerprint.expand(count, -1)

    info = {"resolution": net.config.resolution, "images": count, "decoder": str(decoder_spec)}
    subject = GeneratorSubject(name or subject_name(spec), net.G, generate,
                               lambda images: codec.decode_logits(images, batch_size), length, info=info)  # fmt: skip
    subject.null = calibrated_null(describe_codec(decoder_spec, codec))
    return subject
