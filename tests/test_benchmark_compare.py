"""Smoke test of benchmarks/compare.py on tiny settings (8x8, a few minibatches, the CPU)."""

import importlib
import re
import subprocess
import sys

import pytest

from benchmarks.compare import DEFAULT_METHODS, parse_method
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


def test_one_line_per_method_the_baseline_against_itself_and_a_missing_class():
    lines = compare('--minibatches', 8, '--repeats', 3,
                    '--method', 'base=training.loss.StyleGAN2Loss', '--method', 'again=training.loss.StyleGAN2Loss',
                    '--method', 'atopk=plugins.atopk.Loss:{"mode": "fixed", "k": 2}',
                    '--method', 'missing=plugins.no_such_plugin.Loss')
    assert 'peak RSS growth MiB (fresh process)' in lines[1]
    rows = method_lines(lines, {'base', 'again', 'atopk', 'missing'})
    assert rows['missing'].startswith("not available: ModuleNotFoundError: No module named 'plugins.no_such_plugin'")
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


def test_default_methods_with_two_augmentations():
    lines = compare('--minibatches', 4, '--repeats', 1, '--no-memory',
                    '--aug', 'noaug', '--aug', 'plugins.diffaug.AugmentPipe')
    assert 'augmentation noaug, plugins.diffaug.AugmentPipe' in lines[0]
    methods = [parse_method(spec) for spec in DEFAULT_METHODS]
    names = [f'{name}+{aug}' for aug in ('noaug', 'plugins.diffaug.AugmentPipe') for name, _, _ in methods]
    rows = method_lines(lines, set(names))
    assert list(rows) == names
    for aug in ('noaug', 'plugins.diffaug.AugmentPipe'):
        for name, class_name, _ in methods:
            row = rows[f'{name}+{aug}']
            available = importable(class_name) and (aug == 'noaug' or importable(aug))
            assert row.startswith('not available: ') != available, (name, aug, row)
    assert re.fullmatch(rf'{NUMBER} +1\.000 +{NUMBER} +1\.000', rows['baseline+noaug'])
