"""ATop-k alone as an upstream loss: `--loss plugins.atopk.Loss --loss-kwargs '{"mode": "adaptive"}'`, a preset of
`plugins.loss.Loss` (the same numbers as `--loss plugins.Loss --loss-kwargs '{"atopk": {...}}'`)."""

from plugins.loss import Loss as PluginLoss, preset_check_options


class Loss(PluginLoss):
    """StyleGAN2's loss whose G step uses only k fakes of each minibatch (ATop-k, Eq. 10-12); D and the
    path-length regulariser are upstream's. Options: those of `plugins.atopk.method.ATopk` (mode, k, schedule,
    nu, gamma, linear_kimg, seed; None is the method's default) and of its overfitting heuristic (target 0.6,
    speed_kimg 500, interval 4), plus upstream's."""

    def __init__(self, device, G_mapping, G_synthesis, D, augment_pipe=None,
                 mode: str = 'adaptive', k: int = None, schedule: str = None, nu: float = None,
                 gamma: float = None, linear_kimg: float = None, target: float = 0.6, speed_kimg: float = 500,
                 interval: int = 4, seed: int = None, style_mixing_prob=0.9, r1_gamma=10, pl_batch_shrink=2,
                 pl_decay=0.01, pl_weight=2, random_seed=0, training_set_size=None, batch_size=None):
        atopk = dict(mode=mode, k=k, schedule=schedule, nu=nu, gamma=gamma, linear_kimg=linear_kimg, target=target,
                     speed_kimg=speed_kimg, interval=interval, seed=seed)
        super().__init__(device=device, G_mapping=G_mapping, G_synthesis=G_synthesis, D=D, augment_pipe=augment_pipe,
                         atopk=atopk, style_mixing_prob=style_mixing_prob, r1_gamma=r1_gamma,
                         pl_batch_shrink=pl_batch_shrink, pl_decay=pl_decay, pl_weight=pl_weight,
                         random_seed=random_seed, training_set_size=training_set_size, batch_size=batch_size)

    check_options = preset_check_options('atopk')
