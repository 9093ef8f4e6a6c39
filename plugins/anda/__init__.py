"""ANDA: adaptive negative data augmentation (Zhang et al., supplementary Eq. S4 and Algorithm 1)."""
