"""InsGen alone as an upstream loss: `--aug ada --loss plugins.insgen.Loss`, a preset of `plugins.loss.Loss` (the
same numbers as `--loss plugins.Loss --loss-kwargs '{"insgen": {...}}'`)."""

from plugins.loss import Loss as PluginLoss, preset_check_options


class Loss(PluginLoss):
    """StyleGAN2's loss plus InsGen's instance discrimination; everything else upstream's. Options: those of
    `plugins.insgen.method.InsGen`, plus upstream's."""

    def __init__(self, device, G_mapping, G_synthesis, D, augment_pipe=None, style_mixing_prob=0.9, r1_gamma=10,
                 pl_batch_shrink=2, pl_decay=0.01, pl_weight=2, random_seed=0, training_set_size=None, xflip=False,
                 G_opt_kwargs=None, D_opt_kwargs=None, G_reg_interval=4, D_reg_interval=16, real_weight: float = 1.0,
                 fake_weight: float = 1.0, g_weight: float = 0.1, temperature: float = 0.2, momentum: float = 0.999,
                 real_queue_size: int = None, fake_queue_size: int = None, noise_std: float = 0.15):
        insgen = dict(real_weight=real_weight, fake_weight=fake_weight, g_weight=g_weight, temperature=temperature,
                      momentum=momentum, real_queue_size=real_queue_size, fake_queue_size=fake_queue_size,
                      noise_std=noise_std)
        super().__init__(device=device, G_mapping=G_mapping, G_synthesis=G_synthesis, D=D, augment_pipe=augment_pipe,
                         insgen=insgen, style_mixing_prob=style_mixing_prob, r1_gamma=r1_gamma,
                         pl_batch_shrink=pl_batch_shrink, pl_decay=pl_decay, pl_weight=pl_weight,
                         random_seed=random_seed, training_set_size=training_set_size, xflip=xflip,
                         G_opt_kwargs=G_opt_kwargs, D_opt_kwargs=D_opt_kwargs, G_reg_interval=G_reg_interval,
                         D_reg_interval=D_reg_interval)

    check_options = preset_check_options('insgen')
