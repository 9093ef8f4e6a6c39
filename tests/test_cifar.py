"""scripts/cifar.py: the CIFAR training sets, their subsets in TensorFlow Datasets' order and the test sets, read back
with upstream's ImageFolderDataset, from small archives in the four real layouts; and its refusals."""

import hashlib
import io
import json
import pickle
import tarfile
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner
from training.dataset import ImageFolderDataset

from scripts import cifar

BATCH = 12  # images per CIFAR-10 training batch file here (10,000 in the real archive)


def fake_split(count, seed, classes):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(count, 3072), dtype=np.uint8), rng.integers(0, classes, size=count)


def python_batch(pixels, labels, label_key, original_module=False):
    """A python-version batch (protocol 3: the authors' Python 2 strings load as bytes, as these do);
    original_module names NumPy 1's module, as the real files do."""
    data = pickle.dumps({b'batch_label': b'batch', label_key: [int(x) for x in labels], b'data': pixels,
                         b'filenames': [b'x.png'] * len(labels)}, protocol=3)
    return data.replace(b'numpy._core.multiarray', b'numpy.core.multiarray') if original_module else data


def binary_batch(pixels, *labels):
    return np.concatenate([np.stack(labels, axis=1).astype(np.uint8), pixels], axis=1).tobytes()


def write_tar(path, members):
    with tarfile.open(path, 'w:gz') as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture(scope='module')
def data():
    """CIFAR-10-like: 5 training batches and a test batch; CIFAR-100-like: one of each, with coarse labels."""
    train, test = fake_split(5 * BATCH, 0, 10), fake_split(20, 1, 10)
    train100, test100, coarse = fake_split(30, 2, 100), fake_split(10, 3, 100), np.arange(40) % 20
    return train, test, train100, test100, coarse


@pytest.fixture(scope='module')
def archives(data, tmp_path_factory):
    (train_px, train_lb), (test_px, test_lb), (px100, lb100), (test_px100, test_lb100), coarse = data
    folder = tmp_path_factory.mktemp('cifar-archives')
    batches = [slice(i * BATCH, (i + 1) * BATCH) for i in range(5)]
    python10 = {f'cifar-10-batches-py/data_batch_{i + 1}': python_batch(train_px[s], train_lb[s], b'labels', i == 0)
                for i, s in enumerate(batches)}
    python10['cifar-10-batches-py/test_batch'] = python_batch(test_px, test_lb, b'labels')
    python10['cifar-10-batches-py/batches.meta'] = pickle.dumps({b'label_names': []}, protocol=3)
    binary10 = {f'cifar-10-batches-bin/data_batch_{i + 1}.bin': binary_batch(train_px[s], train_lb[s])
                for i, s in enumerate(batches)}
    binary10['cifar-10-batches-bin/test_batch.bin'] = binary_batch(test_px, test_lb)
    python100 = {'cifar-100-python/train': python_batch(px100, lb100, b'fine_labels'),
                 'cifar-100-python/test': python_batch(test_px100, test_lb100, b'fine_labels')}
    binary100 = {'cifar-100-binary/train.bin': binary_batch(px100, coarse[:30], lb100),
                 'cifar-100-binary/test.bin': binary_batch(test_px100, coarse[30:], test_lb100)}
    return {name: write_tar(folder / f'{name}.tar.gz', members) for name, members in
            [('python10', python10), ('binary10', binary10), ('python100', python100), ('binary100', binary100)]}


def test_the_order_is_tensorflow_datasets_order():
    """TFDS's own shuffle test: keys 1-9 salted with 'split1' come out as 4 1 6 2 8 5 7 9 3."""
    assert [i for i in cifar.tfds_order(10, 'split1') if i != 0] == [4, 1, 6, 2, 8, 5, 7, 9, 3]
    order = cifar.tfds_order(50000, 'train')
    assert sorted(order) == list(range(50000))
    digests = [hashlib.md5(f'train{i}'.encode()).hexdigest() for i in order[:1000]]
    assert digests == sorted(digests)  # equal-length hex digests sort as their integers


def read_zip(path):
    dataset = ImageFolderDataset(str(path), use_labels=True)
    images = np.stack([dataset[i][0] for i in range(len(dataset))])  # NCHW
    labels = [dataset.get_details(i).raw_label for i in range(len(dataset))]
    return images, labels


