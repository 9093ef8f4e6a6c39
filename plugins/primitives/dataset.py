"""On-the-fly synthetic training set for upstream's training loop (needs stylegan2_ada/ on sys.path)."""

from urllib.parse import parse_qsl

try:
    from training.dataset import Dataset
except ImportError as error:
    raise ImportError('plugins.primitives.dataset subclasses upstream training.dataset.Dataset: '
                      'put the stylegan2_ada directory on sys.path') from error

from .synth import SYNTHESIZERS, synthesize

PATH_PREFIX = 'synth:'
PATH_DEFAULTS = {'n': 10000, 'seed': 0}
DEFAULT_RESOLUTION = 256


def parse_synthetic_path(path):
    """Split 'synth:<name>?n=<count>&res=<resolution>&seed=<seed>' into (name, {'n', 'res', 'seed'}); every
    query key is optional ('res' is None when absent). Raises IOError, which upstream reports as a --data error."""
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
    for key, value in pairs:
        if key not in options:
            raise IOError(f'unknown option {key!r} in {path!r}; valid: n, res, seed')
        if not (value.isascii() and value.isdigit()):
            raise IOError(f'option {key}={value!r} in {path!r} is not a non-negative integer')
        options[key] = int(value)
    if options['n'] < 1:
        raise IOError(f'n must be >= 1 in {path!r}')
    resolution = options['res']
    if resolution is not None and (resolution < 4 or resolution & (resolution - 1)):
        raise IOError(f'res={resolution} in {path!r} is not a power of two >= 4')
    return synth, options


class SyntheticDataset(Dataset):
    """Images of a synthesizer (PinkNoise, Primitives, Primitives-S, Primitives-PS) drawn on the fly, identical
    to what `python -m plugins.primitives` writes for the same (synth, seed, index).

    `path` has the form 'synth:<name>?n=<count>&res=<resolution>&seed=<seed>', e.g.
    'synth:primitives-ps?n=10000&res=256&seed=0', so it can be given as upstream's --data. <name> is one of
    pinknoise, primitives, primitives-s, primitives-ps; the query keys are optional: n defaults to 10000,
    seed to 0, res to the `resolution` argument or else 256. A `resolution` argument that disagrees with res
    raises IOError, as ImageFolderDataset does. No labels. The dataset's name is e.g.
    'primitives-ps-256-n10000-seed0'.
    """

    def __init__(self, path, resolution=None, **super_kwargs):
        self._synth, options = parse_synthetic_path(path)
        self._seed = options['seed']
        self._resolution = options['res'] or resolution or DEFAULT_RESOLUTION
        if resolution is not None and resolution != self._resolution:
            raise IOError(f'{path!r} has resolution {self._resolution}, not the requested {resolution}')
        name = f'{self._synth}-{self._resolution}-n{options["n"]}-seed{self._seed}'
        raw_shape = [options['n'], 3, self._resolution, self._resolution]
        super().__init__(name=name, raw_shape=raw_shape, **super_kwargs)

    def _load_raw_image(self, raw_idx):
        return synthesize(self._synth, self._seed, int(raw_idx), self._resolution).transpose(2, 0, 1)

    def _load_raw_labels(self):
        return None
