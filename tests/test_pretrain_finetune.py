"""End-to-end CPU tests of scripts/pretrain_finetune.py (the Primitives-PS pretrain / fine-tune / scratch protocol)."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

from plugins.primitives.writer import write_dataset
from tests.conftest import train

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / 'scripts' / 'pretrain_finetune.py'
SEED = 3
PRETRAIN_KIMG = 0.04        # 10 iterations of batch 4 (--cfg cpu).
FINETUNE_KIMG = 0.004       # One iteration: the fine-tuned networks are the pretrained ones plus one step.
TRAIN_ARGS = ('--', '--cfg', 'cpu', '--metrics', 'none', '--workers', '1', '--grid', '4')
ONE_ITERATION_BOUND = 4 * 0.0025  # Adam (betas 0, 0.99) moves a weight by <= ~1.4 lr per step, 2 steps per iteration.


def run_script(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          timeout=900, check=False)


def succeed(*args):
    result = run_script(*args)
    assert result.returncode == 0, f'{result.stdout[-3000:]}\n{result.stderr[-3000:]}'
    return result


def only_run(stage_dir):
    (run_dir,) = [path for path in stage_dir.iterdir() if path.is_dir()]
    return run_dir


def options(run_dir):
    return json.loads((run_dir / 'training_options.json').read_text())


def pixels(path):
    return np.asarray(PIL.Image.open(path))


def networks(run_dir):
    import legacy  # pylint: disable=import-outside-toplevel  (upstream's, importable through make setup's .pth)
    snapshot = max(run_dir.glob('network-snapshot-*.pkl'))
    with open(snapshot, 'rb') as file:
        return legacy.load_network_pkl(file)


def last_fakes(run_dir):
    """The run's last fakes grid (fakes000000.040.png: ticks shorter than 1 kimg name it by the exact kimg)."""
    return max(run_dir.glob('fakes0*.png'))


def largest_difference(a, b):
    b = dict(b.named_parameters())
    return max(float((value - b[name]).abs().max()) for name, value in a.named_parameters())


@pytest.fixture(scope='module')
def target(tmp_path_factory):
    """16 PinkNoise images at 16x16: a different dataset from the Primitives-PS pretraining set."""
    path = tmp_path_factory.mktemp('target') / 'pink16.zip'
    write_dataset(str(path), synth='pinknoise', count=16, resolution=16, seed=0, workers=1, progress=False)
    return path


@pytest.fixture(scope='module')
def protocol(target, tmp_path_factory):
    """One full run: pretrain 0.04 kimg on 16 Primitives-PS images, fine-tune and train from scratch 0.004 kimg."""
    outdir = tmp_path_factory.mktemp('protocol') / 'out'
    result = succeed('--target', target, '--outdir', outdir, '--count', 16, '--seed', SEED,
                     '--pretrain-kimg', PRETRAIN_KIMG, '--finetune-kimg', FINETUNE_KIMG, *TRAIN_ARGS)
    return outdir, result.stdout


@pytest.mark.slow
def test_runs_are_laid_out_and_reported(protocol, target):
    outdir, stdout = protocol
    assert sorted(p.name for p in outdir.iterdir()) == ['data', 'finetune', 'pretrain', 'scratch']
    data = outdir / 'data' / f'primitives-ps-16-n16-seed{SEED}.zip'
    assert [p.name for p in (outdir / 'data').iterdir()] == [data.name]
    pretrain, finetune, scratch = (only_run(outdir / stage) for stage in ('pretrain', 'finetune', 'scratch'))
    for line in (f'pretraining data:  {data}', f'pretraining run:   {pretrain}', f'fine-tune run:     {finetune}',
                 f'from-scratch run:  {scratch}', 'No FID in metric-*.jsonl'):
        assert line in stdout
    pretrain_options = options(pretrain)
    assert pretrain_options['training_set_kwargs']['path'] == str(data)
    assert pretrain_options['training_set_kwargs']['max_size'] == 16
    assert pretrain_options['total_kimg'] == PRETRAIN_KIMG
    for run_dir in (finetune, scratch):
        assert options(run_dir)['training_set_kwargs']['path'] == str(target)
        assert options(run_dir)['total_kimg'] == FINETUNE_KIMG
    for run_dir in (pretrain, finetune, scratch):   # the released DiffAugment, as no --aug was given
        assert options(run_dir)['augment_kwargs']['class_name'] == 'plugins.diffaug.AugmentPipe'


