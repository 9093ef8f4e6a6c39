"""APA: adaptive pseudo augmentation (Jiang et al., "Deceive D", NeurIPS 2021). `core` holds the pure-PyTorch
math, `method` APA's part of the plugin loss; `Loss` (class_name 'plugins.apa.Loss', in `loss`) is imported on
first use, as it needs upstream's packages."""


def __getattr__(name):
    if name == 'Loss':
        from .loss import Loss
        return Loss
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
