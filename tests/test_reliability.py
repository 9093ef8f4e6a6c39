"""Reliability through the real train.py on the CPU: exact resume of the training and plugin state, equal controller
state on two processes, snapshots that survive a kill, non-finite logits, and bad input refused before anything is
written."""

import json
import pickle
import zipfile

import numpy as np
import PIL.Image
import pytest
import torch

from tests.conftest import assert_same, invoke_train, read_stats, run_upstream, train

ADAPTIVE = {'atopk': {}, 'anda': {}, 'diggan': {'cadence': 'every', 'smoothing': 0.5}, 'apa': {}, 'lecam': {},
            'insgen': {'real_queue_size': 4, 'fake_queue_size': 6}}
DIFFUSION = ['--aug', 'plugins.diffusion.AugmentPipe', '--target', '0.6', '--D-class', 'plugins.diffusion.Discriminator']
COMMON = [*DIFFUSION, '--ada-kimg', '2', '--loss', 'plugins.Loss', '--loss-kwargs', json.dumps(ADAPTIVE)]


def load_snapshot(run_dir):
    snapshot = max(run_dir.glob('network-snapshot-*.pkl'))
    with open(snapshot, 'rb') as f:
        return pickle.load(f)


@pytest.fixture(scope='module')
def first_leg(tmp_path_factory, dataset16):
    """16 minibatches of 4 (a multiple of ADA's and the heuristic's interval), ending in a snapshot."""
    return train(tmp_path_factory.mktemp('first'), dataset16, '--kimg', 0.064, *COMMON)


def test_every_snapshot_of_a_run_keeps_its_own_name(first_leg):
    from training.training_loop import snapshot_name
    # Ticks of 0.1 kimg: tick 0 (4 images) and the end (64) no longer share network-snapshot-000000.pkl.
    assert sorted(p.name for p in first_leg.glob('network-snapshot-*')) == [
        'network-snapshot-000000.004.pkl', 'network-snapshot-000000.064.pkl']
    assert sorted(p.name for p in first_leg.glob('fakes0*.png')) == ['fakes000000.004.png', 'fakes000000.064.png']
    assert load_snapshot(first_leg)['training_state']['cur_nimg'] == 64
    # Whole-kimg ticks and length keep upstream's names; a fractional length names every snapshot exactly.
    assert [snapshot_name(nimg, 4, 25000) for nimg in (32, 4032, 25024)] == ['000000', '000004', '000025']
    assert [snapshot_name(nimg, 4, 8.5) for nimg in (4032, 8032, 8512)] == ['000004.032', '000008.032', '000008.512']


def test_resumed_run_continues_exactly_as_a_straight_run(tmp_path, dataset16, first_leg):
    straight = load_snapshot(train(tmp_path / 'straight', dataset16, '--kimg', 0.128, *COMMON))
    snapshot = max(first_leg.glob('network-snapshot-*.pkl'))
    resumed_dir = train(tmp_path / 'resumed', dataset16, '--kimg', 0.128, '--resume', snapshot, *COMMON)
    assert 'Training state: restored (kimg 0.064' in (resumed_dir / 'log.txt').read_text()
    resumed = load_snapshot(resumed_dir)
    assert straight['training_state']['cur_nimg'] == resumed['training_state']['cur_nimg'] == 128
    assert straight['training_state']['loss_state']['tracker']['nimg'] == 128
    assert_same(straight['training_state']['loss_state'], resumed['training_state']['loss_state'], 'loss_state')
    assert_same(straight['training_state']['optimizers'], resumed['training_state']['optimizers'], 'optimizers')
    assert_same(straight['augment_pipe'].state_dict(), resumed['augment_pipe'].state_dict(), 'augment_pipe')
    pipes = [snapshot['augment_pipe'] for snapshot in (straight, resumed)]  # Diffusion-GAN's T and table: buffers
    assert int(pipes[0].adjustments) == 8 and int(pipes[0].table_steps) > 10  # every 4th of 32 minibatches
    for name in ['G', 'D', 'G_ema']:   # had the stream restarted at draw 0, the second half would differ
        assert_same(straight[name].state_dict(), resumed[name].state_dict(), name)
    assert read_stats(resumed_dir)[0]['Progress/kimg']['mean'] > 0.064  # the counter went on from the snapshot


