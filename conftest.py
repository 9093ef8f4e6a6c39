"""pytest setup: the project root and the patched upstream checkout on sys.path, and a loud failure when
upstream is missing or unpatched (the integration tests must never be skipped silently)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
UPSTREAM = ROOT / 'stylegan2_ada'
sys.path[:0] = [str(ROOT), str(UPSTREAM)]


def pytest_configure(config):
    if not (UPSTREAM / 'train.py').exists():
        pytest.exit('stylegan2_ada/ is empty: the upstream submodule is not initialised. Run `make test` '
                    '(or `git submodule update --init stylegan2_ada`); offline, see README.md "Offline machines".', returncode=3)
    check = subprocess.run([sys.executable, str(ROOT / 'patches' / 'tool.py'), 'check'], capture_output=True, text=True)
    if check.returncode != 0:
        pytest.exit(f'the patch series is not applied to stylegan2_ada/:\n{check.stderr.strip()}\nRun `make test`, '
                    'or `python patches/tool.py apply`.', returncode=3)
