"""InsGen (Yang et al., "Data-Efficient Instance Generation from Instance Discrimination", NeurIPS 2021). `core`
holds the pure-PyTorch math, `method` InsGen's terms of the plugin loss. `Loss` ('plugins.insgen.Loss') is
InsGen's preset of `plugins.Loss`, generated from the registry on first use (`plugins.presets`)."""

from plugins.presets import preset_getattr

__getattr__ = preset_getattr(__name__)
