"""LeCam regularisation (Tseng et al., "Regularizing Generative Adversarial Networks under Limited Data", CVPR
2021). `core` holds the pure-PyTorch math, `method` LeCam's term of the plugin loss; `Loss` (class_name
'plugins.lecam.Loss', in `loss`) is imported on first use, as it needs upstream's packages."""


def __getattr__(name):
    if name == 'Loss':
        from .loss import Loss
        return Loss
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
