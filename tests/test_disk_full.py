"""A full disk (patch 0018): one clear error naming the file and the space it needed, no partial file left behind,
and every earlier snapshot, stats row and log line whole. Runs on a small tmpfs, which needs root to mount."""

import errno
import json
import os
import pickle
import shutil
import subprocess

import dnnlib  # upstream's, patched; importable through make setup's .pth
import pytest

from tests.conftest import run_upstream


@pytest.fixture
def small_disk(tmp_path, request):
    """A tmpfs of request.param bytes, unmounted afterwards."""
    mount_point = tmp_path / 'disk'
    mount_point.mkdir()
    result = subprocess.run(['mount', '-t', 'tmpfs', '-o', f'size={request.param}', 'tmpfs', str(mount_point)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f'cannot mount a tmpfs here (run the tests as root to check a full disk): {result.stderr.strip()}')
    yield mount_point
    subprocess.run(['umount', str(mount_point)], check=True)


def fill(disk, leave):
    """Fill disk until `leave` bytes are free."""
    (disk / 'filler').write_bytes(b'\0' * (shutil.disk_usage(disk).free - leave))


@pytest.mark.parametrize('small_disk', [256 * 1024], indirect=True)
def test_a_file_too_big_for_the_disk_is_refused_whole_and_an_old_one_kept(small_disk):
    path = small_disk / 'network-snapshot-000000.pkl'
    path.write_bytes(b'old')
    (small_disk / 'network-snapshot-000000.pkl.tmp').write_bytes(b'left by a killed run')
    fill(small_disk, 64 * 1024)
    with pytest.raises(OSError) as error:
        dnnlib.util.write_whole_file(str(path), b'x' * 100 * 1024)
    free = shutil.disk_usage(small_disk).free / 2**20  # 64 KiB and the stale .tmp's page
    assert error.value.strerror == f'no space left on device for {path}: it needs 0.10 MiB, {free:.2f} MiB is free'
    assert path.read_bytes() == b'old'
    assert not path.with_name(path.name + '.tmp').exists()  # the stale one too: its space is the run's
    dnnlib.util.write_whole_file(str(path), b'new')
    assert path.read_bytes() == b'new' and sorted(p.name for p in small_disk.iterdir()) == ['filler', path.name]


@pytest.mark.parametrize('small_disk', [256 * 1024], indirect=True)
def test_a_write_that_fails_midway_removes_its_partial_file(small_disk, monkeypatch):
    fill(small_disk, 16 * 1024)
    # The free-space check passes (as when another writer fills the disk between the check and the write).
    calls, disk_usage = [], shutil.disk_usage
    monkeypatch.setattr(shutil, 'disk_usage', lambda path: calls.append(path) or (
        disk_usage(path) if len(calls) > 1 else disk_usage(path)._replace(free=1 << 40)))
    path = small_disk / 'fakes000004.png'
    with pytest.raises(OSError) as error:
        dnnlib.util.write_whole_file(str(path), b'x' * 32 * 1024)
    assert len(calls) == 2  # the check, then the message
    assert error.value.strerror == f'no space left on device for {path}: it needs 0.03 MiB, 0.02 MiB is free'
    assert error.value.filename == str(path)
    assert sorted(p.name for p in small_disk.iterdir()) == ['filler']


@pytest.mark.parametrize('small_disk', [256 * 1024], indirect=True)
def test_an_appended_row_is_whole_or_absent(small_disk):
    path = small_disk / 'stats.jsonl'
    with open(path, 'wb', buffering=0) as f:
        dnnlib.util.append_whole(f, b'{"row": 1}\n')
        fill(small_disk, 4096)
        with pytest.raises(OSError, match=f'no space left on device for {path}'):
            dnnlib.util.append_whole(f, b'{"row": 2, "pad": "' + b'x' * 8192 + b'"}\n')
        assert path.read_bytes() == b'{"row": 1}\n'  # the partial row was cut back off
        (small_disk / 'filler').unlink()
        dnnlib.util.append_whole(f, b'{"row": 3}\n')
    assert path.read_bytes() == b'{"row": 1}\n{"row": 3}\n'


@pytest.mark.parametrize('small_disk', [256 * 1024], indirect=True)
def test_the_log_keeps_whole_lines_and_its_stdout_copy_on_a_full_disk(small_disk, capsys):
    path = small_disk / 'log.txt'
    logger = dnnlib.util.Logger(file_name=str(path), file_mode='a')
    try:
        print('tick 0', end='')
        print(' kimg 0.0')
        assert path.read_text() == 'tick 0 kimg 0.0\n'
        fill(small_disk, 4096)
        print('a long line ' + 'x' * 8192)  # does not fit: not in the file, still on stdout
        assert path.read_text() == 'tick 0 kimg 0.0\n'
        (small_disk / 'filler').unlink()
        print('Error: the last line', end='')
    finally:
        logger.close()
    assert path.read_text() == 'tick 0 kimg 0.0\nError: the last line'  # a partial last line is written on close
    assert 'a long line xxx' in capsys.readouterr().out


@pytest.mark.parametrize('small_disk', ['12m'], indirect=True)
def test_train_py_on_a_full_disk_stops_with_one_line_and_keeps_what_it_wrote(small_disk, dataset16):
    # Each tick writes a 0.5 MB fakes grid and a 6.6 MB snapshot: the second snapshot does not fit in 12 MB.
    result = run_upstream('train.py', '--outdir', small_disk, '--data', dataset16, '--cfg', 'cpu', '--metrics', 'none',
                          '--workers', 1, '--kimg', 0.2, '--snap', 1, '--aug', 'noaug', check=False)
    output = result.stdout + result.stderr
    (run_dir,) = small_disk.iterdir()
    second = run_dir / 'network-snapshot-000000.104.pkl'
    assert result.returncode == 1, output
    assert f'Error: no space left on device for {second}: it needs 6.' in output and 'MiB is free.' in output
    assert 'Traceback' not in output and 'lost sys.stderr' not in output
    assert not list(run_dir.glob('*.tmp')) and not second.exists()
    with open(run_dir / 'network-snapshot-000000.004.pkl', 'rb') as f:
        assert pickle.load(f)['training_state']['cur_nimg'] == 4
    rows = [json.loads(line) for line in (run_dir / 'stats.jsonl').read_text().splitlines()]
    assert [row['Progress/kimg']['mean'] for row in rows] == [pytest.approx(0.004)]
    log = (run_dir / 'log.txt').read_text()
    assert log.endswith('\n') and f'Error: no space left on device for {second}' in log


def test_a_stale_tmp_is_replaced_and_a_failed_write_leaves_nothing_without_a_tmpfs(tmp_path, monkeypatch):
    path = tmp_path / 'network-snapshot-000004.pkl'
    stale = tmp_path / 'network-snapshot-000004.pkl.tmp'
    stale.write_bytes(b'left by a killed run')
    dnnlib.util.write_whole_file(str(path), b'snapshot')
    assert path.read_bytes() == b'snapshot' and not stale.exists()

    class FullFile:  # a file on a disk that fills up after a few bytes
        def __init__(self, *args):
            self.real = real_open(*args)

        def write(self, data):
            self.real.write(data[:3])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.real.close()

    real_open = open
    monkeypatch.setattr(dnnlib.util, 'open', FullFile, raising=False)  # the writer's open() only
    with pytest.raises(OSError, match=f'no space left on device for {tmp_path / "fakes000008.png"}: it needs'):
        dnnlib.util.write_whole_file(str(tmp_path / 'fakes000008.png'), b'png bytes')
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]
