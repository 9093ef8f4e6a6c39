"""APA alone as an upstream loss: `--loss plugins.apa.Loss --loss-kwargs '{"p": "heuristic"}'`, a preset of
`plugins.loss.Loss` (the same numbers as `--loss plugins.Loss --loss-kwargs '{"apa": {...}}'`)."""

from typing import Union

from plugins.loss import Loss as PluginLoss, preset_check_options


class Loss(PluginLoss):
    """StyleGAN2's loss whose D real term sees generated images in place of some reals (APA); everything else
    upstream's. Options: those of `plugins.apa.method.APA` (p) and of its overfitting heuristic (target 0.6,
    speed_kimg 500, interval 4; when p is the heuristic's), plus upstream's."""

    def __init__(self, device, G_mapping, G_synthesis, D, augment_pipe=None, p: Union[str, float] = 'auto',
                 target: float = None, speed_kimg: float = None, interval: int = None, style_mixing_prob=0.9,
                 r1_gamma=10, pl_batch_shrink=2, pl_decay=0.01, pl_weight=2, ada_target=None):
        heuristic = {key: value for key, value in dict(target=target, speed_kimg=speed_kimg, interval=interval).items()
                     if value is not None}
        super().__init__(device=device, G_mapping=G_mapping, G_synthesis=G_synthesis, D=D, augment_pipe=augment_pipe,
                         apa=dict(p=p, **heuristic), style_mixing_prob=style_mixing_prob, r1_gamma=r1_gamma,
                         pl_batch_shrink=pl_batch_shrink, pl_decay=pl_decay, pl_weight=pl_weight,
                         ada_target=ada_target)

    check_options = preset_check_options('apa')
