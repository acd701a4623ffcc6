"""The scalable-fingerprinting part of `ganprint demo`, on tiny random networks."""

import re

import pytest
import torch
from PIL import Image

from ganprint.data import load_image, pil_to_tensor
from ganprint.demo import SCALABLE_MODELS, run_demo
from ganprint.fingerprints import parse_fingerprint
from ganprint.scalable.config import ScalableConfig
from ganprint.scalable.export import export_to_folder
from ganprint.scalable.network import ScalableNetwork, quantize_unit

# 64 bits: with 3 fingerprints at FPR 1e-6 an image needs >= 54 matching bits to be attributed
# (16 bits could never reach the corrected p-value).
TINY = dict(resolution=16, fingerprint_size=64, z_dim=8, w_dim=16, g_channels=(16, 16, 8), d_channels=(16, 16, 8),
            mapping_layers=1, mbstd_group=2)  # fmt: skip
PER_MODEL = 8
ROW = re.compile(r"^(model-[A-C]/image-\d\d\.png)\s+([A-C])\s+(\S+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+(\S+)$")


@pytest.fixture(scope="module")
def tiny_network(tmp_path_factory):
    """A random scalable network (generator + decoder) saved as a model folder."""
    torch.manual_seed(0)
    return ScalableNetwork(ScalableConfig(**TINY)).eval().save_pretrained(tmp_path_factory.mktemp("net") / "tiny")


def _quiet_demo(out, network, **kwargs):
    lines = []
    figures = run_demo(out, count=2, scalable_network=str(network), echo=lines.append, device="cpu", **kwargs)
    return figures, lines


def test_cli_demo_with_a_random_network_reports_what_the_pngs_carry(tiny_network, tmp_path, run_cli):
    out = tmp_path / "demo"
    code, stdout, stderr = run_cli("demo", "--output-dir", out, "--images", 2, "--device", "cpu",
                                   "--scalable-network", tiny_network)  # fmt: skip
    assert code == 0, stderr
    assert "fingerprinted: mean bit accuracy" in stdout  # the codec part ran first
    for label in SCALABLE_MODELS:
        assert sorted(p.name for p in (out / "scalable_images" / f"model-{label}").iterdir()) == [
            f"image-{j:02d}.png" for j in range(PER_MODEL)
        ]
    picture = Image.open(out / "scalable-demo.png")
    assert picture.width > picture.height > 100  # 8 images wide, 3 rows high

    hexes = dict(re.findall(r"^model ([A-C]): ([0-9a-f]+)$", stdout, re.M))
    fingerprints = {label: parse_fingerprint(h, TINY["fingerprint_size"]) for label, h in hexes.items()}
    assert len(fingerprints) == 3 and len({h for h in hexes.values()}) == 3
    rows = [m.groups() for m in map(ROW.match, stdout.splitlines()) if m]
    assert len(rows) == 3 * PER_MODEL

    # What the table says each PNG carries is what the decoder reads from the file.
    net = ScalableNetwork.from_pretrained(tiny_network)
    names = [r[0] for r in rows]
    images = torch.stack([pil_to_tensor(load_image(out / "scalable_images" / n)) for n in names])
    bits = (net.decode_logits(images) > 0).float()
    for (name, source, attributed, own, other, _, verdict), decoded in zip(rows, bits):
        assert name.startswith(f"model-{source}/")
        assert float(own) == pytest.approx((decoded == fingerprints[source]).float().mean().item(), abs=6e-4)
        best = max((decoded == fingerprints[k]).float().mean().item() for k in fingerprints if k != source)
        assert float(other) == pytest.approx(best, abs=6e-4)
        # an untrained decoder reads chance: nothing reaches the 54 bits attribution needs
        assert attributed == "-" and verdict == "not-fingerprinted"
    match = re.search(r"attribution: (\d+)/(\d+) images attributed .*accuracy ([\d.]+)\), (\d+) to another", stdout)
    assert match is not None and match.groups() == ("0", "24", "0.000", "0")


