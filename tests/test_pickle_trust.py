"""Snapshots are pickles: upstream's tools refuse one that names a function snapshots never hold, or that would forge
memory through the arrays, NumPy scalars and tensors it builds (patch 0020), before it can run, and load it only
when STYLEGAN2_TRUST_PICKLES=1 says the user trusts it."""

import collections
import io
import os
import pickle
import subprocess
import sys

import numpy as np
import PIL.Image
import pytest
import torch

from tests.conftest import ROOT, invoke_tool


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


class Forged:
    """An object that pickles as the call `reduce` (a callable, its arguments and optionally the state it sets)."""

    def __init__(self, *reduce):
        self.reduce = reduce

    def __reduce__(self):
        return self.reduce


FORGERIES = {  # technique: (the object, what the refusal says)
    'dtype flags': (Forged(np.dtype, ('f8', False, True), (3, '<', None, None, None, -1, -1, 0x3f)),
                    "sets the state of a NumPy dtype to (3, '<', None, None, None, -1, -1, 63)"),
    'object dtype': (Forged(np.dtype, ('O', False, True), (3, '|', None, None, None, -1, -1, 63)),
                     "builds the NumPy dtype 'O'"),
    'object field': (Forged(np.dtype, ('f8', False, True), (3, '|', None, ('a',), {'a': (np.dtype('O'), 0)}, 8, 1, 8)),
                     "builds the NumPy dtype 'O8'"),
    'field offset': (Forged(np.dtype, ('f8', False, True), (3, '|', None, ('a',), {'a': (np.dtype('f8'), 2 ** 40)},
                                                            16, 1, 16)), 'sets the state of a NumPy dtype to'),
    'scalar with a forged dtype': (Forged(np._core.multiarray.scalar, (Forged(np.dtype, ('f8', False, True),
                                                                              (3, '<', None, None, None, 1, 1, 0x3f)),
                                                                       b'\0' * 8)),
                                   'sets the state of a NumPy dtype to'),
    'scalar bytes': (Forged(np._core.multiarray.scalar, (np.dtype('f8'), b'\0' * 3)),
                     'builds a NumPy scalar from bytes that do not fit its dtype'),
    'array bytes': (Forged(np._core.multiarray._reconstruct, (np.ndarray, (0,), b'b'),
                           (1, (1 << 20,), np.dtype('f8'), False, b'\0' * 8)),
                    'sets the state of an array with a dtype, shape or bytes that do not fit'),
    'ndarray over bytes': (Forged(np.ndarray, ((4,), 'O', b'\0' * 32)), 'calls numpy.ndarray'),
    'tensor offset': (Forged(torch._utils._rebuild_tensor_v2, (torch.zeros(4)._typed_storage(), 1000, (10,), (1,), False,
                                                             collections.OrderedDict())),
                      'builds a tensor that reaches element 1009 of a storage of 4'),
    'tensor stride': (Forged(torch._utils._rebuild_tensor_v2, (torch.zeros(4)._typed_storage(), 0, (4,), (1 << 40,), False,
                                                             collections.OrderedDict())),
                      'builds a tensor that reaches element 3298534883328 of a storage of 4'),
}


@pytest.mark.parametrize('technique', list(FORGERIES))
def test_a_forged_array_scalar_or_tensor_is_refused(technique):
    import legacy
    forged, message = FORGERIES[technique]
    with pytest.raises(legacy.UntrustedPickleError, match='STYLEGAN2_TRUST_PICKLES=1') as error:
        legacy.load_network_pkl(io.BytesIO(pickle.dumps({'G': forged})))
    assert message in str(error.value)


def test_the_checked_loader_builds_what_snapshots_hold():
    import legacy
    from training.networks import Discriminator, Generator
    G = Generator(z_dim=4, c_dim=0, w_dim=4, img_resolution=4, img_channels=1, mapping_kwargs=dict(num_layers=1),
                  synthesis_kwargs=dict(channel_base=32, channel_max=8))
    data = {'G': G, 'D': Discriminator(c_dim=0, img_resolution=4, img_channels=1, channel_base=32, channel_max=8),
            'G_ema': G, 'rng': np.random.RandomState(5).get_state(), 'scalar': np.float64(2.5),
            'big_endian': np.arange(6, dtype='>f4').reshape(2, 3), 'view': torch.arange(12.0).reshape(3, 4)[1:, ::2],
            'empty': torch.zeros(0, 7)}
    loaded = legacy.load_network_pkl(io.BytesIO(pickle.dumps(data)))
    for name, tensor in G.state_dict().items():
        assert torch.equal(loaded['G'].state_dict()[name], tensor), name
    assert loaded['rng'][0] == 'MT19937' and np.array_equal(loaded['rng'][1], data['rng'][1])
    assert np.array_equal(loaded['big_endian'], data['big_endian']) and loaded['scalar'] == 2.5
    assert torch.equal(loaded['view'], data['view']) and loaded['empty'].shape == (0, 7)
    assert np.dtype('f4').byteorder == '='  # NumPy's own dtype kept its state


