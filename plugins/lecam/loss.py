"""LeCam alone as an upstream loss: `--loss plugins.lecam.Loss --loss-kwargs '{"weight": 1e-6}'`, a preset of
`plugins.loss.Loss` (the same numbers as `--loss plugins.Loss --loss-kwargs '{"lecam": {...}}'`)."""

from plugins.loss import Loss as PluginLoss, preset_check_options


class Loss(PluginLoss):
    """StyleGAN2's loss plus the LeCam regulariser on D's logits; everything else upstream's. Options: those of
    `plugins.lecam.method.LeCam` (weight, decay, form), plus upstream's."""

    def __init__(self, device, G_mapping, G_synthesis, D, augment_pipe=None, weight: float = 3e-7,
                 decay: float = 0.99, form: str = 'released', style_mixing_prob=0.9, r1_gamma=10, pl_batch_shrink=2,
                 pl_decay=0.01, pl_weight=2):
        super().__init__(device=device, G_mapping=G_mapping, G_synthesis=G_synthesis, D=D, augment_pipe=augment_pipe,
                         lecam=dict(weight=weight, decay=decay, form=form), style_mixing_prob=style_mixing_prob,
                         r1_gamma=r1_gamma, pl_batch_shrink=pl_batch_shrink, pl_decay=pl_decay, pl_weight=pl_weight)

    check_options = preset_check_options('lecam')
