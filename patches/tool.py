#!/usr/bin/env python3
"""Apply, check and revert the project's patch series on the upstream submodule.

    python patches/tool.py apply     # apply what is not applied yet (a no-op when all are)
    python patches/tool.py check     # exit 0 when the whole series is applied, 1 otherwise
    python patches/tool.py revert    # take the series back out, leaving upstream pristine
    python patches/tool.py status    # say how many patches are applied
    python patches/tool.py export    # refresh patches/*.patch from commits in the submodule

The series is `patches/NNNN-*.patch`, applied in name order with `git apply` to the commit that the project
pins for `stylegan2_ada/` (the gitlink in the project's index). The state of the submodule's working tree is
recognised exactly: the tool hashes it and compares it with the trees that the pinned commit plus the first
0..N patches give, so it never guesses from file contents and never touches changes that are not its own.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
UPSTREAM = PROJECT / 'stylegan2_ada'
PATCH_DIR = PROJECT / 'patches'
REFRESH_HINT = "To refresh the series for a new upstream commit, follow docs/patches.md, section 'Refreshing the patches'."


class SeriesError(Exception):
    """A state the tool will not act on; the message says what to do."""


def git(*args, cwd=None, index_file=None, check=True):
    cwd = cwd or UPSTREAM
    env = dict(os.environ)
    if index_file is not None:
        env['GIT_INDEX_FILE'] = index_file
    result = subprocess.run(['git', *args], cwd=cwd, env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise SeriesError(f'git {" ".join(args)} failed in {cwd}:\n{result.stderr.strip()}')
    return result


def series():
    return sorted(PATCH_DIR.glob('[0-9][0-9][0-9][0-9]-*.patch'))


def pinned_commit():
    entry = git('ls-files', '--stage', 'stylegan2_ada', cwd=PROJECT).stdout.split()
    if len(entry) < 2 or entry[0] != '160000':
        raise SeriesError('the project does not record stylegan2_ada as a submodule (see .gitmodules).')
    return entry[1]


def check_submodule(pinned):
    if not (UPSTREAM / '.git').exists():
        raise SeriesError('stylegan2_ada/ is not initialised. Run: git submodule update --init stylegan2_ada\n'
                          '(offline: first point git at a local mirror, see README.md, section "Offline machines").')
    head = git('rev-parse', 'HEAD').stdout.strip()
    if head != pinned:
        raise SeriesError(f'stylegan2_ada is at {head[:12]}, but the series is made for the pinned commit {pinned[:12]}.\n'
                          f'Run `git submodule update stylegan2_ada` to return to it. {REFRESH_HINT}')


def failing_files(stderr):
    files = re.findall(r'patch failed: ([^:\n]+):\d+', stderr) + re.findall(r'error: ([^:\n]+): (?:does not exist|already exists)', stderr)
    return sorted(set(files)) or ['(see the git message above)']


def series_trees(pinned, patches):
    """Tree hashes of the pinned commit with the first 0, 1, ..., N patches applied."""
    with tempfile.TemporaryDirectory() as tmp:
        index = os.path.join(tmp, 'index')
        git('read-tree', pinned, index_file=index)
        trees = [git('write-tree', index_file=index).stdout.strip()]
        for patch in patches:
            result = git('apply', '--cached', str(patch), index_file=index, check=False)
            if result.returncode != 0:
                raise SeriesError(f'{patch.name} no longer applies to {", ".join(failing_files(result.stderr))}:\n'
                                  f'{result.stderr.strip()}\n{REFRESH_HINT}')
            trees.append(git('write-tree', index_file=index).stdout.strip())
    return trees


def worktree_tree():
    """Tree hash of the submodule's working tree as it is now (ignored files left out)."""
    with tempfile.TemporaryDirectory() as tmp:
        index = os.path.join(tmp, 'index')
        git('read-tree', 'HEAD', index_file=index)
        git('add', '--all', '.', index_file=index)
        return git('write-tree', index_file=index).stdout.strip()


def applied_count(pinned, patches):
    """How many patches of the series are applied; an error for any other change to upstream."""
    check_submodule(pinned)
    trees = series_trees(pinned, patches)
    current = worktree_tree()
    if current in trees:
        return trees.index(current)
    changed = git('diff', '--name-only', trees[-1], current).stdout.split()
    raise SeriesError('stylegan2_ada has changes that are not (a prefix of) the patch series, in:\n  '
                      + '\n  '.join(changed) + '\nNothing in the project edits upstream files except this tool. '
                      'Keep your change as a new patch (docs/patches.md, "Refreshing the patches"), or discard it with\n'
                      '  git -C stylegan2_ada checkout -- . && git -C stylegan2_ada clean -fd\nand apply again.')


def apply(pinned, patches):
    done = applied_count(pinned, patches)
    for patch in patches[done:]:
        git('apply', '--whitespace=nowarn', str(patch))
        print(f'applied  {patch.name}')
    print(f'{len(patches)} of {len(patches)} patches applied' + (' (nothing to do)' if done == len(patches) else ''))


def revert(pinned, patches):
    done = applied_count(pinned, patches)
    for patch in reversed(patches[:done]):
        git('apply', '-R', str(patch))
        print(f'reverted {patch.name}')
    print('upstream is pristine' + (' (nothing to do)' if done == 0 else ''))


def status(pinned, patches):
    done = applied_count(pinned, patches)
    for i, patch in enumerate(patches):
        print(f'{"applied" if i < done else "pending"}  {patch.name}')
    return done


def export(pinned, base):
    """Write one patch per commit base..HEAD of the submodule's current branch, replacing the series."""
    base = base or pinned
    commits = git('rev-list', '--reverse', f'{base}..HEAD').stdout.split()
    if not commits:
        raise SeriesError(f'no commits between {base[:12]} and HEAD in stylegan2_ada: commit the series there first.')
    if git('status', '--porcelain').stdout.strip():
        raise SeriesError('stylegan2_ada has uncommitted changes: commit them (one commit per patch) before exporting.')
    with tempfile.TemporaryDirectory() as tmp:
        git('format-patch', '--quiet', '--zero-commit', '--no-signature', '--unified=1', '-o', tmp, f'{base}..HEAD')
        for old in series():
            old.unlink()
        for new in sorted(Path(tmp).iterdir()):
            new.replace(PATCH_DIR / new.name)
            print(f'wrote    patches/{new.name}')


def main(argv=None):
    global PROJECT, UPSTREAM, PATCH_DIR
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('command', choices=['apply', 'check', 'revert', 'status', 'export'])
    parser.add_argument('--base', help='export: the upstream commit the series starts from [default: the pinned one]')
    parser.add_argument('--project', type=Path, default=PROJECT, help='the project checkout [default: this one]')
    args = parser.parse_args(argv)
    PROJECT, UPSTREAM, PATCH_DIR = args.project.resolve(), args.project.resolve() / 'stylegan2_ada', args.project.resolve() / 'patches'
    try:
        pinned = pinned_commit()
        patches = series()
        if args.command == 'apply':
            apply(pinned, patches)
        elif args.command == 'revert':
            revert(pinned, patches)
        elif args.command == 'status':
            status(pinned, patches)
        elif args.command == 'check':
            done = applied_count(pinned, patches)
            if done != len(patches):
                print(f'{done} of {len(patches)} patches applied: run `python patches/tool.py apply`.', file=sys.stderr)
                return 1
            print(f'all {len(patches)} patches applied')
        elif args.command == 'export':
            export(pinned, args.base)
    except SeriesError as err:
        print(f'patches/tool.py {args.command}: {err}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
