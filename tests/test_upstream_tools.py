"""Bad input to upstream's generate.py, calc_metrics.py, dataset_tool.py, style_mixing.py and projector.py (patch
0022): a clear error, a non-zero exit and nothing written; and the tools on grey networks."""

import hashlib

import numpy as np
import PIL.Image
import pytest
import torch

from tests.conftest import invoke_tool, run_upstream, train
from tests.test_reliability import image_zip

VGG16_URL = 'https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/vgg16.pt'


@pytest.fixture(scope='module')
def snapshot(tmp_path_factory, dataset16):
    run_dir = train(tmp_path_factory.mktemp('one-step'), dataset16, '--kimg', 0.004, '--aug', 'noaug')
    return max(run_dir.glob('network-snapshot-*.pkl'))


def refused(script, *args, message, written=(), process=False):
    """The tool refuses: a non-zero exit, `message` and nothing written; in this process, or with `process` in a new
    one (each exit path once: a click usage error, a message of the patches, dataset_tool's own)."""
    if process:
        result = run_upstream(script, *args, check=False)
        exit_code, output = result.returncode, result.stdout + result.stderr
        assert 'Traceback' not in output
    else:
        exit_code, output = invoke_tool(script, *args)
    assert exit_code != 0 and message in output, output
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
            written=[tmp_path / 'out'], process=args == [])


def test_generate_and_calc_metrics_name_a_network_they_cannot_read(tmp_path):
    junk = tmp_path / 'junk.pkl'
    junk.write_bytes(b'not a pickle')
    for script, extra in [('generate.py', ['--seeds', '0', '--outdir', tmp_path / 'out']),
                          ('calc_metrics.py', ['--metrics', 'fid1k_full'])]:
        refused(script, '--network', tmp_path / 'missing.pkl', *extra,
                message='--network: no such file' if script == 'generate.py' else '--network must point to a file',
                written=[tmp_path / 'out'])
        refused(script, '--network', junk, *extra, message=f'--network: cannot read {junk} as a network snapshot',
                written=[tmp_path / 'out'], process=script == 'generate.py')


def test_calc_metrics_names_data_it_cannot_use(tmp_path, snapshot):
    refused('calc_metrics.py', '--network', snapshot, '--metrics', 'fid1k_full', '--data', tmp_path / 'missing.zip',
            message=f'--data: no such file or directory: {tmp_path / "missing.zip"}')
    (tmp_path / 'empty').mkdir()
    refused('calc_metrics.py', '--network', snapshot, '--metrics', 'fid1k_full', '--data', tmp_path / 'empty',
            message=f'--data: cannot read {tmp_path / "empty"} at 16x16')


def test_dataset_tool_refuses_an_empty_source_and_leaves_no_partial_dataset(tmp_path):
    (tmp_path / 'empty').mkdir()
    refused('dataset_tool.py', '--source', tmp_path / 'empty', '--dest', tmp_path / 'out.zip',
            message='No images found in', written=[tmp_path / 'out.zip'], process=True)
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


@pytest.fixture(scope='module')
def grey_snapshot(tmp_path_factory):
    folder = tmp_path_factory.mktemp('grey')
    data = image_zip(folder / 'grey.zip', np.random.default_rng(0).integers(0, 256, size=(8, 16, 16), dtype=np.uint8))
    run_dir = train(folder / 'runs', data, '--kimg', 0.004, '--aug', 'noaug')
    return max(run_dir.glob('network-snapshot-*.pkl'))


def test_style_mixing_refuses_bad_input(tmp_path, snapshot):
    out = tmp_path / 'out'
    mix = ['--network', snapshot, '--rows', '0-1', '--cols', '2']
    for args, message in [
        (mix, '--styles: this network has style layers 0-5; got 0,1,2,3,4,5,6'),  # upstream's default, on a 16x16 G
        ([*mix, '--styles', '0-2', '--trunc', 'nan'], '--trunc must be a finite number, got nan'),
        (['--network', snapshot, '--rows', '5-2', '--cols', '2'], "'5-2' is an empty range"),
        (['--network', tmp_path / 'missing.pkl', '--rows', '0', '--cols', '1'], '--network: no such file'),
    ]:
        refused('style_mixing.py', *args, '--outdir', out, message=message, written=[out])
    refused('style_mixing.py', *mix, '--styles', '0-2', '--outdir', '/proc/no-such-dir/out',
            message='--outdir: cannot create /proc/no-such-dir/out: No such file or directory')


