"""Classes that train.py builds by name in the reliability tests (tests/test_reliability.py) to observe or break a
real run: per-rank controller logs, the heuristic's p beside ADA's, a kill in the middle of a snapshot write, non-finite logits,
an infinite gradient, a DataLoader worker stuck in a long read."""

import json
import os
import signal
import time

import torch

from training.loss import StyleGAN2Loss

from plugins.loss import Loss
from plugins.primitives.dataset import SyntheticDataset


class RankRecordingLoss(Loss):
    """plugins.Loss that appends its controller state at the start of every minibatch to
    $PROBE_DIR/rank<rank>.jsonl: what each rank holds, to be compared across ranks."""

    def _begin_minibatch(self, rank, world_size):
        super()._begin_minibatch(rank, world_size)
        heuristic = next(iter(self.heuristics.values()))
        # Not the heuristic's pending sums: each rank holds its own until they are all-reduced at an adjustment.
        row = dict(minibatch=self.tracker.minibatches, nimg=self.tracker.nimg, batch=self.tracker.batch_size,
                   p=float(heuristic.p), k=self.methods['atopk'].k, p_host=self.p_host)
        if hasattr(self.augment_pipe, 'table_steps'):  # Diffusion-GAN: T and the table it was drawn for
            row['diffusion'] = int(self.augment_pipe.table_steps)
            row['diffusion_table'] = self.augment_pipe.table.tolist()
        if 'lecam' in self.methods:
            lecam = self.methods['lecam']
            row['lecam'] = [float(lecam.ema_real.biased), float(lecam.ema_fake.biased), int(lecam.ema_real.steps)]
        if 'insgen' in self.methods:  # exact float sums: equal only if every rank holds the same tensors
            insgen = self.methods['insgen']
            tensors = [*insgen.D_momentum.state_dict().values(), *insgen.heads['real'].state_dict().values(),
                       *insgen.heads['fake'].state_dict().values()]
            row['insgen'] = [float(t.double().sum()) for t in tensors]
        with open(os.path.join(os.environ['PROBE_DIR'], f'rank{rank}.jsonl'), 'a') as log:
            log.write(json.dumps(row) + '\n')


class BesideADALoss(Loss):
    """plugins.Loss that appends, after each minibatch (where ADA has just moved the augment pipe's p), both ps to
    $PROBE_DIR/beside_ada.jsonl: batch_idx, ADA's p (absent without a pipe), the heuristic's p, its p_host."""

    def after_minibatch(self, batch_idx):
        super().after_minibatch(batch_idx)
        row = dict(batch_idx=batch_idx, heuristic=next(iter(self.heuristics.values())).p.item(), p_host=self.p_host)
        if self.augment_pipe is not None:
            row['ada'] = self.augment_pipe.p.item()
        with open(os.path.join(os.environ['PROBE_DIR'], 'beside_ada.jsonl'), 'a') as log:
            log.write(json.dumps(row) + '\n')


class _KillWhenPickled:
    def __reduce__(self):
        os.kill(os.getpid(), signal.SIGKILL)


class KilledInSecondSnapshotLoss(Loss):
    """plugins.Loss whose state in the second snapshot kills the process while the snapshot is serialised."""

    snapshots = 0

    def state_dict(self):
        self.snapshots += 1
        state = super().state_dict()
        return dict(state, probe=_KillWhenPickled()) if self.snapshots == 2 else state


class NaNLogitsLoss(StyleGAN2Loss):
    """Upstream's loss whose D logits turn NaN from the `nan_after`-th D call on."""

    def __init__(self, nan_after=30, **kwargs):
        super().__init__(**kwargs)
        self.nan_after = nan_after
        self.calls = 0

    def run_D(self, img, c, sync):
        self.calls += 1
        logits = super().run_D(img, c, sync)
        return logits * float('nan') if self.calls >= self.nan_after else logits


class _InfiniteGradient(torch.autograd.Function):
    """Zero forward; an infinite gradient backward, whatever comes in."""

    @staticmethod
    def forward(ctx, x):
        return torch.zeros_like(x)

    @staticmethod
    def backward(ctx, grad):
        return torch.full_like(grad, float('inf'))


class InfiniteBiasGradientLoss(StyleGAN2Loss):
    """Upstream's loss whose D main phase also gives D's last bias (the logit's, 1 entry) an infinite gradient, while
    every loss stays finite: what an FP16 overflow in a backward pass leaves."""

    def accumulate_gradients(self, phase, real_img, real_c, gen_z, gen_c, sync, gain):
        super().accumulate_gradients(phase, real_img, real_c, gen_z, gen_c, sync, gain)
        if phase in ('Dmain', 'Dboth'):
            bias = list(self.D.parameters())[-1]
            _InfiniteGradient.apply(bias).sum().backward()


class SlowInWorkersDataset(SyntheticDataset):
    """Synthetic images, except that a DataLoader worker takes ten minutes to read one (after creating
    $PROBE_DIR/worker-reading): a worker busy in a read, which never gets to check whether its parent is alive."""

    def __getitem__(self, idx):
        if torch.utils.data.get_worker_info() is not None:
            open(os.path.join(os.environ['PROBE_DIR'], 'worker-reading'), 'w').close()
            time.sleep(600)
        return super().__getitem__(idx)
