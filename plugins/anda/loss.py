"""ANDA alone as an upstream loss: `--loss plugins.anda.Loss --loss-kwargs '{"estimator": "sampled"}'`, a preset of
`plugins.loss.Loss` (the same numbers as `--loss plugins.Loss --loss-kwargs '{"anda": {...}}'`)."""

from plugins.loss import Loss as PluginLoss, preset_check_options


class Loss(PluginLoss):
    """StyleGAN2's loss whose D fake term mixes generated images with negatives NDA(x_real) (ANDA, Eq. S4); G and the
    regularisers are upstream's. Options: those of `plugins.anda.method.ANDA` (lam, estimator, alpha, negative,
    grid, permutation) and of its overfitting heuristic (target 0.6, speed_kimg 500, interval 4; when alpha is the heuristic's), plus
    upstream's."""

    def __init__(self, device, G_mapping, G_synthesis, D, augment_pipe=None,
                 lam: float = 0.2, estimator: str = 'released', alpha: str = 'auto', negative: str = 'jigsaw',
                 grid: int = 2, permutation: str = 'released', target: float = None, speed_kimg: float = None,
                 interval: int = None,
                 style_mixing_prob=0.9, r1_gamma=10, pl_batch_shrink=2, pl_decay=0.01, pl_weight=2, ada_target=None):
        heuristic = {key: value for key, value in dict(target=target, speed_kimg=speed_kimg, interval=interval).items()
                     if value is not None}
        anda = dict(lam=lam, estimator=estimator, alpha=alpha, negative=negative, grid=grid, permutation=permutation,
                    **heuristic)
        super().__init__(device=device, G_mapping=G_mapping, G_synthesis=G_synthesis, D=D, augment_pipe=augment_pipe,
                         anda=anda, style_mixing_prob=style_mixing_prob, r1_gamma=r1_gamma,
                         pl_batch_shrink=pl_batch_shrink, pl_decay=pl_decay, pl_weight=pl_weight,
                         ada_target=ada_target)

    check_options = preset_check_options('anda')
