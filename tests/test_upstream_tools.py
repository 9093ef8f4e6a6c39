"""Bad input to upstream's generate.py, calc_metrics.py and dataset_tool.py (patch 0020): a clear error, a non-zero
exit and nothing written."""

import numpy as np
import PIL.Image
import pytest

from tests.conftest import run_upstream, train


@pytest.fixture(scope='module')
def snapshot(tmp_path_factory, dataset16):
    run_dir = train(tmp_path_factory.mktemp('one-step'), dataset16, '--kimg', 0.004, '--aug', 'noaug')
    return max(run_dir.glob('network-snapshot-*.pkl'))


def refused(script, *args, message, written=()):
    result = run_upstream(script, *args, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and message in output, output
    assert 'Traceback' not in output
    for path in written:
        assert not path.exists(), path


@pytest.mark.parametrize('args, message', [
    (['--seeds', '5-2'], "'5-2' is an empty range: the first seed must not exceed the last"),
    (['--seeds', '0', '--trunc', 'nan'], '--trunc must be a finite number, got nan'),
    (['--seeds', '0', '--trunc', 'inf'], '--trunc must be a finite number, got inf'),
    ([], '--seeds option is required when not using --projected-w'),
])
def test_generate_refuses_bad_seeds_and_truncation(tmp_path, snapshot, args, message):
    refused('generate.py', '--network', snapshot, '--outdir', tmp_path / 'out', *args, message=message,
            written=[tmp_path / 'out'])


def test_generate_and_calc_metrics_name_a_network_they_cannot_read(tmp_path):
    junk = tmp_path / 'junk.pkl'
    junk.write_bytes(b'not a pickle')
    for script, extra in [('generate.py', ['--seeds', '0', '--outdir', tmp_path / 'out']),
                          ('calc_metrics.py', ['--metrics', 'fid1k_full'])]:
        refused(script, '--network', tmp_path / 'missing.pkl', *extra,
                message='--network: no such file' if script == 'generate.py' else '--network must point to a file',
                written=[tmp_path / 'out'])
        refused(script, '--network', junk, *extra, message=f'--network: cannot read {junk} as a network snapshot',
                written=[tmp_path / 'out'])


def test_calc_metrics_names_data_it_cannot_use(tmp_path, snapshot):
    refused('calc_metrics.py', '--network', snapshot, '--metrics', 'fid1k_full', '--data', tmp_path / 'missing.zip',
            message=f'--data: no such file or directory: {tmp_path / "missing.zip"}')
    (tmp_path / 'empty').mkdir()
    refused('calc_metrics.py', '--network', snapshot, '--metrics', 'fid1k_full', '--data', tmp_path / 'empty',
            message=f'--data: cannot read {tmp_path / "empty"} at 16x16')


def test_dataset_tool_refuses_an_empty_source_and_leaves_no_partial_dataset(tmp_path):
    (tmp_path / 'empty').mkdir()
    refused('dataset_tool.py', '--source', tmp_path / 'empty', '--dest', tmp_path / 'out.zip',
            message='No images found in', written=[tmp_path / 'out.zip'])
    mixed = tmp_path / 'mixed'
    mixed.mkdir()
    for name, side in [('a.png', 16), ('b.png', 16), ('c.png', 32)]:
        PIL.Image.fromarray(np.zeros((side, side, 3), np.uint8)).save(mixed / name)
    for dest in (tmp_path / 'out.zip', tmp_path / 'outdir'):
        refused('dataset_tool.py', '--source', mixed, '--dest', dest,
                message='attributes must be equal across all images', written=[dest, tmp_path / 'out.zip.tmp'])
    (mixed / 'c.png').unlink()
    run_upstream('dataset_tool.py', '--source', mixed, '--dest', tmp_path / 'out.zip')
    assert (tmp_path / 'out.zip').is_file() and not (tmp_path / 'out.zip.tmp').exists()
