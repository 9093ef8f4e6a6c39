"""InsGen (Yang et al., "Data-Efficient Instance Generation from Instance Discrimination", NeurIPS 2021). `core`
holds the pure-PyTorch math, `method` InsGen's terms of the plugin loss; `Loss` (class_name 'plugins.insgen.Loss',
in `loss`) is imported on first use, as it needs upstream's packages."""


def __getattr__(name):
    if name == 'Loss':
        from .loss import Loss
        return Loss
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