def test_released_settings_fill_in_what_the_user_leaves_out():
    from scripts.pretrain_finetune import with_released_defaults
    assert with_released_defaults([]) == ['--cfg', 'low_shot16', '--aug', 'plugins.diffaug.AugmentPipe']
    assert with_released_defaults(['--cfg=cpu', '--gpus', '2']) == ['--aug', 'plugins.diffaug.AugmentPipe',
                                                                    '--cfg=cpu', '--gpus', '2']
    assert with_released_defaults(['--aug', 'ada', '--cfg', 'cpu']) == ['--aug', 'ada', '--cfg', 'cpu']


@pytest.mark.slow
def test_on_the_fly_pretraining_streams_fresh_images_by_default(target, tmp_path):
    """Also with an ablation of the supplement's Table 1 (Rand sizes, 50 shapes), which the stream's path carries."""
    result = succeed('--target', target, '--outdir', tmp_path / 'out', '--seed', SEED, '--on-the-fly',
                     '--particles', 50, '--size-policy', 'rand', '--pretrain-kimg', FINETUNE_KIMG,
                     '--finetune-kimg', FINETUNE_KIMG, '--skip-scratch', *TRAIN_ARGS)
    pretrain = only_run(tmp_path / 'out' / 'pretrain')
    path = f'synth:primitives-ps?res=16&seed={SEED}&particles=50&size=rand'
    assert options(pretrain)['training_set_kwargs']['path'] == path
    assert f'primitives-ps-16-stream-seed{SEED}-particles50-sizerand' in pretrain.name
    assert f'pretraining data:  {path}' in result.stdout


@pytest.mark.slow
def test_finetune_resumes_from_the_last_pretraining_snapshot(protocol):
    outdir, stdout = protocol
    pretrain, finetune, scratch = (only_run(outdir / stage) for stage in ('pretrain', 'finetune', 'scratch'))
    snapshot = max(pretrain.glob('network-snapshot-*.pkl'))
    assert f'pretrained:        {snapshot}' in stdout
    assert options(finetune)['resume_pkl'] == str(snapshot)
    assert options(finetune)['resume_state'] == 'no'
    log = (finetune / 'log.txt').read_text()
    assert f'Resuming from "{snapshot}"' in log
    assert 'Training state: not restored: --resume-state=no' in log
    assert 'resume_pkl' not in options(scratch)
    assert [options(run_dir)['random_seed'] for run_dir in (pretrain, finetune, scratch)] == [SEED] * 3


@pytest.mark.slow
def test_finetune_starts_from_the_pretrained_networks_and_scratch_from_fresh_ones(protocol):
    outdir, _ = protocol
    pretrain, finetune, scratch = (only_run(outdir / stage) for stage in ('pretrain', 'finetune', 'scratch'))
    # Same seed, same grid latents: the fine-tune's G_ema renders at the start exactly what the pretrained G_ema
    # rendered last, and the scratch run's initial G_ema what the pretraining run's initial one rendered.
    np.testing.assert_array_equal(pixels(finetune / 'fakes_init.png'), pixels(last_fakes(pretrain)))
    np.testing.assert_array_equal(pixels(scratch / 'fakes_init.png'), pixels(pretrain / 'fakes_init.png'))
    assert not np.array_equal(pixels(finetune / 'fakes_init.png'), pixels(scratch / 'fakes_init.png'))
    # After one iteration every weight of G and D is still within one iteration's reach of the pretrained one;
    # the scratch run's are not.
    pretrained, finetuned, fresh = networks(pretrain), networks(finetune), networks(scratch)
    for name in ('G', 'D'):
        assert largest_difference(finetuned[name], pretrained[name]) < ONE_ITERATION_BOUND
        assert largest_difference(fresh[name], pretrained[name]) > 2 * ONE_ITERATION_BOUND


@pytest.mark.slow
def test_on_the_fly_pretraining_equals_pretraining_on_the_zip(protocol, target, tmp_path):
    outdir, _ = protocol
    result = succeed('--target', target, '--outdir', tmp_path / 'out', '--count', 16, '--seed', SEED, '--on-the-fly',
                     '--pretrain-kimg', PRETRAIN_KIMG, '--finetune-kimg', FINETUNE_KIMG, '--skip-scratch', *TRAIN_ARGS)
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == ['finetune', 'pretrain']
    pretrain = only_run(tmp_path / 'out' / 'pretrain')
    data_options = options(pretrain)['training_set_kwargs']
    assert data_options['class_name'] == 'plugins.primitives.dataset.SyntheticDataset'
    assert data_options['path'] == f'synth:primitives-ps?n=16&res=16&seed={SEED}'
    assert f'pretraining data:  {data_options["path"]}' in result.stdout
    # The same images in the same order, so the same training, bit for bit.
    zip_pretrain = only_run(outdir / 'pretrain')
    assert sorted(p.name for p in pretrain.glob('fakes*.png')) == sorted(p.name for p in zip_pretrain.glob('fakes*.png'))
    for image in ['reals.png'] + [p.name for p in pretrain.glob('fakes*.png')]:
        np.testing.assert_array_equal(pixels(pretrain / image), pixels(zip_pretrain / image))
    snapshot = max(pretrain.glob('network-snapshot-*.pkl'))
    assert options(only_run(tmp_path / 'out' / 'finetune'))['resume_pkl'] == str(snapshot)


