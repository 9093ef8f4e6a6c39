"""Smoke test of benchmarks/compare.py on tiny settings (8x8, a few minibatches, the CPU)."""

import importlib
import re
import subprocess
import sys

import pytest

from benchmarks.compare import default_methods, parse_method
from tests.conftest import ROOT

NUMBER = r'\d+\.\d+'


def compare(*args):
    result = subprocess.run([sys.executable, 'benchmarks/compare.py', '--resolution', '8', *map(str, args)],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.splitlines()


def method_lines(lines, names):
    """{name: the rest of its table line} for the configurations `names`."""
    rows = {}
    for line in lines:
        words = line.split(maxsplit=1)
        if words and words[0] in names:
            rows[words[0]] = words[1]
    return rows


@pytest.mark.slow
def test_one_line_per_method_and_the_baseline_against_itself():
    lines = compare('--minibatches', 8, '--repeats', 3,
                    '--method', 'base=training.loss.StyleGAN2Loss', '--method', 'again=training.loss.StyleGAN2Loss',
                    '--method', 'atopk=plugins.atopk.Loss:{"mode": "fixed", "k": 2}')
    assert 'peak RSS growth MiB (fresh process)' in lines[1]
    rows = method_lines(lines, {'base', 'again', 'atopk'})
    parsed = {}
    for name in ('base', 'again', 'atopk'):
        match = re.fullmatch(rf'({NUMBER}) +({NUMBER}) +({NUMBER}) +({NUMBER}) +({NUMBER})', rows[name])
        assert match, rows[name]
        parsed[name] = [float(value) for value in match.groups()]  # wall, ratio, cpu, ratio, MiB
    assert parsed['base'][1] == parsed['base'][3] == 1.0
    # The same loss twice: the interleaved timing must find the same cost (CPU time; generous for a shared machine).
    assert 0.75 < parsed['again'][3] < 1.33, parsed['again']
    for name, (wall, wall_ratio, cpu, cpu_ratio, memory) in parsed.items():
        assert wall > 0 and cpu > 0 and memory > 0, name
        assert wall_ratio == pytest.approx(wall / parsed['base'][0], abs=5e-3), name
        assert cpu_ratio == pytest.approx(cpu / parsed['base'][2], abs=5e-3), name


def importable(class_name):
    module_name, _, attr = class_name.rpartition('.')
    try:
        return hasattr(importlib.import_module(module_name), attr)
    except ImportError:
        return False


@pytest.mark.slow
def test_default_methods_with_two_augmentations():
    lines = compare('--minibatches', 4, '--repeats', 1, '--no-memory',
                    '--aug', 'noaug', '--aug', 'plugins.diffaug.AugmentPipe')
    assert 'augmentation noaug, plugins.diffaug.AugmentPipe' in lines[0]
    methods = [parse_method(spec) for spec in default_methods()]
    names = [f'{name}+{aug}' for aug in ('noaug', 'plugins.diffaug.AugmentPipe') for name, _, _ in methods]
    rows = method_lines(lines, set(names))
    assert list(rows) == names
    for aug in ('noaug', 'plugins.diffaug.AugmentPipe'):
        for name, class_name, _ in methods:
            row = rows[f'{name}+{aug}']
            if name == 'insgen' and aug == 'noaug':  # InsGen makes its two views with the pipe
                assert row.startswith('refused: InsGen makes two views of every image with the augment pipe')
                continue
            available = importable(class_name) and (aug == 'noaug' or importable(aug))
            assert row.startswith('not available: ') != available, (name, aug, row)
    assert re.fullmatch(rf'{NUMBER} +1\.000 +{NUMBER} +1\.000', rows['baseline+noaug'])


@pytest.mark.parametrize('args, message', [
    (['--method', 'x=plugins.no_such_plugin.Loss'], "x=plugins.no_such_plugin.Loss: ModuleNotFoundError"),
    (['--method', 'a=plugins.atopk.Loss:{"bogus_opt": 1}'], "atopk: unknown option 'bogus_opt'"),
    (['--aug', 'bogus.Pipe'], "Invalid value for --aug: bogus.Pipe: ModuleNotFoundError"),
    (['--aug', 'ada', '--aug', 'ada'], "Invalid value for --aug: an augmentation given twice"),
    (['--aug', 'ada', '--p', 'nan'], "Invalid value for --p: nan is not a probability"),
    (['--p', '0.3'], 'no --aug other than noaug is given'),
    (['--resolution', '12'], "Invalid value for --resolution: 12 is not a power of two >= 4"),
    (['--z-dim', '0'], "Invalid value for '--z-dim'"),
    (['--device', 'bogus'], "Invalid value for --device: 'bogus'"),
])
def test_bad_options_are_usage_errors(args, message):
    from click.testing import CliRunner

    from benchmarks.compare import main
    result = CliRunner().invoke(main, ['--minibatches', '1', '--repeats', '1', '--no-memory', *args])
    assert result.exit_code == 2 and message in result.output, result.output


@pytest.mark.slow
def test_diffusion_pipe_against_adas_with_the_timestep_discriminator():
    lines = compare('--minibatches', 2, '--repeats', 1, '--no-memory', '--method', 'base=training.loss.StyleGAN2Loss',
                    '--aug', 'ada', '--aug', 'plugins.diffusion.AugmentPipe', '--D-class', 'plugins.diffusion.Discriminator')
    rows = method_lines(lines, {'base+ada', 'base+plugins.diffusion.AugmentPipe'})
    assert re.fullmatch(rf'{NUMBER} +1\.000 +{NUMBER} +1\.000', rows['base+ada'])
    assert re.fullmatch(rf'{NUMBER} +{NUMBER} +{NUMBER} +{NUMBER}', rows['base+plugins.diffusion.AugmentPipe'])
