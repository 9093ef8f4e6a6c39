"""ANDA: adaptive negative data augmentation (Zhang et al., supplementary Eq. S4 and Algorithm 1). `negatives` holds
the pure-PyTorch NDA transforms, `method` ANDA's term of the plugin loss. `Loss` ('plugins.anda.Loss') is ANDA's
preset of `plugins.Loss`, generated from the registry on first use (`plugins.presets`)."""

from plugins.presets import preset_getattr

__getattr__ = preset_getattr(__name__)
