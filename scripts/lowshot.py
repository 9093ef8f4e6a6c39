"""Low-shot study on Fashion-MNIST: 100 training images, FID against the full training split.

    python scripts/lowshot.py --outdir runs/lowshot --kimg 1000 [--seeds 0,1,2] [--only ada --only atopk ...]
                              [--metrics fid50k_full] [--cfg auto] [--gpus 1] [--dry-run]

Steps, each printed (commands exactly as run, from the repository root) before it runs:
  1. Datasets, in upstream's zip layout with class labels in dataset.json: OUTDIR/data/fmnist<COUNT>-<RES>.zip,
     COUNT images drawn class-balanced with --data-seed from Fashion-MNIST's 60,000 training images, and
     OUTDIR/data/fmnist-full-<RES>.zip, the whole split (or its first --reference-count images): the FID
     reference. Each 28x28 greyscale image is padded with 2 black pixels per side to 32x32, resized (Lanczos)
     to --resolution when that is not 32, and copied to R, G and B. Kept when already built with equal options.
  2. For each configuration (CONFIGS, or those named by --only) and seed: upstream's train.py on the small set,
     with --metrics none, into OUTDIR/runs/<config>-seed<seed>/. A configuration with a run directory that
     finished ('Exiting...' in log.txt) is not trained again.
  3. For every network snapshot of those runs: calc_metrics.py --data <reference zip>, which appends to the run's
     metric-<name>.jsonl (a snapshot that already has a row is skipped). Upstream's training loop computes
     metrics against its own training set (100 images here), hence metrics afterwards, against the full split.
  4. scripts/report.py over the runs, into OUTDIR/report/.

Fashion-MNIST comes from Debian's package dataset-fashion-mnist: read from --fashion-mnist DIR, by default
/usr/share/datasets/fashion-mnist (where `apt-get install dataset-fashion-mnist` puts it) or the copy a previous
run unpacked under --cache; otherwise this script runs `apt-get download dataset-fashion-mnist` (no root needed;
the apt lists must be current: `apt-get update`) and unpacks the .deb with dpkg-deb into --cache.

The metrics need upstream's Inception network, offline through plugins.metrics. fid50k_full generates 50,000
images per snapshot: on a CPU, pass a smaller FID metric when one is registered, or --metrics none.
"""

import gzip
import json
import math
import os
import shlex
import shutil
import sys
import zipfile
from pathlib import Path

import click
import numpy as np
import PIL.Image

from scripts import children
from scripts.results import ResultsError, field, read_jsonl, read_text
from plugins.primitives.writer import (ZIP_DATE_TIME, archive_name, encode_png, hidden_sibling,
                                       remove_stale_siblings)

ROOT = Path(__file__).resolve().parent.parent

DEBIAN_PACKAGE = 'dataset-fashion-mnist'
SYSTEM_DIR = Path('/usr/share/datasets/fashion-mnist')
IMAGES_FILE, LABELS_FILE = 'train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz'
PLUGIN_LOSSES = {'atopk': 'plugins.atopk.Loss', 'anda': 'plugins.anda.Loss', 'diggan': 'plugins.diggan.Loss'}
CONFIGS = ('baseline', 'ada', 'diffaug', *PLUGIN_LOSSES)
PAD = 2  # 28 + 2 * 2 = 32


# ---------------------------------------------------------------------------------------------------------------
# Fashion-MNIST.

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


# ---------------------------------------------------------------------------------------------------------------
# Datasets.

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


