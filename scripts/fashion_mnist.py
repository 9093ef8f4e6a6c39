"""Low-shot Fashion-MNIST in upstream's dataset layout: a class-balanced training set and the whole split as the FID
reference, the data of the project's studies (docs/studies.md) and of the demo.

    python scripts/fashion_mnist.py --out runs/data [--count 100] [--resolution 32] [--seed 0] [--reference-count N]

writes OUT/fmnist<COUNT>-<RES>.zip, COUNT images drawn class-balanced with --seed from Fashion-MNIST's 60,000 training
images, and OUT/fmnist-full-<RES>.zip, the whole split (or its first --reference-count images), both with class
labels in dataset.json. Each 28x28 greyscale image is padded with 2 black pixels per side to 32x32, resized (Lanczos)
to --resolution when that is not 32, and copied to R, G and B. Zips already built with equal options are kept.

Fashion-MNIST comes from Debian's package dataset-fashion-mnist: read from --fashion-mnist DIR, by default
/usr/share/datasets/fashion-mnist (where `apt-get install dataset-fashion-mnist` puts it) or the copy an earlier
call unpacked under --cache; otherwise this script runs `apt-get download dataset-fashion-mnist` (no root needed;
the apt lists must be current: `apt-get update`) and unpacks the .deb with dpkg-deb into --cache.
"""

import gzip
import json
import os
import shlex
import shutil
from pathlib import Path

import click
import numpy as np
import PIL.Image

from scripts import children
from scripts.image_zip import write_labelled_zip

ROOT = Path(__file__).resolve().parent.parent

DEBIAN_PACKAGE = 'dataset-fashion-mnist'
SYSTEM_DIR = Path('/usr/share/datasets/fashion-mnist')
IMAGES_FILE, LABELS_FILE = 'train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz'
PAD = 2  # 28 + 2 * 2 = 32


def show(command, cwd=ROOT):
    prefix = '' if Path(cwd) == ROOT else f'(cd {shlex.quote(str(cwd))}) '
    print('+ ' + prefix + shlex.join(map(str, command)), flush=True)


def read_idx(path, kind):
    """An IDX file (gzipped) as a uint8 array: kind 'images' -> [N, H, W], 'labels' -> [N]."""
    try:
        data = gzip.decompress(Path(path).read_bytes())
    except (OSError, EOFError) as err:
        raise ValueError(f'{path}: not a readable gzip file ({err})') from None
    dims = {'images': 3, 'labels': 1}[kind]
    if len(data) < 4 or data[:3] != b'\0\0\x08' or data[3] != dims:
        raise ValueError(f'{path}: not an IDX file of unsigned bytes with {dims} dimension(s) ({kind})')
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], 'big') for i in range(dims)]
    body = data[4 + 4 * dims:]
    if len(body) != int(np.prod(shape)):
        raise ValueError(f'{path}: {len(body)} bytes of data, the header says {shape}')
    return np.frombuffer(body, dtype=np.uint8).reshape(shape)


def find_source(explicit, cache):
    """The folder holding Fashion-MNIST's IDX files, or None when it has to be fetched first."""
    if explicit is not None:
        missing = [name for name in (IMAGES_FILE, LABELS_FILE) if not (Path(explicit) / name).is_file()]
        if missing:
            raise click.BadParameter(f'{explicit}: no {" or ".join(missing)} there', param_hint='--fashion-mnist')
        return Path(explicit)
    for candidate in (SYSTEM_DIR, Path(cache) / 'fashion-mnist'):
        if (candidate / IMAGES_FILE).is_file() and (candidate / LABELS_FILE).is_file():
            return candidate
    return None


def fetch_source(cache):
    """Download Debian's dataset-fashion-mnist into `cache` and unpack its IDX files to cache/fashion-mnist."""
    cache = Path(cache)
    download = cache / 'download'
    shutil.rmtree(download, ignore_errors=True)
    download.mkdir(parents=True)
    show(['apt-get', 'download', DEBIAN_PACKAGE], cwd=download)
    result = children.run(['apt-get', 'download', DEBIAN_PACKAGE], cwd=download, capture_output=True, text=True)
    debs = sorted(download.glob(f'{DEBIAN_PACKAGE}_*.deb'))
    if result.returncode != 0 or not debs:
        raise click.ClickException(f'apt-get download {DEBIAN_PACKAGE} failed ({result.stderr.strip()}). Run '
                                   '`apt-get update` first, or install the package, or pass --fashion-mnist DIR.')
    show(['dpkg-deb', '-x', debs[-1].name, 'deb'], cwd=download)
    children.run(['dpkg-deb', '-x', debs[-1].name, 'deb'], cwd=download, check=True)
    target = cache / 'fashion-mnist'
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(download / 'deb' / SYSTEM_DIR.relative_to('/'), target)
    shutil.rmtree(download)
    return target


