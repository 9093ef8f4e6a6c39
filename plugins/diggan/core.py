"""Pure-PyTorch math of DigGAN (Fang, Sun and Schwing): the gradient gap regulariser
R(D, x_R, x_F) = (||dD/dx_R||_2 - ||dD/dx_F||_2)^2 and the released code's optional norm smoothing.
Nothing here imports upstream code."""

from plugins.common.options import check_range


def gradient_gap_penalty(real_norms, fake_norms):
    """DigGAN's R averaged over the batch: mean_i (real_norms[i] - fake_norms[i])^2, pairing the i-th real with the
    i-th fake as the released code does; both must be [N] with the same N."""
    if real_norms.ndim != 1 or real_norms.shape != fake_norms.shape:
        raise ValueError(f'real_norms and fake_norms must both be shaped [N] with the same N, '
                         f'got {list(real_norms.shape)} and {list(fake_norms.shape)}')
    return (real_norms - fake_norms).square().mean()


class NormSmoother:
    """The released code's optional smoothing of one stream of per-sample norms (use one smoother for real norms and
    one for fake norms): smooth(g) = (1 - previous_weight) * g + previous_weight * s_prev, where s_prev is the
    previous call's smoothed output, detached (so it is an exponential moving average per batch position; 0.5 and
    0.5 in the released code). The first call, and the first after construction or `load_state_dict` with no
    previous norms, returns g unchanged. Gradient flows only through the current g."""

    def __init__(self, previous_weight=0.5):
        self.previous_weight = float(check_range('previous_weight', previous_weight, 0, 1, high_inclusive=False))
        self.previous = None

    def smooth(self, norms):
        if self.previous is not None:
            if self.previous.shape != norms.shape:
                raise ValueError(f'norms must keep the shape of the previous call, {list(self.previous.shape)}, '
                                 f'got {list(norms.shape)}')
            norms = (1 - self.previous_weight) * norms + self.previous_weight * self.previous.to(norms.device)
        self.previous = norms.detach()
        return norms

    def state_dict(self):
        return {'previous': self.previous}

    def load_state_dict(self, state):
        self.previous = state['previous']
