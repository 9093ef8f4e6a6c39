"""Compare StyleGAN2-ADA training runs (upstream's or with plugins, one or several seeds): a Markdown table and
PNG plots in one folder.

    python scripts/report.py RUN_DIR [RUN_DIR ...] --out DIR [--metric fid50k_full]

A RUN_DIR is what train.py writes (training_options.json, stats.jsonl or .gz, metric-*.jsonl); a folder holding run
directories (train.py's --outdir) stands for all of them. Writes DIR/report.md with one row per run and, for
every (method, augmentation, dataset) shared by several runs, a row with the mean +- sample standard deviation
over those runs (seeds), and these plots, each only when it has something to show:

    fid.png                  FID against kimg, one line per group (mean over seeds, band +- std)
    score-gap.png            mean D(x) - mean D(G(z)) per tick (Loss/scores/real minus Loss/scores/fake)
    augment-p.png            the augment probability p (Progress/augment) of the runs that augment
    controllers-<NAME>.png   one panel per stats key starting with ATopk/, ANDA/, DigGAN/, APA/, LeCam/, InsGen/
                             or Diffusion/

Runs that start from another run's snapshot (--resume, e.g. fine-tuning after Primitives-PS pretraining) form
their own groups, marked "fine-tuned". When a group has a from-scratch counterpart (same method, augmentation and
dataset), each of its runs gets the kimg at which its FID first reached 95% of the scratch runs' best FID (FID <=
best / 0.95, the best averaged over the scratch seeds): the Primitives-PS supplement's convergence figure.

FID comes from the same metric in every run: --metric, else fid50k_full when some run has it, else the
metric-fid*.jsonl name most runs have. A metric row's kimg is that of the tick it was computed at (rows written
during training, matched by timestamp); for rows computed afterwards (calc_metrics.py on a snapshot) it is the
last tick that saved that snapshot file (or the exact kimg in its name, network-snapshot-000000.104.pkl). Under the
FID line the report lists what the metric measured, from the rows' `protocol` (patch 0034): the generated images,
the reference set and the network.
"""

import collections
import dataclasses
import json
import math
import os
import statistics
import sys
from pathlib import Path

import click
import numpy as np

from plugins.common.method import RUN_FACTS
from plugins.methods import stats_prefixes
from scripts import results
from scripts.results import ResultsError as ReportError, convergence_kimg, finite, snapshot_kimg

ROOT = Path(__file__).resolve().parent.parent

AUGMENT_KEY = 'Progress/augment'
DEFAULT_METRIC = 'fid50k_full'
# Upstream AugmentPipe's option groups, as train.py's --augpipe names them (bgc = blit + geom + color).
AUGPIPE_GROUPS = (
    ('b', 'blit', ('xflip', 'rotate90', 'xint')),
    ('g', 'geom', ('scale', 'rotate', 'aniso', 'xfrac')),
    ('c', 'color', ('brightness', 'contrast', 'lumaflip', 'hue', 'saturation')),
    ('f', 'filter', ('imgfilter',)),
    ('n', 'noise', ('noise',)),
    ('c', 'cutout', ('cutout',)),
)
UPSTREAM_PIPE = 'training.augment.AugmentPipe'
LOSS_KWARGS_NOT_OPTIONS = ('class_name', *RUN_FACTS)


def controller_prefixes():
    """The stats prefixes that get a controllers plot: every registered method's and pipe's."""
    return tuple(f'{prefix}/' for prefix in stats_prefixes())


def plot_names():
    return ('fid.png', 'score-gap.png', 'augment-p.png',
            *(f'controllers-{prefix.rstrip("/")}.png' for prefix in controller_prefixes()))


