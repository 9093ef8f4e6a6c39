"""Networks that train.py builds by name in the tests (--G-class, --D-class). Persistent classes: snapshots carry
this file's code, which imports only upstream's modules, so generate.py and --resume load them anywhere."""

from torch_utils import persistence
from training.networks import Discriminator


@persistence.persistent_class
class ScaledDiscriminator(Discriminator):
    """Upstream's D with its logits multiplied by `logit_scale`."""

    def __init__(self, *args, logit_scale=1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.logit_scale = logit_scale

    def forward(self, img, c, **block_kwargs):
        return super().forward(img, c, **block_kwargs) * self.logit_scale


class PlainDiscriminator(Discriminator):
    """Upstream's D without persistence: snapshots could not carry it."""