def test_plain_upstream_snapshot_resumes_with_fresh_state_and_a_note(tmp_path, dataset16, first_leg):
    snapshot = load_snapshot(first_leg)
    del snapshot['training_state']
    plain = tmp_path / 'plain.pkl'
    with open(plain, 'wb') as f:
        pickle.dump(snapshot, f)
    run_dir = train(tmp_path / 'runs', dataset16, '--kimg', 0.008, '--resume', plain, *COMMON)
    assert ('Training state: plain upstream snapshot without one; kimg, augment p and plugin state start fresh'
            in (run_dir / 'log.txt').read_text())
    assert load_snapshot(run_dir)['training_state']['cur_nimg'] == 8
    run_upstream('generate.py', '--network', plain, '--seeds', '0', '--outdir', tmp_path / 'images')
    assert (tmp_path / 'images' / 'seed0000.png').exists()


def test_a_snapshot_from_another_batch_resumes_with_fresh_state_and_a_note(tmp_path, dataset16, first_leg):
    snapshot = max(first_leg.glob('network-snapshot-*.pkl'))
    run_dir = train(tmp_path, dataset16, '--kimg', 0.008, '--batch', 8, '--resume', snapshot, *COMMON)
    assert ('Training state: saved with batch and batch-gpu (4, 4), this run has (8, 8); kimg, augment p and '
            'plugin state start fresh' in (run_dir / 'log.txt').read_text())
    assert load_snapshot(run_dir)['training_state']['cur_nimg'] == 8


def test_a_resumed_insgen_run_with_other_queue_sizes_starts_those_queues_afresh(tmp_path, dataset16, first_leg):
    snapshot = max(first_leg.glob('network-snapshot-*.pkl'))
    options = dict(ADAPTIVE, insgen={'real_queue_size': 5, 'fake_queue_size': 6})  # the first leg's real queue: 4
    common = [arg if not arg.startswith('{') else json.dumps(options) for arg in COMMON]
    run_dir = train(tmp_path / 'runs', dataset16, '--kimg', 0.068, '--resume', snapshot, *common)
    log = (run_dir / 'log.txt').read_text()
    assert "InsGen: the snapshot's real queue holds 4 keys, this run's 5; it starts afresh" in log
    assert 'fake queue holds' not in log and 'Training state: restored' in log
    state = load_snapshot(run_dir)['training_state']['loss_state']['methods']['insgen']
    assert list(state['heads']['real']['queue'].shape) == [128, 5]


def test_resume_state_yes_restores_the_state_on_other_data(tmp_path, first_leg):
    from plugins.primitives.writer import write_dataset
    other = tmp_path / 'pink16.zip'
    write_dataset(str(other), synth='pinknoise', count=16, resolution=16, seed=1, workers=1, progress=False)
    snapshot = max(first_leg.glob('network-snapshot-*.pkl'))
    run_dir = train(tmp_path / 'runs', other, '--kimg', 0.068, '--resume', snapshot, '--resume-state', 'yes', *COMMON)
    assert 'Training state: restored (kimg 0.064' in (run_dir / 'log.txt').read_text()
    assert load_snapshot(run_dir)['training_state']['cur_nimg'] == 68


@pytest.mark.parametrize('spelling', ['symlink', 'relative'])
def test_another_spelling_of_the_same_data_restores_the_state(tmp_path, dataset16, first_leg, spelling):
    import os
    from tests.conftest import ROOT
    if spelling == 'symlink':
        data = tmp_path / 'link.zip'
        data.symlink_to(dataset16)
    else:  # train.py runs in the repository root; go up and down again through '..'
        data = os.path.join('plugins', '..', os.path.relpath(dataset16, ROOT))
    snapshot = max(first_leg.glob('network-snapshot-*.pkl'))
    run_dir = train(tmp_path / 'runs', data, '--kimg', 0.068, '--resume', snapshot, *COMMON)
    log = (run_dir / 'log.txt').read_text()
    assert f'Training state: restored (kimg 0.064, tick 2; data compared by resolved path: {dataset16.resolve()})' in log
    assert load_snapshot(run_dir)['training_state']['data_path'] == str(dataset16.resolve())


