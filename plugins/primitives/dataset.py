"""On-the-fly synthetic training set for upstream's training loop (needs stylegan2_ada/ on sys.path)."""

import itertools
from urllib.parse import parse_qsl

import numpy as np
import torch

try:
    from training.dataset import Dataset
except ImportError as error:
    raise ImportError('plugins.primitives.dataset subclasses upstream training.dataset.Dataset: '
                      'put the stylegan2_ada directory on sys.path') from error

from .synth import NUM_SHAPES, SYNTHESIZERS, check_settings, synthesize

PATH_PREFIX = 'synth:'
PATH_DEFAULTS = {'n': None, 'seed': 0, 'particles': NUM_SHAPES, 'size': 'decay'}
DEFAULT_RESOLUTION = 256
STREAM_LENGTH = 50000           # What len() tells upstream of an endless stream: its metrics' "full" set.


def parse_synthetic_path(path):
    """Split 'synth:<name>?n=<count>&res=<resolution>&seed=<seed>&particles=<N>&size=<policy>' into (name,
    {'n', 'res', 'seed', 'particles', 'size'}); every query key is optional ('n' and 'res' are None when absent:
    an endless stream, the default resolution; particles 100 and size decay, the released synthesizer's).
    Raises IOError, which upstream reports as a --data error."""
    if not isinstance(path, str) or not path.startswith(PATH_PREFIX):
        raise IOError(f'synthetic dataset path must start with {PATH_PREFIX!r}, got {path!r}')
    synth, _, query = path[len(PATH_PREFIX):].partition('?')
    if synth not in SYNTHESIZERS:
        raise IOError(f'unknown synthesizer {synth!r} in {path!r}; valid: {", ".join(SYNTHESIZERS)}')
    options = dict(PATH_DEFAULTS, res=None)
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True) if query else []
    except ValueError as error:
        raise IOError(f'malformed query in {path!r}: {error}') from error
    for index, (key, value) in enumerate(pairs):
        if key not in options:
            raise IOError(f'unknown option {key!r} in {path!r}; valid: {", ".join(options)}')
        if key in dict(pairs[:index]):
            raise IOError(f'option {key!r} is given twice in {path!r}; give each once')
        if key == 'size':
            options[key] = value
            continue
        if not (value.isascii() and value.isdigit()):
            raise IOError(f'option {key}={value!r} in {path!r} is not a non-negative integer')
        options[key] = int(value)
    try:
        check_settings(synth, options['particles'], options['size'])
    except ValueError as error:
        raise IOError(f'{path!r}: {error}') from None
    if options['n'] is not None and options['n'] < 1:
        raise IOError(f'n must be >= 1 in {path!r}')
    resolution = options['res']
    if resolution is not None and (resolution < 4 or resolution & (resolution - 1)):
        raise IOError(f'res={resolution} in {path!r} is not a power of two >= 4')
    return synth, options


class SyntheticDataset(Dataset):
    """Images of a synthesizer (PinkNoise, Primitives, Primitives-S, Primitives-PS) drawn on the fly, identical
    to what `python -m plugins.primitives` writes for the same (synth, seed, index).

    `path` has the form 'synth:<name>?n=<count>&res=<resolution>&seed=<seed>&particles=<N>&size=<policy>', e.g.
    'synth:primitives-ps?n=10000&res=256&seed=0', so it can be given as upstream's --data. <name> is one of
    pinknoise, primitives, primitives-s, primitives-ps; the query keys are optional: seed defaults to 0, res to
    the `resolution` argument or else 256, particles (N) to 100 and size (the size policy: decay, rand or fix<f>,
    e.g. fix0.2) to decay, the supplement's Table 1 ablations. A `resolution` argument that disagrees with res
    raises IOError, as ImageFolderDataset does. No labels.

    With n, the set is images 0 .. n-1 (name e.g. 'primitives-ps-256-n10000-seed0'). Without n it is an endless
    stream, as the released Primitives-PS pretraining draws (`NoiseDataset`): training's draw d is image d, so no
    image is ever seen twice, every process draws its own share of the draws, and a resumed run continues the
    stream (name e.g. 'primitives-ps-256-stream-seed0'). Upstream still asks a stream for len(): it answers
    STREAM_LENGTH, which metrics that read the "full" training set use as images 0 .. STREAM_LENGTH-1.
    """

    def __init__(self, path, resolution=None, max_size=None, xflip=False, **super_kwargs):
        self._synth, options = parse_synthetic_path(path)
        self._seed = options['seed']
        self._shapes = dict(particles=options['particles'], size=options['size'])
        self._resolution = options['res'] or resolution or DEFAULT_RESOLUTION
        if resolution is not None and resolution != self._resolution:
            raise IOError(f'{path!r} has resolution {self._resolution}, not the requested {resolution}')
        self.is_stream = options['n'] is None
        if self.is_stream and (xflip or (max_size is not None and max_size < STREAM_LENGTH)):
            raise IOError(f'{path!r} is an endless stream of fresh images: --mirror and --subset do not apply '
                          f'(give n=<count> in the path for a fixed set)')
        count = STREAM_LENGTH if self.is_stream else options['n']
        name = f'{self._synth}-{self._resolution}-{"stream" if self.is_stream else f"n{count}"}-seed{self._seed}'
        name += ''.join(f'-{key}{value}' for key, value in self._shapes.items() if value != PATH_DEFAULTS[key])
        raw_shape = [count, 3, self._resolution, self._resolution]
        super().__init__(name=name, raw_shape=raw_shape, max_size=max_size, xflip=xflip, **super_kwargs)

    def _load_raw_image(self, raw_idx):
        return synthesize(self._synth, self._seed, int(raw_idx), self._resolution, **self._shapes).transpose(2, 0, 1)

    def _load_raw_labels(self):
        return None

    def __getitem__(self, idx):
        if not self.is_stream:
            return super().__getitem__(idx)
        return self._load_raw_image(idx), np.zeros([0], dtype=np.float32)

    def make_sampler(self, rank, num_replicas, seed):
        """The training order (patch 0011): upstream's shuffled order for a fixed set; draws 0, 1, 2, ... for a
        stream, process `rank` taking every `num_replicas`-th, so the processes see disjoint fresh images."""
        if not self.is_stream:
            from torch_utils.misc import InfiniteSampler
            return InfiniteSampler(dataset=self, rank=rank, num_replicas=num_replicas, seed=seed)
        return StreamSampler(rank, num_replicas)


class StreamSampler(torch.utils.data.Sampler):
    """Draw indices rank, rank + num_replicas, rank + 2 num_replicas, ... forever."""

    def __init__(self, rank, num_replicas):
        super().__init__()
        self.rank, self.num_replicas = rank, num_replicas

    def __iter__(self):
        return itertools.count(self.rank, self.num_replicas)