def write_zip(path, images, labels, resolution):
    """Upstream's dataset layout (dataset_tool.py's), written to a temporary name and renamed into place."""
    path = Path(path)
    remove_stale_siblings(path)  # a killed earlier write's
    temporary = Path(hidden_sibling(path, 'tmp'))
    try:
        with zipfile.ZipFile(temporary, 'w', compression=zipfile.ZIP_STORED) as archive:
            names = []
            for index, image in enumerate(images):
                names.append(archive_name(index))
                archive.writestr(zipfile.ZipInfo(names[-1], date_time=ZIP_DATE_TIME),
                                 encode_png(to_rgb(image, resolution)))
            labels_json = {'labels': [[name, int(label)] for name, label in zip(names, labels)]}
            archive.writestr(zipfile.ZipInfo('dataset.json', date_time=ZIP_DATE_TIME), json.dumps(labels_json))
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


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
    """Write the training and reference zips (see the module docstring); returns their paths. Zips built before
    with the same options (datadir/lowshot-data.json) are kept. Bad options or files raise ValueError before
    anything is written."""
    datadir = Path(datadir)
    train_zip, reference_zip = dataset_paths(datadir, count, resolution)
    manifest = dict(source=str(Path(source).resolve()), count=count, resolution=resolution, seed=seed,
                    reference_count=reference_count)
    manifest_path = datadir / 'lowshot-data.json'
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
    write_zip(train_zip, images[subset], labels[subset], resolution)
    write_zip(reference_zip, images[reference], labels[reference], resolution)
    manifest_path.write_text(json.dumps(manifest, indent=2))
    return train_zip, reference_zip


# ---------------------------------------------------------------------------------------------------------------
# Study.

def config_args(name, plugin_aug):
    """train.py options of a configuration."""
    if name == 'baseline':
        return ['--aug', 'noaug']
    if name == 'ada':
        return ['--aug', 'ada']
    if name == 'diffaug':
        return ['--aug', 'plugins.diffaug.AugmentPipe']
    return ['--aug', plugin_aug, '--loss', PLUGIN_LOSSES[name]]


def show(command, cwd=ROOT):
    prefix = '' if Path(cwd) == ROOT else f'(cd {shlex.quote(str(cwd))}) '
    print('+ ' + prefix + shlex.join(map(str, command)), flush=True)


def run(command, dry_run):
    show(command)
    if not dry_run:
        children.run(list(map(str, command)), cwd=ROOT, check=True)


def finished_run(outdir, command):
    """The run directory in `outdir` whose training finished, or None; a ClickException when that run was made
    by another train.py command (`outdir`/command.json, written before training) than `command`."""
    if not Path(outdir).is_dir():
        return None
    done = [path for path in sorted(Path(outdir).iterdir())
            if (path / 'log.txt').is_file() and 'Exiting...' in (path / 'log.txt').read_text()]
    if not done:
        return None
    recorded = Path(outdir) / 'command.json'
    try:
        previous = json.loads(read_text(recorded)) if recorded.is_file() else None
    except (ResultsError, ValueError) as err:
        raise click.ClickException(f'{recorded}: not a recorded command ({err})') from None
    if previous != command:
        made = shlex.join(previous) if previous else 'no command.json: an older lowshot.py'
        raise click.ClickException(f'{outdir} holds a run made with other options ({made}; now '
                                   f'{shlex.join(command)}): use another --outdir, or remove that folder')
    return done[-1]


def evaluated_snapshots(run_dir, metric):
    path = Path(run_dir) / f'metric-{metric}.jsonl'
    if not path.is_file():
        return set()
    try:
        return {Path(str(field(path, number, row, 'snapshot_pkl'))).name for number, row in read_jsonl(path)}
    except ResultsError as err:
        raise click.ClickException(str(err)) from None


def check_train_options(cfg, plugin_aug, configs):
    """Refuse a --cfg or --plugin-aug that train.py would refuse, before anything is written."""
    import train  # upstream's, patched
    cfgs = next(param for param in train.main.params if param.name == 'cfg').type.choices
    if cfg not in cfgs:
        raise click.BadParameter(f'{cfg!r} is not one of train.py\'s configs: {", ".join(cfgs)}', param_hint='--cfg')
    if any(name in PLUGIN_LOSSES for name in configs) and plugin_aug not in ('ada', 'noaug'):
        try:
            pipe = train.import_class('--plugin-aug', plugin_aug)
        except train.UserError as err:
            raise click.BadParameter(f'{err} (or use ada, noaug)', param_hint='--plugin-aug') from None
        if getattr(pipe, 'passes_timesteps', False):
            raise click.BadParameter(f'{plugin_aug} needs its own --D-class, which lowshot.py does not set',
                                     param_hint='--plugin-aug')


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


