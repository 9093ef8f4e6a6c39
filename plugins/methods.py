"""The methods `plugins.Loss` combines, in the order it calls them: the --loss-kwargs key and the class implementing
`plugins.common.method.Method`. A new method is a package and one line here."""

import importlib

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
