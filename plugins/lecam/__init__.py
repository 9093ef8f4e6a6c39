"""LeCam regularisation (Tseng et al., "Regularizing Generative Adversarial Networks under Limited Data", CVPR
2021). `core` holds the pure-PyTorch math, `method` LeCam's term of the plugin loss. `Loss` ('plugins.lecam.Loss')
is LeCam's preset of `plugins.Loss`, generated from the registry on first use (`plugins.presets`)."""

from plugins.presets import preset_getattr

__getattr__ = preset_getattr(__name__)
