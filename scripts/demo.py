"""`make demo`: the project's point in about ten minutes on a CPU. Trains StyleGAN2 with ATop-k, ANDA and DigGAN
(lazy cadence) on 100 Fashion-MNIST images (32x32) through upstream's train.py and the patches,
renders images from the last snapshot with generate.py, and writes the report with the methods' controller plots,
all under --outdir (runs/demo).

Fashion-MNIST comes from Debian's dataset-fashion-mnist (installed, or fetched with `apt-get download` as
scripts/fashion_mnist.py does); without it the demo says so and uses the project's Primitives-PS synthetic images.
The heuristic that drives ATop-k's k and ANDA's alpha moves at speed_kimg = kimg / 4 (the papers' 500 of 2000
kimg, compressed to the demo's length), so its controllers visibly move. No augment pipe: with DiffAugment the
fakes were still blobs at 20 kimg, where without it they are rough clothes (README.md, "Two commands")."""

import argparse
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import click

from scripts import children
from scripts.fashion_mnist import build_datasets, fetch_source, find_source

ROOT = Path(__file__).resolve().parent.parent



def run(*args):
    print('+', ' '.join(map(str, args)), flush=True)
    children.run([sys.executable, *map(str, args)], cwd=ROOT, check=True)


def remove_if_damaged(path):
    """Remove a zip an interrupted earlier demo left damaged, so that it is written again."""
    try:
        with zipfile.ZipFile(path) as archive:
            if archive.testzip() is None:
                return
    except FileNotFoundError:
        return
    except (zipfile.BadZipFile, OSError):
        pass
    print(f'{path} is damaged (an interrupted earlier demo?): writing it again', flush=True)
    path.unlink()


def training_data(outdir, synthetic):
    """(zip, description): 100 Fashion-MNIST images, or 200 Primitives-PS images when those cannot be had."""
    if not synthetic:
        try:
            remove_if_damaged(outdir / 'data' / 'fmnist100-32.zip')
            source = find_source(None, outdir / 'cache') or fetch_source(outdir / 'cache')
            data, _ = build_datasets(source, outdir / 'data', count=100, resolution=32, seed=0, reference_count=100)
            return data, '100 Fashion-MNIST images'
        except (click.ClickException, OSError, ValueError, subprocess.CalledProcessError) as err:
            message = err.format_message() if isinstance(err, click.ClickException) else str(err)
            print(f'\nNote: Fashion-MNIST could not be had ({message}); the demo uses the project\'s synthetic '
                  f'Primitives-PS images instead, so its fakes are colour blobs, not clothes.\n', flush=True)
    data = outdir / 'data' / 'primitives-ps-32.zip'
    remove_if_damaged(data)
    if not data.exists():
        run('-m', 'plugins.primitives', '--outdir', data, '--count', 200, '--resolution', 32, '--synth', 'primitives-ps',
            '--seed', 0, '--workers', 1)
    return data, '200 Primitives-PS images'


def main(outdir, kimg, synthetic):
    (outdir / 'data').mkdir(parents=True, exist_ok=True)
    data, description = training_data(outdir, synthetic)
    speed = {'speed_kimg': kimg / 4}
    methods = {'atopk': speed, 'anda': {'alpha': 'heuristic', **speed}, 'diggan': {'cadence': 'lazy'}}
    runs = outdir / 'training-runs'
    before = set(runs.iterdir()) if runs.is_dir() else set()
    run('stylegan2_ada/train.py', '--outdir', runs, '--data', data, '--cfg', 'cpu', '--kimg', f'{kimg:g}',
        '--snap', 50, '--metrics', 'none', '--workers', 1, '--aug', 'noaug',
        '--loss', 'plugins.Loss', '--loss-kwargs', json.dumps(methods))
    (run_dir,) = [path for path in set(runs.iterdir()) - before if path.is_dir()]
    snapshot = max(run_dir.glob('network-snapshot-*.pkl'))
    run('stylegan2_ada/generate.py', '--network', snapshot, '--seeds', '0-15', '--outdir', run_dir / 'generated')
    run('scripts/report.py', run_dir, '--out', run_dir / 'report')
    print(f'\nDone: StyleGAN2 + ATop-k + ANDA + DigGAN on {description}, {kimg:g} kimg.\n'
          f'  fakes over training: {run_dir}/fakes*.png (the last: {max(run_dir.glob("fakes0*.png")).name})\n'
          f'  snapshot:            {snapshot}\n'
          f'  generated images:    {run_dir / "generated"}\n'
          f'  report and plots:    {run_dir / "report" / "report.md"} (ATop-k\'s k, ANDA\'s alpha, DigGAN\'s norms)\n'
          f'  stats:               {run_dir / "stats.jsonl"} (tensorboard --logdir {runs})')


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--kimg', type=float, default=20, help='training length (default 20: about 10 minutes '
                        'on one core of the CI machine)')
    parser.add_argument('--synthetic', action='store_true', help='use the synthetic images even if Fashion-MNIST '
                        'can be had')
    parser.add_argument('--outdir', type=Path, default=ROOT / 'runs' / 'demo', help='default: runs/demo')
    args = parser.parse_args()
    if not 0 < args.kimg < float('inf'):
        parser.error(f'--kimg must be a positive number, got {args.kimg}')
    if not str(args.outdir) or args.outdir.exists() and not args.outdir.is_dir():
        parser.error(f'--outdir must name a folder, got {str(args.outdir)!r}')
    main(args.outdir.resolve(), args.kimg, args.synthetic)
