"""The registry is the only list of methods: a toy method made of one package (its `method.py` and a one-line
`__init__.py`) and one registry line gets a preset that trains through upstream's train.py, a controllers plot in
the report, a place in the benchmark's default list and the GPU study's runs, and a row in the docs' table."""

import inspect
import json

import pytest

from plugins import methods
from plugins.common.method import RUN_FACTS
from plugins.loss import UPSTREAM_OPTIONS
from tests.conftest import ROOT, read_stats, train

TOY_METHOD = 'from tests.test_method_protocol import SquaredLogits  # the protocol test\'s toy method\n'


@pytest.fixture
def toy(tmp_path, monkeypatch):
    package = tmp_path / 'toyplug'
    package.mkdir()
    (package / 'method.py').write_text(TOY_METHOD)
    (package / '__init__.py').write_text('from plugins.presets import preset_getattr\n\n'
                                         '__getattr__ = preset_getattr(__name__)\n')  # the package's one line
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(methods.METHODS, 'toy', 'toyplug.method.SquaredLogits')  # the registry's one line


def test_a_toy_method_is_one_package_and_one_registry_line(toy, tmp_path, dataset16):
    import toyplug
    from benchmarks.compare import default_methods
    from study.gpu import configs
    from scripts.report import build_report, controller_prefixes
    from study.cpu import config_args

    assert methods.preset('toy') == 'toyplug.Loss' and toyplug.Loss.__module__ == 'toyplug'
    assert list(inspect.signature(toyplug.Loss).parameters)[4:6] == ['augment_pipe', 'weight']
    assert 'toy=toyplug.Loss' in default_methods() and 'toy' in configs()
    assert config_args('toy', 8.0) == ['--aug', 'ada', '--ada-kimg', '2', '--loss', 'toyplug.Loss',
                                       '--loss-kwargs', '{}']
    assert '| `toy` | `toyplug.Loss` | `ada` | `weight` 0.1 | `Toy/` |' in methods.registry_table().splitlines()
    assert 'Toy/' in controller_prefixes()

    run_dir = train(tmp_path / 'runs', dataset16, '--kimg', 0.02, '--aug', 'noaug', '--loss', 'toyplug.Loss',
                    '--loss-kwargs', '{"weight": 0.5}')
    assert {'Toy/penalty'} <= set(read_stats(run_dir)[-1])
    loss_kwargs = json.loads((run_dir / 'training_options.json').read_text())['loss_kwargs']
    upstream_options = set(loss_kwargs) & set(UPSTREAM_OPTIONS)
    assert set(loss_kwargs) == {'class_name', 'weight', *RUN_FACTS, *upstream_options}  # train.py tells every fact
    report = build_report([run_dir], tmp_path / 'report')
    assert (tmp_path / 'report' / 'controllers-Toy.png').is_file()
    plots = dict(report.plots)  # file name: description, which names the stats plotted
    assert 'Toy/penalty' in plots['controllers-Toy.png']


def test_the_docs_table_is_the_registrys():
    assert methods.registry_table() in (ROOT / 'docs' / 'methods.md').read_text()


def test_a_preset_refuses_what_its_method_refuses():
    from plugins.anda import Loss as ANDALoss
    from plugins.apa import Loss as APALoss
    from plugins.atopk import Loss as ATopkLoss
    with pytest.raises(TypeError, match="unexpected keyword argument 'mdoe'"):
        ATopkLoss(None, None, None, None, mdoe='fixed')
    with pytest.raises(ValueError, match="mode 'fixed' needs an integer k >= 1"):
        ATopkLoss.check_options(mode='fixed')
    with pytest.raises(ValueError, match=r"apa: target set the overfitting heuristic, which apa does not use with "
                                         r"these options \(p is fixed\)"):
        APALoss.check_options(p=0.5, target=0.5)
    with pytest.raises(ValueError, match=r"anda: interval set the overfitting heuristic, which anda does not use "
                                         r"with these options \(alpha is ADA's p\)"):
        ANDALoss.check_options(alpha='ada', interval=2)


def test_the_readme_has_one_command_per_registered_method():
    readme = (ROOT / 'README.md').read_text()
    for name in methods.METHODS:
        command = f'$T --aug {methods.method_class(name).aug} --loss {methods.preset(name)}'
        assert f'    {command} ' in readme, f'README.md lacks the command of {name}: {command}'
