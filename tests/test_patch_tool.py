"""The patch tool on a throw-away copy of the project: apply, re-apply, check, revert, and clear failures."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOOL = ROOT / 'patches' / 'tool.py'


def git(cwd, *args):
    return subprocess.run(['git', *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def run_tool(project, command):
    return subprocess.run([sys.executable, str(TOOL), command, '--project', str(project)], capture_output=True, text=True)


@pytest.fixture
def project(tmp_path):
    """A minimal project: upstream cloned at the pinned commit, recorded as a gitlink, and our patch series."""
    pinned = git(ROOT, 'ls-files', '--stage', 'stylegan2_ada').split()[1]
    git(tmp_path, 'init', '-q')
    git(tmp_path, 'clone', '-q', '--no-checkout', str(ROOT / 'stylegan2_ada'), 'stylegan2_ada')
    git(tmp_path / 'stylegan2_ada', 'checkout', '-q', pinned)
    git(tmp_path, 'update-index', '--add', '--cacheinfo', f'160000,{pinned},stylegan2_ada')
    shutil.copytree(ROOT / 'patches', tmp_path / 'patches', ignore=shutil.ignore_patterns('*.py', '__pycache__'))
    return tmp_path


def series_names():
    return sorted(p.name for p in (ROOT / 'patches').glob('[0-9]*.patch'))


def test_apply_reapply_check_revert(project):
    upstream = project / 'stylegan2_ada'
    assert run_tool(project, 'check').returncode == 1

    first = run_tool(project, 'apply')
    assert first.returncode == 0, first.stderr
    assert [line.split()[1] for line in first.stdout.splitlines() if line.startswith('applied ')] == series_names()
    assert 'plugin' in (upstream / 'train.py').read_text() and '--loss' in (upstream / 'train.py').read_text()
    patched = git(upstream, 'diff')

    again = run_tool(project, 'apply')
    assert again.returncode == 0 and 'nothing to do' in again.stdout
    assert git(upstream, 'diff') == patched
    assert run_tool(project, 'check').returncode == 0

    reverted = run_tool(project, 'revert')
    assert reverted.returncode == 0, reverted.stderr
    assert git(upstream, 'status', '--porcelain') == ''
    assert run_tool(project, 'revert').returncode == 0  # nothing to revert is fine too


def test_partial_series_is_completed(project):
    upstream = project / 'stylegan2_ada'
    subprocess.run(['git', 'apply', str(project / 'patches' / series_names()[0])], cwd=upstream, check=True)
    result = run_tool(project, 'apply')
    assert result.returncode == 0, result.stderr
    assert series_names()[0] not in result.stdout and series_names()[-1] in result.stdout
    assert run_tool(project, 'check').returncode == 0


def test_modified_upstream_file_is_named_and_left_alone(project):
    target = project / 'stylegan2_ada' / 'training' / 'loss.py'
    target.write_text(target.read_text() + '\n# a local edit\n')
    result = run_tool(project, 'apply')
    assert result.returncode == 2
    assert 'training/loss.py' in result.stderr and 'not (a prefix of) the patch series' in result.stderr
    assert target.read_text().endswith('# a local edit\n')  # nothing was overwritten
    assert run_tool(project, 'check').returncode == 2


def test_patch_that_no_longer_applies_is_named_with_its_file(project):
    # Simulate upstream having moved under a patch: the context of one hunk no longer matches.
    patch = project / 'patches' / series_names()[0]
    text = patch.read_text()
    patch.write_text(text.replace(' from typing import Any, List, Tuple, Union', ' from typing import Any', 1))
    result = run_tool(project, 'apply')
    assert result.returncode == 2
    assert f'{patch.name} no longer applies to dnnlib/util.py' in result.stderr
    assert 'Refreshing the patches' in result.stderr


def test_upstream_at_another_commit_is_refused(project):
    upstream = project / 'stylegan2_ada'
    git(upstream, 'checkout', '-q', 'HEAD~1')
    result = run_tool(project, 'apply')
    assert result.returncode == 2
    assert 'but the series is made for the pinned commit' in result.stderr
    assert 'git submodule update stylegan2_ada' in result.stderr


GROUPS = ['compat', 'entry', 'harden', 'preset']  # in series order


def patch_subject(path):
    """(group, subject) from a patch's Subject header, folded lines joined: 'Subject: [PATCH 7/34] entry: Add ...'."""
    header = path.read_text().split('\n\n', 1)[0]
    subject = re.search(r'^Subject: \[PATCH \d+/\d+\] (.*?)\n(?!\s)', header + '\n', re.M | re.S)[1]
    group, _, title = ' '.join(subject.split()).partition(': ')
    return group, title


def test_the_docs_list_every_patch_with_its_header_subject_under_its_group():
    patches = sorted((ROOT / 'patches').glob('[0-9][0-9][0-9][0-9]-*.patch'))
    assert [int(path.name[:4]) for path in patches] == list(range(1, len(patches) + 1))
    headers = [patch_subject(path) for path in patches]
    groups = [group for group, _ in headers]
    assert set(groups) == set(GROUPS) and groups == sorted(groups, key=GROUPS.index)  # each group one run, in order
    assert all(path.name[5:].startswith(group + '-') for path, group in zip(patches, groups))
    listed, group = [], None
    for line in (ROOT / 'docs' / 'patches.md').read_text().splitlines():
        if line.startswith('## ') and line[3:].split(':')[0] in GROUPS:
            group = line[3:].split(':')[0]
        elif item := re.match(r'^(\d+)\. \*\*(.+?)\*\*', line):
            listed.append((int(item[1]), group, item[2]))
    assert listed == [(n, group, title) for n, (group, title) in enumerate(headers, 1)]


def test_no_patch_imports_a_project_package():
    """Upstream reaches the project only through what a user names (--loss, --aug, ...) and entry points."""
    imports = re.compile(r"^\+.*(\b(from|import) (plugins|scripts|benchmarks)\b|find_spec\('(plugins|scripts))", re.M)
    for path in sorted((ROOT / 'patches').glob('[0-9][0-9][0-9][0-9]-*.patch')):
        assert not imports.search(path.read_text()), path.name
