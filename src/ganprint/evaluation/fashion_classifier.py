"""A Fashion-MNIST classifier for judging generated garments (`fashion-classifier-32`).

It answers two questions about a GAN trained on Fashion-MNIST that a random feature network cannot:
which class each generated image shows (class coverage: does the generator make sandals as often as
the data has them?), and where images lie in a feature space learned from the domain (Frechet
distance, precision and recall: `ganprint.evaluation.fidelity`). It is trained on the 60,000
training images with their labels (the same 28 -> 32 resize as the GANs' training set) and tested
on the 10,000 test images, which no GAN here trains on. Recipe: recipes/fashion-classifier-32/.

    net = FashionClassifier.from_pretrained("fashion-classifier-32")
    logits = net(images)            # (B, 10); images (B, 1 or 3, H, W) in [0, 1]
    features = net.features(images)  # (B, 128), the penultimate layer

Inputs of any size and 1 or 3 channels are averaged to grey and resized to 32x32 (bilinear,
antialiased), as generated PNGs would be read.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .. import checkpoint
from ..errors import GanprintError
from ..pretrained import resolve_model_dir

KIND = "ganprint.fashion_classifier"
CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
# Pixel mean and standard deviation of the 32 px training set, so the first layer sees unit-scale inputs.
_MEAN, _STD = 0.286, 0.353


@dataclass
class FashionClassifierConfig:
    resolution: int = 32
    channels: tuple[int, ...] = (16, 32, 64)  # two 3x3 convolutions per stage, 2x2 max-pool between
    feature_dim: int = 128
    num_classes: int = 10

    def to_dict(self) -> dict:
        return {"kind": KIND, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: dict, source: str = "config") -> "FashionClassifierConfig":
        if not isinstance(data, dict) or data.get("kind") != KIND:
            raise GanprintError(f"{source}: not a Fashion-MNIST classifier ({KIND})")
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: tuple(v) if k == "channels" else v for k, v in data.items() if k in names}
        try:
            return cls(**values)
        except TypeError as exc:
            raise GanprintError(f"{source}: bad classifier config ({exc})") from None


class FashionClassifier(nn.Module):
    def __init__(self, config: FashionClassifierConfig):
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        c_in = 1
        for i, c_out in enumerate(config.channels):
            if i:
                layers.append(nn.MaxPool2d(2))
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
                       nn.Conv2d(c_out, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]  # fmt: skip
            c_in = c_out
        self.trunk = nn.Sequential(*layers)
        self.embed = nn.Sequential(nn.Linear(c_in, config.feature_dim), nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(config.feature_dim, config.num_classes))

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 1 or 3, H, W) in [0, 1] (uint8 accepted) -> normalised grey (B, 1, R, R)."""
        if images.dim() != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"expected images (B, 1 or 3, H, W), got shape {tuple(images.shape)}")
        x = images.float() / 255 if images.dtype == torch.uint8 else images.float()
        x = x.mean(1, keepdim=True)
        r = self.config.resolution
        if x.shape[-2:] != (r, r):
            x = F.interpolate(x, size=(r, r), mode="bilinear", align_corners=False, antialias=True)
        return (x - _MEAN) / _STD

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.embed(self.trunk(self.prepare(images)).mean(dim=(2, 3)))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))

    def save_pretrained(self, directory: str | os.PathLike, extra: dict | None = None) -> Path:
        return checkpoint.save_pretrained(directory, {**self.config.to_dict(), **(extra or {})}, self.state_dict())

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike = "fashion-classifier-32",
                        device: str | torch.device = "cpu") -> "FashionClassifier":  # fmt: skip
        directory = resolve_model_dir(name_or_path)
        config = FashionClassifierConfig.from_dict(checkpoint.read_config(directory), str(directory / checkpoint.CONFIG_NAME))
        net = cls(config)
        checkpoint.load_state(net, checkpoint.read_weights(directory), str(directory / checkpoint.WEIGHTS_NAME))
        return net.to(device).eval()


# ----------------------------------------------------------------------------- training


def load_labelled(dataset: str | os.PathLike, progress: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """All images (N, 1, R, R) uint8 and labels (N,) of a labelled `ganprint dataset` (zip or folder)."""
    from ..data import pil_to_uint8
    from ..dataset_tool import open_dataset

    source, manifest = open_dataset(dataset)
    if manifest.labels is None:
        raise GanprintError(f"{dataset}: the dataset has no labels; make it with `ganprint dataset create-fashion-mnist`")
    images = [pil_to_uint8(source.image(i))[:1] for i in tqdm(range(len(source)), desc="read", disable=not progress)]
    return torch.stack(images), torch.tensor(manifest.labels)


@torch.no_grad()
def accuracy(net: FashionClassifier, images: torch.Tensor, labels: torch.Tensor, batch: int = 500) -> float:
    net.eval()
    hits = sum((net(images[i : i + batch]).argmax(1) == labels[i : i + batch]).sum().item()
               for i in range(0, len(images), batch))  # fmt: skip
    return hits / len(images)


def train_classifier(train: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor],
                     epochs: int = 5, batch: int = 128, lr: float = 2e-3, seed: int = 0,
                     config: FashionClassifierConfig | None = None, progress: bool = True) -> tuple[FashionClassifier, float]:  # fmt: skip
    """Train on (images uint8, labels) with mirroring and 2-px shifts; the network and its test accuracy."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    net = FashionClassifier(config or FashionClassifierConfig())
    images, labels = train
    steps = epochs * (len(images) // batch)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    bar = tqdm(total=steps, desc="train classifier", disable=not progress)
    for epoch in range(epochs):
        net.train()
        order = torch.randperm(len(images), generator=g)
        for k in range(len(images) // batch):
            idx = order[k * batch : (k + 1) * batch]
            x = images[idx].float() / 255
            flip = torch.rand(len(x), generator=g) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            dy, dx = torch.randint(-2, 3, (2,), generator=g).tolist()  # one shift per batch: cheap, enough
            x = torch.roll(F.pad(x, (2, 2, 2, 2)), (dy, dx), (2, 3))[..., 2:-2, 2:-2]
            loss = F.cross_entropy(net(x), labels[idx], label_smoothing=0.05)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update(1)
            bar.set_postfix(epoch=epoch, loss=f"{loss.item():.3f}")
    bar.close()
    return net.eval(), accuracy(net, *test)