@dataclasses.dataclass
class Run(results.Run):
    """One training run directory, parsed (scripts/results.py), with what the report derives from it."""

    @property
    def loss_class(self):
        return self.options.get('loss_kwargs', {}).get('class_name', 'training.loss.StyleGAN2Loss')

    @property
    def loss_options(self):
        """The loss's options, without the facts about the run that train.py adds (patch 0010)."""
        return {k: v for k, v in self.options.get('loss_kwargs', {}).items() if k not in LOSS_KWARGS_NOT_OPTIONS}

    @property
    def fine_tuned(self):
        """Whether the run started from another run's weights with a fresh training state (--resume, e.g. after
        pretraining); a run that continued an interrupted one (its log says the state was restored) is not."""
        if self.options.get('resume_pkl') is None:
            return False
        log = self.path / 'log.txt'
        return not (log.is_file() and 'Training state: restored' in log.read_text(errors='replace'))

    @property
    def kimg(self):
        """kimg reached: that of the last tick."""
        return self.stats[-1]['Progress/kimg']['mean']

    @property
    def sec_per_kimg(self):
        """Mean Timing/sec_per_kimg over the ticks after tick 0 (whose time includes the start-up), or tick 0's
        when there is no other."""
        rows = [row for row in self.stats if finite(row.get('Timing/sec_per_kimg', {}).get('mean'))]
        later = [row for row in rows if row.get('Progress/tick', {}).get('mean', 0) > 0] or rows
        return statistics.fmean(row['Timing/sec_per_kimg']['mean'] for row in later) if later else math.nan

    def score_gap(self):
        """[(kimg, mean D(x) - mean D(G(z)))] per tick, from Loss/scores/real and Loss/scores/fake."""
        fake = dict(self.series('Loss/scores/fake'))
        return [(kimg, real - fake[kimg]) for kimg, real in self.series('Loss/scores/real') if kimg in fake]

    def stats_keys(self):
        return {key for row in self.stats for key in row}

    def fid_metric_names(self):
        return sorted(path.name[len('metric-'):-len('.jsonl')] for path in self.path.glob('metric-fid*.jsonl'))

    def row_kimg(self, row):
        """kimg of the tick a metric row belongs to (see the module docstring)."""
        timestamp, last = row.get('timestamp'), self.stats[-1].get('timestamp')
        if finite(timestamp) and finite(last) and timestamp <= last:
            return next(r['Progress/kimg']['mean'] for r in self.stats if r.get('timestamp', 0) >= timestamp)
        name = Path(row.get('snapshot_pkl') or '').name
        try:
            kimg = snapshot_kimg(name)
        except ValueError:
            raise ReportError(f'{self.path}: metric row for snapshot {name!r} has no kimg (not computed during '
                              'training, and not named network-snapshot-NNNNNN[.NNN].pkl)') from None
        if '.' in Path(name).stem:  # the exact kimg (runs with ticks shorter than 1 kimg)
            return kimg
        snap_ticks = self.options.get('network_snapshot_ticks') or 1
        candidates = [r for i, r in enumerate(self.stats)
                      if round(r['Progress/kimg']['mean'] * 1000) // 1000 == kimg
                      and (round(r['Progress/tick']['mean']) % snap_ticks == 0 or i == len(self.stats) - 1)]
        return candidates[-1]['Progress/kimg']['mean'] if candidates else kimg


