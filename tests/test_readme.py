"""The README's copy-paste training commands: each one's options pass train.py's own checks (--dry-run), so that a
renamed class or option in the code cannot leave the README behind."""

import re
import shlex

from tests.conftest import ROOT


def readme_commands():
    """The train.py arguments of every `$T ...` command in README.md, with T's own arguments first."""
    text = (ROOT / 'README.md').read_text().replace('\\\n', ' ')
    base = shlex.split(re.search(r'^\s*T="([^"]*)"', text, re.M).group(1))
    assert base[:2] == ['.venv/bin/python', 'stylegan2_ada/train.py']
    return [base[2:] + shlex.split(line.split('#')[0] if ' # ' in line else line)
            for line in re.findall(r'^\s*\$T (.*)$', text, re.M)]


def test_every_training_command_of_the_readme_passes_train_pys_checks(tmp_path):
    from plugins.primitives.writer import write_dataset
    from scripts.dry_run import check_runs
    data = tmp_path / 'data.zip'  # 40 images: InsGen's default queues (5% of the images) must hold one
    write_dataset(str(data), synth='primitives', count=40, resolution=16, seed=0, workers=1, progress=False)
    commands = readme_commands()
    assert len(commands) == 11  # one per method, the two upstream baselines, and the combination
    runs = []
    for index, args in enumerate(commands):
        args = [str(data) if arg == 'data.zip' else str(tmp_path / 'runs') if arg == 'runs' else arg
                for arg in args]
        runs.append((f'README command {index + 1}', tmp_path / 'runs', args))
    check_runs(runs)  # a usage error naming the command that train.py rejects