def test_an_explicit_ada_kimg_is_kept_over_the_resumed_runs(tmp_path, dataset16, first_leg):
    snapshot = max(first_leg.glob('network-snapshot-*.pkl'))
    common = [arg if arg != '2' else '5' for arg in COMMON]  # the first leg ran at --ada-kimg 2
    run_dir = train(tmp_path / 'runs', dataset16, '--kimg', 0.068, '--resume', snapshot, *common)
    assert 'Training state: restored' in (run_dir / 'log.txt').read_text()
    assert load_snapshot(run_dir)['training_state']['ada_kimg'] == 5


@pytest.mark.slow
def test_two_processes_hold_the_same_controller_state(tmp_path, dataset16, monkeypatch):
    monkeypatch.setenv('PROBE_DIR', str(tmp_path))
    heuristic = {'speed_kimg': 0.02}  # p moves 0.8 per adjustment
    options = {'atopk': heuristic, 'anda': {'alpha': 'heuristic', **heuristic}, 'apa': {'p': 'heuristic', **heuristic},
               'lecam': {}, 'insgen': {'real_queue_size': 4, 'fake_queue_size': 6}}
    train(tmp_path / 'runs', dataset16, '--kimg', 0.1, '--gpus', 2, *DIFFUSION, '--ada-kimg', 0.5,
          '--loss', 'tests.probes.RankRecordingLoss', '--loss-kwargs', json.dumps(options))
    ranks = [[json.loads(line) for line in (tmp_path / f'rank{rank}.jsonl').read_text().splitlines()]
             for rank in (0, 1)]
    tables = [[row.pop('diffusion_table') for row in rows] for rows in ranks]
    assert all(a != b for a, b in zip(*tables))  # Diffusion-GAN's released draws: each rank its own table
    assert len(ranks[0]) == 25 and ranks[0] == ranks[1]
    assert ranks[0][-1]['batch'] == 4 and ranks[0][-1]['nimg'] == 24 * 4
    assert len({row['p'] for row in ranks[0]}) > 1  # the heuristic did move, identically on both ranks
    assert [row['lecam'][2] for row in ranks[0]] == list(range(25))  # LeCam's averages: one update per minibatch,
    assert len({tuple(row['lecam'][:2]) for row in ranks[0]}) == 25  # each moving them, identically on both ranks
    assert len({row['diffusion'] for row in ranks[0]}) > 1  # and Diffusion-GAN's T
    assert len({tuple(row['insgen']) for row in ranks[0]}) == 25  # and InsGen's momentum D, heads and queues


@pytest.mark.slow
def test_a_two_process_run_resumes_exactly_with_each_ranks_own_state(tmp_path, dataset16):
    """Each rank's own state (patch 0017): upstream's pl_mean, DigGAN's smoothed norms and Diffusion-GAN's released
    timestep table. A two-process run resumed from its own snapshot after 8 minibatches (two adjustments) ends as
    the run that went on."""
    common = ['--gpus', 2, *DIFFUSION, '--ada-kimg', 0.1, '--loss', 'plugins.diggan.Loss',
              '--tick', 0.028, '--snap', 1]  # ticks end at 0.004, 0.032 and 0.060 kimg, each with a snapshot
    straight_dir = train(tmp_path / 'straight', dataset16, '--kimg', 0.064, *common)
    straight = load_snapshot(straight_dir)
    resumed = load_snapshot(train(tmp_path / 'resumed', dataset16, '--kimg', 0.064, '--resume',
                                  straight_dir / 'network-snapshot-000000.032.pkl', *common))
    ranks = straight['training_state']['rng']
    assert len(ranks) == 2 and not torch.equal(ranks[0]['pipe']['table'], ranks[1]['pipe']['table'])
    assert not torch.equal(ranks[0]['loss']['pl_mean'], ranks[1]['loss']['pl_mean'])
    assert_same(straight['training_state']['rng'], resumed['training_state']['rng'], 'rng')
    assert int(straight['augment_pipe'].table_steps) > 10  # T moved
    for name in ['G', 'D', 'G_ema', 'augment_pipe']:
        assert_same(straight[name].state_dict(), resumed[name].state_dict(), name)


