"""pytest setup: a loud failure when upstream is missing or unpatched, or the venv cannot import the project and
upstream (`make setup` makes both importable), as the integration tests must never be skipped silently."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
UPSTREAM = ROOT / 'stylegan2_ada'


def pytest_configure(config):
    config.addinivalue_line('markers', 'slow: several training processes, a whole script end to end (launchers, the '
                            'studies, the pretrain/fine-tune protocol, the released-fork harness, the benchmark, the '
                            'demo) or statistics over thousands of synthesized images; `make test` leaves these out, '
                            '`make test-all` and CI run them')
    if not (UPSTREAM / 'train.py').exists():
        pytest.exit('stylegan2_ada/ is empty: the upstream submodule is not initialised. Run `make test` '
                    '(or `git submodule update --init stylegan2_ada`); offline, see README.md "Offline machines".', returncode=3)
    check = subprocess.run([sys.executable, str(ROOT / 'patches' / 'tool.py'), 'check'], capture_output=True, text=True)
    if check.returncode != 0:
        pytest.exit(f'the patch series is not applied to stylegan2_ada/:\n{check.stderr.strip()}\nRun `make test`, '
                    'or `python patches/tool.py apply`.', returncode=3)
    missing = [name for name in ('plugins', 'torch_utils') if importlib.util.find_spec(name) is None]
    if missing:
        pytest.exit(f'{sys.executable} cannot import {" or ".join(missing)}: run `make test` (`make setup` makes the '
                    'project and stylegan2_ada/ importable by the venv\'s Python), or set '
                    'PYTHONPATH=$PWD:$PWD/stylegan2_ada for another one.', returncode=3)
