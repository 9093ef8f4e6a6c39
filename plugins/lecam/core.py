"""Pure-PyTorch math of the LeCam regulariser (Tseng et al. 2021, Eq. 3; released `stylegan2/lecam_loss.py`).
Nothing here imports upstream code."""

import torch

FORMS = ('released', 'paper')


def lecam_penalty(real_logits, gen_logits, ema_real, ema_fake, form='released'):
    """R_LC = mean((D(x) - a_F)^2) + mean((D(G(z)) - a_R)^2) with a_R, a_F the moving averages of D's real and fake
    outputs. 'released' (the authors' StyleGAN2 and BigGAN code) squares only the one-sided excess:
    mean(relu(D(x) - a_F)^2) + mean(relu(a_R - D(G(z)))^2); 'paper' is Eq. 3 as written."""
    real_excess = real_logits - ema_fake
    fake_excess = ema_real - gen_logits
    if form == 'released':
        real_excess, fake_excess = real_excess.relu(), fake_excess.relu()
    return real_excess.square().mean() + fake_excess.square().mean()


class ZeroDebiasedAverage:
    """TensorFlow's `assign_moving_average(decay, zero_debias=True)`, as the released StyleGAN2 code uses it: the
    biased average b <- b - (b - x)(1 - decay) from b = 0, read as b / (1 - decay^steps), so the first update gives
    x exactly. A float64 scalar tensor on the device of the values it averages."""

    def __init__(self, decay):
        self.decay = float(decay)
        self.biased = torch.zeros([], dtype=torch.float64)
        self.steps = 0

    def update(self, value):
        """Average in a scalar tensor (detached); returns the debiased average as float32, without a host sync."""
        value = value.detach().to(torch.float64)
        self.biased = self.biased.to(value.device)
        self.biased = self.biased - (self.biased - value) * (1 - self.decay)
        self.steps += 1
        return (self.biased / (1 - self.decay ** self.steps)).to(torch.float32)

    def state_dict(self):
        return {'biased': self.biased.detach().cpu().clone(), 'steps': self.steps}

    def load_state_dict(self, state):
        self.biased = state['biased'].clone().to(self.biased.device)
        self.steps = int(state['steps'])
