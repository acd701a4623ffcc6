"""Fold a codec's fingerprint: trade bits for robustness without retraining.

A codec with L bits, folded by a factor k, becomes a codec with L/k bits whose fingerprint is written
k times over the old bit positions (bit j goes to positions j, j + L/k, j + 2L/k, ...) and read back
as the sum of the k copies' logits. Both halves are linear in the bits at the network's edges (the
encoder's first layer maps +-1 bits to a message map, the decoder's last layer maps features to
logits), so the folded networks are the same size and compute exactly that: the encoder's message
weights of the k copies are summed, and so are the decoder's read-out rows and biases.

Why it helps: the residual keeps its energy (the encoder scales it to a fixed RMS), so each remaining
bit gets k times the share, and the decoder averages k noisy readings. Measured on
codec-32-immunized (docs/robustness.md): JPEG 75 bit accuracy 0.81 at 100 bits, 0.88 folded to 50.
A short fine-tuning run from the folded codec (`codec train --init`) then adapts both networks.
"""

from __future__ import annotations

import dataclasses

from ..errors import GanprintError
from .codec import FingerprintCodec
from .networks import ConvDecoder, ResidualEncoder


def fold_codec(codec: FingerprintCodec, factor: int) -> FingerprintCodec:
    """A new codec of L/factor bits that behaves as `codec` given each bit `factor` times."""
    config = codec.config
    length = config.fingerprint_length
    if not isinstance(factor, int) or factor < 1:
        raise GanprintError(f"fold factor must be a positive whole number, got {factor!r}")
    if length % factor or length // factor < 1:
        raise GanprintError(f"cannot fold {length} bits by {factor}: the factor must divide the length")
    if config.arch != "ganprint":
        raise GanprintError(f"only ganprint-arch codecs can be folded, not {config.arch!r} ones")
    folded = FingerprintCodec(
        dataclasses.replace(config, fingerprint_length=length // factor),
        encoder=codec.encoder is not None,
        decoder=codec.decoder is not None,
    ).to(codec.device)
    state = {k: v.clone() for k, v in codec.state_dict().items()}
    if isinstance(codec.encoder, ResidualEncoder):
        # message(x) = W x + b with x the +-1 bits: repeating the bits = summing W's column blocks
        w = state["encoder.message.weight"]
        state["encoder.message.weight"] = w.view(w.shape[0], factor, length // factor).sum(1)
    if isinstance(codec.decoder, ConvDecoder):
        # logits = R h + c: summing the copies' logits = summing R's row blocks and c's blocks
        r, c = state["decoder.readout.weight"], state["decoder.readout.bias"]
        state["decoder.readout.weight"] = r.view(factor, length // factor, r.shape[1]).sum(0)
        state["decoder.readout.bias"] = c.view(factor, length // factor).sum(0)
    folded.load_state_dict(state)
    return folded.eval()