def find_runs(path):
    """The run directories `path` names: itself, or the run directories directly inside it."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ReportError(f'{path}: a file, not a run directory')
    if not path.is_dir():
        raise ReportError(f'{path}: no such run directory')
    if (path / 'training_options.json').is_file():
        return [path]
    inside = sorted(child for child in path.iterdir() if (child / 'training_options.json').is_file())
    if not inside:
        raise ReportError(f'{path}: not a training run directory (no training_options.json in it or in its '
                          'subfolders)')
    return inside


def check_out(out):
    """Refuse an --out that is empty, a file, or under a parent that cannot hold it."""
    if not str(out):
        raise ReportError('--out must name a folder')
    existing = Path(os.path.abspath(out))
    while not existing.exists():
        existing = existing.parent
    if existing == Path(os.path.abspath(out)) and not existing.is_dir():
        raise ReportError(f'--out: {out} is a file, not a folder')
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise ReportError(f'--out: {out} cannot be created: {existing} is ' +
                          ('not a folder' if not existing.is_dir() else 'not writable'))


# ---------------------------------------------------------------------------------------------------------------
# Labels.

def short_class_name(class_name):
    """plugins.atopk.Loss -> atopk, training.loss.StyleGAN2Loss -> StyleGAN2Loss (as train.py names run dirs)."""
    parts = class_name.split('.')
    return parts[-2] if parts[-1] in ('Loss', 'AugmentPipe') and len(parts) > 1 else parts[-1]


def format_options(options, prefix=''):
    """Sorted 'key=value' words; nested objects flattened as a.b=value, an empty one as its bare name."""
    words = []
    for key in sorted(options):
        value, name = options[key], f'{prefix}{key}'
        if isinstance(value, dict) and value:
            words += format_options(value, prefix=f'{name}.')
        elif isinstance(value, dict):  # an empty object: e.g. a method of plugins.Loss on with its defaults
            words.append(name)
        elif isinstance(value, float):
            words.append(f'{name}={value:g}')
        else:
            words.append(f'{name}={json.dumps(value).strip(chr(34))}')
    return words


def upstream_pipe_label(kwargs):
    """Name of an upstream AugmentPipe setup: its --augpipe name (bgc, blit, ...), then any other options."""
    rest = {k: v for k, v in kwargs.items() if v != 0}
    letters, names = '', []
    for letter, name, keys in AUGPIPE_GROUPS:
        if all(rest.get(key) == 1 for key in keys):
            letters += letter
            names.append(name)
            for key in keys:
                del rest[key]
    label = names[0] if len(names) == 1 else letters
    return ' '.join(([label] if label else []) + format_options(rest))


def augmentation_label(options):
    """noaug, 'ada bgc', 'ada(target=0.7) bgc', 'fixed(p=0.2) bgc', 'fixed(p=1) diffaug ...' ..."""
    pipe = dict(options.get('augment_kwargs') or {})
    if not pipe:
        return 'noaug'
    class_name = pipe.pop('class_name', UPSTREAM_PIPE)
    target = options.get('ada_target')
    if target is not None:
        mode = 'ada' if target == 0.6 else f'ada(target={target:g})'
    else:
        mode = f'fixed(p={options.get("augment_p", 0):g})'
    if class_name == UPSTREAM_PIPE:
        return f'{mode} {upstream_pipe_label(pipe)}'.strip()
    return ' '.join([mode, short_class_name(class_name)] + format_options(pipe))


def dataset_label(options):
    data = options.get('training_set_kwargs', {})
    resolution = data.get('resolution')
    words = [Path(str(data.get('path', '?'))).name]
    if resolution:
        words.append(f'{resolution}x{resolution}')
    if data.get('max_size') is not None:
        words.append(f'n={data["max_size"]}')
    words += [flag for flag, key in (('xflip', 'xflip'), ('cond', 'use_labels')) if data.get(key)]
    return ' '.join(words)


def shared_loss_options(runs):
    """Loss options that every run has, with the same value (shown once, not in each method label)."""
    common = dict(runs[0].loss_options)
    for run in runs[1:]:
        common = {k: v for k, v in common.items() if k in run.loss_options and run.loss_options[k] == v}
    return common


def method_label(run, shared):
    return ' '.join([short_class_name(run.loss_class)] +
                    format_options({k: v for k, v in run.loss_options.items() if k not in shared}) +
                    (['(fine-tuned)'] if run.fine_tuned else []))


def group_key(run):
    return (run.loss_class, json.dumps(run.loss_options, sort_keys=True), augmentation_label(run.options),
            dataset_label(run.options), run.fine_tuned)


# ---------------------------------------------------------------------------------------------------------------
# Table.

def choose_metric(runs, requested=None):
    """The FID metric name the report uses (see the module docstring); None when no run has one."""
    counts = collections.Counter(name for run in runs for name in run.fid_metric_names())
    if requested:
        if not any((run.path / f'metric-{requested}.jsonl').is_file() for run in runs):
            raise ReportError(f'--metric {requested}: no run has metric-{requested}.jsonl (FID metrics found: '
                              f'{", ".join(sorted(counts)) or "none"})')
        return requested
    if not counts:
        return None
    if DEFAULT_METRIC in counts:
        return DEFAULT_METRIC
    return max(sorted(counts), key=counts.__getitem__)


def summarize(run, metric, shared, scratch_best=math.nan):
    """The table's numbers for one run; scratch_best is the from-scratch counterpart's best FID (or NaN)."""
    curve = run.curve(metric) if metric else []
    best_kimg, best = min(curve, key=lambda point: point[1]) if curve else (math.nan, math.nan)
    converged = convergence_kimg(curve, scratch_best) if finite(scratch_best) else math.nan
    return dict(run=run.path, method=method_label(run, shared), augmentation=augmentation_label(run.options),
                dataset=dataset_label(run.options), seed=run.seed, kimg=run.kimg, best_fid=best,
                best_kimg=best_kimg, final_fid=curve[-1][1] if curve else math.nan,
                converged_kimg=converged, sec_per_kimg=run.sec_per_kimg)


NUMERIC_FIELDS = ('kimg', 'best_fid', 'best_kimg', 'final_fid', 'converged_kimg', 'sec_per_kimg')


def aggregate(rows):
    """Mean and sample standard deviation (n - 1) of each numeric field over `rows` (NaNs left out)."""
    result = dict(rows[0], seeds=[row['seed'] for row in rows])
    for field in NUMERIC_FIELDS:
        values = [row[field] for row in rows if finite(row[field])]
        if field == 'converged_kimg' and len(values) < len(rows):  # a seed that never got there: no mean
            values = []
        result[field] = (statistics.fmean(values) if values else math.nan,
                         statistics.stdev(values) if len(values) > 1 else math.nan)
    return result


FORMATS = dict(kimg='{:.3g}', best_fid='{:.2f}', best_kimg='{:.3g}', final_fid='{:.2f}', converged_kimg='{:.3g}',
               sec_per_kimg='{:.1f}')


def format_value(field, value):
    if isinstance(value, tuple):
        mean, std = value
        if not finite(mean):
            return '–'
        return FORMATS[field].format(mean) + (f' ± {FORMATS[field].format(std)}' if finite(std) else '')
    return FORMATS[field].format(value) if finite(value) else '–'


COLUMNS = ('method', 'augmentation', 'dataset', 'seed', 'kimg', 'best FID', 'best at kimg', 'final FID',
           '95% of scratch at kimg', 'sec/kimg', 'run')


def table_line(row, out):
    if 'seeds' in row:
        seed = f'mean ± std of {len(row["seeds"])} (seeds {", ".join(map(str, row["seeds"]))})'
        run = ''
    else:
        seed, run = str(row['seed']), f'`{os.path.relpath(row["run"], out)}`'
    cells = [row['method'], row['augmentation'], row['dataset'], seed] + \
        [format_value(field, row[field]) for field in NUMERIC_FIELDS] + [run]
    if 'seeds' in row:
        cells = [f'**{cell}**' if cell else cell for cell in cells]
    return '| ' + ' | '.join(cell.replace('|', '\\|') for cell in cells) + ' |'


# ---------------------------------------------------------------------------------------------------------------
# Plots.

def mean_curve(curves):
    """Mean and sample std (0 for one value) over curves [(kimg, value)], at every kimg any of them has. A NaN
    value (no report there) is left out; a kimg where every curve has NaN stays NaN, which breaks the line."""
    by_kimg = collections.defaultdict(list)
    for curve in curves:
        for kimg, value in curve:
            by_kimg[round(kimg, 6)].append(value)
    kimgs = sorted(by_kimg)
    values = [[value for value in by_kimg[k] if not math.isnan(value)] for k in kimgs]
    means = [statistics.fmean(at) if at else math.nan for at in values]
    stds = [statistics.stdev(at) if len(at) > 1 else 0.0 for at in values]
    return np.array(kimgs), np.array(means), np.array(stds)


def plot_panels(path, title, panels, ylabel_of=lambda key: key):
    """One PNG with a panel per (key, {group label: [curves]}); each group drawn as its mean +- std."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(len(panels), 1, figsize=(8, 3.2 * len(panels)), squeeze=False)
    colors = {}  # one colour per group across the panels, so a group reads the same in each
    for axis, (key, groups) in zip(axes[:, 0], panels):
        for label, curves in groups.items():
            color = colors.setdefault(label, f'C{len(colors) % 10}')
            kimg, mean, std = mean_curve(curves)
            axis.plot(kimg, mean, marker='o' if len(kimg) <= 30 else None, markersize=3, color=color,
                      label=f'{label} ({len(curves)} run{"s" * (len(curves) > 1)})')
            if len(curves) > 1:
                axis.fill_between(kimg, mean - std, mean + std, color=color, alpha=0.2)
        axis.set_xlabel('kimg')
        axis.set_ylabel(ylabel_of(key))
        axis.grid(alpha=0.3)
        axis.legend(fontsize='small')
    axes[0, 0].set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


