"""A custom-op build killed midway leaves torch's `lock`, on which every later build waited for ever (patch 0025):
get_plugin's owner file lets a later process clear what a killed build left, and wait for a build in progress."""

import os
import socket
import subprocess
import time

from torch_utils import custom_ops


def ended_process():
    process = subprocess.Popen(['true'])
    process.wait()
    return process.pid


def test_a_killed_builds_owner_and_lock_are_cleared_at_once(tmp_path, capsys):
    (tmp_path / 'owner').write_text(f'{socket.gethostname()} {ended_process()}')
    (tmp_path / 'lock').write_text('')
    with custom_ops.build_owner(str(tmp_path)):
        assert (tmp_path / 'owner').read_text() == f'{socket.gethostname()} {os.getpid()}'
        assert not (tmp_path / 'lock').exists()
    assert os.listdir(tmp_path) == []
    out = capsys.readouterr().out
    assert f'Removed {tmp_path / "owner"}: the build that held it was killed.' in out
    assert f'Removed the stale build lock {tmp_path / "lock"}: a killed build left it.' in out


def test_a_lock_without_an_owner_is_a_killed_builds(tmp_path, capsys):
    (tmp_path / 'lock').write_text('')
    with custom_ops.build_owner(str(tmp_path)):
        assert not (tmp_path / 'lock').exists()
    assert 'Removed the stale build lock' in capsys.readouterr().out


def test_a_build_in_progress_is_waited_for(tmp_path, capsys):
    builder = subprocess.Popen(['sleep', '2'])
    (tmp_path / 'owner').write_text(f'{socket.gethostname()} {builder.pid}')
    started = time.time()
    with custom_ops.build_owner(str(tmp_path)):
        assert builder.poll() is not None or time.time() - started >= 1.9  # entered only once the builder ended
    builder.wait()
    assert f'Waiting for the build that holds {tmp_path / "owner"}.' in capsys.readouterr().out


def test_an_owner_on_another_machine_is_named_with_the_files_to_remove(tmp_path, monkeypatch, capsys):
    (tmp_path / 'owner').write_text('another-host 12345')
    sleeps = []
    def sleep(seconds):  # the other machine's build ends after three polls
        sleeps.append(seconds)
        if len(sleeps) == 3:
            os.remove(tmp_path / 'owner')
    monkeypatch.setattr(custom_ops.time, 'sleep', sleep)
    with custom_ops.build_owner(str(tmp_path)):
        pass
    assert len(sleeps) == 3
    assert (f'Waiting for the build that holds {tmp_path / "owner"} on another machine; if it was killed, remove '
            f'{tmp_path / "owner"} and {tmp_path / "lock"}.') in capsys.readouterr().out