def check_metrics(metrics):
    from metrics import metric_main
    bad = [metric for metric in metrics if not metric_main.is_valid_metric(metric)]
    if bad:
        raise click.BadParameter(f'{", ".join(bad)}: not a metric of metrics.metric_main (valid: '
                                 f'{", ".join(metric_main.list_valid_metrics())})', param_hint='--metrics')


def parse_list(text, convert=str):
    return [convert(item) for item in text.split(',') if item.strip()] if text.lower() != 'none' else []


def parse_seeds(text):
    """--seeds as distinct integers in [0, 2^32 - 1], at least one."""
    try:
        seeds = [int(item) for item in text.split(',') if item.strip()]
    except ValueError:
        raise click.BadParameter(f'{text!r} is not a comma-separated list of integers', param_hint='--seeds') from None
    bad = [seed for seed in seeds if not 0 <= seed < 2**32]
    if not seeds or bad or len(set(seeds)) < len(seeds):
        problem = 'no seed' if not seeds else f'{bad[0]} is outside [0, 2^32 - 1]' if bad else 'a seed given twice'
        raise click.BadParameter(f'{text!r}: {problem}', param_hint='--seeds')
    return seeds


@click.command()
@click.option('--outdir', required=True, type=click.Path(file_okay=False), help='Where data, runs and report go.')
@click.option('--kimg', required=True, type=click.FloatRange(min=0, min_open=True), help='Training length.')
@click.option('--seeds', default='0,1,2', show_default=True, help='Comma-separated training seeds.')
@click.option('--only', 'only', multiple=True, type=click.Choice(CONFIGS),
              help='Run only these configurations (repeatable) [default: all].')
@click.option('--plugin-aug', default='ada', show_default=True, help='--aug for the plugin losses.')
@click.option('--metrics', default='fid50k_full', show_default=True,
              help='Comma-separated metrics for calc_metrics.py against the reference, or none.')
@click.option('--cfg', default='auto', show_default=True, help="train.py's --cfg (cpu for tiny CPU runs).")
@click.option('--snap', type=click.IntRange(min=1), default=10, show_default=True, help='Snapshot interval, ticks.')
@click.option('--gpus', type=click.IntRange(min=1), default=1, show_default=True)
@click.option('--batch', type=click.IntRange(min=1), default=None, help="train.py's --batch [default: the cfg's].")
@click.option('--workers', type=click.IntRange(min=1), default=None, help="train.py's --workers.")
@click.option('--count', type=click.IntRange(min=1), default=100, show_default=True, help='Training images.')
@click.option('--resolution', type=click.Choice(['8', '16', '32', '64', '128', '256']), default='32',
              show_default=True)
@click.option('--data-seed', type=click.IntRange(min=0), default=0, show_default=True, help='Seed of the image draw.')
@click.option('--reference-count', type=click.IntRange(min=1), default=None,
              help='Reference images: the first N of the split [default: all 60,000].')
@click.option('--fashion-mnist', 'source', type=click.Path(file_okay=False), default=None,
              help=f'Folder with {IMAGES_FILE} and {LABELS_FILE} [default: {SYSTEM_DIR}, else fetched].')
@click.option('--cache', type=click.Path(file_okay=False), default=str(ROOT / 'runs' / 'cache'), show_default=True,
              help='Where a fetched Fashion-MNIST is kept.')
