"""The studies' bookkeeping of runs under their --outdir: which run finished with which command, which snapshots have
a metric row, and the options the CPU and GPU studies share."""

import json
import shlex
from pathlib import Path

import click

from scripts.results import ResultsError, field, read_jsonl, read_text


def finished_run(outdir, command):
    """The run directory in `outdir` whose training finished, or None; a ClickException when that run was made
    by another train.py command (`outdir`/command.json, written before training) than `command`."""
    if not Path(outdir).is_dir():
        return None
    done = [path for path in sorted(Path(outdir).iterdir())
            if (path / 'log.txt').is_file() and 'Exiting...' in (path / 'log.txt').read_text()]
    if not done:
        return None
    recorded = Path(outdir) / 'command.json'
    try:
        previous = json.loads(read_text(recorded)) if recorded.is_file() else None
    except (ResultsError, ValueError) as err:
        raise click.ClickException(f'{recorded}: not a recorded command ({err})') from None
    if previous != command:
        made = shlex.join(previous) if previous else 'no command.json'
        raise click.ClickException(f'{outdir} holds a run made with other options ({made}; now '
                                   f'{shlex.join(command)}): use another --outdir, or remove that folder')
    return done[-1]


def evaluated_snapshots(run_dir, metric):
    """The file names of the snapshots of `run_dir` that have a row in its metric-<metric>.jsonl."""
    path = Path(run_dir) / f'metric-{metric}.jsonl'
    if not path.is_file():
        return set()
    try:
        return {Path(str(field(path, number, row, 'snapshot_pkl'))).name for number, row in read_jsonl(path)}
    except ResultsError as err:
        raise click.ClickException(str(err)) from None


def check_metrics(metrics):
    from metrics import metric_main
    bad = [metric for metric in metrics if not metric_main.is_valid_metric(metric)]
    if bad:
        raise click.BadParameter(f'{", ".join(bad)}: not a metric of metrics.metric_main (valid: '
                                 f'{", ".join(metric_main.list_valid_metrics())})', param_hint='--metrics')


def parse_seeds(text):
    """--seeds as distinct integers in [0, 2^32 - 1], at least one."""
    try:
        seeds = [int(item) for item in text.split(',') if item.strip()]
    except ValueError:
        raise click.BadParameter(f'{text!r} is not a comma-separated list of integers', param_hint='--seeds') from None
    bad = [seed for seed in seeds if not 0 <= seed < 2**32]
    if not seeds or bad or len(set(seeds)) < len(seeds):
        problem = 'no seed' if not seeds else f'{bad[0]} is outside [0, 2^32 - 1]' if bad else 'a seed given twice'
        raise click.BadParameter(f'{text!r}: {problem}', param_hint='--seeds')
    return seeds