def failing_run(tmp_path, dataset16, loss_class):
    """A 0.2-kimg CPU run with a probe loss that must end it; returns (its process result, its run directory)."""
    result = run_upstream('train.py', '--outdir', tmp_path, '--data', dataset16, '--cfg', 'cpu', '--metrics', 'none',
                          '--workers', 1, '--grid', 4, '--kimg', 0.2, '--aug', 'noaug', '--loss', loss_class, check=False)
    assert result.returncode != 0
    (run_dir,) = tmp_path.iterdir()
    return result, run_dir


def test_a_kill_during_a_snapshot_write_leaves_the_previous_snapshot(tmp_path, dataset16):
    result, run_dir = failing_run(tmp_path, dataset16, 'tests.probes.KilledInSecondSnapshotLoss')
    assert [p.name for p in run_dir.glob('*.pkl')] == ['network-snapshot-000000.004.pkl']
    assert not list(run_dir.glob('*.tmp'))  # killed while the snapshot was serialised: nothing of it was written
    snapshot = load_snapshot(run_dir)
    assert snapshot['training_state']['cur_nimg'] == 4  # the first tick's, complete
    run_upstream('generate.py', '--network', run_dir / 'network-snapshot-000000.004.pkl', '--seeds', '0',
                 '--outdir', tmp_path / 'images')


def test_non_finite_logits_stop_the_run_naming_the_quantity(tmp_path, dataset16):
    result, run_dir = failing_run(tmp_path, dataset16, 'tests.probes.NaNLogitsLoss')
    output = result.stdout + result.stderr  # upstream's logger sends stderr to stdout and log.txt
    assert ('non-finite ' in output and 'Loss/scores/fake' in output and 'in tick 1 (kimg 0.1' in output
            and 'Last complete snapshot: ' + str(run_dir / 'network-snapshot-000000.004.pkl') in output)
    assert load_snapshot(run_dir)['training_state']['cur_nimg'] == 4  # tick 0's, never replaced by a NaN one


def test_replaced_gradient_entries_are_counted_and_said(tmp_path, dataset16):
    """Upstream's nan_to_num trains on through an infinite gradient (as 1e5); patch 0019 counts what it replaces."""
    run_dir = train(tmp_path, dataset16, '--kimg', 0.016, '--aug', 'noaug', '--loss',
                    'tests.probes.InfiniteBiasGradientLoss')
    stats = read_stats(run_dir)
    assert len(stats) == 2 and stats[-1]['Progress/kimg']['mean'] >= 0.016  # the run went on
    bias = list(load_snapshot(run_dir)['D'].parameters())[-1]
    assert bias.numel() == 1 and bias.isfinite().all()
    for row in stats[1:]:
        assert row['Gradients/nonfinite/Dmain']['mean'] == 1 and row['Gradients/nonfinite/Dmain']['num'] > 0
        assert row['Gradients/nonfinite/Gmain']['mean'] == row['Gradients/nonfinite/Dreg']['mean'] == 0
    steps = stats[1]['Gradients/nonfinite/Dmain']['num']
    assert f'Warning: non-finite gradient entries replaced by 0 (NaN) or +-1e5 (inf) in this tick: Dmain {steps:g} ' \
        '(Gradients/nonfinite/<phase> in stats.jsonl)' in (run_dir / 'log.txt').read_text()


# ----------------------------------------------------------------------------------------------------------------
# Bad input: a usage error naming the value and what is allowed, and nothing written.

def image_zip(path, images):
    with zipfile.ZipFile(path, 'w') as archive:
        for index, image in enumerate(images):
            with archive.open(f'img{index:08d}.png', 'w') as f:
                PIL.Image.fromarray(image).save(f, format='png')
    return path


@pytest.fixture(scope='module')
def cpu_snapshot(first_leg):
    snapshot = max(first_leg.glob('network-snapshot-*.pkl'))
    return snapshot