@click.option('--dry-run', is_flag=True, help='Print the plan and the commands, run nothing.')
def main(outdir, kimg, seeds, only, plugin_aug, metrics, cfg, snap, gpus, batch, workers, count, resolution,
         data_seed, reference_count, source, cache, dry_run):
    """Low-shot Fashion-MNIST study: baseline, ADA, DiffAugment and each plugin (see the module docstring)."""
    resolution = int(resolution)
    seeds = parse_seeds(seeds)
    metrics = parse_list(metrics)
    check_metrics(metrics)
    if not math.isfinite(kimg):
        raise click.BadParameter(f'{kimg} is not a finite number', param_hint='--kimg')
    if len(set(only)) < len(only):
        raise click.BadParameter('a configuration given twice', param_hint='--only')
    check_writable('--outdir', outdir)
    check_writable('--cache', cache)
    configs = only or CONFIGS
    check_train_options(cfg, plugin_aug, configs)
    outdir = Path(outdir).resolve()
    train_zip, reference_zip = dataset_paths(outdir / 'data', count, resolution)
    fid = next((metric for metric in metrics if metric.startswith('fid')), None)
    print(f'Plan: {len(configs)} configuration(s) x {len(seeds)} seed(s) = {len(configs) * len(seeds)} runs of '
          f'{kimg:g} kimg on {train_zip.name} ({count} Fashion-MNIST images, {resolution}x{resolution} RGB); '
          f'metrics {", ".join(metrics) or "none"} against {reference_zip.name} after training; report in '
          f'{outdir / "report"}.')

    # 1. Data.
    found = find_source(source, cache)
    if dry_run:
        if found is None:
            for command in (['apt-get', 'download', DEBIAN_PACKAGE], ['dpkg-deb', '-x', f'{DEBIAN_PACKAGE}_*.deb', 'deb']):
                show(command, cwd=Path(cache) / 'download')
        print(f'# build {train_zip} and {reference_zip} from {found or Path(cache) / "fashion-mnist"}')
    else:
        if found is None:
            make_folder('--cache', cache)
        try:
            train_zip, reference_zip = build_datasets(found or fetch_source(cache), outdir / 'data', count,
                                                      resolution, data_seed, reference_count)
        except ValueError as err:
            raise click.ClickException(f'cannot build the datasets: {err}') from None

    # 2. Training.
    python = sys.executable
    run_dirs = []
    for name in configs:
        for seed in seeds:
            run_outdir = outdir / 'runs' / f'{name}-seed{seed}'
            command = [python, 'stylegan2_ada/train.py', '--outdir', run_outdir, '--data', train_zip,
                       '--cfg', cfg, '--kimg', f'{kimg:g}', '--seed', seed, '--snap', snap, '--gpus', gpus,
                       '--metrics', 'none', *config_args(name, plugin_aug)]
            command += ['--batch', batch] if batch else []
            command += ['--workers', workers] if workers else []
            recorded = [str(item) for item in command[1:]]
            done = finished_run(run_outdir, recorded)
            if done is not None:
                print(f'# {name} seed {seed}: already trained in {done}')
            else:
                if not dry_run:
                    run_outdir.mkdir(parents=True, exist_ok=True)
                    (run_outdir / 'command.json').write_text(json.dumps(recorded))
                run(command, dry_run)
                done = finished_run(run_outdir, recorded) if not dry_run else run_outdir / '<run dir>'
                if done is None:
                    raise click.ClickException(f'{run_outdir}: training ended without a finished run directory')
            run_dirs.append(done)

    # 3. Metrics against the reference.
    for run_dir in run_dirs:
        snapshots = sorted(Path(run_dir).glob('network-snapshot-*.pkl')) if not dry_run else \
            [run_dir / 'network-snapshot-<each>.pkl']
        for snapshot in snapshots:
            todo = [metric for metric in metrics if snapshot.name not in evaluated_snapshots(run_dir, metric)]
            if todo:
                run([python, 'stylegan2_ada/calc_metrics.py', '--metrics', ','.join(todo), '--data', reference_zip,
                     '--network', snapshot, '--gpus', gpus], dry_run)

    # 4. Report.
    run([python, 'scripts/report.py', *run_dirs, '--out', outdir / 'report', *(['--metric', fid] if fid else [])],
        dry_run)


if __name__ == '__main__':
    main()
