"""DiffAugment as an upstream augment pipe: `--aug plugins.diffaug.AugmentPipe [--aug-kwargs JSON]`.

Needs upstream's `torch_utils` on sys.path (train.py, generate.py and legacy.load_network_pkl put it there).
"""

import torch
from torch_utils import persistence

from plugins.common.options import check_range, check_type
from plugins.diffaug.ops import POLICY_OPS

_RATIO_OPTIONS = {'translation': 'translation_ratio', 'cutout': 'cutout_ratio'}
DEFAULT_RATIOS = {'translation_ratio': 0.125, 'cutout_ratio': 0.5}  # the paper's 1/8 and 1/2


def parse_policy(policy):
    """The entries of a comma-separated DiffAugment policy, checked against POLICY_OPS (ValueError naming the bad
    entries and the valid ones)."""
    check_type('policy', policy, str)
    entries = tuple(entry.strip() for entry in policy.split(',') if entry.strip())
    unknown = [entry for entry in entries if entry not in POLICY_OPS]
    if unknown or not entries:
        bad = f'unknown entries {unknown}' if unknown else 'no entries'
        raise ValueError(f'policy {policy!r} has {bad}; valid entries, comma-separated: {", ".join(POLICY_OPS)}')
    return entries


@persistence.persistent_class
class AugmentPipe(torch.nn.Module):
    """DiffAugment (Zhao et al. 2020) applied inside upstream's `run_D` to every image D sees, real and fake, in
    the D, G and R1 passes alike; differentiable, so G's gradient and R1's input gradient pass through it.

    Options:
      policy             comma-separated entries of `color`, `translation`, `cutout`, applied in the given order
                         (default 'color,translation,cutout', the paper's policy for StyleGAN2).
      translation_ratio  largest shift per axis as a fraction of the image size (default 0.125, the paper's 1/8).
      cutout_ratio       side of the cut-out box as a fraction of the image size (default 0.5, the paper's).

    p (the tensor buffer that upstream's training loop sets and reports as Progress/augment) is, as in ADA, the
    probability with which each policy entry is applied, independently per image and per entry. p = 1 (train.py's
    default for a custom pipe, and the initial value here) applies every entry to every image: the paper's
    DiffAugment exactly. `--p X` fixes p; `--target T` lets ADA's heuristic move it, as for upstream's pipe. An
    entry not applied leaves the image unchanged; p >= 1 always applies, p <= 0 never does.
    """

    def __init__(self, policy: str = 'color,translation,cutout', translation_ratio: float = None,
                 cutout_ratio: float = None):
        super().__init__()
        self.check_options(policy=policy, translation_ratio=translation_ratio, cutout_ratio=cutout_ratio)
        self.policy = parse_policy(policy)
        given = {'translation_ratio': translation_ratio, 'cutout_ratio': cutout_ratio}
        self.ratios = {name: float(DEFAULT_RATIOS[name] if value is None else value) for name, value in given.items()}
        self.register_buffer('p', torch.ones([]))

    @staticmethod
    def check_options(policy='color,translation,cutout', translation_ratio=None, cutout_ratio=None):
        """Raise ValueError naming the bad option, its value and what is accepted; a ratio is refused when the
        policy lacks its entry (it would do nothing)."""
        entries = parse_policy(policy)
        for entry, name in _RATIO_OPTIONS.items():
            value = {'translation_ratio': translation_ratio, 'cutout_ratio': cutout_ratio}[name]
            if value is not None:
                check_range(name, value, 0, 1)
                if entry not in entries:
                    raise ValueError(f'{name}={value!r} applies only to a policy with {entry!r}; policy is {policy!r}')

    def forward(self, images):
        """Augment a float NCHW batch; each entry is drawn per image with probability p."""
        for entry in self.policy:
            ratio = {'ratio': self.ratios[_RATIO_OPTIONS[entry]]} if entry in _RATIO_OPTIONS else {}
            augmented = POLICY_OPS[entry](images, **ratio)
            applied = torch.rand([images.shape[0], 1, 1, 1], device=images.device) < self.p
            images = torch.where(applied, augmented, images)
        return images
