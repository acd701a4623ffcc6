"""ganprint: fingerprint generative image models so that every image they generate can be detected
and attributed to its source.

    import ganprint
    codec = ganprint.load_codec()                          # the shipped codec-32 (or a name / path)
    fp = ganprint.random_fingerprints(1, codec.config.fingerprint_length)[0]
    marked = codec.embed(images, fp)                       # (N,3,32,32) tensors in [0,1], or PIL images
    result = codec.detect(marked, expected=fp)             # bits, p-values, verdicts
    verdicts = ganprint.attribute(marked, "fp.db")         # which registered model, per image
"""

from .attribution import Attribution, attribute
from .codec import CodecConfig, FingerprintCodec
from .codec.importing import codec_from_original, load_codec
from .detection import DEFAULT_FALSE_POSITIVE_RATE, DetectionResult
from .errors import BadImageError, GanprintError
from .registry import Registry
from .fingerprints import bits_to_hex, bits_to_str, parse_fingerprint, random_fingerprints

__version__ = "0.1.0"

__all__ = [
    "Attribution",
    "Registry",
    "attribute",
    "BadImageError",
    "CodecConfig",
    "DEFAULT_FALSE_POSITIVE_RATE",
    "DetectionResult",
    "FingerprintCodec",
    "GanprintError",
    "bits_to_hex",
    "bits_to_str",
    "codec_from_original",
    "load_codec",
    "parse_fingerprint",
    "random_fingerprints",
]