BAD_INPUT = [
    ('anda lam', ['--loss', 'plugins.anda.Loss', '--loss-kwargs', '{"lam": 1.5}'], r'lam must lie in [0, 1), got 1.5'),
    ('diggan weight type', ['--loss', 'plugins.diggan.Loss', '--loss-kwargs', '{"weight": "high"}'],
     "option 'weight' of Loss must be of type float, got 'high'"),
    ('atopk in combination', ['--loss', 'plugins.Loss', '--loss-kwargs', '{"atopk": {"mode": "best"}}'],
     "mode must be one of 'adaptive', 'fixed', 'linear', 'worst'; got 'best'"),
    ('diffaug policy', ['--aug', 'plugins.diffaug.AugmentPipe', '--aug-kwargs', '{"policy": "color,zoom"}'],
     "unknown entries ['zoom']"),
    ('anda alpha ada without a pipe', ['--loss', 'plugins.anda.Loss', '--loss-kwargs', '{"alpha": "ada"}', '--aug', 'noaug'],
     "--loss: ANDA alpha='ada' follows the augment pipe's p, but this run has no augment pipe"),
    ('insgen without a pipe', ['--loss', 'plugins.insgen.Loss', '--loss-kwargs',
                               '{"real_queue_size": 4, "fake_queue_size": 4}', '--aug', 'noaug'],
     '--loss: InsGen makes two views of every image with the augment pipe, and this run has none'),
    ('insgen default queue on 16 images', ['--loss', 'plugins.Loss', '--loss-kwargs', '{"insgen": {}}', '--aug', 'ada'],
     '--loss: the default queue size, 5% of the 16 images, is 0; give real_queue_size and fake_queue_size'),
    ('unknown plugin', ['--loss', 'plugins.nosuch.Loss'], "--loss: cannot import module 'plugins.nosuch'"),
    ('unknown pipe', ['--aug', 'plugins.diffaug.NoPipe'], "--aug: module 'plugins.diffaug' has no class 'NoPipe'"),
    ('resume architecture', ['--cfg', 'auto', '--resume', 'SNAPSHOT'],
     'has a different G architecture (35 tensors differ, e.g. synthesis.b4.const is [64, 4, 4] there, [512, 4, 4] here)'),
    ('resume architecture, a file URL', ['--cfg', 'auto', '--resume', 'file://SNAPSHOT'],
     'has a different G architecture (35 tensors differ'),
    ('resume missing', ['--resume', 'MISSING'], '--resume: no such file: '),
    ('resume missing, a file URL', ['--resume', 'file://MISSING'], '--resume: no such file: file:///'),
    ('resume a partial write', ['--resume', 'PARTIAL'], 'is the partial write of an interrupted snapshot; resume from a .pkl'),
]


@pytest.mark.parametrize('args, message', [case[1:] for case in BAD_INPUT], ids=[case[0] for case in BAD_INPUT])
def test_bad_option_or_snapshot_is_refused_before_writing(tmp_path, dataset16, cpu_snapshot, args, message):
    partial = tmp_path / 'network-snapshot-000000.064.pkl.tmp'
    partial.write_bytes(cpu_snapshot.read_bytes()[:-100])
    for name, path in {'SNAPSHOT': cpu_snapshot, 'MISSING': tmp_path / 'missing.pkl', 'PARTIAL': partial}.items():
        args = [arg.replace(name, str(path)) for arg in args]
    base = [] if '--cfg' in args else ['--cfg', 'cpu']
    exit_code, output = invoke_train('--outdir', tmp_path / 'runs', '--data', dataset16, *base, *args)
    assert exit_code == 2 and message in output, output
    assert not (tmp_path / 'runs').exists()


@pytest.mark.parametrize('shape, described', [
    ((24, 24, 3), '24x24 images with 3 channels'),
    ((16, 32, 3), '32x16 images with 3 channels'),
    ((16, 16, 4), '16x16 images with 4 channels'),
])
def test_dataset_that_does_not_fit_is_refused_before_writing(tmp_path, shape, described):
    pixels = np.random.default_rng(0).integers(0, 256, size=(4, *shape), dtype=np.uint8)
    data = image_zip(tmp_path / 'bad.zip', pixels)
    exit_code, output = invoke_train('--outdir', tmp_path / 'runs', '--data', data, '--cfg', 'cpu')
    assert exit_code == 2, output
    assert (f'--data: {data} holds {described}; training needs square images whose side is a power of two >= 4, '
            f'with 1 or 3 channels') in output
    assert not (tmp_path / 'runs').exists()


