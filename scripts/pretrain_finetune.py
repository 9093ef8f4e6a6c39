"""The Primitives-PS protocol in one command: synthesize a pretraining set at the target's resolution, pretrain
StyleGAN2 on it with upstream's train.py, fine-tune all of G, D and G_ema on the target (`--resume` from the last
pretraining snapshot), train from scratch on the target with the same seed and duration for comparison, and
compare their FIDs. Run `.venv/bin/python scripts/pretrain_finetune.py --help`; see docs/methods.md, "Pretraining
on Primitives-PS".
"""

import os
import shlex
import sys
from pathlib import Path

import click
from click.core import ParameterSource

from plugins.primitives.cli import shape_options, shape_settings
from plugins.primitives.synth import NUM_SHAPES, SYNTHESIZERS
from plugins.primitives.writer import write_dataset
from scripts import children
from scripts.dry_run import check_runs
from scripts.results import ResultsError, read_metric_results

ROOT = Path(__file__).resolve().parent.parent
TRAIN_PY = ROOT / 'stylegan2_ada' / 'train.py'

SYNTHETIC_DATASET_CLASS = 'plugins.primitives.dataset.SyntheticDataset'
# train.py options this script sets itself for every run; passing them after `--` is an error.
RESERVED_TRAIN_OPTIONS = ('--outdir', '--data', '--data-class', '--kimg', '--seed', '--resume', '--resume-state',
                          '--dry-run', '-n')
PRETRAIN_ONLY_OPTIONS = ('synth', 'particles', 'size_policy', 'fix_size', 'count', 'pretrain_kimg', 'pretrain_metrics',
                         'on_the_fly')
# The released protocol's train.py settings, used unless given after `--`: Primitives-PS's low-shot config
# (batch 16, mbstd 4) and DiffAugment's color,translation,cutout.
RELEASED_TRAIN_DEFAULTS = {'--cfg': 'low_shot16', '--aug': 'plugins.diffaug.AugmentPipe'}


def inspect_target(path):
    """(image count, resolution) of the target dataset as upstream's ImageFolderDataset reads it for training.
    Raises click.BadParameter unless its images are RGB, square and a power of two >= 4 on a side."""
    if not os.path.exists(path):
        raise click.BadParameter(f'{path!r} does not exist', param_hint="'--target'")
    from training.dataset import ImageFolderDataset  # pylint: disable=import-outside-toplevel
    try:
        dataset = ImageFolderDataset(path)
    except Exception as error:  # a file that is not a dataset: BadZipFile, OSError, ...
        raise click.BadParameter(f'{path!r} cannot be read as a dataset: {type(error).__name__}: {error}',
                                 param_hint="'--target'") from error
    try:
        count, (channels, height, width) = len(dataset), dataset.image_shape
    finally:
        dataset.close()
    if height != width or height < 4 or height & (height - 1):
        raise click.BadParameter(f'{path!r} has {width}x{height} images; StyleGAN2 needs square images whose side '
                                 'is a power of two >= 4 (resize them with stylegan2_ada/dataset_tool.py)',
                                 param_hint="'--target'")
    if channels != 3:
        raise click.BadParameter(f'{path!r} has {channels}-channel images; the synthetic pretraining data is RGB '
                                 '(3 channels)', param_hint="'--target'")
    return count, height


def check_train_args(train_args):
    """Raise click.UsageError when the pass-through options include one this script sets itself, --help, or an
    option without its value (every train.py option but --help and --dry-run takes one)."""
    index = 0
    while index < len(train_args):
        arg = train_args[index]
        name = arg.split('=', 1)[0]
        if name in RESERVED_TRAIN_OPTIONS:
            raise click.UsageError(f'{arg!r} after "--": the script sets {", ".join(RESERVED_TRAIN_OPTIONS[:7])} '
                                   'of train.py itself (see --help)')
        if name in ('--help', '-h'):
            raise click.UsageError(f'{arg!r} after "--": for train.py\'s options run '
                                   '.venv/bin/python stylegan2_ada/train.py --help')
        if arg.startswith('--') and '=' not in arg:
            if index + 1 == len(train_args) or train_args[index + 1].startswith('--'):
                raise click.UsageError(f'{arg!r} after "--" has no value')
            index += 1
        index += 1


def with_released_defaults(train_args):
    """The released protocol's settings for the train.py options that `train_args` leaves out, then train_args."""
    given = {arg.split('=', 1)[0] for arg in train_args}
    return [item for name, value in RELEASED_TRAIN_DEFAULTS.items() if name not in given
            for item in (name, value)] + list(train_args)