@pytest.mark.slow
def test_pretrained_skips_synthesis_and_pretraining(protocol, target, tmp_path):
    outdir, _ = protocol
    snapshot = max(only_run(outdir / 'pretrain').glob('network-snapshot-*.pkl'))
    succeed('--target', target, '--outdir', tmp_path / 'out', '--pretrained', snapshot, '--seed', SEED,
            '--finetune-kimg', FINETUNE_KIMG, '--skip-scratch', *TRAIN_ARGS)
    assert [p.name for p in (tmp_path / 'out').iterdir()] == ['finetune']
    finetune = only_run(tmp_path / 'out' / 'finetune')
    assert options(finetune)['resume_pkl'] == str(snapshot)
    np.testing.assert_array_equal(pixels(finetune / 'fakes_init.png'),
                                  pixels(last_fakes(only_run(outdir / 'pretrain'))))


@pytest.mark.slow
def test_freezed_fine_tuning_keeps_the_first_d_layers_with_a_plugin_loss(protocol, target, tmp_path):
    """FreezeD (upstream's --freezed) with a plugin: D's first layers from its input (upstream's layer index:
    b16.fromrgb 0, b16.conv0 1, ...) stay the pretrained ones, every other trained tensor moves."""
    outdir, _ = protocol
    pretrain = only_run(outdir / 'pretrain')
    succeed('--target', target, '--outdir', tmp_path / 'out', '--pretrained', max(pretrain.glob('network-snapshot-*.pkl')),
            '--seed', SEED, '--finetune-kimg', FINETUNE_KIMG, '--skip-scratch', *TRAIN_ARGS, '--freezed', 2, '--loss',
            'plugins.diggan.Loss', '--loss-kwargs', '{"weight": 10}')
    finetune = only_run(tmp_path / 'out' / 'finetune')
    assert options(finetune)['D_kwargs']['block_kwargs']['freeze_layers'] == 2 and 'freezed2' in finetune.name
    before, after = networks(pretrain)['D'].state_dict(), networks(finetune)['D'].state_dict()
    trained = {name for name, param in networks(pretrain)['D'].named_parameters()}
    unchanged = {name for name in trained if torch.equal(before[name], after[name])}
    assert unchanged == {name for name in trained if name.startswith(('b16.fromrgb.', 'b16.conv0.'))} != set()


def write_folder(path, size, mode='RGB', count=2):
    path.mkdir()
    for i in range(count):
        PIL.Image.new(mode, size, color=i).save(path / f'img{i}.png')
    return path


def assert_refused(args, outdir, *fragments):
    """The script with these arguments, in this process (importing torch in a new one costs more than the check;
    test_missing_target_is_refused exits through a real process): exit status 2, each fragment in the output, and
    nothing written. train.py's dry runs still run in their own child (scripts/dry_run.py)."""
    from click.testing import CliRunner

    from scripts.pretrain_finetune import main
    result = CliRunner().invoke(main, list(map(str, args)))
    assert result.exit_code == 2, result.output
    for fragment in fragments:
        assert fragment in result.output
    assert not outdir.exists()


def test_missing_target_is_refused(tmp_path):
    missing = tmp_path / 'missing.zip'
    result = run_script('--target', missing, '--outdir', tmp_path / 'out', *TRAIN_ARGS)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Invalid value for '--target'" in result.stderr and f"'{missing}' does not exist" in result.stderr
    assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('size, mode, message', [((24, 24), 'RGB', '24x24 images'), ((16, 8), 'RGB', '16x8 images'),
                                                 ((16, 16), 'L', '1-channel images')])
def test_unusable_target_images_are_refused(tmp_path, size, mode, message):
    target = write_folder(tmp_path / 'target', size, mode)
    assert_refused(['--target', target, '--outdir', tmp_path / 'out', *TRAIN_ARGS], tmp_path / 'out',
                   "Invalid value for '--target'", str(target), message)


def test_pretrained_network_of_another_resolution_is_refused(dataset16, tmp_path):
    snapshot = max(train(tmp_path / 'pretrained', dataset16, '--kimg', 0.004).glob('network-snapshot-*.pkl'))
    target = write_folder(tmp_path / 'target', (32, 32))
    assert_refused(['--target', target, '--outdir', tmp_path / 'out', '--pretrained', snapshot, *TRAIN_ARGS],
                   tmp_path / 'out', 'train.py rejects the options of the fine-tune run: --resume: ',
                   'holds a G for 16x16 images', '--data has 32x32')


