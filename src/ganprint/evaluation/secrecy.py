"""Secrecy: can an adversary tell fingerprinted images from clean ones?

A small CNN (a steganalysis-style classifier) is trained to separate clean from fingerprinted images
and scored on a held-out split. Held-out accuracy near 0.5 means the fingerprint is hard to see; the
p-value says how surely the accuracy is above chance (one-sided binomial, ganprint.stats).

Splits are by source image: when each clean image has its fingerprinted twin (`paired`), both go to
the same split, so the classifier cannot score by remembering image content.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from ..data import split_indices
from ..errors import GanprintError
from ..stats import p_value


@dataclass
class SecrecyOptions:
    steps: int = 1000  # Adam steps of the classifier
    batch_size: int = 64  # images per step (half clean, half fingerprinted)
    lr: float = 1e-3
    channels: int = 32  # classifier width
    test_fraction: float = 0.3  # held-out share of the images
    seed: int = 0


@dataclass
class SecrecyResult:
    train_images: int
    test_images: int
    train_accuracy: float
    test_accuracy: float  # the figure to read: 0.5 = the fingerprint cannot be seen
    test_correct: int
    p_value: float  # P[accuracy this high | the classifier guesses]
    steps: int

    def to_dict(self) -> dict:
        return asdict(self)


class SteganalysisNet(nn.Module):
    """Full-resolution convolutions (a fingerprint lives in fine detail), then stride-2 convolutions and
    global average and standard-deviation pooling, so any image size works."""

    def __init__(self, channels: int = 32):
        super().__init__()
        c = channels
        self.body = nn.Sequential(
            nn.Conv2d(3, c, 3, padding=1), nn.SiLU(),
            nn.Conv2d(c, c, 3, padding=1), nn.SiLU(),
            nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(2 * c, 2 * c, 3, stride=2, padding=1), nn.SiLU(),
        )  # fmt: skip
        self.head = nn.Linear(4 * c, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        h = self.body(2 * images - 1).flatten(2)
        return self.head(torch.cat([h.mean(2), h.std(2)], dim=1)).squeeze(1)


def _split(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    train, test = split_indices(n, fraction, max_val=n, seed=seed)
    if not train or not test:
        raise GanprintError(f"secrecy test needs at least 2 images per class, got {n}")
    return train, test


@torch.no_grad()
def _accuracy(net: nn.Module, clean: torch.Tensor, marked: torch.Tensor, device) -> tuple[int, int]:
    net.eval()
    correct = total = 0
    for images, label in ((clean, 0), (marked, 1)):
        for s in range(0, len(images), 256):
            logits = net(images[s : s + 256].to(device))
            correct += int(((logits > 0).long() == label).sum())
            total += len(logits)
    net.train()
    return correct, total


def secrecy_test(
    clean: torch.Tensor,
    marked: torch.Tensor,
    options: SecrecyOptions | None = None,
    paired: bool = True,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> SecrecyResult:
    """Train the classifier on clean (label 0) vs fingerprinted (label 1) images (N,3,H,W) in [0,1]."""
    o = options or SecrecyOptions()
    if clean.shape[1:] != marked.shape[1:]:
        raise GanprintError(f"clean and fingerprinted images differ in size: {tuple(clean.shape[1:])} vs {tuple(marked.shape[1:])}")
    if paired and len(clean) != len(marked):
        raise GanprintError("paired secrecy test needs as many clean as fingerprinted images")
    if paired:
        train_c, test_c = _split(len(clean), o.test_fraction, o.seed)
        train_m, test_m = train_c, test_c
    else:
        train_c, test_c = _split(len(clean), o.test_fraction, o.seed)
        train_m, test_m = _split(len(marked), o.test_fraction, o.seed + 1)
    tc, tm = clean[train_c].float(), marked[train_m].float()
    hc, hm = clean[test_c].float(), marked[test_m].float()

    torch.manual_seed(o.seed)
    device = torch.device(device)
    net = SteganalysisNet(o.channels).to(device).train()
    opt = torch.optim.Adam(net.parameters(), lr=o.lr)
    g = torch.Generator().manual_seed(o.seed + 1)
    half = max(1, o.batch_size // 2)
    for _ in tqdm(range(o.steps), desc="secrecy", unit="step", disable=not progress, dynamic_ncols=True):
        ic = torch.randint(0, len(tc), (half,), generator=g)
        im = ic if paired else torch.randint(0, len(tm), (half,), generator=g)
        flip = torch.rand(2 * half, generator=g) < 0.5  # mirror images: content-independent evidence only
        x = torch.cat([tc[ic], tm[im]])
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x).to(device)
        y = torch.cat([torch.zeros(half), torch.ones(half)]).to(device)
        loss = F.binary_cross_entropy_with_logits(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    train_correct, train_total = _accuracy(net, tc, tm, device)
    correct, total = _accuracy(net, hc, hm, device)
    return SecrecyResult(
        train_images=train_total, test_images=total, train_accuracy=train_correct / train_total,
        test_accuracy=correct / total, test_correct=correct, p_value=p_value(correct, total), steps=o.steps,
    )  # fmt: skip
