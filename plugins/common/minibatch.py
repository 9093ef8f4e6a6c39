"""Minibatch boundaries, batch size and image count, learnt from the phase calls of upstream's training loop, which
never tells its loss the batch size. Pure Python; shared by every plugin loss."""

G_MAIN_PHASES = ('Gmain', 'Gboth')


class MinibatchTracker:
    """One minibatch is one training iteration. It starts with the first G main call (Gmain or Gboth) after a call
    of any other phase, or after as many consecutive G main calls as the first minibatch had; its rounds are its
    consecutive G main calls. The chunk sizes of the first minibatch's rounds (normally batch_gpu each) are the
    round structure, and the global batch is their sum times the world size (upstream gives every rank the same
    chunks). Later minibatches must repeat that structure (RuntimeError otherwise).

    `enter(phase, chunk_size, world_size)` returns (ended, started, round_index): `ended` when the previous
    minibatch's G rounds have just been counted (`nimg` then includes it), `started` when this call begins a new
    minibatch (`minibatches` counts it), and the G main round index of this call (None for other phases).
    """

    def __init__(self):
        self.chunk_sizes = None  # this rank's chunk size per round, learnt in the first minibatch
        self.batch_size = None  # global batch, learnt in the first minibatch
        self.minibatches = 0  # minibatches started
        self.nimg = 0  # images of the minibatches whose G rounds are complete, all ranks
        self._run = []  # chunk sizes of the current minibatch's G main calls so far
        self._run_open = False
        self._prev_phase = None

    def _end_run(self, world_size):
        if not self._run_open:
            return False
        self._run_open = False
        if self.chunk_sizes is None:
            self.chunk_sizes = list(self._run)
            self.batch_size = sum(self.chunk_sizes) * world_size
        elif self._run != self.chunk_sizes:
            raise RuntimeError(f'a minibatch came as G chunks {self._run}, the first as {self.chunk_sizes}; the batch '
                               f'structure must not change during training')
        self.nimg += self.batch_size
        return True

    def enter(self, phase, chunk_size, world_size):
        if phase not in G_MAIN_PHASES:
            ended = self._end_run(world_size)
            self._prev_phase = phase
            return ended, False, None
        run_complete = self.chunk_sizes is not None and len(self._run) >= len(self.chunk_sizes)
        ended = started = False
        if self._prev_phase not in G_MAIN_PHASES or run_complete:
            ended = self._end_run(world_size)
            self.minibatches += 1
            self._run, self._run_open, started = [], True, True
        self._prev_phase = phase
        round_index = len(self._run)
        if self.chunk_sizes is not None and chunk_size != self.chunk_sizes[round_index]:
            raise RuntimeError(f'G chunk {round_index} has {chunk_size} images, the first minibatch had '
                               f'{self.chunk_sizes[round_index]}; the batch structure must not change during training')
        self._run.append(chunk_size)
        return ended, started, round_index

    def all_chunk_sizes(self, world_size):
        """Every chunk of a minibatch in round-major order: round 0 of ranks 0..W-1, round 1, ..."""
        return [size for size in self.chunk_sizes for _ in range(world_size)]

    def state_dict(self):
        return {'chunk_sizes': None if self.chunk_sizes is None else list(self.chunk_sizes),
                'batch_size': self.batch_size, 'minibatches': self.minibatches, 'nimg': self.nimg}

    def load_state_dict(self, state):
        """Restore `state_dict()`; the next G main call starts a new minibatch."""
        self.chunk_sizes = None if state['chunk_sizes'] is None else list(state['chunk_sizes'])
        self.batch_size, self.minibatches, self.nimg = state['batch_size'], state['minibatches'], state['nimg']
        self._run, self._run_open, self._prev_phase = [], False, None