@pytest.mark.parametrize('layout', ['python10', 'binary10'])
def test_cifar10_sets_are_the_first_images_in_tfds_order(layout, archives, data, tmp_path):
    (train_px, train_lb), (test_px, test_lb) = data[:2]
    written = cifar.build(archives[layout], tmp_path)
    assert written == {'cifar10-train.zip': 60, 'cifar10-train-20pct.zip': 12, 'cifar10-train-10pct.zip': 6,
                       'cifar10-test.zip': 20}
    order = sorted(range(60), key=lambda i: int(hashlib.md5(b'train' + str(i).encode()).hexdigest(), 16))
    for zip_name, count in [('cifar10-train.zip', 60), ('cifar10-train-20pct.zip', 12), ('cifar10-train-10pct.zip', 6)]:
        images, labels = read_zip(tmp_path / zip_name)
        kept = order[:count]
        assert np.array_equal(images, train_px[kept].reshape(-1, 3, 32, 32)), zip_name
        assert labels == train_lb[kept].tolist()
    images, labels = read_zip(tmp_path / 'cifar10-test.zip')
    test_order = sorted(range(20), key=lambda i: hashlib.md5(b'test' + str(i).encode()).hexdigest())
    assert np.array_equal(images, test_px[test_order].reshape(-1, 3, 32, 32)) and labels == test_lb[test_order].tolist()


def test_both_layouts_give_the_same_zips_and_cifar100_keeps_the_fine_labels(archives, data, tmp_path):
    cifar.build(archives['python10'], tmp_path / 'python')
    cifar.build(archives['binary10'], tmp_path / 'binary')
    for zip_name in ['cifar10-train.zip', 'cifar10-train-20pct.zip', 'cifar10-train-10pct.zip', 'cifar10-test.zip']:
        assert (tmp_path / 'python' / zip_name).read_bytes() == (tmp_path / 'binary' / zip_name).read_bytes()
    (px100, lb100), (test_px100, test_lb100) = data[2:4]
    for layout in ['python100', 'binary100']:
        assert cifar.build(archives[layout], tmp_path / layout) == {
            'cifar100-train.zip': 30, 'cifar100-train-20pct.zip': 6, 'cifar100-train-10pct.zip': 3,
            'cifar100-test.zip': 10}
        images, labels = read_zip(tmp_path / layout / 'cifar100-train-10pct.zip')
        kept = cifar.tfds_order(30, 'train')[:3]
        assert np.array_equal(images, px100[kept].reshape(-1, 3, 32, 32)) and labels == lb100[kept].tolist()
        with zipfile.ZipFile(tmp_path / layout / 'cifar100-test.zip') as archive:
            recorded = [label for _, label in json.loads(archive.read('dataset.json'))['labels']]
        assert sorted(recorded) == sorted(test_lb100.tolist()) and max(recorded) > 19  # fine, not coarse


def run(*args):
    return CliRunner().invoke(cifar.main, list(map(str, args)))


def test_the_command_and_its_refusals(archives, tmp_path):
    out = tmp_path / 'data'
    result = run('--source', archives['binary100'], '--out', out)
    assert result.exit_code == 0, result.output
    assert f'{out / "cifar100-train-20pct.zip"}: 6 images' in result.output

    members = {'cifar-10-batches-py/data_batch_1': b'x'}
    evil = pickle.dumps({b'data': __import__('os').getcwd}, protocol=3)  # a global outside NumPy's arrays
    bad_archives = {
        'not-gzip.tar.gz': (lambda p: p.write_bytes(b'plain text'), 'not a readable .tar.gz'),
        'other.tar.gz': (lambda p: write_tar(p, members), 'not a CIFAR-10 or CIFAR-100 archive (expected '
                         'cifar-10-batches-bin/ holding data_batch_1.bin'),
        'evil.tar.gz': (lambda p: write_tar(p, {'cifar-100-python/train': evil, 'cifar-100-python/test': evil}),
                        'train: not a CIFAR python batch (posix.getcwd is not part of a CIFAR batch)'),
        'short.tar.gz': (lambda p: write_tar(p, {'cifar-100-binary/train.bin': b'\0' * 3075,
                                                 'cifar-100-binary/test.bin': b''}),
                         'train.bin: 3075 bytes, not a whole number of 3074-byte records'),
    }
    for name, (make, message) in bad_archives.items():
        make(tmp_path / name)
        result = run('--source', tmp_path / name, '--out', tmp_path / 'refused')
        assert result.exit_code != 0 and message in result.output, (name, result.output)
        assert not (tmp_path / 'refused').exists(), name
    for args, message in [(['--source', tmp_path / 'missing.tar.gz', '--out', out], 'does not exist'),
                          (['--source', archives['python10'], '--out', '/proc/no-such-dir/out'],
                           'cannot create /proc/no-such-dir/out')]:
        result = run(*args)
        assert result.exit_code != 0 and message in result.output, (args, result.output)