def write_pretraining_set(path, synth, count, resolution, seed, shapes):
    """Write the pretraining zip unless a previous run did (its name holds every option, the writer is atomic)."""
    if path.exists():
        click.echo(f'Reusing the pretraining set {path}', err=True)
        return
    click.echo(f'Writing {count} {synth} images at {resolution}x{resolution} (seed {seed}) to {path}', err=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_dataset(str(path), synth, count, resolution, seed, **shapes)


def train(stage, stage_dir, args):
    """Run train.py with its output under `stage_dir`; return the run directory it created."""
    command = [sys.executable, str(TRAIN_PY), '--outdir', str(stage_dir), *args]
    before = set(stage_dir.iterdir()) if stage_dir.is_dir() else set()
    click.echo(f'\n=== {stage} ===\n+ {shlex.join(command)}', err=True)
    returncode = children.run(command, cwd=ROOT, check=False).returncode
    created = sorted(p for p in (set(stage_dir.iterdir()) if stage_dir.is_dir() else set()) - before if p.is_dir())
    if returncode != 0:
        raise click.ClickException(f'the {stage} run failed: train.py exited with status {returncode}'
                                   + (f' (run directory {created[-1]})' if created else ''))
    if len(created) != 1:
        raise click.ClickException(f'expected one new run directory in {stage_dir} after the {stage} run, '
                                   f'found {len(created)}')
    return created[0]


def last_snapshot(run_dir):
    snapshots = sorted(run_dir.glob('network-snapshot-*.pkl'))
    if not snapshots:
        raise click.ClickException(f'the pretraining run {run_dir} wrote no network snapshot')
    return snapshots[-1]


def read_fids(run_dir):
    """{result name: [(FID, snapshot name), ...] in file order} from the FID metrics in run_dir/metric-*.jsonl."""
    fids = {}
    for path in sorted(Path(run_dir).glob('metric-*.jsonl')):
        for _number, record, results in read_metric_results(path):
            for name, value in results.items():
                if name.startswith('fid'):
                    fids.setdefault(name, []).append((value, record.get('snapshot_pkl')))
    return fids


def fid_report(runs):
    """Lines comparing the final and best FID of each run in `runs` ({label: run directory})."""
    fids = {label: read_fids(run_dir) for label, run_dir in runs.items()}
    names = sorted({name for per_run in fids.values() for name in per_run})
    if not names:
        return [f'No FID in metric-*.jsonl of the {" or the ".join(runs)} run (train.py --metrics none?).']
    width = max(map(len, runs))
    lines = ['FID (lower is better):']
    for name in names:
        for label, per_run in fids.items():
            if name not in per_run:
                lines.append(f'  {name}  {label:<{width}}  not computed')
                continue
            final, best = per_run[name][-1], min(per_run[name], key=lambda entry: entry[0])
            lines.append(f'  {name}  {label:<{width}}  final {final[0]:.4g} ({final[1]})  '
                         f'best {best[0]:.4g} ({best[1]})')
    return lines


def explicit(ctx, name):
    return ctx.get_parameter_source(name) not in (ParameterSource.DEFAULT, None)


@click.command(context_settings={'help_option_names': ['-h', '--help']})
@click.pass_context
@click.option('--target', required=True, metavar='DATA',
              help='Target dataset: a zip or folder as dataset_tool.py writes.')
@click.option('--outdir', required=True, metavar='DIR',
              help='Output: DIR/data (pretraining set), DIR/pretrain, DIR/finetune, DIR/scratch (train.py runs).')
@click.option('--synth', type=click.Choice(SYNTHESIZERS), default='primitives-ps', show_default=True,
              help='Synthesizer of the pretraining set.')
@shape_options
@click.option('--count', type=click.IntRange(min=1), default=10000, show_default=True,
              help='Images in the pretraining set (with --on-the-fly: only when given; else an endless stream).')
@click.option('--pretrain-kimg', type=click.FloatRange(min=0, min_open=True), default=300, show_default=True,
              help='Pretraining duration (the paper: 300 in the released code, 800 in the supplement).')
@click.option('--finetune-kimg', type=click.FloatRange(min=0, min_open=True), default=400, show_default=True,
              help='Duration of the fine-tune and the from-scratch run.')
@click.option('--seed', type=click.IntRange(min=0, max=2**32 - 1), default=0, show_default=True,
              help='Seed of the pretraining set and of every train.py run.')
@click.option('--pretrain-metrics', default='none', show_default=True, metavar='LIST',
              help='train.py --metrics for the pretraining run (overrides one given after "--").')
@click.option('--skip-scratch', is_flag=True, help='Do not train the from-scratch comparison.')
@click.option('--on-the-fly', is_flag=True,
              help=f'Pretrain on images drawn during training ({SYNTHETIC_DATASET_CLASS}) instead of a zip: a '
                   'fresh image at every draw, as released, or the --count images when --count is given.')
@click.option('--pretrained', metavar='PKL', default=None,
              help='Skip synthesis and pretraining; fine-tune from this network pickle (e.g. one pretraining for '
                   'several targets).')
@click.argument('train_args', nargs=-1, type=click.UNPROCESSED, metavar='[-- TRAIN.PY OPTIONS]')
def main(ctx, target, outdir, synth, particles, size_policy, fix_size, count, pretrain_kimg, finetune_kimg, seed,
         pretrain_metrics, skip_scratch, on_the_fly, pretrained, train_args):
    """Pretrain on synthetic data, fine-tune on TARGET, and train from scratch on TARGET for comparison.

    Options after "--" go to every train.py run (e.g. --cfg, --batch, --aug, --loss, --gpus, --metrics, --snap);
    without --cfg and --aug there, the runs use the released protocol's --cfg low_shot16 and DiffAugment
    (--aug plugins.diffaug.AugmentPipe). The script sets --outdir, --data, --data-class, --kimg, --seed,
    --resume and --resume-state (no: weights only) itself. Every train.py option is checked (train.py
    --dry-run) before anything is written.

    \b
    Example (the released protocol at 256x256: fresh images at every draw, 300 kimg, then 400 kimg):
      .venv/bin/python scripts/pretrain_finetune.py --target ~/datasets/obama.zip --outdir runs/obama \\
          --on-the-fly
    """
    if pretrained is not None:
        conflicts = [f'--{name.replace("_", "-")}' for name in PRETRAIN_ONLY_OPTIONS if explicit(ctx, name)]
        if conflicts:
            raise click.UsageError(f'--pretrained skips the pretraining, so {", ".join(conflicts)} would be ignored')
    check_train_args(train_args)
    shapes = shape_settings(synth, particles, size_policy, fix_size)
    ablation = {key: value for key, value in shapes.items() if value != {'particles': NUM_SHAPES, 'size': 'decay'}[key]}
    if not outdir:
        raise click.BadParameter('must name a folder', param_hint="'--outdir'")
    target = os.path.abspath(target)
    target_count, resolution = inspect_target(target)
    outdir = Path(os.path.abspath(outdir))
    if outdir.exists() and not outdir.is_dir():
        raise click.BadParameter(f'{str(outdir)!r} exists and is not a directory', param_hint="'--outdir'")
    click.echo(f'Target {target}: {target_count} images at {resolution}x{resolution}', err=True)

    common = ['--seed', str(seed), *with_released_defaults(train_args)]
    target_args = ['--data', target, '--kimg', f'{finetune_kimg:g}', *common]
    # Fine-tuning starts from the pretrained G, D and G_ema only: kimg, optimizers, augment p start afresh.
    resume_args = ['--resume-state', 'no', '--resume']
    pretrain_data = pretrain_args = pretrain_run = None
    if pretrained is None:
        if on_the_fly:
            size = f'n={count}&' if explicit(ctx, 'count') else ''
            query = ''.join(f'&{key}={value}' for key, value in ablation.items())
            pretrain_data = f'synth:{synth}?{size}res={resolution}&seed={seed}{query}'
            data_args = ['--data', pretrain_data, '--data-class', SYNTHETIC_DATASET_CLASS]
        else:
            name = ''.join(f'-{key}{value}' for key, value in ablation.items())
            pretrain_data = outdir / 'data' / f'{synth}-{resolution}-n{count}-seed{seed}{name}.zip'
            data_args = ['--data', str(pretrain_data)]
        pretrain_args = [*data_args, '--kimg', f'{pretrain_kimg:g}', *common, '--metrics', pretrain_metrics]
        # The zip does not exist yet: check the options on the target, which has the same resolution.
        check_runs([('pretraining', outdir / 'pretrain', pretrain_args if on_the_fly else
                     ['--data', target, *pretrain_args[len(data_args):]]),
                    ('fine-tune', outdir / 'finetune', target_args)])
    else:
        pretrained = os.path.abspath(pretrained)
        # train.py checks that the snapshot exists and fits the target and the options.
        check_runs([('fine-tune', outdir / 'finetune', [*resume_args, pretrained, *target_args])])

    try:  # the first write: a folder that cannot be made is refused before anything else is written
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise click.BadParameter(f'cannot create {outdir}: {err.strerror}', param_hint="'--outdir'") from None
    if pretrain_args is not None:
        if not on_the_fly:
            write_pretraining_set(pretrain_data, synth, count, resolution, seed, shapes)
        pretrain_run = train('pretraining', outdir / 'pretrain', pretrain_args)
        pretrained = last_snapshot(pretrain_run)
    finetune_run = train('fine-tune', outdir / 'finetune', [*resume_args, str(pretrained), *target_args])
    scratch_run = None if skip_scratch else train('from-scratch', outdir / 'scratch', target_args)

    lines = ['', 'Done.']
    if pretrain_run is not None:
        lines += [f'  pretraining data:  {pretrain_data}', f'  pretraining run:   {pretrain_run}']
    lines += [f'  pretrained:        {pretrained}', f'  fine-tune run:     {finetune_run}']
    runs = {'fine-tune': finetune_run}
    if scratch_run is not None:
        lines.append(f'  from-scratch run:  {scratch_run}')
        runs['scratch'] = scratch_run
    try:
        click.echo('\n'.join(lines + fid_report(runs)))
    except ResultsError as err:
        raise click.ClickException(str(err)) from None


if __name__ == '__main__':
    main()  # pylint: disable=no-value-for-parameter
