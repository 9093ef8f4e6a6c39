"""DigGAN: discriminator gradient gap regularisation (Fang, Sun and Schwing). `core` holds the pure-PyTorch math,
`method` DigGAN's term of the plugin loss. `Loss` ('plugins.diggan.Loss') is DigGAN's preset of `plugins.Loss`,
generated from the registry on first use (`plugins.presets`)."""

from plugins.presets import preset_getattr

__getattr__ = preset_getattr(__name__)
