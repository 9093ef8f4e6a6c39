"""Real upstream train.py runs on the CPU through the patches: outputs, reload by generate.py, identity of --loss."""

import json
import pickle

import numpy as np
import PIL.Image
import pytest
import torch

from tests.conftest import read_stats, run_upstream, train


@pytest.fixture(scope='module')
def ada_run(tmp_path_factory, dataset16):
    """A fraction of a kimg with ADA's bgc pipe and R1 on. With geometric ops enabled the pipe resamples every
    batch through grid_sample (identity where no op fires), so R1's double backward goes through it even at p ~ 0."""
    return train(tmp_path_factory.mktemp('ada'), dataset16, '--kimg', 0.05, '--aug', 'ada', '--augpipe', 'bgc', '--seed', 3)


def load_snapshot(run_dir):
    snapshot = max(run_dir.glob('network-snapshot-*.pkl'))
    with open(snapshot, 'rb') as f:
        return pickle.load(f)


def test_run_writes_stats_images_and_a_snapshot(ada_run):
    options = json.loads((ada_run / 'training_options.json').read_text())
    assert options['augment_kwargs']['class_name'] == 'training.augment.AugmentPipe' and options['ada_target'] == 0.6
    assert options['loss_kwargs']['r1_gamma'] > 0
    stats = read_stats(ada_run)
    assert stats and all('Loss/r1_penalty' in row and 'Loss/D/reg' in row for row in stats[1:])
    assert all(row[f'Gradients/nonfinite/{phase}']['mean'] == 0 for row in stats[1:] for phase in ('Gmain', 'Dmain'))
    assert stats[-1]['Progress/kimg']['mean'] >= 0.05
    assert 'Resources/peak_gpu_mem_gb' not in stats[-1]  # no CUDA: no GPU figures, and no crash
    reference = 'reference (no CUDA GPU)'  # said at start and recorded, as a failed build would be (patch 0026)
    assert options['cuda_ops'] == {'bias_act': reference, 'upfirdn2d': reference}
    assert f'Custom CUDA ops:    bias_act {reference}, upfirdn2d {reference}\n' in (ada_run / 'log.txt').read_text()
    fakes = sorted(ada_run.glob('fakes*.png'))
    assert fakes and PIL.Image.open(fakes[-1]).size[0] % 16 == 0
    snapshot = load_snapshot(ada_run)
    assert {'G', 'D', 'G_ema', 'augment_pipe'} <= set(snapshot)


def test_generate_reloads_the_snapshot_on_the_cpu(ada_run, tmp_path):
    snapshot = max(ada_run.glob('network-snapshot-*.pkl'))
    run_upstream('generate.py', '--network', snapshot, '--seeds', '0-2', '--outdir', tmp_path)
    images = sorted(tmp_path.glob('seed*.png'))
    assert len(images) == 3
    pixels = [np.asarray(PIL.Image.open(p)) for p in images]
    assert pixels[0].shape == (16, 16, 3) and not np.array_equal(pixels[0], pixels[1])


def test_default_loss_named_explicitly_is_bit_identical(tmp_path, dataset16):
    common = ['--kimg', 0.01, '--aug', 'noaug', '--seed', 5]
    implicit = load_snapshot(train(tmp_path / 'implicit', dataset16, *common))
    explicit = load_snapshot(train(tmp_path / 'explicit', dataset16, *common, '--loss', 'training.loss.StyleGAN2Loss'))
    for name in ['G', 'D', 'G_ema']:
        a, b = implicit[name].state_dict(), explicit[name].state_dict()
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), f'{name}.{key} differs'


def test_a_smaller_grid_is_the_full_grids_corner_and_leaves_the_run_alone(tmp_path, dataset16):
    common = ['--kimg', 0.008, '--aug', 'noaug', '--seed', 2]
    full, small = (train(tmp_path / 'full', dataset16, *common, grid=None),
                   train(tmp_path / 'small', dataset16, *common, grid=3))
    names = ['reals.png', 'fakes_init.png', max(full.glob('fakes0*.png')).name]
    pixels = lambda path: np.asarray(PIL.Image.open(path))
    for name in names:
        assert pixels(full / name).shape == (32 * 16, 32 * 16, 3)  # upstream's grid: 32 x 32 images of 16 x 16
        np.testing.assert_array_equal(pixels(small / name), pixels(full / name)[:3 * 16, :3 * 16], err_msg=name)
    full_nets, small_nets = load_snapshot(full), load_snapshot(small)
    for name in ['G', 'D', 'G_ema']:
        a, b = full_nets[name].state_dict(), small_nets[name].state_dict()
        assert all(torch.equal(a[key], b[key]) for key in a), name
