"""Snapshots are pickles: upstream's tools refuse one that names a function snapshots never hold (patch 0015), before
it can run, and load it only when STYLEGAN2_TRUST_PICKLES=1 says the user trusts it."""

import os
import pickle
import subprocess
import sys

import pytest

from tests.conftest import ROOT


class ShellPayload:
    """What an attacker would put in a .pkl: unpickling it runs a shell command."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def dotted_payload(module, name, command):
    """Protocol 4 resolves a dotted name inside a module: module 'torch.utils.cpp_extension', name 'os.system'
    reaches os.system through a package that snapshots do use."""
    def text(value):
        data = value.encode()
        return pickle.SHORT_BINUNICODE + bytes([len(data)]) + data
    return (pickle.PROTO + b'\x04' + text(module) + text(name) + pickle.STACK_GLOBAL + text(command) + pickle.TUPLE1
            + pickle.REDUCE + pickle.STOP)


PAYLOADS = {
    'os.system': (lambda command: pickle.dumps(ShellPayload(command)), 'posix.system'),
    'dotted name': (lambda command: dotted_payload('torch.utils.cpp_extension', 'os.system', command),
                    'torch.utils.cpp_extension.os.system'),
}


@pytest.fixture(params=list(PAYLOADS))
def crafted(tmp_path, request):
    build, global_name = PAYLOADS[request.param]
    marker = tmp_path / 'payload-ran'
    path = tmp_path / 'crafted.pkl'
    path.write_bytes(build(f'touch {marker}'))
    return path, marker, global_name


def run(script, *args, trust=False):
    env = {key: value for key, value in os.environ.items() if key != 'STYLEGAN2_TRUST_PICKLES'}
    if trust:
        env['STYLEGAN2_TRUST_PICKLES'] = '1'
    return subprocess.run([sys.executable, str(ROOT / 'stylegan2_ada' / script), *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600, env=env)


@pytest.mark.parametrize('script, args', [
    ('train.py', ['--cfg', 'cpu', '--resume', '{pkl}', '--data', '{data}', '--outdir', '{out}']),
    ('generate.py', ['--network', '{pkl}', '--seeds', '0', '--outdir', '{out}']),
    ('calc_metrics.py', ['--network', '{pkl}', '--metrics', 'fid1k_full', '--data', '{data}']),
])
def test_a_crafted_snapshot_is_refused_before_it_runs(tmp_path, dataset16, crafted, script, args):
    path, marker, global_name = crafted
    values = {'pkl': path, 'data': dataset16, 'out': tmp_path / 'out'}
    result = run(script, *[arg.format(**values) for arg in args])
    output = result.stdout + result.stderr
    assert result.returncode != 0 and not marker.exists()
    assert f'the pickle names {global_name}, which network snapshots do not contain' in output
    assert 'STYLEGAN2_TRUST_PICKLES=1' in output
    assert not (tmp_path / 'out').exists()


def test_trusting_a_snapshot_loads_it_as_upstream_does(tmp_path, crafted):
    path, marker, _ = crafted
    run('generate.py', '--network', path, '--seeds', '0', '--outdir', tmp_path / 'out', trust=True)
    assert marker.exists()      # the check was all that stood between the file and the shell
