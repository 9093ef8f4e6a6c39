"""CIFAR-10 and CIFAR-100 as ATop-k's Tables 8-9 use them, after DiffAugment's TensorFlow fork: the training split,
its 20% and 10% subsets, and the test split (the metrics' reference), in upstream's dataset layout.

    python scripts/cifar.py --source cifar-10-binary.tar.gz --out ~/datasets

writes OUT/cifar10-train.zip (50,000 images), OUT/cifar10-train-20pct.zip (10,000), OUT/cifar10-train-10pct.zip
(5,000) and OUT/cifar10-test.zip (10,000); from a CIFAR-100 archive the same names with cifar100. Class labels (for
CIFAR-100 the 100 fine classes) go in dataset.json, for `--cond 1`.

The subsets: DiffAugment-stylegan2's run_cifar.py --num-samples N trains on the first N images of
`tfds.load('cifar10', split='train')` (training/dataset.py). TensorFlow Datasets stores a split sorted by
int(md5(split name + str(index)), 16) of each image's index in the original batch files (core/hashing.py and
shuffle.py of tensorflow-datasets 2.1.0, the version that fork asks for, and 3.2.1), so the subset is the same
images on every machine. Every zip is written in that order.

The source is one of the archives of https://www.cs.toronto.edu/~kriz/cifar.html: the binary version, which TFDS
reads (so the subsets are exactly the fork's), or the python version (upstream's dataset_tool.py and torchvision
read it), taken to hold the same batches in the same order; that was not checked here, as no CIFAR archive is at
hand offline. Python batches are read with an unpickler that builds NumPy arrays and nothing else.
"""

import hashlib
import io
import pickle
import tarfile
from pathlib import Path

import click
import numpy as np

from scripts.fashion_mnist import check_writable
from scripts.image_zip import write_labelled_zip

SUBSETS = {'train': 1, 'train-20pct': 5, 'train-10pct': 10}  # zip name -> 1 / fraction of the training split kept


class Source:
    """One archive layout: its folder, training and test members, and how a member is decoded."""

    def __init__(self, name, folder, train, test, binary_labels=None, label_key=None):
        self.name, self.folder, self.train, self.test = name, folder, train, test
        self.binary_labels, self.label_key = binary_labels, label_key

    def members(self):
        return [f'{self.folder}/{member}' for member in self.train + self.test]


SOURCES = [
    Source('cifar10', 'cifar-10-batches-bin', [f'data_batch_{i}.bin' for i in range(1, 6)], ['test_batch.bin'],
           binary_labels=1),
    Source('cifar100', 'cifar-100-binary', ['train.bin'], ['test.bin'], binary_labels=2),  # coarse, fine
    Source('cifar10', 'cifar-10-batches-py', [f'data_batch_{i}' for i in range(1, 6)], ['test_batch'],
           label_key=b'labels'),
    Source('cifar100', 'cifar-100-python', ['train'], ['test'], label_key=b'fine_labels'),
]


class ArraysOnly(pickle.Unpickler):
    """A CIFAR python batch holds a dict of bytes, lists and one NumPy array: build those and nothing else."""

    ALLOWED = {('numpy.core.multiarray', '_reconstruct'), ('numpy._core.multiarray', '_reconstruct'),
               ('numpy', 'ndarray'), ('numpy', 'dtype')}

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f'{module}.{name} is not part of a CIFAR batch')
        return super().find_class(module, name)


def decode(source, data, member):
    """(images [N, 32, 32, 3] uint8, labels [N]) of one batch file."""
    if source.binary_labels is not None:  # records of label byte(s) then 3072 bytes of CHW pixels
        record = source.binary_labels + 3072
        if len(data) % record:
            raise ValueError(f'{member}: {len(data)} bytes, not a whole number of {record}-byte records')
        records = np.frombuffer(data, np.uint8).reshape(-1, record)
        labels, pixels = records[:, source.binary_labels - 1], records[:, source.binary_labels:]
    else:
        try:
            batch = ArraysOnly(io.BytesIO(data), encoding='bytes').load()
            pixels, labels = np.asarray(batch[b'data'], np.uint8), np.asarray(batch[source.label_key])
        except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as err:
            raise ValueError(f'{member}: not a CIFAR python batch ({err})') from None
        if pixels.ndim != 2 or pixels.shape[1] != 3072 or len(labels) != len(pixels):
            raise ValueError(f'{member}: data of shape {pixels.shape} with {len(labels)} labels, not N x 3072')
    return pixels.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def read_archive(path):
    """(dataset name, {'train': (images, labels), 'test': (images, labels)}) of a CIFAR .tar.gz."""
    try:
        with tarfile.open(path, 'r:gz') as archive:
            names = set(archive.getnames())
            source = next((s for s in SOURCES if names.issuperset(s.members())), None)
            if source is None:
                raise ValueError(f'{path}: not a CIFAR-10 or CIFAR-100 archive (expected '
                                 + '; or '.join(f'{s.folder}/ holding {", ".join(s.train + s.test)}' for s in SOURCES)
                                 + ')')
            splits = {}
            for split, members in (('train', source.train), ('test', source.test)):
                batches = [decode(source, archive.extractfile(f'{source.folder}/{m}').read(), m) for m in members]
                splits[split] = tuple(np.concatenate(parts) for parts in zip(*batches))
    except (OSError, EOFError, tarfile.TarError) as err:
        raise ValueError(f'{path}: not a readable .tar.gz ({err})') from None
    return source.name, splits


def tfds_order(count, split):
    """Indices 0..count-1 in the order TensorFlow Datasets stores the split named `split`: by the 128-bit md5 of the
    split name followed by the index in decimal."""
    salted = hashlib.md5(split.encode())
    def key(index):
        digest = salted.copy()
        digest.update(str(index).encode())
        return int(digest.hexdigest(), 16)
    return np.array(sorted(range(count), key=key), dtype=np.int64)


def build(source_path, outdir):
    """Write the four zips of the module docstring into outdir; returns {zip name: image count}. A bad archive raises
    ValueError before anything is written."""
    name, splits = read_archive(source_path)
    outdir = Path(outdir)
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f'cannot create {outdir}: {err.strerror}') from None
    written = {}
    train_images, train_labels = splits['train']
    order = tfds_order(len(train_images), 'train')
    for subset, divisor in SUBSETS.items():
        kept = order[:len(order) // divisor]
        written[f'{name}-{subset}.zip'] = len(kept)
        write_labelled_zip(outdir / f'{name}-{subset}.zip', train_images[kept], train_labels[kept])
    test_images, test_labels = splits['test']
    order = tfds_order(len(test_images), 'test')
    written[f'{name}-test.zip'] = len(order)
    write_labelled_zip(outdir / f'{name}-test.zip', test_images[order], test_labels[order])
    return written


@click.command()
@click.option('--source', required=True, type=click.Path(exists=True, dir_okay=False),
              help='cifar-10-binary.tar.gz, cifar-10-python.tar.gz, or their CIFAR-100 counterparts.')
@click.option('--out', 'outdir', required=True, type=click.Path(file_okay=False), help='Folder of the four zips.')
def main(source, outdir):
    """Build the CIFAR training set, its 20% and 10% subsets and the test set (see the module docstring)."""
    check_writable('--out', outdir)
    try:
        written = build(source, outdir)
    except ValueError as err:
        raise click.ClickException(f'cannot build the datasets: {err}') from None
    for zip_name, count in written.items():
        print(f'{Path(outdir) / zip_name}: {count} images')


if __name__ == '__main__':
    main()
