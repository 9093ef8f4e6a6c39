"""Plugin extensions layered over NVIDIA's StyleGAN2-ADA PyTorch code: a package per method, augment pipe or
dataset. `Loss` (class_name 'plugins.Loss', in `loss`) combines the methods registered in `plugins.methods`; it
needs upstream's packages on sys.path, so it is imported on first use and importing `plugins` alone does not import
upstream."""


def __getattr__(name):
    if name == 'Loss':
        from .loss import Loss
        return Loss
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
