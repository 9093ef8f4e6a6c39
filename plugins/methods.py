"""The methods `plugins.Loss` combines, in the order it calls them: the --loss-kwargs key and the class implementing
`plugins.common.method.Method`. A new method is a package and one line here."""

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


def method_class(name):
    """The class registered as `name`; ValueError naming the registered ones otherwise."""
    if name not in METHODS:
        raise ValueError(f'unknown method {name!r}; the methods are {", ".join(METHODS)}')
    module_name, _, class_name = METHODS[name].rpartition('.')
    return getattr(importlib.import_module(module_name), class_name)


def preset(name):
    """The class name of the method alone as an upstream loss, its package's `Loss` ('plugins.atopk.Loss')."""
    return METHODS[name].rsplit('.', 2)[0] + '.Loss'


def stats_prefixes():
    """Each method's training_stats prefix, in the registry's order."""
    return [method_class(name).stats_prefix for name in METHODS]


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
    return '\n'.join(rows)


if __name__ == '__main__':  # .venv/bin/python -m plugins.methods (the methods' classes import upstream)
    print(registry_table())
