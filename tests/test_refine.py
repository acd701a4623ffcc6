import pytest
import torch

from ganprint.attacks import parse_attack_levels
from ganprint.codec import CodecConfig, FingerprintCodec
from ganprint.codec.refine import Refiner
from ganprint.errors import GanprintError


def _rms(x: torch.Tensor) -> torch.Tensor:
    return x.pow(2).mean(dim=(1, 2, 3)).sqrt()


@pytest.mark.parametrize("mean_preserving", [False, True])
def test_refined_residual_stays_in_the_encoders_budget_and_in_range(mean_preserving):
    torch.manual_seed(0)
    config = CodecConfig(resolution=32, fingerprint_length=16, channels=8, message_channels=2,
                         residual_rms=0.03, mean_preserving=mean_preserving)  # fmt: skip
    codec = FingerprintCodec(config).eval()
    images = torch.rand(4, 3, 32, 32)
    images[0] = 0.0  # a black image: clipping eats half of any residual
    bits = torch.randint(0, 2, (4, 16)).float()
    marked = codec.embed(images, bits)
    refined = codec.embed(images, bits, refine=Refiner(steps=5, lr=0.05))
    assert not torch.allclose(refined, marked)
    assert refined.min() >= 0 and refined.max() <= 1
    assert torch.all(_rms(refined - images) <= _rms(marked - images) + 1e-6)
    if mean_preserving:
        assert (refined - images).mean(dim=(2, 3)).abs().max() < 1e-5


def test_zero_steps_give_the_encoders_output_and_runs_repeat_exactly(tiny_codec):
    images, bits = torch.rand(3, 3, 32, 32), torch.randint(0, 2, (3, 16)).float()
    assert torch.equal(tiny_codec.embed(images, bits, refine=0), tiny_codec.embed(images, bits))
    a = tiny_codec.embed(images, bits, refine=Refiner(steps=3, seed=7))
    b = tiny_codec.embed(images, bits, refine=Refiner(steps=3, seed=7))
    assert torch.equal(a, b)


def test_refining_makes_the_shipped_codec_survive_jpeg_better_at_the_same_psnr():
    from ganprint.evaluation.subjects import load_images

    codec = FingerprintCodec.from_pretrained("codec-32-immunized")
    images = load_images("samples", 32, 32)[1]
    bits = torch.randint(0, 2, (32, 100), generator=torch.Generator().manual_seed(0)).float()
    jpeg = parse_attack_levels("jpeg:75")[0]

    def jpeg_accuracy(marked):
        attacked = jpeg.apply((marked * 255).round() / 255)
        return codec.detect(attacked, bits).bit_accuracy.mean().item()

    marked = codec.embed(images, bits)
    refined = codec.embed(images, bits, refine=12)
    assert jpeg_accuracy(refined) > jpeg_accuracy(marked) + 0.02
    assert _rms(refined - images).mean() <= _rms(marked - images).mean() + 1e-6
    assert codec.detect(refined, bits).bit_accuracy.mean() > 0.99
    assert not any(codec.detect(images, bits).detected)  # the decoder is untouched: clean stays clean


def test_bad_refine_settings_and_a_codec_without_decoder_are_refused(tiny_config):
    with pytest.raises(GanprintError, match="whole number"):
        Refiner(steps=-1)
    with pytest.raises(GanprintError, match="unknown perturbation"):
        Refiner(augment="sharpen")
    encoder_only = FingerprintCodec(tiny_config, decoder=False)
    with pytest.raises(GanprintError, match="needs the codec's decoder"):
        encoder_only.embed(torch.rand(1, 3, 32, 32), torch.zeros(16), refine=2)


def test_evaluation_subject_refines_after_its_encoder_and_says_so(tiny_codec):
    from ganprint.evaluation import CodecSubject

    images = torch.rand(4, 3, 32, 32)
    plain = CodecSubject(tiny_codec, images, "plain", seed=1)
    refined = CodecSubject(tiny_codec, images, "refined", seed=1, refine_steps=2)
    assert torch.equal(plain.bits, refined.bits)
    assert not torch.equal(plain.sample().images, refined.sample().images)
    assert refined.describe()["refine_steps"] == 2 and plain.describe()["refine_steps"] == 0


def test_cli_evaluate_refuses_refine_steps_before_a_subcommand(run_cli, tmp_path):
    code, _, err = run_cli("evaluate", "--refine-steps", "3", "folder", tmp_path, "--expected", "0101",
                           "--output_dir", tmp_path / "out")  # fmt: skip
    assert code != 0 and "--refine-steps is for --codec grids, not for `folder`" in err
