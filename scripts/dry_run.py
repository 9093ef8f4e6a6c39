"""Check the options of many train.py runs with `train.py --dry-run` in one process, which imports torch and upstream
once instead of once per run; nothing is written.

    python scripts/dry_run.py < runs.json   # a JSON list of argument lists; prints a JSON list of [exit code, output]
"""

import contextlib
import io
import json
import sys
import traceback
from pathlib import Path

import click

from scripts import children

ROOT = Path(__file__).resolve().parent.parent

TRAIN_ERROR_LINES = 20


def dry_run(args):
    """train.py --dry-run with these arguments, in this process: (exit code, what it printed)."""
    import train  # upstream's, patched
    output, streams = io.StringIO(), (sys.stdout, sys.stderr)
    try:
        with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
            try:
                train.main.main(['--dry-run', *args], prog_name='train.py')
                exit_code = 0
            except SystemExit as stop:  # click ends every call with one
                exit_code = stop.code if isinstance(stop.code, int) else 1
            except Exception:  # a crash is the run's failure, not this checker's
                traceback.print_exc(file=output)
                exit_code = 1
    finally:
        sys.stdout, sys.stderr = streams  # train.py's logger replaces both
    return exit_code, output.getvalue()


def check_runs(runs):
    """Let train.py check each run's options with --dry-run, all in one child process; `runs` holds (stage, outdir,
    train.py arguments). Raises click.UsageError with train.py's message for the first run it rejects."""
    commands = [['--outdir', str(outdir), *map(str, args)] for _stage, outdir, args in runs]
    result = children.run([sys.executable, __file__], input=json.dumps(commands), cwd=ROOT, capture_output=True,
                          text=True, check=False)
    if result.returncode != 0:
        raise click.ClickException(f'the dry runs of train.py failed:\n{result.stderr[-3000:]}')
    for (stage, _outdir, _args), (exit_code, output) in zip(runs, json.loads(result.stdout)):
        if exit_code != 0:
            lines = output.strip().splitlines()
            errors = [i for i, line in enumerate(lines) if line.startswith('Error: ')]
            lines = [lines[errors[-1]][len('Error: '):], *lines[errors[-1] + 1:]] if errors else lines[-TRAIN_ERROR_LINES:]
            raise click.UsageError(f'train.py rejects the options of the {stage} run: ' + '\n'.join(lines))


def main():
    results = [dry_run(args) for args in json.load(sys.stdin)]
    json.dump(results, sys.stdout)


if __name__ == '__main__':
    main()
