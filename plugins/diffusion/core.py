"""Pure math of Diffusion-GAN's forward diffusion (released `diffusion-stylegan2/training/diffusion.py`): the beta
schedules, the diffusion length T from p, the table of timesteps D is trained on, and q(x_t | x_0). Nothing here
imports upstream code."""

import numpy as np
import torch

SCHEDULES = ('linear', 'quad', 'const', 'jsd', 'sigmoid', 'cosine', 'continuous_t')
TIMESTEP_DISTRIBUTIONS = ('priority', 'uniform')
TABLE_SIZE, DRAWN = 64, 32  # the released table: 32 timesteps drawn from 1..T, then 32 zeros (no diffusion)


def beta_schedule(name, steps, beta_start=1e-4, beta_end=2e-2):
    """beta_1..beta_steps (float64) of the released `get_beta_schedule`."""
    if name == 'linear':
        return np.linspace(beta_start, beta_end, steps, dtype=np.float64)
    if name == 'quad':
        return np.linspace(beta_start ** 0.5, beta_end ** 0.5, steps, dtype=np.float64) ** 2
    if name == 'const':
        return np.full(steps, beta_end, dtype=np.float64)
    if name == 'jsd':  # 1/T, 1/(T-1), ..., 1
        return 1.0 / np.linspace(steps, 1, steps, dtype=np.float64)
    if name == 'sigmoid':
        return 1 / (np.exp(-np.linspace(-6, 6, steps)) + 1) * (beta_end - beta_start) + beta_start
    if name == 'cosine':  # Nichol and Dhariwal 2021, clipped at 0.999
        x = np.linspace(0, steps + 1, steps + 1)
        alphas_bar = np.cos((x / (steps + 1) + 0.008) / 1.008 * np.pi / 2) ** 2
        return np.clip(1 - alphas_bar[1:] / alphas_bar[:-1], 0, 0.999)
    if name == 'continuous_t':
        t = np.arange(1, steps + 1)
        return 1 - np.exp(-0.1 / steps - 0.5 * (5.0 - 0.1) * (2 * t - 1) / steps ** 2)
    raise ValueError(f'beta_schedule must be one of {", ".join(SCHEDULES)}; got {name!r}')


def diffusion_length(p, t_min, t_max):
    """T = clip(t_min + round(p (t_max - t_min)), t_min, t_max), with Python's round as released."""
    return int(min(max(t_min + round(p * (t_max - t_min)), t_min), t_max))


def signal_and_noise_scales(betas):
    """(sqrt(alpha_bar_t), sqrt(1 - alpha_bar_t)) for t = 0..T (t = 0: the image itself), float32 as released."""
    alphas_bar = torch.cat([torch.ones([1]), (1 - torch.from_numpy(betas).float()).cumprod(dim=0)])
    return alphas_bar.sqrt(), (1 - alphas_bar).sqrt()


def timestep_table(steps, distribution, rng):
    """The 64 timesteps D's images are drawn from until T changes: 32 from 1..T ('priority': P(t) proportional to
    t - 1, so later steps more often; 'uniform'), then 32 zeros, drawn with `rng.choice` as released: `rng` is
    np.random (NumPy's global generator, as released) or a numpy Generator."""
    values = np.arange(1, steps + 1)
    weights = np.arange(steps) / np.arange(steps).sum() if distribution == 'priority' and steps > 1 else None
    table = np.zeros(TABLE_SIZE, dtype=np.int64)
    table[:DRAWN] = rng.choice(values, size=DRAWN, p=weights)
    return torch.from_numpy(table)


def q_sample(x0, t, signal, noise_scale, noise_std):
    """x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) noise_std eps, eps ~ N(0, I), one t per image."""
    noise = torch.randn_like(x0) * noise_std
    return signal[t].view(-1, 1, 1, 1).to(x0.dtype) * x0 + noise_scale[t].view(-1, 1, 1, 1).to(x0.dtype) * noise


def check_lengths(t_min, t_max):
    integers = all(isinstance(t, int) and not isinstance(t, bool) for t in (t_min, t_max))
    if not (integers and 1 <= t_min <= t_max):
        raise ValueError(f't_min and t_max must be integers with 1 <= t_min <= t_max; got {t_min!r} and {t_max!r}')