@pytest.mark.parametrize('args, messages', [
    (('--', '--kimg', '5'), ["'--kimg' after \"--\": the script sets"]),
    (('--', '--seed=1'), ["'--seed=1' after \"--\""]),
    (('--', '--resume-state', 'yes'), ["'--resume-state' after \"--\""]),
    (('--pretrained', 'missing.pkl', '--', '--cfg', 'cpu'), ['rejects the options of the fine-tune run: --resume: '
                                                             'no such file']),
    (('--', '--cfg', 'nosuch'), ["train.py rejects the options of the pretraining run: Invalid value for '--cfg': "
                                 "'nosuch' is not one of"]),
    (('--', '--cfg', 'cpu', '--loss', 'plugins.nosuch.Loss'), ["train.py rejects", "--loss: cannot import module "
                                                               "'plugins.nosuch'"]),
    (('--pretrained', 'x.pkl', '--count', '5'), ['--pretrained skips the pretraining, so --count would be ignored']),
    (('--', '--cfg', 'cpu', '--help'), ["'--help' after \"--\": for train.py's options run"]),
    (('--', '--cfg', 'cpu', '--aug'), ["'--aug' after \"--\" has no value"]),
    (('--', '--aug', '--cfg', 'cpu'), ["'--aug' after \"--\" has no value"]),
    (('--seed', 2**32, '--', '--cfg', 'cpu'), ["Invalid value for '--seed'"]),
])
def test_bad_options_are_refused_before_anything_is_written(target, tmp_path, args, messages):
    assert_refused(['--target', target, '--outdir', tmp_path / 'out', *args], tmp_path / 'out', *messages)


def test_bad_shape_options_are_refused_before_anything_is_written(target, tmp_path):
    from click.testing import CliRunner

    from scripts.pretrain_finetune import main
    for args, message in [(['--size-policy', 'fix'], '--size-policy fix takes --fix-size'),
                          (['--synth', 'pinknoise', '--particles', '10'], 'pinknoise draws no shapes'),
                          (['--pretrained', 'x.pkl', '--particles', '10'], 'so --particles would be ignored')]:
        result = CliRunner().invoke(main, ['--target', str(target), '--outdir', str(tmp_path / 'out'), *args])
        assert result.exit_code == 2 and message in result.output, (args, result.output)
        assert not (tmp_path / 'out').exists()


def test_fid_report_compares_final_and_best(tmp_path):
    spec = importlib.util.spec_from_file_location('pretrain_finetune', SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    runs = {'fine-tune': tmp_path / 'finetune', 'scratch': tmp_path / 'scratch'}
    for (label, run_dir), fids in zip(runs.items(), ([30.0, 20.5, 25.0], [60.0, 50.0])):
        run_dir.mkdir()
        lines = [json.dumps({'results': {'fid50k_full': fid}, 'metric': 'fid50k_full',
                             'snapshot_pkl': f'network-snapshot-{100 * i:06d}.pkl'}) for i, fid in enumerate(fids)]
        (run_dir / 'metric-fid50k_full.jsonl').write_text('\n'.join(lines) + '\n')
    (runs['scratch'] / 'metric-kid50k_full.jsonl').write_text(
        json.dumps({'results': {'kid50k_full': 0.01}, 'metric': 'kid50k_full', 'snapshot_pkl': 'x.pkl'}) + '\n')
    assert script.fid_report(runs) == [
        'FID (lower is better):',
        '  fid50k_full  fine-tune  final 25 (network-snapshot-000200.pkl)  best 20.5 (network-snapshot-000100.pkl)',
        '  fid50k_full  scratch    final 50 (network-snapshot-000100.pkl)  best 50 (network-snapshot-000100.pkl)',
    ]
    (runs['fine-tune'] / 'metric-fid50k_full.jsonl').unlink()
    assert script.fid_report(runs)[1] == '  fid50k_full  fine-tune  not computed'


def test_a_target_that_is_not_a_dataset_and_an_unusable_outdir_are_refused(target, tmp_path):
    text = tmp_path / 'text.zip'
    text.write_text('not a zip')
    assert_refused(['--target', text, '--outdir', tmp_path / 'out', *TRAIN_ARGS], tmp_path / 'out',
                   f"'{text}' cannot be read as a dataset: BadZipFile")
    for outdir, message in [('', "Invalid value for '--outdir': must name a folder"),
                            ('/proc/no-such-dir/out', 'cannot create /proc/no-such-dir/out')]:
        assert_refused(['--target', target, '--outdir', outdir, *TRAIN_ARGS], Path(outdir or 'no-such-outdir'), message)
