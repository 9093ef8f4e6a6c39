"""The released low-shot config through the real train.py on the CPU, in a module of its own: its full-width
networks make it the slowest test, and pytest-xdist schedules whole modules."""

import pickle

import numpy as np
import pytest

from tests.conftest import read_stats, run_train


def load_snapshot(run_dir):
    with open(max(run_dir.glob('network-snapshot-*.pkl')), 'rb') as f:
        return pickle.load(f)


def test_low_shot_config_trains_on_the_cpu(tmp_path):
    """The released low-shot config's full-width networks (512 channels, mbstd 8 capped at the batch of 4) in FP32,
    at 8x8 and with 2 x 2 snapshot grids, which would otherwise be most of the run's time on a CPU."""
    from plugins.primitives.writer import write_dataset
    data = tmp_path / 'primitives8.zip'
    write_dataset(str(data), 'primitives', 8, 8, 0, workers=1, progress=False)
    run_train('--outdir', tmp_path / 'runs', '--data', data, '--cfg', 'low_shot', '--kimg', 0.004, '--metrics', 'none',
              '--workers', 1, '--aug', 'noaug', '--grid', 2)
    (run_dir,) = [path for path in (tmp_path / 'runs').iterdir() if path.is_dir()]
    assert run_dir.name.endswith('-low_shot-kimg0.004-noaug')
    snapshot = load_snapshot(run_dir)
    assert snapshot['D'].b4.mbstd.group_size == 8 and snapshot['D'].b4.conv.weight.shape[0] == 512
    stats = read_stats(run_dir)
    assert stats[-1]['Progress/kimg']['mean'] == pytest.approx(0.004)
    assert all(np.isfinite(stats[-1][key]['mean']) for key in ('Loss/G/loss', 'Loss/D/loss'))
