"""DiffAugment: differentiable augmentation applied to every image D sees (Zhao et al. 2020). `ops` holds the
pure-PyTorch ops; `AugmentPipe` (class_name 'plugins.diffaug.AugmentPipe', in `pipe`) is the upstream augment
pipe. Importing this package does not import upstream: `AugmentPipe` is imported on first use."""


def __getattr__(name):
    """Import `AugmentPipe` (which needs upstream's `torch_utils` package) only when it is asked for."""
    if name == 'AugmentPipe':
        from .pipe import AugmentPipe
        return AugmentPipe
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


__all__ = ['AugmentPipe']
