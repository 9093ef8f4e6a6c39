"""scripts/lowshot.py: dataset building (read back with upstream's ImageFolderDataset), the dry-run plan, and one
tiny real pass (CPU, 0.1 kimg, no metrics). The source is a small synthetic Fashion-MNIST in the real IDX format,
so that the tests need no download."""

import gzip
import json
import subprocess
import sys

import numpy as np
import pytest
from training.dataset import ImageFolderDataset

from scripts.lowshot import IMAGES_FILE, LABELS_FILE, balanced_subset, build_datasets, read_idx
from tests.conftest import ROOT

SOURCE_IMAGES = 150  # 15 per class


def idx_bytes(array):
    header = bytes([0, 0, 8, array.ndim]) + b''.join(int(size).to_bytes(4, 'big') for size in array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes())


@pytest.fixture(scope='module')
def source(tmp_path_factory):
    """A Fashion-MNIST-shaped source: 28x28 uint8 images, labels 0-9, as gzipped IDX files."""
    folder = tmp_path_factory.mktemp('fashion-mnist')
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(SOURCE_IMAGES, 28, 28), dtype=np.uint8)
    labels = rng.permutation(np.arange(SOURCE_IMAGES) % 10).astype(np.uint8)
    (folder / IMAGES_FILE).write_bytes(idx_bytes(images))
    (folder / LABELS_FILE).write_bytes(idx_bytes(labels))
    return folder, images, labels


