"""DigGAN (discriminator gradient gap regularisation); `core` holds the pure-PyTorch math, the upstream Loss comes later."""
