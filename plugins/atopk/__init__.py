"""ATop-k (adaptive Top-k generator updates). `core` holds the pure-PyTorch math, `method` ATop-k's part of the
plugin loss; `Loss` (class_name 'plugins.atopk.Loss', in `loss`) is the upstream loss. Importing this package does
not import upstream: `Loss` is imported on first use."""


def __getattr__(name):
    """Import `Loss` (which needs upstream's `training` and `torch_utils` packages) only when it is asked for."""
    if name == 'Loss':
        from .loss import Loss
        return Loss
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


__all__ = ['Loss']