# ---------------------------------------------------------------------------------------------------------------
# Report.

@dataclasses.dataclass
class Report:
    path: Path              # report.md
    metric: str             # FID metric used, or None
    rows: list              # one dict per run (summarize)
    aggregates: list        # one dict per group of several runs (aggregate)
    plots: list             # [(file name, description)]


def protocol_text(protocol):
    """A metric's protocol (`Run.protocols`: JSON text, or None) in words."""
    if protocol is None:
        return 'not recorded (rows written before patch 0034, or a metric that computes no feature statistics)'
    protocol = json.loads(protocol)
    reference, network = protocol.get('reference', {}), protocol.get('network', {})
    words = [f'{protocol["generated"]} generated images' if 'generated' in protocol else None,
             f'against {reference.get("path")} ({reference.get("images")} images)' if reference else None,
             f'network {network.get("file") or network.get("url")}' + (f' (sha256 {network["sha256"][:12]}...)'
                                                                        if network.get('sha256') else '')
             if network else None, f'resize: {network["resize"]}' if network.get('resize') else None]
    return '; '.join(word for word in words if word) or 'nothing recorded'


def build_report(run_dirs, out, metric=None):
    """Write report.md and the plots for the runs in `run_dirs` into `out`; returns a Report."""
    check_out(out)
    if metric is not None and not metric:
        raise ReportError('--metric must name a metric, e.g. fid50k_full')
    paths = [path.resolve() for arg in run_dirs for path in find_runs(arg)]
    unique = list(dict.fromkeys(paths))
    if len(unique) < len(paths):
        print(f'report.py: {len(paths) - len(unique)} run directory(ies) named more than once, counted once',
              file=sys.stderr)
    runs = [Run.load(path) for path in unique]
    if not runs:
        raise ReportError('no run directories given')
    metric = choose_metric(runs, metric)
    for run in runs:  # every input read before anything is written
        if metric:
            run.curve(metric)
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ReportError(f'--out: cannot create {out}: {err.strerror}') from None
    for name in ('report.md', *plot_names()):  # an earlier report's files, which this one may not rewrite
        (out / name).unlink(missing_ok=True)
    shared = shared_loss_options(runs)
    groups = collections.defaultdict(list)       # group key -> runs, in the order first seen
    for run in runs:
        groups[group_key(run)].append(run)
    for members in groups.values():
        members.sort(key=lambda run: (run.seed, str(run.path)))
    labels = {key: f'{method_label(members[0], shared)} | {key[2]} | {key[3]}' for key, members in groups.items()}

    rows, aggregates, lines = [], [], []
    for key, members in groups.items():
        scratch = groups.get(key[:-1] + (False,), []) if metric else []
        scratch_bests = [min(value for _, value in curve) for curve in (run.curve(metric) for run in scratch)
                         if curve]
        scratch_best = statistics.fmean(scratch_bests) if scratch_bests else math.nan
        group_rows = [summarize(run, metric, shared, scratch_best) for run in members]
        rows += group_rows
        lines += [table_line(row, out) for row in group_rows]
        if len(group_rows) > 1:
            aggregates.append(aggregate(group_rows))
            lines.append(table_line(aggregates[-1], out))

    plots = []

    def add_plot(name, description, title, panels, **kwargs):
        if panels:
            plot_panels(out / name, title, panels, **kwargs)
            plots.append((name, description))

    def panel(key, curve_of, keep=lambda run: True):
        by_group = {labels[k]: [curve_of(run) for run in members if keep(run)] for k, members in groups.items()}
        by_group = {label: [c for c in curves if c] for label, curves in by_group.items()}
        by_group = {label: curves for label, curves in by_group.items() if curves}
        return [(key, by_group)] if by_group else []

    if metric:
        add_plot('fid.png', f'FID ({metric}) against kimg', f'FID ({metric})',
                 panel(metric, lambda run: run.curve(metric)))
    add_plot('score-gap.png', 'score gap mean D(x) - mean D(G(z)) against kimg', 'Score gap',
             panel('D(x) - D(G(z))', Run.score_gap))
    add_plot('augment-p.png', f'augment probability p ({AUGMENT_KEY}) of the runs that augment',
             'Augment probability p', panel(AUGMENT_KEY, lambda run: run.series(AUGMENT_KEY),
                                            keep=lambda run: augmentation_label(run.options) != 'noaug'))
    keys = sorted({key for run in runs for key in run.stats_keys()})
    for prefix in controller_prefixes():
        panels = [item for key in keys if key.startswith(prefix)
                  for item in panel(key, lambda run, key=key: run.series(key))]
        name = prefix.rstrip('/')
        add_plot(f'controllers-{name}.png', f'{name} controller stats ({", ".join(k for k, _ in panels)})',
                 f'{name} controllers', panels)

    text = ['# Training report', '',
            f'{len(runs)} run(s) in {len(groups)} group(s) of (method, augmentation, dataset).', '']
    if metric:
        text.append(f'FID: `{metric}` (metric-{metric}.jsonl). Best FID is the lowest over the evaluated '
                    'snapshots, at the kimg of that snapshot; final FID is that of the last evaluated snapshot. '
                    '"95% of scratch at kimg": the first evaluated kimg with FID <= (best FID of the from-scratch '
                    'runs of the same method, augmentation and dataset, mean over seeds) / 0.95; empty without '
                    'such runs or when never reached (in a mean row: when any seed never reached it).')
        measured = collections.defaultdict(list)
        for run in runs:
            for protocol in run.protocols(metric):
                measured[protocol].append(run.path.name)
        text += ['', f'What `{metric}` measured, from its metric rows:', '']
        text += [f'- {protocol_text(protocol)}: {", ".join(names)}' for protocol, names in measured.items()]
    else:
        text.append('FID: none of the runs has a metric-fid*.jsonl, so the FID columns are empty.')
    text += ['', 'sec/kimg: mean of `Timing/sec_per_kimg` over the ticks after tick 0. Rows in bold: mean ± '
             'sample standard deviation (n - 1) over the runs (seeds) of one group.', '']
    if shared:
        text += [f'Loss options shared by every run (left out of the method column): '
                 f'{" ".join(format_options(shared))}.', '']
    text += ['## Results', '', '| ' + ' | '.join(COLUMNS) + ' |', '|' + '---|' * len(COLUMNS), *lines, '',
             '## Plots', '', 'Lines are group means over seeds; the band is ± one standard deviation.', '']
    text += [f'- [{description}]({name})' for name, description in plots]
    text += ['']
    text += [f'![{description}]({name})\n' for name, description in plots]
    path = out / 'report.md'
    path.write_text('\n'.join(text))
    return Report(path=path, metric=metric, rows=rows, aggregates=aggregates, plots=plots)


@click.command()
@click.argument('run_dirs', nargs=-1, required=True, type=click.Path())
@click.option('--out', required=True, type=click.Path(file_okay=False), help='Folder for report.md and the PNGs.')
@click.option('--metric', default=None, help='FID metric name [default: fid50k_full, else the metric-fid*.jsonl '
              'most runs have].')
def main(run_dirs, out, metric):
    """Write a Markdown table and plots comparing training runs (see the module docstring)."""
    try:
        report = build_report(run_dirs, out, metric)
    except ReportError as err:
        raise click.ClickException(str(err)) from None
    print(f'{report.path}: {len(report.rows)} runs, {len(report.aggregates)} aggregated rows, FID metric '
          f'{report.metric or "none"}, plots: {", ".join(name for name, _ in report.plots) or "none"}')


if __name__ == '__main__':
    main()
