"""One launch mechanism (patch 0024): `--gpus 2` (spawned), `torchrun --nproc-per-node 2`, two torchrun "machines" of
one process each on 127.0.0.1, and two processes started as srun starts them (SLURM variables set by hand) train the
same run, bit for bit, on the CPU with gloo; two machines resume it exactly, and end together when one's process is
killed."""

import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from tests.conftest import ROOT, assert_same, read_stats

# Ticks end at 0.004 kimg (upstream's tick 0: one minibatch of 4), 0.016, 0.028 and 0.032, each with a snapshot.
TRAIN = ['--cfg', 'cpu', '--tick', '0.012', '--snap', '1', '--metrics', 'none', '--workers', '1', '--grid', '4']
TORCHRUN = [sys.executable, '-m', 'torch.distributed.run']


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def start(command, env=None):
    return subprocess.Popen([*map(str, command)], cwd=ROOT / 'stylegan2_ada', env={**os.environ, 'OMP_NUM_THREADS': '1', **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(*processes):
    for process in processes:
        output, _ = process.communicate(timeout=600)
        assert process.returncode == 0, output[-3000:]


def trained(outdir, kimg='000000.016'):
    """The networks of the run's snapshot at kimg and its stats rows up to there."""
    snapshot = snapshot_of(outdir, kimg)
    (run_dir,) = [path for path in outdir.iterdir() if path.is_dir()]
    stats = [{key: value for key, value in row.items() if not key.startswith(('Timing/', 'Resources/', 'timestamp'))}
             for row in read_stats(run_dir) if row['Progress/kimg']['mean'] <= float(kimg) + 1e-9]
    return {name: snapshot[name].state_dict() for name in ('G', 'D', 'G_ema')}, stats


def snapshot_of(outdir, kimg=None):
    """The run's snapshot at kimg (as snapshot names spell it), or its last."""
    (run_dir,) = [path for path in outdir.iterdir() if path.is_dir()]  # one run directory, whoever created it
    path = run_dir / f'network-snapshot-{kimg}.pkl' if kimg else max(run_dir.glob('network-snapshot-*.pkl'))
    with open(path, 'rb') as f:
        return pickle.load(f)


def two_machines(*args):
    port = free_port()
    return [start([*TORCHRUN, '--nnodes', '2', '--node-rank', node, '--nproc-per-node', '1', '--master-addr',
                   '127.0.0.1', '--master-port', port, *args]) for node in (0, 1)]


@pytest.fixture(scope='module')
def launch_dir(tmp_path_factory):
    return tmp_path_factory.mktemp('launch')


@pytest.fixture(scope='module')
def runs(launch_dir, dataset16):
    """Each launcher's run of 0.016 kimg, and `--gpus 2` (spawned) trained on to 0.032 kimg, the straight run the
    resume test compares with."""
    out = launch_dir
    args = lambda name, kimg=0.016: ['train.py', '--outdir', out / name, '--data', dataset16, *TRAIN,  # noqa: E731
                                     '--kimg', kimg]
    finish(start([sys.executable, *args('spawn', kimg=0.032), '--gpus', '2']))
    finish(start([*TORCHRUN, '--nproc-per-node', '2', '--master-port', free_port(), *args('torchrun')]))
    finish(*two_machines(*args('two-machines')))
    slurm = dict(SLURM_NTASKS='2', SLURM_JOB_NODELIST='localhost', SLURM_JOB_ID=str(free_port()))
    finish(*[start([sys.executable, *args('srun')], dict(slurm, SLURM_PROCID=str(rank), SLURM_LOCALID=str(rank)))
             for rank in (0, 1)])
    return {name: trained(out / name) for name in ('spawn', 'torchrun', 'two-machines', 'srun')}


@pytest.mark.slow
@pytest.mark.parametrize('launcher', ['torchrun', 'two-machines', 'srun'])
def test_every_launcher_trains_the_run_that_gpus_2_spawns(runs, launcher):
    (networks, stats), (spawned, spawned_stats) = runs[launcher], runs['spawn']
    for name in ('G', 'D', 'G_ema'):
        assert all(torch.equal(networks[name][key], spawned[name][key]) for key in spawned[name]), name
    assert stats == spawned_stats and len(stats) == 2


@pytest.mark.slow
def test_two_machines_resume_a_run_exactly_as_it_would_have_gone_on(runs, launch_dir, dataset16, tmp_path):
    """The two-machine run of 0.016 kimg, resumed by two machines to 0.032, equals `--gpus 2` trained straight to 0.032:
    networks, the pipe's p and each process's random state."""
    first = max((launch_dir / 'two-machines').glob('*/network-snapshot-*.pkl'))
    finish(*two_machines('train.py', '--outdir', tmp_path / 'resumed', '--data', dataset16, *TRAIN, '--kimg', 0.032,
                         '--resume', first))
    straight, resumed = snapshot_of(launch_dir / 'spawn'), snapshot_of(tmp_path / 'resumed')
    assert straight['training_state']['cur_nimg'] == 32
    assert resumed['training_state']['cur_nimg'] == 32 and len(resumed['training_state']['rng']) == 2
    state = lambda snapshot: {key: value for key, value in snapshot['training_state'].items()  # noqa: E731
                              if key != 'cur_tick'}  # a resumed run starts with a tick of its own
    assert_same(state(straight), state(resumed), 'training_state')
    for name in ('G', 'D', 'G_ema', 'augment_pipe'):
        assert_same(straight[name].state_dict(), resumed[name].state_dict(), name)


@pytest.mark.slow
def test_a_process_killed_on_one_machine_ends_the_run_on_the_other_within_seconds(tmp_path, dataset16):
    """gloo: the surviving process's next collective fails on the closed connection and torchrun ends; the snapshot
    written before the kill stays complete."""
    out = tmp_path / 'runs'
    args = ['train.py', '--outdir', out, '--data', dataset16, *TRAIN, '--kimg', 10]
    nodes = two_machines(*args)
    try:
        deadline = time.monotonic() + 300
        while not list(out.glob('*/network-snapshot-*.pkl')) and time.monotonic() < deadline:
            time.sleep(0.5)
        (worker,) = Path(f'/proc/{nodes[1].pid}/task/{nodes[1].pid}/children').read_text().split()
        os.kill(int(worker), signal.SIGKILL)
        killed = time.monotonic()
        output, _ = nodes[0].communicate(timeout=120)
        assert time.monotonic() - killed < 30 and nodes[0].returncode != 0
        assert 'Connection reset by peer' in output or 'Connection closed by peer' in output, output[-3000:]
    finally:
        for node in nodes:
            node.kill()
            node.communicate()
    for snapshot in out.glob('*/network-snapshot-*.pkl'):  # written whole before the kill
        with open(snapshot, 'rb') as f:
            assert pickle.load(f)['training_state']['cur_nimg'] > 0


def test_a_gpus_that_conflicts_with_the_launchers_world_is_a_usage_error(tmp_path, dataset16, monkeypatch):
    import train
    monkeypatch.setenv('RANK', '0')
    monkeypatch.setenv('WORLD_SIZE', '2')
    monkeypatch.setenv('LOCAL_RANK', '0')
    command = ['--outdir', str(tmp_path / 'runs'), '--data', str(dataset16), '--cfg', 'cpu', '--dry-run']
    result = CliRunner().invoke(train.main, [*command, '--gpus', '4'])
    assert result.exit_code == 2
    assert '--gpus 4: torchrun started 2 processes, which set the number of GPUs; leave --gpus out' in result.output
    result = CliRunner().invoke(train.main, command)
    assert result.exit_code == 0 and '"num_gpus": 2' in result.output and not (tmp_path / 'runs').exists()


def test_srun_variables_become_torchruns_with_the_jobs_first_node_and_a_port_from_the_job():
    from torch_utils import launch
    assert launch.launched({}) is None and launch.launched({'SLURM_NTASKS': '1', 'SLURM_PROCID': '0'}) is None
    environ = {'SLURM_NTASKS': '8', 'SLURM_PROCID': '5', 'SLURM_LOCALID': '1', 'SLURM_JOB_NODELIST': 'gpu[03-04,07]',
               'SLURM_JOB_ID': '123456'}
    place = launch.launched(environ)
    assert (place.rank, place.local_rank, place.world_size, place.launcher) == (5, 1, 8, 'srun')
    assert (environ['RANK'], environ['WORLD_SIZE'], environ['LOCAL_RANK']) == ('5', '8', '1')
    assert environ['MASTER_ADDR'] == 'gpu03' and environ['MASTER_PORT'] == str(20000 + 123456 % 20000)
    given = {'SLURM_NTASKS': '2', 'SLURM_PROCID': '0', 'MASTER_ADDR': 'head', 'MASTER_PORT': '1234'}
    launch.launched(given)
    assert (given['MASTER_ADDR'], given['MASTER_PORT']) == ('head', '1234')
    torchrun = {'RANK': '3', 'WORLD_SIZE': '4', 'LOCAL_RANK': '1', 'SLURM_NTASKS': '2', 'SLURM_PROCID': '0'}
    assert launch.launched(torchrun).launcher == 'torchrun' and launch.launched(torchrun).rank == 3


@pytest.mark.parametrize('nodelist, first', [('node7', 'node7'), ('a1,b2', 'a1'), ('gpu[03-04,07],cpu1', 'gpu03'),
                                             ('x[9]', 'x9')])
def test_the_first_node_of_a_slurm_node_list(nodelist, first, monkeypatch):
    from torch_utils import launch
    monkeypatch.setenv('PATH', '')  # no scontrol: the list is parsed
    assert launch.first_node(nodelist) == first


METRIC_SCRIPT = '''
import torch
from metrics import metric_main, metric_utils

def features(images):  # a cheap detector in place of Inception: each image's per-channel mean and deviation
    x = images.to(torch.float64)
    return torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3))], dim=1)
metric_utils.get_feature_detector = lambda **_: lambda images, **_: features(images)

@metric_main.register_metric
def dataset_features(opts):  # every process reads its share of the images; the features are gathered
    opts.cache = False  # each launch computes them
    stats = metric_utils.compute_feature_stats_for_dataset(opts, detector_url='test-stub', detector_kwargs={{}},
                                                           capture_all=True, max_items=None)
    return dict(dataset_features=float(stats.get_all().sum()), items=stats.num_items)

if __name__ == '__main__':
    import calc_metrics
    calc_metrics.calc_metrics()
'''


@pytest.mark.slow
def test_calc_metrics_shares_one_metric_between_torchruns_processes(runs, launch_dir, dataset16, tmp_path):
    """The same metric by one process, by --gpus 2 (spawned) and by torchrun's two processes: one result each,
    written by rank 0 alone, every image counted once."""
    (run_dir,) = [path for path in (launch_dir / 'spawn').iterdir() if path.is_dir()]
    for name in ('training_options.json', max(run_dir.glob('network-snapshot-*.pkl')).name):
        (tmp_path / name).write_bytes((run_dir / name).read_bytes())
    script = tmp_path / 'metric_under_launch.py'
    script.write_text(METRIC_SCRIPT.format())
    args = [script, '--metrics', 'dataset_features', '--data', dataset16,
            '--network', next(tmp_path.glob('network-snapshot-*.pkl'))]
    env = dict(DNNLIB_CACHE_DIR=str(tmp_path / 'cache'))
    finish(start([sys.executable, *args], env))
    finish(start([sys.executable, *args, '--gpus', '2'], env))
    torchrun = start([*TORCHRUN, '--nproc-per-node', '2', '--master-port', free_port(), *args], env)
    output, _ = torchrun.communicate(timeout=600)
    assert torchrun.returncode == 0, output[-3000:]
    assert output.count('Calculating dataset_features...') == 1  # rank 0 alone prints
    rows = [json.loads(line) for line in (tmp_path / 'metric-dataset_features.jsonl').read_text().splitlines()]
    assert [row['num_gpus'] for row in rows] == [1, 2, 2]
    assert all(row['results']['items'] == 16 for row in rows)
    assert rows[1]['results'] == rows[0]['results'] == rows[2]['results']


def test_calc_metrics_refuses_a_gpus_that_conflicts_with_the_launchers_world(monkeypatch, tmp_path):
    import calc_metrics
    for name, value in (('RANK', '0'), ('WORLD_SIZE', '2'), ('LOCAL_RANK', '0')):
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(calc_metrics.calc_metrics, ['--network', str(tmp_path / 'any.pkl'), '--metrics',
                                                            'fid1k_full', '--gpus', '3'])
    assert result.exit_code == 2
    assert '--gpus 3: torchrun started 2 processes, which set the number of GPUs; leave --gpus out' in result.output