def test_generate_and_style_mixing_write_grey_images_of_a_grey_network(tmp_path, grey_snapshot):
    run_upstream('generate.py', '--network', grey_snapshot, '--seeds', '0-1', '--outdir', tmp_path / 'gen')
    run_upstream('style_mixing.py', '--network', grey_snapshot, '--rows', '0-1', '--cols', '2', '--styles', '0-2',
                 '--outdir', tmp_path / 'mix')
    for path, size in [(tmp_path / 'gen' / 'seed0001.png', (16, 16)), (tmp_path / 'mix' / '1-2.png', (16, 16)),
                       (tmp_path / 'mix' / 'grid.png', (32, 48))]:
        with PIL.Image.open(path) as image:
            assert (image.mode, image.size) == ('L', size), path


class FakeVGG16(torch.nn.Module):
    """Stands in for NVIDIA's vgg16.pt (not downloadable here) with its call signature: unit-norm pooled pixels."""

    def forward(self, img: torch.Tensor, resize_images: bool = True, return_lpips: bool = False) -> torch.Tensor:
        features = torch.nn.functional.adaptive_avg_pool2d(img, 4).flatten(1)
        return features / features.square().sum(dim=1, keepdim=True).sqrt()


def test_projector_refuses_bad_input_then_projects_with_a_cached_vgg16(tmp_path, snapshot, grey_snapshot, monkeypatch):
    monkeypatch.setenv('DNNLIB_CACHE_DIR', str(tmp_path / 'cache'))
    monkeypatch.setenv('HTTPS_PROXY', 'http://127.0.0.1:9')  # never download the real network, even when online
    target = tmp_path / 'target.png'
    PIL.Image.fromarray(np.random.default_rng(0).integers(0, 256, size=(20, 24, 3), dtype=np.uint8)).save(target)
    (tmp_path / 'junk.png').write_bytes(b'not an image')
    out = tmp_path / 'out'
    project = ['--network', snapshot, '--target', target, '--outdir', out, '--save-video', 'false']
    for args, message in [
        ([*project, '--num-steps', '0'], '--num-steps must be at least 1, got 0'),
        (['--network', snapshot, '--target', tmp_path / 'junk.png', '--outdir', out], '--target: cannot read'),
        (['--network', grey_snapshot, '--target', target, '--outdir', out],
         'projector.py projects into unconditional RGB networks; ' + str(grey_snapshot) + ' has 0 classes and 1 channel'),
        ([*project, '--num-steps', '2'], "projector.py needs NVIDIA's VGG16 feature network: metric network 'vgg16' is not available"),
    ]:
        refused('projector.py', *args, message=message, written=[out])
    cached = tmp_path / 'cache' / 'downloads' / f'{hashlib.md5(VGG16_URL.encode()).hexdigest()}_vgg16.pt'
    cached.parent.mkdir(parents=True)
    torch.jit.script(FakeVGG16()).save(str(cached))
    run_upstream('projector.py', *project, '--num-steps', '3')
    assert np.load(out / 'projected_w.npz')['w'].shape == (1, 6, 64)  # [1, num_ws, w_dim] of the cpu config
    run_upstream('generate.py', '--network', snapshot, '--projected-w', out / 'projected_w.npz', '--outdir', tmp_path / 'gen')
    with PIL.Image.open(out / 'proj.png') as projected, PIL.Image.open(tmp_path / 'gen' / 'proj00.png') as rendered:
        difference = np.abs(np.asarray(projected, dtype=int) - np.asarray(rendered, dtype=int))
    assert projected.size == (16, 16) and difference.max() <= 1  # upstream's projector truncates where generate.py rounds
