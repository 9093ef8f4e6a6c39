"""ADA's overfitting heuristic r_t (Karras et al. 2020), shared by ATop-k (Eq. 10) and ANDA to drive a probability p."""

import torch
import torch.distributed

from plugins.common.options import check_int_range, check_range


def distributed_world_size():
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size()
    return 1


class OverfitHeuristic(torch.nn.Module):
    """eta = E[sign(D_real logits)] (ATop-k Eq. 10, ADA's r_t) over every real logit seen since the last adjustment,
    and the probability p it drives: p starts at 0, and each adjustment adds
    sign(eta - target) * batch_size * interval / (speed_kimg * 1000), then clamps p to [0, 1].

    The owner calls `accumulate` with each real-logit tensor D produces, and `adjust` once every `interval`
    minibatches on every rank at the same time (it all-reduces the pending [sum, count] when torch.distributed is
    initialised with more than one rank). Nothing here reads a value back to the host.

    Choices where the papers are silent or differ: sign(0) = +1 as Eq. 10 defines it (upstream's torch.sign gives
    0; only exact zeros differ). ATop-k and upstream ADA clamp p only from below; p is clamped to [0, 1] here as it
    is a probability. eta == target leaves p unchanged (sign 0, like upstream). An adjustment with nothing
    accumulated on any rank leaves p unchanged and sets `last_eta` to NaN.

    State: buffers `p`, `pending_sign_sum`, `pending_count` (float64, in `state_dict`) and `last_eta` (float64,
    not persistent). The buffers follow the logits' device on the first `accumulate` if the module was not moved.
    """

    def __init__(self, target=0.6, interval=4, speed_kimg=500):
        super().__init__()
        self.target = float(check_range('target', target, 0, 1))
        self.interval = check_int_range('interval', interval, 1)
        self.speed_kimg = float(check_range('speed_kimg', speed_kimg, 0, low_inclusive=False))
        self.register_buffer('p', torch.zeros([], dtype=torch.float64))
        self.register_buffer('pending_sign_sum', torch.zeros([], dtype=torch.float64))
        self.register_buffer('pending_count', torch.zeros([], dtype=torch.float64))
        self.register_buffer('last_eta', torch.full([], float('nan'), dtype=torch.float64), persistent=False)

    def step_size(self, batch_size):
        """How far one adjustment moves p: batch_size * interval / (speed_kimg * 1000)."""
        return batch_size * self.interval / (self.speed_kimg * 1000)

    @torch.no_grad()
    def accumulate(self, real_logits):
        """Add the signs of a tensor of real logits (any shape) to the pending sum and count."""
        if self.pending_count.device != real_logits.device:
            self.to(real_logits.device)
        signs = torch.where(real_logits.detach() >= 0, 1.0, -1.0)
        self.pending_sign_sum.add_(signs.sum(dtype=torch.float64))
        self.pending_count.add_(real_logits.numel())

    @torch.no_grad()
    def adjust(self, batch_size):
        """Pool the pending signs over ranks, set `last_eta`, move p one step towards the target and reset the pending
        sums; returns the `p` buffer. `batch_size` is the total batch over all ranks."""
        batch_size = check_int_range('batch_size', batch_size, 1)
        totals = torch.stack([self.pending_sign_sum, self.pending_count])
        if distributed_world_size() > 1:
            torch.distributed.all_reduce(totals)
        sign_sum, count = totals.unbind()
        eta = sign_sum / count
        direction = torch.where(count > 0, torch.sign(eta - self.target), 0.0)
        self.p.copy_((self.p + direction * self.step_size(batch_size)).clamp(0, 1))
        self.last_eta.copy_(eta)
        self.pending_sign_sum.zero_()
        self.pending_count.zero_()
        return self.p

    def extra_repr(self):
        return f'target={self.target}, interval={self.interval}, speed_kimg={self.speed_kimg}'
