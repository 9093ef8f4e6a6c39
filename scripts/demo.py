"""The embedded default job: synthesize a small Primitives-PS dataset, train StyleGAN2 on it on the CPU with
upstream's train.py (through the patches), and render a few images from the snapshot with generate.py.
Takes a few minutes on a 2-core laptop; everything goes to runs/demo/."""

import argparse
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / 'runs' / 'demo'


def run(*args):
    print('+', ' '.join(map(str, args)), flush=True)
    subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, check=True)


def intact_zip(path):
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None
    except (zipfile.BadZipFile, OSError):
        return False


def main():
    DEMO.mkdir(parents=True, exist_ok=True)
    data = DEMO / 'primitives-ps-32.zip'
    if data.exists() and not intact_zip(data):
        print(f'{data} is damaged (an interrupted earlier demo?): writing it again', flush=True)
        data.unlink()
    if not data.exists():
        run('-m', 'plugins.primitives', '--outdir', data, '--count', 200, '--resolution', 32,
            '--synth', 'primitives-ps', '--seed', 0, '--preview', DEMO / 'dataset-preview.png')
    runs = DEMO / 'training-runs'
    run('stylegan2_ada/train.py', '--outdir', runs, '--data', data, '--cfg', 'cpu', '--kimg', 1,
        '--metrics', 'none', '--snap', 5, '--workers', 1)
    run_dir = max(p for p in runs.iterdir() if p.is_dir())
    snapshot = max(run_dir.glob('network-snapshot-*.pkl'))
    run('stylegan2_ada/generate.py', '--network', snapshot, '--seeds', '0-7', '--outdir', run_dir / 'generated')
    print(f'\nDone.\n  fakes grid: {max(run_dir.glob("fakes0*.png"))}\n  snapshot:   {snapshot}\n'
          f'  generated:  {run_dir / "generated"}\n  stats:      {run_dir / "stats.jsonl"} (tensorboard --logdir {runs})')


if __name__ == '__main__':
    argparse.ArgumentParser(description=__doc__).parse_args()
    main()
