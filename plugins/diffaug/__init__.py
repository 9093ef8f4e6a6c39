"""DiffAugment: differentiable augmentation applied to every image D sees (Zhao et al. 2020)."""
