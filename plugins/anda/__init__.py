"""ANDA: adaptive negative data augmentation (Zhang et al., supplementary Eq. S4 and Algorithm 1). `negatives` holds
the pure-PyTorch NDA transforms, `method` ANDA's term of the plugin loss; `Loss` (class_name 'plugins.anda.Loss',
in `loss`) is imported on first use, as it needs upstream's packages."""


def __getattr__(name):
    if name == 'Loss':
        from .loss import Loss
        return Loss
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