def test_dataset_that_cannot_be_decoded_is_refused_before_writing(tmp_path):
    """Also the usage-error exit path of a real process: exit code 2, the message on its output."""
    pixels = np.random.default_rng(0).integers(0, 256, size=(4, 16, 16, 2), dtype=np.uint8)  # grey + alpha
    data = image_zip(tmp_path / 'bad.zip', pixels)
    result = run_upstream('train.py', '--outdir', tmp_path / 'runs', '--data', data, '--cfg', 'cpu', check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f'--data: {data}: cannot decode img00000000.png: RuntimeError: pyspng' in result.stdout + result.stderr
    assert not (tmp_path / 'runs').exists()


def _refused(tmp_path, data, message):
    exit_code, output = invoke_train('--outdir', tmp_path / 'runs', '--data', data, '--cfg', 'cpu')
    assert exit_code == 2 and message in output, output
    assert not (tmp_path / 'runs').exists()


def test_a_corrupted_member_or_a_broken_zip_is_named_before_writing(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, size=(4, 16, 16, 3), dtype=np.uint8)
    data = image_zip(tmp_path / 'corrupt.zip', pixels)
    with zipfile.ZipFile(data) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    members['img00000002.png'] = b'\x89PNG garbage'
    with zipfile.ZipFile(data, 'w') as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    _refused(tmp_path, data, f'--data: {data}: cannot read img00000002.png: UnidentifiedImageError')
    truncated = tmp_path / 'truncated.zip'
    truncated.write_bytes(data.read_bytes()[:200])
    _refused(tmp_path, truncated, f'--data: cannot read the images of {truncated}: BadZipFile')


def test_images_of_mixed_sizes_are_named_before_writing(tmp_path):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, size=(16, 16, 3), dtype=np.uint8) for _ in range(3)]
    data = image_zip(tmp_path / 'mixed.zip', images + [rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)])
    _refused(tmp_path, data, f'--data: {data}: img00000003.png is 32x32 with 3 channels, but img00000000.png is '
                             '16x16 with 3; every image must have the same size')


def test_a_resumed_run_continues_the_endless_synthetic_stream(tmp_path):
    stream = ['--data-class', 'plugins.primitives.dataset.SyntheticDataset', '--aug', 'noaug']
    data = 'synth:primitives?res=16&seed=4'
    straight = load_snapshot(train(tmp_path / 'straight', data, '--kimg', 0.032, *stream))
    first = train(tmp_path / 'first', data, '--kimg', 0.016, *stream)
    assert json.loads((first / 'training_options.json').read_text())['training_set_kwargs']['path'] == data
    snapshot = max(first.glob('network-snapshot-*.pkl'))
    resumed_dir = train(tmp_path / 'resumed', data, '--kimg', 0.032, '--resume', snapshot, *stream)
    assert 'Training state: restored (kimg 0.016' in (resumed_dir / 'log.txt').read_text()
    resumed = load_snapshot(resumed_dir)
    for name in ['G', 'D', 'G_ema']:   # had the stream restarted at draw 0, the second half would differ
        assert_same(straight[name].state_dict(), resumed[name].state_dict(), name)


def test_no_dataloader_worker_outlives_a_killed_run(tmp_path):
    import os
    import subprocess
    import sys
    import time
    import psutil
    from tests.conftest import ROOT
    reading = tmp_path / 'worker-reading'
    process = subprocess.Popen([sys.executable, str(ROOT / 'stylegan2_ada' / 'train.py'), '--outdir', str(tmp_path),
                                '--data', 'synth:primitives?n=16&res=16', '--data-class', 'tests.probes.SlowInWorkersDataset',
                                '--cfg', 'cpu', '--metrics', 'none', '--workers', '1', '--kimg', '1'],
                               cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env=dict(os.environ, PROBE_DIR=str(tmp_path)))
    workers = []
    try:
        deadline = time.time() + 600
        while not reading.exists() and time.time() < deadline and process.poll() is None:
            time.sleep(0.5)
        assert reading.exists(), 'no DataLoader worker started its read'
        workers = [child for child in psutil.Process(process.pid).children(recursive=True)
                   if 'spawn_main' in ' '.join(child.cmdline())]
        assert workers, 'the reading worker is not a child of train.py'
        process.kill()  # the worker is inside its ten-minute read
        process.wait()
        gone, alive = psutil.wait_procs(workers, timeout=10)
        assert not alive, f'{len(alive)} worker(s) outlived the killed train.py'
    finally:
        process.kill()
        for worker in workers:  # an orphan is no child of this process any more: kill it by its handle
            if worker.is_running():
                worker.kill()
