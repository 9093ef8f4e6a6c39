"""The registry of the plugins, by kind: the loss methods `plugins.Loss` combines, in the order it calls them (the
--loss-kwargs key and the class implementing `plugins.common.method.Method`), and the augment pipes, networks and
datasets that train.py builds by class name. A new method is a package and one line in METHODS."""

import importlib

from plugins.common.method import implements
from plugins.common.overfit import HEURISTIC_DEFAULTS

METHODS = {
    'atopk': 'plugins.atopk.method.ATopk',
    'anda': 'plugins.anda.method.ANDA',
    'diggan': 'plugins.diggan.method.DigGAN',
    'apa': 'plugins.apa.method.APA',
    'lecam': 'plugins.lecam.method.LeCam',
    'insgen': 'plugins.insgen.method.InsGen',
}
PIPES = {  # --aug CLASS; a pipe's `stats_prefix`, where it has one, gets its own plot in the report
    'diffaug': 'plugins.diffaug.AugmentPipe',
    'diffusion': 'plugins.diffusion.AugmentPipe',
}
NETWORKS = {  # --D-class CLASS
    'diffusion': 'plugins.diffusion.Discriminator',
}
DATASETS = {  # --data-class CLASS
    'primitives': 'plugins.primitives.dataset.SyntheticDataset',
}


def import_class(path):
    module_name, _, class_name = path.rpartition('.')
    return getattr(importlib.import_module(module_name), class_name)


def method_class(name):
    """The class registered as `name`; ValueError naming the registered ones otherwise."""
    if name not in METHODS:
        raise ValueError(f'unknown method {name!r}; the methods are {", ".join(METHODS)}')
    return import_class(METHODS[name])


def preset(name):
    """The class name of the method alone as an upstream loss, its package's `Loss` ('plugins.atopk.Loss')."""
    return METHODS[name].rsplit('.', 2)[0] + '.Loss'


def stats_prefixes():
    """The training_stats prefixes of the methods' quantities, in the registry's order, then the pipes'."""
    pipes = [getattr(import_class(path), 'stats_prefix', None) for path in PIPES.values()]
    return [method_class(name).stats_prefix for name in METHODS] + [prefix for prefix in pipes if prefix]


def registry_table():
    """The registry as a markdown table (docs/methods.md holds it): each method's --loss-kwargs key, preset, the
    augmentation of its papers' runs, its options with their defaults and its stats prefix."""
    rows = ['| key | preset | papers\' `--aug` | options (defaults) | stats |', '|---|---|---|---|---|']
    for name in METHODS:
        cls = method_class(name)
        options = ', '.join(f'`{option}` {default!r}' for option, default in cls.option_defaults().items())
        heuristic = ', '.join(f'`{option}` {default!r}' for option, default in HEURISTIC_DEFAULTS.items())
        heuristic = f'; heuristic {heuristic}' if implements(cls, 'reads_p') else ''
        rows.append(f'| `{name}` | `{preset(name)}` | `{cls.aug}` | {options}{heuristic} | `{cls.stats_prefix}/` |')
    rows += ['', '| kind | class | stats |', '|---|---|---|']
    for kind, option, registry in (('augment pipe', '--aug', PIPES), ('network', '--D-class', NETWORKS),
                                   ('dataset', '--data-class', DATASETS)):
        for path in registry.values():
            prefix = getattr(import_class(path), 'stats_prefix', None)
            rows.append(f'| {kind} (`{option}`) | `{path}` | {f"`{prefix}/`" if prefix else ""} |')
    return '\n'.join(rows)


if __name__ == '__main__':  # .venv/bin/python -m plugins.methods (the methods' classes import upstream)
    print(registry_table())
