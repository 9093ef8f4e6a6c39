"""ADA's overfitting heuristic r_t (Karras et al. 2020), shared by ATop-k (Eq. 10), ANDA and APA to drive a
probability p exactly as upstream's training loop drives ADA's augment p."""

import torch
import torch.distributed

from plugins.common.options import check_int_range, check_range


def distributed_world_size():
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size()
    return 1


def distributed_rank():
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return 0


HEURISTIC_DEFAULTS = {'target': 0.6, 'speed_kimg': 500, 'interval': 4}  # ADA's own target, speed and interval


class OverfitHeuristic(torch.nn.Module):
    """eta = E[sign(D_real logits)] (ADA's r_t; ATop-k's Eq. 10) over every real logit seen since the last adjustment,
    and the probability p it drives, computed as upstream's `training_loop.py` computes ADA's p: p starts at 0 (a
    float32 tensor, as `augment_pipe.p`), and each adjustment does
    `p = max(p + sign(eta - target) * (batch_size * interval) / (speed_kimg * 1000), 0)` in the same floating-point
    operations, so that the same logits give the same p bit for bit.

    The owner calls `accumulate` with every real-logit tensor it reports as 'Loss/signs/real' (upstream's loss does so
    in D main and in R1 passes, and ADA counts them all), and `adjust` where the training loop adjusts ADA's p: after
    every `interval`-th minibatch, on every rank at once (it all-reduces the pending [sum, count] when
    torch.distributed is initialised with more than one rank). Nothing here reads a value back to the host.

    As upstream: sign(0) = 0 (torch.sign), p is clamped from below only (a user of p as a probability caps it at 1
    where it draws), eta == target leaves p unchanged. Not as upstream, where p would become NaN: an adjustment with
    nothing accumulated on any rank leaves p unchanged and sets `last_eta` to NaN.

    State: buffers `p` (float32), `pending_sign_sum`, `pending_count` (float64, in `state_dict`) and `last_eta`
    (float64, not persistent). The buffers follow the logits' device on the first `accumulate` if the module was not
    moved.
    """

    def __init__(self, target=HEURISTIC_DEFAULTS['target'], interval=HEURISTIC_DEFAULTS['interval'],
                 speed_kimg=HEURISTIC_DEFAULTS['speed_kimg']):
        super().__init__()
        self.target = float(check_range('target', target, 0, 1))
        self.interval = check_int_range('interval', interval, 1)
        self.speed_kimg = float(check_range('speed_kimg', speed_kimg, 0, low_inclusive=False))
        self.register_buffer('p', torch.zeros([]))
        self.register_buffer('pending_sign_sum', torch.zeros([], dtype=torch.float64))
        self.register_buffer('pending_count', torch.zeros([], dtype=torch.float64))
        self.register_buffer('last_eta', torch.full([], float('nan'), dtype=torch.float64), persistent=False)

    @torch.no_grad()
    def accumulate(self, real_logits):
        """Add the signs of a tensor of real logits (any shape) to the pending sum and count."""
        if self.pending_count.device != real_logits.device:
            self.to(real_logits.device)
        self.pending_sign_sum.add_(real_logits.detach().sign().sum(dtype=torch.float64))
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
        # ADA's `np.sign(eta - target) * (batch_size * interval) / (ada_kimg * 1000)`: a float64 step, rounded to
        # float32 when added to p, then clamped from below.
        step = torch.sign(eta - self.target) * (batch_size * self.interval) / (self.speed_kimg * 1000)
        moved = (self.p + step.to(self.p.dtype)).clamp_min(0)
        self.p.copy_(torch.where(count > 0, moved, self.p))
        self.last_eta.copy_(eta)
        self.pending_sign_sum.zero_()
        self.pending_count.zero_()
        return self.p

    def extra_repr(self):
        return f'target={self.target}, interval={self.interval}, speed_kimg={self.speed_kimg}'
