"""A child process of the project's scripts ends with its script, even when the script is SIGKILLed."""

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from plugins.primitives.writer import write_dataset

ROOT = Path(__file__).resolve().parent.parent


def alive(pid):
    """True while `pid` runs (a zombie waiting for its parent to reap it has ended)."""
    try:
        return Path(f'/proc/{pid}/stat').read_text().rpartition(')')[2].split()[0] != 'Z'
    except FileNotFoundError:
        return False


def wait_until(condition, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def children_of(pid):
    return [int(child) for child in Path(f'/proc/{pid}/task/{pid}/children').read_text().split()]


def command_line(pid):
    try:
        return Path(f'/proc/{pid}/cmdline').read_bytes().replace(b'\0', b' ').decode()
    except FileNotFoundError:
        return ''


def test_a_child_ends_when_the_script_that_started_it_is_killed():
    parent = subprocess.Popen([sys.executable, '-c', 'from scripts import children; import sys; '
                               'child = children.popen(["sleep", "60"]); print(child.pid, flush=True); child.wait()'],
                              cwd=ROOT, stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    assert alive(child)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    assert wait_until(lambda: not alive(child), 5), f'sleep {child} outlived its killed parent'


def test_pretrain_finetune_takes_its_training_child_with_it_when_killed(tmp_path):
    data = tmp_path / 'data.zip'
    write_dataset(str(data), synth='pinknoise', count=16, resolution=16, seed=0, workers=1, progress=False)
    script = subprocess.Popen([sys.executable, 'scripts/pretrain_finetune.py', '--target', str(data), '--outdir',
                               str(tmp_path / 'runs'), '--count', '16', '--pretrain-kimg', '100', '--',
                               '--cfg', 'cpu', '--metrics', 'none', '--workers', '1'],
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    def training_child():
        return [pid for pid in children_of(script.pid) if 'train.py' in command_line(pid)
                and '--dry-run' not in command_line(pid)]
    try:
        assert wait_until(training_child, 120), 'pretrain_finetune.py did not start its training run'
        (child,) = training_child()
        script.send_signal(signal.SIGKILL)
        script.wait()
        assert wait_until(lambda: not alive(child), 10), f'train.py {child} outlived its killed pretrain_finetune.py'
    finally:
        script.kill()


def test_every_script_starts_its_children_through_the_helper():
    scripts = sorted((ROOT / 'scripts').glob('*.py')) + sorted((ROOT / 'study').glob('*.py'))
    direct = [f'{path.parent.name}/{path.name}:{number}' for path in scripts if path.name != 'children.py'
              for number, line in enumerate(path.read_text().splitlines(), 1)
              if re.search(r'\bsubprocess\.(run|Popen|call|check_call|check_output)\(', line)]
    assert direct == [], 'start these through scripts/children.py: ' + ', '.join(direct)