def lowshot(*args):
    return subprocess.run([sys.executable, 'scripts/lowshot.py', *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=900)


def pixels(dataset, index):
    return dataset[index][0].transpose(1, 2, 0)  # CHW -> HWC


def test_builds_100_image_training_set_and_full_reference(source, tmp_path):
    folder, images, labels = source
    train_zip, reference_zip = build_datasets(folder, tmp_path, count=100, resolution=32, seed=0)
    train = ImageFolderDataset(str(train_zip), use_labels=True)
    assert (len(train), train.resolution, train.num_channels, train.label_shape) == (100, 32, 3, [10])
    raw_labels = [train.get_details(i).raw_label for i in range(len(train))]
    assert np.bincount(raw_labels).tolist() == [10] * 10

    chosen = balanced_subset(labels, 100, 0)
    for index in (0, 57, 99):
        image = pixels(train, index)
        assert raw_labels[index] == labels[chosen[index]]
        for channel in range(3):  # grey copied to R, G, B; 2 black pixels of padding on every side
            assert np.array_equal(image[2:30, 2:30, channel], images[chosen[index]])
        assert not image[:2].any() and not image[30:].any() and not image[:, :2].any() and not image[:, 30:].any()

    reference = ImageFolderDataset(str(reference_zip), use_labels=True)
    assert (len(reference), reference.resolution, reference.num_channels) == (SOURCE_IMAGES, 32, 3)
    assert np.array_equal(pixels(reference, 149)[2:30, 2:30, 1], images[149])

    stamp = train_zip.stat().st_mtime_ns
    build_datasets(folder, tmp_path, count=100, resolution=32, seed=0)
    assert train_zip.stat().st_mtime_ns == stamp  # same options: kept
    build_datasets(folder, tmp_path, count=100, resolution=32, seed=1)
    other = ImageFolderDataset(str(train_zip))
    assert not all(np.array_equal(pixels(other, i), pixels(train, i)) for i in range(100))
    manifest = tmp_path / 'lowshot-data.json'
    manifest.write_text(manifest.read_text()[:10])  # cut short by a kill: the zips are built again
    stamp = train_zip.stat().st_mtime_ns
    build_datasets(folder, tmp_path, count=100, resolution=32, seed=1)
    assert train_zip.stat().st_mtime_ns != stamp and json.loads(manifest.read_text())['seed'] == 1


def test_resizes_to_other_resolutions(source, tmp_path):
    folder, _, _ = source
    train_zip, reference_zip = build_datasets(folder, tmp_path, count=20, resolution=16, seed=0, reference_count=30)
    train, reference = ImageFolderDataset(str(train_zip)), ImageFolderDataset(str(reference_zip))
    assert (len(train), train.resolution, train.num_channels) == (20, 16, 3)
    assert (len(reference), reference.resolution) == (30, 16)


def test_bad_source_files_are_named(tmp_path):
    bad = tmp_path / 'bad.gz'
    bad.write_bytes(gzip.compress(b'not an idx file'))
    with pytest.raises(ValueError, match='bad.gz: not an IDX file'):
        read_idx(bad, 'images')
    result = lowshot('--outdir', tmp_path / 'out', '--kimg', 1, '--dry-run', '--fashion-mnist', tmp_path / 'nowhere')
    assert result.returncode != 0 and f'{tmp_path / "nowhere"}: no {IMAGES_FILE}' in result.stderr


def test_too_many_images_per_class_is_refused(source, tmp_path):
    folder, _, _ = source
    result = lowshot('--outdir', tmp_path, '--kimg', 1, '--count', 200, '--metrics', 'none', '--fashion-mnist', folder)
    assert result.returncode != 0 and '--count 200: class 0 has 15 images, 20 wanted' in result.stderr
    assert not (tmp_path / 'runs').exists()


def test_dry_run_prints_the_plan_and_runs_nothing(source, tmp_path):
    folder, _, _ = source
    outdir = tmp_path / 'study'
    result = lowshot('--outdir', outdir, '--kimg', 500, '--seeds', '0,1', '--dry-run', '--fashion-mnist', folder)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith('Plan: 6 configuration(s) x 2 seed(s) = 12 runs of 500 kimg')
    trains = [line for line in lines if 'stylegan2_ada/train.py' in line]
    assert len(trains) == 12 and all(line.startswith('+ ') and '--metrics none' in line for line in trains)
    for name, options in [('baseline', '--aug noaug'), ('ada', '--aug ada'),
                          ('diffaug', '--aug plugins.diffaug.AugmentPipe'),
                          ('atopk', '--aug ada --loss plugins.atopk.Loss'), ('anda', '--aug ada --loss plugins.anda.Loss'),
                          ('diggan', '--aug ada --loss plugins.diggan.Loss')]:
        for seed in (0, 1):
            (line,) = [line for line in trains if f'runs/{name}-seed{seed} ' in line]
            assert f'--seed {seed} ' in line and line.endswith(options) and '--kimg 500 ' in line
    metrics = [line for line in lines if 'stylegan2_ada/calc_metrics.py' in line]
    assert len(metrics) == 12 and all(f'--data {outdir}/data/fmnist-full-32.zip' in line for line in metrics)
    assert lines[-1].startswith('+ ') and 'scripts/report.py' in lines[-1] and '--metric fid50k_full' in lines[-1]
    assert not outdir.exists()


def test_tiny_study_trains_and_reports(source, tmp_path):
    folder, _, _ = source
    args = ['--outdir', tmp_path, '--kimg', 0.1, '--seeds', '0', '--only', 'baseline', '--cfg', 'cpu', '--workers', 1,
            '--metrics', 'none', '--count', 20, '--fashion-mnist', folder]
    result = lowshot(*args)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    (run_dir,) = [path for path in (tmp_path / 'runs' / 'baseline-seed0').iterdir() if path.is_dir()]
    options = json.loads((run_dir / 'training_options.json').read_text())
    assert options['training_set_kwargs']['path'] == str(tmp_path / 'data' / 'fmnist20-32.zip')
    assert 'augment_kwargs' not in options and options['total_kimg'] == 0.1
    report = (tmp_path / 'report' / 'report.md').read_text()
    assert 'fmnist20-32.zip 32x32 n=20' in report and 'noaug' in report
    assert any(line.startswith('+ ') and 'scripts/report.py' in line for line in result.stdout.splitlines())

    again = lowshot(*args)
    assert again.returncode == 0 and 'baseline seed 0: already trained' in again.stdout
    assert len([path for path in (tmp_path / 'runs' / 'baseline-seed0').iterdir() if path.is_dir()]) == 1
    longer = lowshot(*[0.2 if arg == 0.1 else arg for arg in args])  # a finished run of other options is not reused
    assert longer.returncode != 0 and 'holds a run made with other options' in longer.stderr
    assert '--kimg 0.1' in longer.stderr and '--kimg 0.2' in longer.stderr


def test_bad_options_are_refused_before_anything_is_written(source, tmp_path):
    from click.testing import CliRunner

    from scripts import lowshot as script
    folder, _, _ = source
    no_labels = tmp_path / 'no-labels'
    no_labels.mkdir()
    (no_labels / IMAGES_FILE).write_bytes((folder / IMAGES_FILE).read_bytes())
    garbage = tmp_path / 'garbage'
    garbage.mkdir()
    for name in (IMAGES_FILE, LABELS_FILE):
        (garbage / name).write_bytes(b'not gzip')
    outdir = tmp_path / 'study'
    base = ['--outdir', outdir, '--kimg', 1, '--metrics', 'none', '--fashion-mnist', folder]
    cases = [
        (['--seeds', 'a,b'], "'a,b' is not a comma-separated list of integers"),
        (['--seeds', ''], "'': no seed"),
        (['--seeds', '-1'], "'-1': -1 is outside [0, 2^32 - 1]"),
        (['--seeds', '0,0'], 'a seed given twice'),
        (['--only', 'ada', '--only', 'ada'], 'a configuration given twice'),
        (['--kimg', 'nan'], 'nan is not a finite number'),
        (['--cfg', 'bogus'], "'bogus' is not one of train.py's configs: auto, stylegan2"),
        (['--only', 'atopk', '--plugin-aug', 'bogus.Pipe'], "--plugin-aug: cannot import module 'bogus'"),
        (['--data-seed', '-1'], "Invalid value for '--data-seed'"),
        (['--fashion-mnist', no_labels], f'no {LABELS_FILE} there'),
        (['--fashion-mnist', garbage], f'{garbage / IMAGES_FILE}: not a readable gzip file'),
        (['--reference-count', 1000], '--reference-count 1000: the split has 150 images'),
    ]
    for args, message in cases:
        result = CliRunner().invoke(script.main, list(map(str, base + args)))
        assert result.exit_code != 0 and message in result.output, (args, result.output)
        assert not outdir.exists(), args
    for args, message in [(['--outdir', ''], 'must name a folder'),
                          (['--outdir', '/proc/no-such-dir/out'], 'cannot create /proc/no-such-dir/out')]:
        result = CliRunner().invoke(script.main, list(map(str, base[2:] + args)))
        assert result.exit_code != 0 and message in result.output, (args, result.output)
