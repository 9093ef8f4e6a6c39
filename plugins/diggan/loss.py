"""DigGAN alone as an upstream loss: `--loss plugins.diggan.Loss --loss-kwargs '{"weight": 1000}'`, a preset of
`plugins.loss.Loss` (the same numbers as `--loss plugins.Loss --loss-kwargs '{"diggan": {...}}'`)."""

from plugins.loss import Loss as PluginLoss, preset_check_options


class Loss(PluginLoss):
    """StyleGAN2's loss plus DigGAN's gradient-gap regulariser on D; everything else upstream's. Options: those of
    `plugins.diggan.method.DigGAN` (weight, cadence, wrt, smoothing), plus upstream's."""

    def __init__(self, device, G_mapping, G_synthesis, D, augment_pipe=None,
                 weight: float = 1000.0, cadence: str = 'every', wrt: str = 'after', smoothing: float = 0.5,
                 style_mixing_prob=0.9, r1_gamma=10, pl_batch_shrink=2, pl_decay=0.01, pl_weight=2):
        diggan = dict(weight=weight, cadence=cadence, wrt=wrt, smoothing=smoothing)
        super().__init__(device=device, G_mapping=G_mapping, G_synthesis=G_synthesis, D=D, augment_pipe=augment_pipe,
                         diggan=diggan, style_mixing_prob=style_mixing_prob, r1_gamma=r1_gamma,
                         pl_batch_shrink=pl_batch_shrink, pl_decay=pl_decay, pl_weight=pl_weight)

    check_options = preset_check_options('diggan')
