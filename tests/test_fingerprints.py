import pytest
import torch

from ganprint.errors import GanprintError
from ganprint.fingerprints import (
    bits_to_hex,
    bits_to_str,
    parse_fingerprint,
    random_fingerprints,
    read_fingerprint_file,
    write_fingerprint_file,
)


def test_bits_and_hex_round_trip():
    g = torch.Generator().manual_seed(1)
    for length in (1, 4, 7, 100, 128):
        bits = random_fingerprints(1, length, g)[0]
        assert torch.equal(parse_fingerprint(bits_to_str(bits), length), bits)
        assert torch.equal(parse_fingerprint(bits_to_hex(bits), length), bits)
        assert torch.equal(parse_fingerprint("0x" + bits_to_hex(bits), length), bits)


def test_hex_is_most_significant_bit_first():
    assert bits_to_str(parse_fingerprint("0x8", 4)) == "1000"
    assert bits_to_str(parse_fingerprint("3", 2)) == "11"  # 2 bits from one hex digit


@pytest.mark.parametrize(
    "text,length",
    [("", 8), ("0101", 8), ("01z1", 4), ("0x1ff", 8), ("ff", 7), ("g" * 25, 100), ("10" * 51, 100)],
)
def test_bad_fingerprints_are_clear_errors(text, length):
    with pytest.raises(GanprintError):
        parse_fingerprint(text, length)


def test_file_format_is_sorted_name_space_bits(tmp_path):
    path = tmp_path / "embedded_fingerprints.txt"
    entries = {"b.png": torch.tensor([1.0, 0, 1]), "a.png": torch.tensor([0.0, 0, 1])}
    write_fingerprint_file(path, entries)
    assert path.read_text() == "a.png 001\nb.png 101\n"
    back = read_fingerprint_file(path)
    assert list(back) == ["a.png", "b.png"] and torch.equal(back["b.png"], entries["b.png"])


def test_file_with_name_containing_spaces(tmp_path):
    path = tmp_path / "f.txt"
    path.write_text("my photo.png 0110\n")
    assert list(read_fingerprint_file(path)) == ["my photo.png"]


@pytest.mark.parametrize("content", ["", "a.png\n", "a.png 0102\n", "a.png 01\nb.png 011\n"])
def test_malformed_fingerprint_files(tmp_path, content):
    path = tmp_path / "f.txt"
    path.write_text(content)
    with pytest.raises(GanprintError, match="f.txt"):
        read_fingerprint_file(path)