PAYLOADS = {  # name: (the pickle's bytes given the shell command it would run, what the refusal says)
    'os.system': (lambda command: pickle.dumps(ShellPayload(command)),
                  'the pickle names posix.system, which network snapshots do not contain'),
    'dotted name': (lambda command: dotted_payload('torch.utils.cpp_extension', 'os.system', command),
                    'the pickle names torch.utils.cpp_extension.os.system, which network snapshots do not contain'),
    'forged dtype': (lambda command: pickle.dumps({'G': FORGERIES['field offset'][0], 'command': command}),
                     'sets the state of a NumPy dtype to'),
}


def write_payload(tmp_path, name):
    """(the crafted .pkl, the file its command would create, what the refusal says)."""
    build, message = PAYLOADS[name]
    marker = tmp_path / 'payload-ran'
    path = tmp_path / 'crafted.pkl'
    path.write_bytes(build(f'touch {marker}'))
    return path, marker, message


@pytest.fixture(params=list(PAYLOADS))
def crafted(tmp_path, request):
    return write_payload(tmp_path, request.param)


def run(script, *args, trust=False):
    env = {key: value for key, value in os.environ.items() if key != 'STYLEGAN2_TRUST_PICKLES'}
    if trust:
        env['STYLEGAN2_TRUST_PICKLES'] = '1'
    return subprocess.run([sys.executable, str(ROOT / 'stylegan2_ada' / script), *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600, env=env)


COMMANDS = {  # each tool that unpickles the file it is given, and its arguments
    'train.py': ['--cfg', 'cpu', '--resume', '{pkl}', '--data', '{data}', '--outdir', '{out}'],
    'train.py file URL': ['--cfg', 'cpu', '--resume', 'file://{pkl}', '--data', '{data}', '--outdir', '{out}'],
    'generate.py': ['--network', '{pkl}', '--seeds', '0', '--outdir', '{out}'],
    'calc_metrics.py': ['--network', '{pkl}', '--metrics', 'fid1k_full', '--data', '{data}'],
    'style_mixing.py': ['--network', '{pkl}', '--rows', '0', '--cols', '1', '--outdir', '{out}'],
    'projector.py': ['--network', '{pkl}', '--target', '{image}', '--outdir', '{out}'],
}


def tool_arguments(tmp_path, dataset16, path, tool):
    image = tmp_path / 'target.png'
    PIL.Image.new('RGB', (16, 16)).save(image)
    values = {'pkl': path, 'data': dataset16, 'out': tmp_path / 'out', 'image': image}
    return [arg.format(**values) for arg in COMMANDS[tool]]


def assert_refused(tmp_path, output, crafted):
    path, marker, message = crafted
    assert not marker.exists()
    assert message in output and str(path) in output and 'STYLEGAN2_TRUST_PICKLES=1' in output
    assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('tool', list(COMMANDS))
def test_a_crafted_snapshot_is_refused_before_it_runs(tmp_path, dataset16, crafted, tool, monkeypatch):
    """Every payload against every tool, in this process; the exit of a real process is the next test's."""
    monkeypatch.delenv('STYLEGAN2_TRUST_PICKLES', raising=False)
    exit_code, output = invoke_tool(tool.split()[0], *tool_arguments(tmp_path, dataset16, crafted[0], tool))
    assert exit_code != 0
    assert_refused(tmp_path, output, crafted)


def test_a_crafted_snapshot_ends_the_process_with_a_message_and_no_traceback(tmp_path, dataset16):
    crafted = write_payload(tmp_path, 'os.system')
    result = run('train.py', *tool_arguments(tmp_path, dataset16, crafted[0], 'train.py'))
    output = result.stdout + result.stderr
    assert result.returncode != 0 and 'Traceback' not in output
    assert_refused(tmp_path, output, crafted)


@pytest.mark.parametrize('payload', ['os.system', 'dotted name'])
def test_trusting_a_snapshot_loads_it_as_upstream_does(tmp_path, payload):
    path, marker, _ = write_payload(tmp_path, payload)
    run('generate.py', '--network', path, '--seeds', '0', '--outdir', tmp_path / 'out', trust=True)
    assert marker.exists()      # the check was all that stood between the file and the shell
