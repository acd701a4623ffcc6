"""When the codec trades detectability for fidelity, driven by smoothed (not single-batch) accuracy.

Two curricula share one object:
- ganprint arch: the residual starts loud (`start_rms`, ~20 dB PSNR) so the decoder learns at once,
  and steps down by `anneal_factor` each time the smoothed bit accuracy reaches `anneal_accuracy`,
  until it reaches the target `residual_rms`.
- original arch (ICCV 2021 recipe): the image loss weight stays 0 until the smoothed accuracy passes
  `warmup_accuracy`, waits `l2_loss_await` steps, then ramps linearly to `l2_loss_scale` over
  `l2_loss_ramp` steps. The original switched on a single batch above 0.9; one lucky batch could
  start the ramp before the decoder had learned anything, so here the switch reads an EMA.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class FidelitySchedule:
    smoothing: float = 0.95  # EMA factor of the batch bit accuracy (~20-batch memory)
    warmup_accuracy: float = 0.9  # smoothed accuracy that switches the image loss on
    l2_loss_await: int = 1000  # steps between the switch and the start of the ramp
    l2_loss_ramp: int = 3000  # steps of the linear ramp
    l2_loss_scale: float = 0.0  # final image-loss weight
    start_rms: float | None = None  # residual RMS at step 0 (None: no annealing)
    target_rms: float | None = None  # residual RMS to anneal down to
    anneal_accuracy: float = 0.995  # smoothed accuracy that triggers one step down
    anneal_factor: float = 0.9  # multiplicative step of the residual RMS
    # state
    accuracy_ema: float = 0.5
    rms: float | None = None
    image_loss_on_step: int = -1
    target_reached_step: int = -1  # first step at the target RMS; the learning rate decays after it

    def __post_init__(self):
        if self.rms is None:
            self.rms = self.start_rms

    def update(self, step: int, batch_accuracy: float) -> None:
        self.accuracy_ema = self.smoothing * self.accuracy_ema + (1 - self.smoothing) * batch_accuracy
        if self.image_loss_on_step < 0 and self.accuracy_ema > self.warmup_accuracy:
            self.image_loss_on_step = step
        if self.rms is not None and self.rms > self.target_rms and self.accuracy_ema >= self.anneal_accuracy:
            self.rms = max(self.target_rms, self.rms * self.anneal_factor)
            # the next step down needs fresh evidence at the new strength, not the old average
            self.accuracy_ema = self.anneal_accuracy - 0.005
            if self.rms <= self.target_rms:
                self.target_reached_step = step

    def image_loss_weight(self, step: int) -> float:
        if self.image_loss_on_step < 0 or self.l2_loss_scale == 0:
            return 0.0
        ramp_start = self.image_loss_on_step + self.l2_loss_await
        if step < ramp_start:
            return 0.0
        return self.l2_loss_scale * min(1.0, (step - ramp_start + 1) / max(1, self.l2_loss_ramp))

    def lr_factor(self, step: int, total: int, final_factor: float) -> float:
        """1 until the residual reaches its target, then linear down to `final_factor` at `total`:
        the decoder settles at the final strength."""
        if self.rms is None or self.target_reached_step < 0 or total <= self.target_reached_step:
            return 1.0
        t = (step - self.target_reached_step) / (total - self.target_reached_step)
        return 1.0 - (1.0 - final_factor) * min(1.0, max(0.0, t))

    @property
    def at_target(self) -> bool:
        return self.rms is None or self.rms <= self.target_rms

    def state_dict(self) -> dict:
        return asdict(self)

    def load_state_dict(self, state: dict) -> None:
        for key, value in state.items():
            setattr(self, key, value)
