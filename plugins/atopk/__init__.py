"""ATop-k (adaptive Top-k generator updates). `core` holds the pure-PyTorch math, `method` ATop-k's part of the
plugin loss. `Loss` ('plugins.atopk.Loss') is ATop-k's preset of `plugins.Loss`, generated from the registry on
first use (`plugins.presets`): importing this package does not import upstream."""

from plugins.presets import preset_getattr

__getattr__ = preset_getattr(__name__)
