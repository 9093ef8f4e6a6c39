"""Command line: write a synthetic dataset (PinkNoise, Primitives, Primitives-S, Primitives-PS) for upstream's
training loop (`python train.py --data out.zip`). Run as `python -m plugins.primitives --help`."""

import os
import zipfile

import click

from .synth import NUM_SHAPES, SIZE_POLICIES, SYNTHESIZERS, check_settings
from .writer import available_cores, is_zip_path, write_dataset


def _check_resolution(_ctx, _param, value):
    if value < 4 or value & (value - 1):
        raise click.BadParameter(f'{value} is not a power of two >= 4; valid: 4, 8, 16, 32, 64, 128, 256, 512, 1024, ...')
    return value


def _not_a_dataset(path):
    """Why `path` is not something this tool writes (a zip or a folder holding PNGs and a dataset.json at its
    root, nothing else), or None."""
    if is_zip_path(path):
        if not (os.path.isfile(path) and zipfile.is_zipfile(path)):
            return 'it is not a zip file'
        with zipfile.ZipFile(path) as archive:
            names = [name for name in archive.namelist() if not name.endswith('/')]
    elif not os.path.isdir(path) or os.path.islink(path):
        return 'it is not a folder'
    else:
        names = [os.path.relpath(os.path.join(folder, name), path) for folder, _, files in os.walk(path) for name in files]
    other = next((name for name in names if not name.lower().endswith('.png') and name != 'dataset.json'), None)
    if other is not None:
        return f'it holds {other!r}, which is not part of a dataset'
    return None if 'dataset.json' in names else 'it has no dataset.json'


def _check_target(path, overwrite, kind='dataset'):
    """Error message for an output path that cannot be written, or None. --overwrite replaces only what this tool
    writes, never another file or folder."""
    if not path:
        return 'must not be empty'
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        return f'parent directory {parent!r} of {path!r} does not exist'
    if not os.access(parent, os.W_OK | os.X_OK):
        return f'parent directory {parent!r} of {path!r} is not writable'
    if os.path.lexists(path) and not overwrite:
        return f'{path!r} already exists; pass --overwrite to replace it'
    if os.path.lexists(path):
        problem = _not_a_dataset(path) if kind == 'dataset' else None if os.path.isfile(path) else 'it is not a file'
        if problem:
            return f'--overwrite replaces only a {kind} this tool wrote, but {path!r} is not one: {problem}'
    return None


def shape_options(command):
    """The supplement's Table 1 ablations as options of a click command: --particles, --size-policy, --fix-size
    (read them with `shape_settings`)."""
    options = [
        click.option('--particles', type=click.IntRange(min=0), default=NUM_SHAPES, show_default=True,
                     help='Shapes per image, N (supplement Table 1, lower; 0 with primitives-ps: PinkNoise+PS).'),
        click.option('--size-policy', type=click.Choice(SIZE_POLICIES), default='decay', show_default=True,
                     help='Shape sizes (supplement Table 1, upper): decay (released), rand, or fix at --fix-size.'),
        click.option('--fix-size', type=click.FloatRange(min=0, max=1, min_open=True), default=None,
                     help='With --size-policy fix: every size as a fraction of H (the table: 0.1, 0.2, 0.5).'),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def shape_settings(synth, particles, size_policy, fix_size):
    """{'particles', 'size'} as `synthesize` takes them ('fix0.2' for fix at 0.2) from `shape_options`;
    BadParameter for --fix-size without fix, fix without it, or settings `check_settings` refuses."""
    if (size_policy == 'fix') != (fix_size is not None):
        raise click.BadParameter('--size-policy fix takes --fix-size (a fraction of H, e.g. 0.2), and only it does',
                                 param_hint="'--fix-size'")
    settings = dict(particles=particles, size=f'fix{fix_size:g}' if size_policy == 'fix' else size_policy)
    try:
        check_settings(synth, **settings)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="'--particles' / '--size-policy'") from None
    return settings


@click.command(context_settings={'help_option_names': ['-h', '--help']})
@click.option('--outdir', required=True, metavar='PATH',
              help='Output dataset: a .zip file, or a folder when PATH has no .zip suffix.')
@click.option('--count', required=True, type=click.IntRange(min=1), help='Number of images.')
@click.option('--resolution', type=int, default=256, show_default=True, callback=_check_resolution,
              help='Image width and height, a power of two >= 4.')
@click.option('--synth', type=click.Choice(SYNTHESIZERS), default='primitives-ps', show_default=True,
              help='Synthesizer.')
@click.option('--seed', type=click.IntRange(min=0), default=0, show_default=True,
              help='Dataset seed; image i depends only on (synth, seed, i) and the shape options.')
@shape_options
@click.option('--workers', type=click.IntRange(min=1), default=None,
              help='Worker processes.  [default: all available cores]')
@click.option('--preview', metavar='PATH', default=None, help='Also write a PNG grid of the first images here.')
@click.option('--overwrite', is_flag=True, help='Replace existing output.')
def main(outdir, count, resolution, synth, seed, particles, size_policy, fix_size, workers, preview, overwrite):
    """Write COUNT synthetic images in the layout of upstream's dataset_tool.py.

    \b
    Example:
      python -m plugins.primitives --outdir ~/datasets/primitives-ps-256.zip --count 10000 \\
          --resolution 256 --synth primitives-ps --seed 0 --preview grid.png
    """
    settings = shape_settings(synth, particles, size_policy, fix_size)
    problem = _check_target(outdir, overwrite)
    if problem:
        raise click.BadParameter(problem, param_hint="'--outdir'")
    if preview is not None:
        problem = _check_target(preview, overwrite, kind='preview')
        if not problem and os.path.splitext(preview)[1].lower() != '.png':
            problem = f'{preview!r} must end in .png'
        if not problem and os.path.abspath(preview) == os.path.abspath(outdir):
            problem = 'must differ from --outdir'
        if problem:
            raise click.BadParameter(problem, param_hint="'--preview'")
    workers = min(workers or available_cores(), count)
    kind = 'zip' if is_zip_path(outdir) else 'folder'
    shapes = '' if synth == 'pinknoise' else f', {particles} shapes, size {settings["size"]}'
    click.echo(f'Writing {count} {synth} images at {resolution}x{resolution} (seed {seed}{shapes}) '
               f'to {kind} {outdir} with {workers} worker(s)', err=True)
    write_dataset(outdir, synth, count, resolution, seed, workers=workers, overwrite=overwrite, preview=preview,
                  **settings)
