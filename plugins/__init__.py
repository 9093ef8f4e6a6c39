"""Plugin extensions (ATop-k, DigGAN, ...) layered over NVIDIA's StyleGAN2-ADA PyTorch code."""
