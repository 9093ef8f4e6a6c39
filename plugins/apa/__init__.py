"""APA: adaptive pseudo augmentation (Jiang et al., "Deceive D", NeurIPS 2021). `core` holds the pure-PyTorch
math, `method` APA's part of the plugin loss. `Loss` ('plugins.apa.Loss') is APA's preset of `plugins.Loss`,
generated from the registry on first use (`plugins.presets`)."""

from plugins.presets import preset_getattr

__getattr__ = preset_getattr(__name__)
