"""Primitives-PS synthetic pretraining data (supplementary of "Commonality in Natural Images Rescues GANs").

`synth` holds the four synthesizers, `writer` and `python -m plugins.primitives` write datasets for
upstream's ImageFolderDataset, and `SyntheticDataset` (class_name 'plugins.primitives.SyntheticDataset')
draws the same images on the fly. Importing this package does not import upstream or torch.
"""

from .synth import SYNTHESIZERS, layout, synthesize


def __getattr__(name):
    """Import `SyntheticDataset` (which needs upstream's `training` package) only when it is asked for."""
    if name == 'SyntheticDataset':
        from .dataset import SyntheticDataset
        return SyntheticDataset
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


__all__ = ['SYNTHESIZERS', 'SyntheticDataset', 'layout', 'synthesize']