def _reader_of_the_generated_code(monkeypatch, shift: int):
    """Replace the decoder by one that reads the code each image was generated with perfectly (found
    by matching the image read back against the generated ones), or, with shift 1, the code of the
    next model."""
    made = []  # per generate call (one model): its images, as 8-bit PNGs hold them, and its code
    generate = ScalableNetwork.generate

    def spy(self, z, c=None, **kwargs):
        images = generate(self, z, c, **kwargs)
        made.append((quantize_unit(images.cpu()).flatten(1), c[0].cpu().float()))
        return images

    def decode_logits(self, images, batch_size=256):
        known = torch.cat([m[0] for m in made])
        call = torch.cdist(images.flatten(1), known).argmin(dim=1) // PER_MODEL
        codes = torch.stack([made[(int(k) + shift) % len(made)][1] for k in call])
        return codes * 16 - 8

    monkeypatch.setattr(ScalableNetwork, "generate", spy)
    monkeypatch.setattr(ScalableNetwork, "decode_logits", decode_logits)
    return made


def test_a_perfect_decoder_attributes_every_image_to_its_model(tiny_network, tmp_path, monkeypatch):
    made = _reader_of_the_generated_code(monkeypatch, shift=0)
    figures, lines = _quiet_demo(tmp_path, tiny_network)
    result = figures["scalable"]
    assert len(made) == 3 and result["skipped"] is None
    assert [parse_fingerprint(h, 64).tolist() for h in result["fingerprints"].values()] == [m[1].tolist() for m in made]
    assert result["attribution_accuracy"] == 1.0 and result["attributed_correctly"] == 24
    assert result["verdicts"] == {"attributed": 24, "fingerprinted-unknown": 0, "not-fingerprinted": 0,
                                  "not-enough-signal": 0}
    assert all(r["attributed_to"] == r["model"] and r["bit_accuracy"] == 1.0 for r in result["per_image"])
    assert [r["model"] for r in result["per_image"]] == [m for m in SCALABLE_MODELS for _ in range(PER_MODEL)]
    # 64 matching bits of 64: p = 2^-64, times 3 fingerprints
    assert all(r["neg_log10_p"] == pytest.approx(64 * 0.30103 - 0.47712, abs=0.01) for r in result["per_image"])
    assert 0.3 < result["best_other_bit_accuracy"] < 0.8  # random fingerprints share about half their bits
    assert any("attribution: 24/24 images attributed to the model that made them" in line for line in lines)
    assert (tmp_path / "scalable-demo.png").is_file()


def test_an_image_read_as_another_models_code_counts_as_misattributed(tiny_network, tmp_path, monkeypatch):
    _reader_of_the_generated_code(monkeypatch, shift=1)
    result = _quiet_demo(tmp_path, tiny_network)[0]["scalable"]
    assert result["attribution_accuracy"] == 0.0 and result["misattributed"] == 24
    nxt = {a: b for a, b in zip(SCALABLE_MODELS, SCALABLE_MODELS[1:] + SCALABLE_MODELS[:1])}
    for row in result["per_image"]:
        assert row["attributed_to"] == nxt[row["model"]] and row["best_other_bit_accuracy"] == 1.0


@pytest.mark.parametrize("case", ["missing", "not-shipped", "exported"])
def test_without_a_usable_network_the_codec_part_runs_and_one_line_says_why(case, tiny_network, tmp_path, run_cli,
                                                                           monkeypatch):  # fmt: skip
    monkeypatch.chdir(tmp_path)
    network, why = {
        "missing": (str(tmp_path / "no-such-net"), "no-such-net: no such model folder or shipped model"),
        "not-shipped": ("scalable-32", "the shipped network scalable-32 is not part of this ganprint build"),
        "exported": (str(tmp_path / "exported"), "has no decoder"),
    }[case]
    if case == "not-shipped":  # a build without the shipped network
        monkeypatch.setattr("ganprint.pretrained.shipped_models", lambda: ["codec-32"])
    if case == "exported":
        export_to_folder(ScalableNetwork.from_pretrained(tiny_network), "0" * 64, network)
    code, stdout, stderr = run_cli("demo", "--output-dir", tmp_path / "out", "--images", 2, "--device", "cpu",
                                   "--scalable-network", network)  # fmt: skip
    assert code == 0, stderr
    assert "detected 2/2 at FPR" in stdout  # the codec part
    skipped = [line for line in stdout.splitlines() if "scalable" in line]
    assert len(skipped) == 1 and skipped[0].startswith("scalable fingerprinting: skipped (") and why in skipped[0]
    assert not (tmp_path / "out" / "scalable_images").exists() and not (tmp_path / "out" / "scalable-demo.png").exists()
