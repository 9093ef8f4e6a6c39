"""scripts/compare_released.py, the end-to-end differential harness, against the project itself: a copy of the
patched upstream tree as the "fork" agrees bit for bit; a planted one-line change is found at its minibatch; the
timing mode gives a ratio; usage errors are refused in process."""

import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner

from tests.conftest import ROOT

HARNESS = ROOT / 'scripts' / 'compare_released.py'
Z_LINE = 'all_gen_z = torch.randn([len(phases) * batch_size, G.z_dim], device=device)'


@pytest.fixture(scope='module')
def fork(tmp_path_factory):
    """The patched upstream tree, copied: a "fork" that is the project's training loop itself."""
    path = tmp_path_factory.mktemp('fork') / 'stylegan2_ada'
    shutil.copytree(ROOT / 'stylegan2_ada', path, ignore=shutil.ignore_patterns('.git', '__pycache__'))
    return path


def harness(fork, dataset, *extra):
    args = f'--data {dataset} --cfg cpu --metrics none --workers 1 --seed 3'
    return subprocess.run([sys.executable, str(HARNESS), '--fork', str(fork), '--fork-args', args, '--project-args',
                           args, '--minibatches', '6', *extra], capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_the_same_loop_is_equal_bit_for_bit(fork, dataset16):
    result = harness(fork, dataset16)
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'start: equal before any transfer' in result.stdout
    assert 'compared: 6 minibatches' in result.stdout and 'result: equal bit for bit' in result.stdout


@pytest.mark.slow
def test_a_planted_change_is_found_at_its_minibatch(fork, dataset16, tmp_path):
    planted = tmp_path / 'planted'
    shutil.copytree(fork, planted)
    loop = planted / 'training' / 'training_loop.py'
    source = loop.read_text()
    assert source.count(Z_LINE) == 1
    loop.write_text(source.replace(Z_LINE, Z_LINE + ' * (1 + 1e-3 * (batch_idx == 4))'))  # minibatch 4's z
    result = harness(planted, dataset16)
    assert result.returncode == 1, result.stdout + result.stderr
    assert 'start: equal before any transfer' in result.stdout
    assert 'result: first difference: Loss/scores/fake in minibatch 4, phase Gmain' in result.stdout


@pytest.mark.slow
def test_timing_gives_each_sides_time_and_their_ratio(fork, dataset16):
    result = harness(fork, dataset16, '--time', '--repeats', '1', '--warmup', '2')
    assert result.returncode == 0, result.stdout + result.stderr
    cpu = next(line for line in result.stdout.splitlines() if line.startswith('cpu: fork '))
    assert 'over 4 minibatch pairs (1 runs)' in cpu  # minibatches 2 to 5
    ratio = float(cpu.split('ratio project / fork: ')[1].split()[0])
    assert 0.2 < ratio < 5


@pytest.mark.parametrize('args, message', [
    ([], '--fork DIR is required'),
    (['--fork', str(ROOT / 'docs')], 'no train.py there'),
    (['--fork', str(ROOT / 'stylegan2_ada'), '--override', '{"a": '], '--override is not JSON'),
    (['--fork', str(ROOT / 'stylegan2_ada'), '--override', '[1]'], '--override must be a JSON object'),
    (['--fork', str(ROOT / 'stylegan2_ada'), '--time', '--warmup', '8', '--minibatches', '8'], '--warmup 8 must be below'),
])
def test_usage_errors_name_the_bad_value(args, message):
    from scripts.compare_released import main
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and message in result.output
