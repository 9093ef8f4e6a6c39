"""scripts/fashion_mnist.py: the low-shot sets (read back with upstream's ImageFolderDataset) and its refusals. The
source is a small synthetic Fashion-MNIST in the real IDX format, so that the tests need no download."""

import gzip
import json

import numpy as np
import pytest
from click.testing import CliRunner
from training.dataset import ImageFolderDataset

from scripts import fashion_mnist
from scripts.fashion_mnist import IMAGES_FILE, LABELS_FILE, balanced_subset, build_datasets, read_idx

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
    manifest = tmp_path / 'fashion-mnist.json'
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


def build(*args):
    return CliRunner().invoke(fashion_mnist.main, list(map(str, args)))


def test_the_command_writes_both_zips(source, tmp_path):
    folder, _, _ = source
    result = build('--out', tmp_path / 'data', '--count', 20, '--resolution', 16,
                         '--fashion-mnist', folder)
    assert result.exit_code == 0, result.output
    assert f'training set: {tmp_path / "data" / "fmnist20-16.zip"}' in result.output
    assert (len(ImageFolderDataset(str(tmp_path / 'data' / 'fmnist-full-16.zip'))), len(
        ImageFolderDataset(str(tmp_path / 'data' / 'fmnist20-16.zip')))) == (SOURCE_IMAGES, 20)


def test_bad_options_and_files_are_refused_before_anything_is_written(source, tmp_path):
    folder, _, _ = source
    bad = tmp_path / 'bad.gz'
    bad.write_bytes(gzip.compress(b'not an idx file'))
    with pytest.raises(ValueError, match='bad.gz: not an IDX file'):
        read_idx(bad, 'images')
    no_labels = tmp_path / 'no-labels'
    no_labels.mkdir()
    (no_labels / IMAGES_FILE).write_bytes((folder / IMAGES_FILE).read_bytes())
    garbage = tmp_path / 'garbage'
    garbage.mkdir()
    for name in (IMAGES_FILE, LABELS_FILE):
        (garbage / name).write_bytes(b'not gzip')
    out = tmp_path / 'data'
    cases = [
        (['--fashion-mnist', tmp_path / 'nowhere'], f'{tmp_path / "nowhere"}: no {IMAGES_FILE}'),
        (['--fashion-mnist', no_labels], f'no {LABELS_FILE} there'),
        (['--fashion-mnist', garbage], f'{garbage / IMAGES_FILE}: not a readable gzip file'),
        (['--fashion-mnist', folder, '--count', 200], '--count 200: class 0 has 15 images, 20 wanted'),
        (['--fashion-mnist', folder, '--reference-count', 1000], '--reference-count 1000: the split has 150 images'),
        (['--fashion-mnist', folder, '--seed', -1], "Invalid value for '--seed'"),
        (['--fashion-mnist', folder, '--resolution', 48], "Invalid value for '--resolution'"),
    ]
    for args, message in cases:
        result = build('--out', out, *args)
        assert result.exit_code != 0 and message in result.output, (args, result.output)
        assert not out.exists(), args
    for args, message in [(['--out', ''], 'must name a folder'),
                          (['--out', '/proc/no-such-dir/out'], 'cannot create /proc/no-such-dir/out')]:
        result = build(*args, '--fashion-mnist', folder)
        assert result.exit_code != 0 and message in result.output, (args, result.output)
