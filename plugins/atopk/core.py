"""Pure-PyTorch math of ATop-k (Eq. 11-12 of "Understanding ... data-efficient GANs") and its ablations:
fixed Top-k, Linear Top-k (Sinha et al. 2020) and Worst-k. Nothing here imports upstream code."""

import math

import torch

from plugins.common.options import check_int_range, check_range


def select_topk_logits(logits, k, worst=False):
    """The k highest (worst=True: the k lowest, the paper's Worst-k) of N fake logits shaped [N] or [N, 1]; the
    result is shaped [k] or [k, 1]. Differentiable, and only the selected entries receive gradient, so
    `softplus(-select_topk_logits(l, k)).mean()` is Eq. 12's G loss for the StyleGAN2 backbone and only the
    selected fakes update G. Ties are broken by torch.topk."""
    if logits.ndim not in (1, 2) or (logits.ndim == 2 and logits.shape[1] != 1):
        raise ValueError(f'logits must have shape [N] or [N, 1], got {list(logits.shape)}')
    k = check_int_range('k', k, 1, logits.shape[0])
    selected = logits.flatten().topk(k, largest=not worst, sorted=False).values
    return selected.reshape([k, *logits.shape[1:]])


class KController:
    """Eq. 11: each `step(p)` moves k to k - 1 with probability p, else to k + 1, clamped to [1, batch_size];
    k starts at batch_size.

    The draw comes from the controller's own CPU torch.Generator seeded with `seed`. Give every rank the same seed
    and the same p (OverfitHeuristic's p is identical on all ranks after its all_reduce) and step the same number
    of times: every rank then holds the same k with no communication. `step` needs p on the host; pass a float read
    once per p-adjustment (`float(heuristic.adjust(batch))`) rather than a GPU tensor every minibatch.

    When to step is up to the caller, and the paper does not say. Recommended: once per minibatch (training
    iteration), before G's main phase. Fig. 14 (Appendix B.6) shows k changing from one iteration to the next
    within 50 iterations, which stepping only at the p-adjustments (every 4 minibatches) would not produce; k then
    performs a random walk with drift 1 - 2p per minibatch, staying near the batch size while p < 0.5 and
    moving towards 1 once p > 0.5. Stepping at each p-adjustment instead is the same call made every `interval`
    minibatches.
    """

    def __init__(self, batch_size, seed=0):
        self.batch_size = check_int_range('batch_size', batch_size, 1)
        self.k = self.batch_size
        self.generator = torch.Generator(device='cpu')
        self.generator.manual_seed(check_int_range('seed', seed, 0))

    def step(self, p):
        """Apply Eq. 11 once with overfitting probability p (a float or one-element tensor >= 0; p >= 1 always moves
        down, as ADA's p is not capped at 1); returns k."""
        p = check_range('p', float(p), 0)
        moves_down = torch.rand([], generator=self.generator, dtype=torch.float64).item() < p
        self.k = min(max(self.k - 1 if moves_down else self.k + 1, 1), self.batch_size)
        return self.k

    def state_dict(self):
        return {'k': self.k, 'generator_state': self.generator.get_state()}

    def load_state_dict(self, state):
        self.k = check_int_range('k', state['k'], 1, self.batch_size)
        self.generator.set_state(state['generator_state'])


def _ceil_ignoring_rounding_noise(value):
    """ceil() after rounding to 9 decimals, so that e.g. 0.1 * 30 = 3.0000000000000004 gives 3, not 4."""
    return math.ceil(round(value, 9))


def topk_gan_k(nimg, batch, nu, gamma, training_set_size):
    """Top-k GAN's schedule (Sinha et al. 2020, Sec. 3), the ATop-k paper's Linear Top-k: k = ceil(batch *
    max(gamma^epochs, nu)), epochs = completed passes over the training set (nimg // training_set_size), i.e. k
    shrinks by the factor gamma once per epoch down to ceil(nu * batch). Batch 4, nu 0.75, gamma 0.99 and 100 images
    give k = 4 until epoch 28 and k = 3 from 2.9 kimg on."""
    nimg = check_int_range('nimg', nimg, 0)
    batch = check_int_range('batch', batch, 1)
    nu = check_range('nu', nu, 0, 1, low_inclusive=False)
    gamma = check_range('gamma', gamma, 0, 1, low_inclusive=False)
    epochs = nimg // check_int_range('training_set_size', training_set_size, 1)
    return max(_ceil_ignoring_rounding_noise(batch * max(gamma ** epochs, nu)), 1)


def linear_ramp_k(kimg, batch, nu, over_kimg):
    """A linear ramp (the project's alternative to Top-k GAN's schedule): k falls linearly from `batch` at
    kimg = 0 to k_min = ceil(nu * batch) at kimg = over_kimg, rounded to the nearest integer (halves up), then stays
    at k_min (at least 1). The inner levels each hold an equal share of the ramp and the first and last half a
    share, so k reaches k_min within it: batch 4 and nu 0.75 give k = 3 after over_kimg / 2."""
    kimg = check_range('kimg', kimg, 0)
    batch = check_int_range('batch', batch, 1)
    nu = check_range('nu', nu, 0, 1, low_inclusive=False)
    over_kimg = check_range('over_kimg', over_kimg, 0, low_inclusive=False)
    k_min = max(_ceil_ignoring_rounding_noise(nu * batch), 1)
    progress = min(kimg / over_kimg, 1.0)
    return max(math.floor(round(batch - (batch - k_min) * progress + 0.5, 9)), k_min)


def split_k_across_chunks(k, chunk_sizes):
    """Per-chunk k's for a batch processed as several chunks (accumulation rounds and/or ranks, in a fixed order
    that every rank agrees on). Every chunk gets 1; the other k - n (n chunks) are shared in proportion to each
    chunk's room above one (size - 1) by largest remainder, ties going to the earlier chunk. Integer arithmetic
    only, so the result is deterministic and identical everywhere. For equal chunks, upstream's case, each gets
    k / n, the remainder going to the first chunks. The k's sum to k and never exceed the chunk sizes when
    k >= n; when k < n every chunk still gets 1, so n fakes (more than k) update G, because an empty
    selection would give an empty (NaN) loss mean in that chunk."""
    chunk_sizes = [check_int_range(f'chunk_sizes[{index}]', size, 1) for index, size in enumerate(chunk_sizes)]
    if not chunk_sizes:
        raise ValueError('chunk_sizes must name at least one chunk, got none')
    num_chunks, total = len(chunk_sizes), sum(chunk_sizes)
    k = check_int_range('k', k, 1, total)
    if k <= num_chunks:
        return [1] * num_chunks
    spare, room_total = k - num_chunks, total - num_chunks
    rooms = [size - 1 for size in chunk_sizes]
    shares = [spare * room // room_total for room in rooms]
    remainders = [spare * room % room_total for room in rooms]
    leftover = spare - sum(shares)
    for index in sorted(range(num_chunks), key=lambda i: (-remainders[i], i))[:leftover]:
        shares[index] += 1
    return [1 + share for share in shares]
