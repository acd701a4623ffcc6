"""The fidelity instruments: fashion-classifier-32 and the measures of ganprint.evaluation.fidelity."""

import pytest
import torch
from helpers import fashion_test_images

from ganprint.errors import GanprintError
from ganprint.evaluation.fashion_classifier import (
    CLASS_NAMES,
    FashionClassifier,
    FashionClassifierConfig,
    accuracy,
    train_classifier,
)
from ganprint.evaluation.fidelity import compare, image_features


def test_shipped_classifier_on_test_images_it_never_saw():
    net = FashionClassifier.from_pretrained("fashion-classifier-32")
    images, labels = fashion_test_images()
    acc = accuracy(net, images, labels)
    assert acc >= 0.88, acc
    # Mirrored garments are still garments (the generators' training may mirror).
    assert accuracy(net, images.flip(-1), labels) >= 0.85
    # Inputs as 1-channel float at another size are read the same way.
    grey = images[:, :1].float() / 255
    assert (net(grey).argmax(1) == net(images).argmax(1)).float().mean() >= 0.99


def test_config_round_trip_and_refusals(tmp_path):
    cfg = FashionClassifierConfig(channels=(4, 8), feature_dim=16)
    net = FashionClassifier(cfg)
    net.save_pretrained(tmp_path / "m", extra={"training": {"epochs": 0}})
    again = FashionClassifier.from_pretrained(tmp_path / "m")
    x = torch.rand(3, 3, 32, 32)
    net.eval()
    assert torch.allclose(net(x), again(x)) and again.config == cfg
    (tmp_path / "m" / "config.json").write_text('{"kind": "ganprint.gan"}')
    with pytest.raises(GanprintError, match="not a Fashion-MNIST classifier"):
        FashionClassifier.from_pretrained(tmp_path / "m")
    with pytest.raises(ValueError, match="expected images"):
        net(torch.rand(2, 2, 32, 32))


def test_training_learns_a_separable_task():
    g = torch.Generator().manual_seed(0)

    stripes = (torch.arange(32) // 2 % 2).float() * 150  # 2-px stripes

    def make(n):  # class 0: horizontal stripes, class 1: vertical stripes, in noise
        labels = torch.randint(0, 2, (n,), generator=g)
        x = torch.rand(n, 1, 32, 32, generator=g) * 100
        x[labels == 0] += stripes[:, None]
        x[labels == 1] += stripes[None, :]
        return x.clamp(0, 255).to(torch.uint8), labels

    net, acc = train_classifier(make(512), make(256), epochs=2, batch=64, lr=5e-3, seed=0, progress=False,
                                config=FashionClassifierConfig(channels=(4, 8), feature_dim=16, num_classes=2))  # fmt: skip
    assert acc >= 0.95, acc


def test_fidelity_measures_see_a_missing_class_and_identical_sets():
    net = FashionClassifier.from_pretrained("fashion-classifier-32")
    images, _ = fashion_test_images()
    real = image_features([images[:250]], net, 250, prdc_count=250)
    same = compare(real, image_features([images[:250]], net, 250, prdc_count=250), 250)
    assert same.frechet_stand_in < 1e-6 and same.frechet_classifier < 1e-6
    assert same.worst_class_factor == pytest.approx(1.0) and same.precision == 1.0 and same.recall == 1.0
    # The other 250 test images: close, not identical; every class present.
    other = compare(real, image_features([images[250:]], net, 250, prdc_count=250), 250)
    assert 0 < other.frechet_classifier and other.worst_class_factor < 2.0
    # Without the class the classifier most often predicts as sandals, that class is missing: an infinite factor.
    predicted = net(images[250:]).argmax(1)
    sandal = CLASS_NAMES.index("Sandal")
    no_sandals = images[250:][predicted != sandal]
    missing = compare(real, image_features([no_sandals], net, len(no_sandals), prdc_count=250), len(no_sandals))
    assert missing.worst_class == "Sandal" and missing.worst_class_factor == float("inf")
    assert missing.frechet_classifier > other.frechet_classifier
    with pytest.raises(GanprintError, match="only 250 images"):
        image_features([images[:250]], net, 300)


def test_generated_batches_of_a_scalable_network_count_the_bits_its_decoder_reads():
    from ganprint.evaluation.fidelity import generator_batches
    from ganprint.scalable.metrics import BitCounter, uint8_bit_accuracy

    counter = BitCounter()
    batches = list(generator_batches("scalable-32", 40, seed=3, batch_size=16, counter=counter))
    assert [len(b) for b in batches] == [16, 16, 8] and batches[0].dtype == torch.uint8
    assert counter.bits == 40 * 128 and uint8_bit_accuracy(counter) > 0.97  # the shipped network reads its codes
    assert uint8_bit_accuracy(BitCounter()) is None
    gan = BitCounter()
    list(generator_batches("gan-32", 8, counter=gan))
    assert gan.bits == 0 and uint8_bit_accuracy(gan) is None  # a GAN has no bits to read
