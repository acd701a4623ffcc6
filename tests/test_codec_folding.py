import json
import re

import pytest
import torch

from ganprint.codec import CodecConfig, FingerprintCodec
from ganprint.codec.folding import fold_codec
from ganprint.errors import GanprintError


def test_folded_codec_computes_the_original_on_repeated_bits_and_summed_logits(tiny_codec):
    torch.manual_seed(1)
    images = torch.rand(5, 3, 32, 32)
    bits = torch.randint(0, 2, (5, 4)).float()
    folded = fold_codec(tiny_codec, 4)
    assert folded.config.fingerprint_length == 4 and tiny_codec.config.fingerprint_length == 16
    with torch.no_grad():
        # bit j of the folded codec sits at positions j, j+4, j+8, j+12 of the original's 16
        assert torch.allclose(folded.encoder(images, bits), tiny_codec.encoder(images, bits.repeat(1, 4)), atol=1e-6)
        logits = tiny_codec.decoder(images).view(5, 4, 4).sum(1)
        assert torch.allclose(folded.decoder(images), logits, atol=1e-5)
    # the original is left untouched
    assert tiny_codec.encoder.message.weight.shape[1] == 16


def test_folding_by_one_is_the_identity(tiny_codec):
    images = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(fold_codec(tiny_codec, 1).decoder(images), tiny_codec.decoder(images))


@pytest.mark.parametrize("factor", [3, 0, 32, 2.0])
def test_factors_that_do_not_divide_the_length_are_refused(tiny_codec, factor):
    with pytest.raises(GanprintError, match="fold"):
        fold_codec(tiny_codec, factor)


def test_original_arch_codecs_are_refused():
    codec = FingerprintCodec(CodecConfig(arch="original", resolution=32, fingerprint_length=8))
    with pytest.raises(GanprintError, match="only ganprint-arch"):
        fold_codec(codec, 2)


def test_folded_shipped_codec_reads_its_fingerprints_from_8bit_images_and_not_clean_ones():
    from ganprint.evaluation.subjects import load_images

    codec = FingerprintCodec.from_pretrained("codec-32-immunized")
    folded = fold_codec(codec, 2)
    images = load_images("samples", 32, 64)[1]
    bits = torch.randint(0, 2, (64, 50), generator=torch.Generator().manual_seed(0)).float()
    marked = (folded.embed(images, bits) * 255).round() / 255
    assert folded.detect(marked, bits).bit_accuracy.mean() > 0.99
    clean = folded.detect(images, bits)
    assert 0.35 < clean.bit_accuracy.mean() < 0.65 and not any(clean.detected)


def test_cli_fold_then_embed_with_refinement_then_detect(run_cli, photo_crops, tmp_path):
    folded = tmp_path / "folded"
    code, out, err = run_cli("codec", "fold", "codec-32-immunized", "--factor", "2", "--output", folded)
    assert code == 0 and "50 bits" in out, err
    code, out, _ = run_cli("codec", "info", folded)
    assert code == 0 and json.loads(out)["fingerprint_length"] == 50
    code, _, err = run_cli("codec", "fold", "codec-32-immunized", "--factor", "2", "--output", folded)
    assert code == 1 and "--overwrite" in err.strip().splitlines()[-1]
    code, _, err = run_cli("codec", "fold", "codec-32-immunized", "--factor", "3", "--output", tmp_path / "x")
    assert code == 1 and err.strip().splitlines()[-1].startswith("error: cannot fold 100 bits by 3")
    assert not (tmp_path / "x").exists()

    photos, marked = photo_crops(6), tmp_path / "marked"
    code, out, err = run_cli("codec", "embed", "--model", folded, "--data_dir", photos, "--output_dir", marked,
                             "--identical_fingerprints", "--refine-steps", "3", "-q")  # fmt: skip
    assert code == 0 and "fingerprinted 6 images" in out, err
    code, out, err = run_cli("codec", "detect", "--model", folded, "--data_dir", marked / "fingerprinted_images",
                             "--output_dir", tmp_path / "det", "--expected", marked / "embedded_fingerprints.txt",
                             "-q")  # fmt: skip
    assert code == 0, err
    assert float(re.search(r"mean bit accuracy (\d\.\d+)", out).group(1)) > 0.98