def balanced_subset(labels, count, seed):
    """Sorted indices of `count` images, as equal a number from each class as possible (the first classes get
    one more when count is not a multiple), drawn with `seed`."""
    classes = np.unique(labels)
    rng = np.random.default_rng(seed)
    chosen = []
    for position, label in enumerate(classes):
        wanted = count // len(classes) + (position < count % len(classes))
        members = np.flatnonzero(labels == label)
        if len(members) < wanted:
            raise ValueError(f'--count {count}: class {label} has {len(members)} images, {wanted} wanted')
        chosen.append(rng.permutation(members)[:wanted])
    return np.sort(np.concatenate(chosen))


def to_rgb(image, resolution):
    """28x28 greyscale -> padded to 32x32 -> resized to resolution -> [resolution, resolution, 3] uint8."""
    padded = np.pad(image, PAD)
    if padded.shape[0] != resolution:
        padded = np.asarray(PIL.Image.fromarray(padded).resize((resolution, resolution), PIL.Image.LANCZOS))
    return np.repeat(padded[:, :, None], 3, axis=2)


def dataset_paths(datadir, count, resolution):
    return Path(datadir) / f'fmnist{count}-{resolution}.zip', Path(datadir) / f'fmnist-full-{resolution}.zip'


def recorded_manifest(path):
    """The options the zips beside `path` were built with, or None: absent, or cut short by a kill (then the zips are
    built again)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def build_datasets(source, datadir, count, resolution, seed, reference_count=None):
    """Write the training zip of `count` images and the reference zip of the first `reference_count` (default:
    all), as the module docstring says; returns their paths. Zips built before with the same options
    (datadir/fashion-mnist.json) are kept. Bad options or files raise ValueError before anything is written."""
    datadir = Path(datadir)
    train_zip, reference_zip = dataset_paths(datadir, count, resolution)
    manifest = dict(source=str(Path(source).resolve()), count=count, resolution=resolution, seed=seed,
                    reference_count=reference_count)
    manifest_path = datadir / 'fashion-mnist.json'
    if train_zip.is_file() and reference_zip.is_file() and recorded_manifest(manifest_path) == manifest:
        print(f'datasets already built: {train_zip}, {reference_zip}')
        return train_zip, reference_zip
    images = read_idx(Path(source) / IMAGES_FILE, 'images')
    labels = read_idx(Path(source) / LABELS_FILE, 'labels')
    if len(images) != len(labels):
        raise ValueError(f'{source}: {len(images)} images but {len(labels)} labels')
    if reference_count is not None and reference_count > len(images):
        raise ValueError(f'--reference-count {reference_count}: the split has {len(images)} images')
    subset = balanced_subset(labels, count, seed)
    reference = slice(0, reference_count)
    try:
        datadir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f'cannot create {datadir}: {err.strerror}') from None
    print(f'writing {train_zip} ({count} images) and {reference_zip} ({len(images[reference])} images) from '
          f'{source}')
    manifest_path.unlink(missing_ok=True)
    write_labelled_zip(train_zip, (to_rgb(image, resolution) for image in images[subset]), labels[subset])
    write_labelled_zip(reference_zip, (to_rgb(image, resolution) for image in images[reference]), labels[reference])
    manifest_path.write_text(json.dumps(manifest, indent=2))
    return train_zip, reference_zip


def check_writable(option, path):
    """Refuse an empty path, or one whose nearest existing ancestor is not a writable folder."""
    if not str(path):
        raise click.BadParameter('must name a folder', param_hint=option)
    existing = Path(os.path.abspath(path))
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise click.BadParameter(f'{path} cannot be created under {existing}', param_hint=option)


def make_folder(option, path):
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise click.BadParameter(f'cannot create {path}: {err.strerror}', param_hint=option) from None


@click.command()
@click.option('--out', 'outdir', required=True, type=click.Path(file_okay=False), help='Folder of the two zips.')
@click.option('--count', type=click.IntRange(min=1), default=100, show_default=True, help='Training images.')
@click.option('--resolution', type=click.Choice(['8', '16', '32', '64', '128', '256']), default='32',
              show_default=True)
@click.option('--seed', type=click.IntRange(min=0), default=0, show_default=True, help='Seed of the image draw.')
@click.option('--reference-count', type=click.IntRange(min=1), default=None,
              help='Images of the reference zip [default: the whole split].')
@click.option('--fashion-mnist', 'source', type=click.Path(file_okay=False), default=None,
              help="Folder holding Fashion-MNIST's IDX files [default: the Debian package's, or fetch it].")
@click.option('--cache', type=click.Path(file_okay=False), default=str(ROOT / 'runs' / 'cache'), show_default=True,
              help='Where a fetched Fashion-MNIST is kept.')
def main(outdir, count, resolution, seed, reference_count, source, cache):
    """Build the training and reference zips (see the module docstring)."""
    check_writable('--out', outdir)
    check_writable('--cache', cache)
    found = find_source(source, cache)
    if found is None:
        make_folder('--cache', cache)
    try:
        train_zip, reference_zip = build_datasets(found or fetch_source(cache), outdir, count, int(resolution), seed,
                                                  reference_count)
    except ValueError as err:
        raise click.ClickException(f'cannot build the datasets: {err}') from None
    print(f'training set: {train_zip}\nreference: {reference_zip}')


if __name__ == '__main__':
    main()
