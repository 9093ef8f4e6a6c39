"""Pure-PyTorch math of the LeCam regulariser (Tseng et al. 2021, Eq. 3; released `stylegan2/lecam_loss.py`).
Nothing here imports upstream code."""

import torch

FORMS = ('released', 'paper')


def lecam_penalty(real_logits, gen_logits, ema_real, ema_fake, form='released'):
    """R_LC = mean((D(x) - a_F)^2) + mean((D(G(z)) - a_R)^2) with a_R, a_F the moving averages of D's real and fake
    outputs. 'released' (the authors' StyleGAN2 and BigGAN code) squares only the one-sided excess:
    mean(relu(D(x) - a_F)^2) + mean(relu(a_R - D(G(z)))^2); 'paper' is Eq. 3 as written. An empty batch adds 0."""
    real_excess = real_logits - ema_fake
    fake_excess = ema_real - gen_logits
    if form == 'released':
        real_excess, fake_excess = real_excess.relu(), fake_excess.relu()
    return sum(excess.square().sum() / max(excess.numel(), 1) for excess in (real_excess, fake_excess))


class ZeroDebiasedAverage:
    """TensorFlow's `assign_moving_average(decay, zero_debias=True)`, as the released StyleGAN2 code uses it: the
    biased average b <- b - (b - x)(1 - decay) from b = 0, read as b / (1 - decay^steps), so the first update gives
    x exactly. Float64 scalar tensors on the device of the values it averages; no host sync."""

    def __init__(self, decay):
        self.decay = float(decay)
        self.biased = torch.zeros([], dtype=torch.float64)
        self.steps = torch.zeros([], dtype=torch.float64)

    def update(self, total, count):
        """Average in the mean total / count (tensors, detached); a count of 0 (an empty batch) leaves the average
        as it is. Returns the debiased average as float32 (0 before the first update)."""
        total, count = total.detach().to(torch.float64), count.detach().to(torch.float64)
        self.biased, self.steps = self.biased.to(total.device), self.steps.to(total.device)
        moved = count > 0
        value = total / count.clamp(min=1)
        self.biased = torch.where(moved, self.biased - (self.biased - value) * (1 - self.decay), self.biased)
        self.steps = self.steps + moved
        debiased = self.biased / (1 - self.decay ** self.steps).clamp(min=1e-300)
        return torch.where(self.steps > 0, debiased, 0.0).to(torch.float32)

    def state_dict(self):
        return {'biased': self.biased.detach().cpu().clone(), 'steps': self.steps.detach().cpu().clone()}

    def load_state_dict(self, state):
        self.biased = state['biased'].clone().to(self.biased.device)
        self.steps = torch.as_tensor(state['steps'], dtype=torch.float64).clone().to(self.steps.device)
