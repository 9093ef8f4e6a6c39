"""Figures and tables of the CPU study (study/cpu.py) from its committed results alone:

    python -m study.report --results docs/study-cpu

Reads RESULTS/runs/<config>-seed<seed>/ (training_options.json, stats.jsonl.gz, metric-*.jsonl, probes.jsonl,
done.json) and RESULTS/pilot/<name>/ (training_options.json, stats.jsonl.gz) when present; writes RESULTS/tables.md
and RESULTS/figures/*.png, each curve the mean over seeds with a band of +- one sample standard deviation, training
stats averaged per 1-kimg bin:
  pilot.png          the pilot runs' score gap D(x) - D(G(z)), r_t and ADA's p against kimg (the run length's choice)
  atopk-gap.png      ATop-k Fig. 3a: the score gap of StyleGAN2, + ATop-k, + Linear Top-k, + Worst-k
  atopk-k.png        ATop-k Figs. 14-15: k and the fakes used per minibatch against kimg
  diggan-norms.png   D's input-gradient norms on reals and fakes and their gap real - fake (probes), StyleGAN2 + ADA
                     vs DigGAN
  anda.png           ANDA's alpha (ADA's p beside it), D's scores on reals and fakes without augmentation (probes), D's
                     scores on ANDA's negatives as D is fed them in training (the released estimator: lambda x jigsaw
                     + (1 - lambda) x fake, or the fakes alone), and the jigsaw and rotation leak rates (probes)
  primitives-fid.png Primitives-PS: FID against kimg of the fine-tuning and the same run from scratch
  fid.png            the metric at the end of every run, per configuration
  fakes.png          the last snapshot's G_ema fakes of each configuration's first seed
Probe and metric points are placed at their snapshot's kimg to 0.1 kimg; a snapshot evaluated twice counts once (its
newest finite value).
"""

import collections
import dataclasses
import math
import statistics
from pathlib import Path

import click
import numpy as np
import PIL.Image

from scripts import results
from scripts.report import plot_panels
from scripts.results import ResultsError, convergence_kimg, read_json_object, read_jsonl, snapshot_kimg

ROOT = Path(__file__).resolve().parent.parent

# Each configuration's own baseline for the paired comparison: the run it adds one thing to.
BASELINES = {'ada': 'stylegan2', 'diffaugment': 'stylegan2', 'atopk': 'stylegan2', 'worstk': 'stylegan2',
             'linear-topk': 'stylegan2', 'anda': 'ada', 'diggan': 'ada', 'finetune': 'diffaugment', 'apa': 'ada',
             'lecam': 'ada', 'insgen': 'ada', 'diffusion-gan': 'stylegan2', 'diffusion-anda': 'diffusion-gan'}
LABELS = {'stylegan2': 'StyleGAN2', 'ada': 'StyleGAN2 + ADA', 'diffaugment': 'StyleGAN2 + DiffAugment',
          'atopk': '+ ATop-k', 'worstk': '+ Worst-k', 'linear-topk': '+ Linear Top-k', 'anda': 'ADA + ANDA',
          'diggan': 'ADA + DigGAN', 'finetune': 'Primitives-PS fine-tuning (DiffAugment)', 'apa': 'ADA + APA',
          'lecam': 'ADA + LeCam', 'insgen': 'InsGen (ADA)', 'diffusion-gan': 'Diffusion-GAN',
          'diffusion-anda': 'Diffusion-GAN + ANDA'}


@dataclasses.dataclass
class Run(results.Run):
    """A run the study recorded (scripts/results.py), with its configuration and seed from the folder's name, its
    probes and done.json; its metric points at their aligned kimg."""
    probes: list = dataclasses.field(default_factory=list)
    done: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def load(cls, path):
        run = super().load(path)
        probes = path / 'probes.jsonl'
        run.probes = [row for _, row in read_jsonl(probes)] if probes.is_file() else []
        run.done = read_json_object(path / 'done.json') if (path / 'done.json').is_file() else {}
        return run

    @property
    def config(self):
        config, _, seed = self.path.name.rpartition('-seed')
        return config if config and seed.isdigit() else self.path.name  # the pilots

    @property
    def seed(self):
        config, _, seed = self.path.name.rpartition('-seed')
        return int(seed) if config and seed.isdigit() else 0

    def row_kimg(self, row):
        return aligned_kimg(row['snapshot_pkl'])

    def binned(self, key, width=1.0):
        """[(bin centre kimg, mean)] of a stats key over bins (i, i + 1] x `width` kimg (the tick that ends the
        run at a whole kimg falls in the last full bin); nan for a bin with no report."""
        bins = collections.defaultdict(list)
        for kimg, value in self.series(key):
            bins[max(0, math.ceil(kimg / width) - 1)].append(value)
        indices = range(min(bins), max(bins) + 1) if bins else []  # a bin without a report: nan, a break in the line
        return [((index + 0.5) * width, statistics.fmean(bins[index]) if index in bins else math.nan)
                for index in indices]

    def gap(self):
        real, fake = dict(self.binned('Loss/scores/real')), dict(self.binned('Loss/scores/fake'))
        return [(kimg, real[kimg] - fake[kimg]) for kimg in real if kimg in fake]

    def probe(self, key):
        return [(aligned_kimg(row['snapshot']), row[key]) for row in self.probes if key in row]

    def final_metric(self, metric):
        return max(self.curve(metric))[1] if self.curve(metric) else math.nan


def aligned_kimg(name):
    """A snapshot's kimg from its name, to 0.1 kimg (network-snapshot-000012.004.pkl -> 12.0): the same point
    of every seed, whatever the last tick's length."""
    return round(snapshot_kimg(name), 1)


def load_runs(results):
    runs = collections.defaultdict(list)
    for path in sorted((results / 'runs').glob('*-seed*')):
        if (path / 'stats.jsonl.gz').is_file():
            run = Run.load(path)
            runs[run.config].append(run)
    return runs


def draw(path, title, panels):
    """plot_panels without the panels (and groups) that have no points."""
    panels = [(key, {label: [curve for curve in curves if curve] for label, curves in panel.items() if any(curves)})
              for key, panel in panels]
    panels = [(key, panel) for key, panel in panels if panel]
    if panels:
        plot_panels(path, title, panels)


def groups(runs, configs, curve_of):
    return {LABELS.get(name, name): [curve_of(run) for run in runs[name]] for name in configs if runs.get(name)}


def mean_std(values):
    values = [v for v in values if math.isfinite(v)]
    if not values:
        return 'n/a'
    return f'{statistics.fmean(values):.1f} +- {statistics.stdev(values):.1f} (n={len(values)})' if len(values) > 1 \
        else f'{values[0]:.1f} (n=1)'


def tail_mean(curve, start):
    values = [value for kimg, value in curve if kimg >= start and math.isfinite(value)]
    return statistics.fmean(values) if values else math.nan


def paired(runs, config, value_of):
    """Differences config - baseline over the seeds both have: 'mean +- std, better in w of n'."""
    base = {run.seed: value_of(run) for run in runs.get(BASELINES[config], [])}
    diffs = [value_of(run) - base[run.seed] for run in runs[config] if run.seed in base]
    diffs = [d for d in diffs if math.isfinite(d)]
    if not diffs:
        return 'n/a'
    spread = f' +- {statistics.stdev(diffs):.1f}' if len(diffs) > 1 else ''
    return f'{statistics.fmean(diffs):+.1f}{spread}, lower in {sum(d < 0 for d in diffs)} of {len(diffs)}'


def write_tables(results, runs, metric):
    names = [n for n in LABELS if runs.get(n)]
    lines = ['# Study tables', '', f'Generated by `study/report.py` from `runs/`. Metric: `{metric}`.'
             if metric else 'Generated by `study/report.py` from `runs/`. No metric.', '',
             'Each cell: mean +- sample standard deviation over the seeds (n runs); a paired cell: the differences '
             'configuration - its baseline over the seeds both have.', '',
             '| configuration | seeds | minutes per run | metric, end | end vs its baseline (paired) | score gap, last '
             'quarter | vs its baseline (paired) |', '|---|---|---|---|---|---|---|']
    for name in names:
        group = runs[name]
        kimg = max(run.stats[-1]['Progress/kimg']['mean'] for run in group)
        minutes = [sum(run.done.get('seconds', {}).values()) / 60 for run in group]
        gap_of = lambda run: tail_mean(run.gap(), 0.75 * kimg)  # noqa: E731
        base = name in BASELINES and runs.get(BASELINES[name])
        lines.append(f'| {LABELS[name]} | {", ".join(str(run.seed) for run in group)} | {mean_std(minutes)} | '
                     f'{mean_std([run.final_metric(metric) for run in group])} | '
                     f'{paired(runs, name, lambda run: run.final_metric(metric)) if base else ""} | '
                     f'{mean_std([gap_of(run) for run in group])} | {paired(runs, name, gap_of) if base else ""} |')
    points = sorted({kimg for name in names for run in runs[name] for kimg, _ in run.curve(metric)})
    if points:
        lines += ['', f'{metric} at each evaluated snapshot:', '',
                  '| configuration | ' + ' | '.join(f'{kimg:g} kimg' for kimg in points) + ' |',
                  '|---|' + '---|' * len(points)]
        for name in names:
            at = [[dict(run.curve(metric)).get(kimg, math.nan) for run in runs[name]] for kimg in points]
            lines.append(f'| {LABELS[name]} | ' + ' | '.join(mean_std(values) if any(map(math.isfinite, values))
                                                             else '' for values in at) + ' |')
    lines += primitives_lines(runs, metric)
    (results / 'tables.md').write_text('\n'.join(lines) + '\n')


def primitives_lines(runs, metric):
    """Primitives-PS (supplement Fig. 1): per seed, the kimg at which the fine-tuning and the same run from scratch
    first reach 95% of that seed's scratch best FID (`convergence_kimg`), and whether the fine-tunings share one
    pretrained snapshot."""
    scratch = {run.seed: run for run in runs.get('diffaugment', []) if metric and run.curve(metric)}
    seeds = [run.seed for run in runs.get('finetune', []) if run.seed in scratch and run.curve(metric)]
    if not seeds:
        return []
    finetune = {run.seed: run for run in runs['finetune']}
    reach = {'finetune': [], 'diffaugment': []}
    for seed in seeds:
        scratch_best = min(v for _, v in scratch[seed].curve(metric))
        for name, run in (('finetune', finetune[seed]), ('diffaugment', scratch[seed])):
            reach[name].append(convergence_kimg(run.curve(metric), scratch_best))
    reached = {name: f'{mean_std(values)} kimg, reached by {sum(map(math.isfinite, values))} of {len(values)}'
               for name, values in reach.items()}
    first = min(kimg for seed in seeds for kimg, _ in finetune[seed].curve(metric))
    snapshots = {run.done.get('pretrained_sha256') for run in runs['finetune']}
    shared = f'all {len(runs["finetune"])} fine-tunings start from one pretrained snapshot (sha256 ' \
             f'{next(iter(snapshots))[:12]})' if len(snapshots) == 1 and None not in snapshots else \
        f'the fine-tunings do NOT share one recorded pretrained snapshot ({len(snapshots)} different)'
    return ['', f'Primitives-PS: the kimg of the first evaluated snapshot at which a run reaches 95% of its seed\'s '
            f'scratch best {metric} (seeds {", ".join(map(str, seeds))}): fine-tuning {reached["finetune"]}; scratch '
            f'{reached["diffaugment"]}. An upper bound at the evaluation interval: a run already there at its first '
            f'evaluated snapshot ({first:g} kimg) counts as {first:g}. Pretraining: {shared}.']


def fakes_montage(results, runs):
    rows = []
    for name in [n for n in LABELS if runs.get(n)]:
        path = runs[name][0].path / 'fakes-final.png'
        if path.is_file():
            rows.append((LABELS[name], np.asarray(PIL.Image.open(path).convert('L'))))
    if not rows:
        return
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(1, len(rows), figsize=(2.2 * len(rows), 2.6), squeeze=False)
    for axis, (label, image) in zip(axes[0], rows):
        axis.imshow(image, cmap='gray', vmin=0, vmax=255)
        axis.set_title(label, fontsize=7)
        axis.axis('off')
    figure.tight_layout()
    figure.savefig(results / 'figures' / 'fakes.png', dpi=120)
    plt.close(figure)


def fid_figure(results, runs, metric):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    names = [n for n in LABELS if runs.get(n) and any(run.curve(metric) for run in runs[n])]
    if not names:
        return
    figure, axis = plt.subplots(figsize=(1.2 * len(names) + 2, 3.5))
    for index, name in enumerate(names):
        values = [run.final_metric(metric) for run in runs[name]]
        axis.bar(index, statistics.fmean(values), color='lightgray', edgecolor='black')
        axis.scatter([index] * len(values), values, color='black', zorder=3, s=12)
    axis.set_xticks(range(len(names)))
    axis.set_xticklabels([LABELS[n] for n in names], rotation=30, ha='right', fontsize=7)
    axis.set_ylabel(f'{metric} at the end')
    figure.tight_layout()
    figure.savefig(results / 'figures' / 'fid.png', dpi=100)
    plt.close(figure)


def build(results, metric):
    runs = load_runs(results)
    figures = results / 'figures'
    figures.mkdir(parents=True, exist_ok=True)
    pilots = {path.name: Run.load(path) for path in sorted((results / 'pilot').glob('*'))
              if (path / 'stats.jsonl.gz').is_file()} if (results / 'pilot').is_dir() else {}
    if pilots:
        draw(figures / 'pilot.png', 'Pilot runs (seed 0): choosing the run length', [
            ('D(x) - D(G(z))', {name: [run.gap()] for name, run in pilots.items()}),
            ('r_t = E[sign D(x)]', {name: [run.binned('Loss/signs/real')] for name, run in pilots.items()}),
            ("ADA's p", {name: [run.binned('Progress/augment')] for name, run in pilots.items()})])
    atopk = ('stylegan2', 'atopk', 'linear-topk', 'worstk')
    if any(runs.get(name) for name in atopk):
        draw(figures / 'atopk-gap.png', 'ATop-k Fig. 3a: score gap during training',
                    [('D(x) - D(G(z))', groups(runs, atopk, Run.gap))])
        draw(figures / 'atopk-k.png', "ATop-k Figs. 14-15: k, the fakes used per minibatch and the heuristic's p",
                    [(key, groups(runs, atopk[1:], lambda run, key=key: run.binned(key)))
                     for key in ('ATopk/k', 'ATopk/fakes_used', 'ATopk/p')])
    if runs.get('diggan') or runs.get('ada'):
        draw(figures / 'diggan-norms.png', "DigGAN: D's input-gradient norms (probes of the snapshots)", [
            (key, groups(runs, ('ada', 'diggan'), lambda run, key=key: run.probe(key)))
            for key in ('real_grad_norm', 'fake_grad_norm')] + [
            ('real - fake norm', groups(runs, ('ada', 'diggan'), lambda run: [
                (k, r - f) for (k, r), (_, f) in zip(run.probe('real_grad_norm'), run.probe('fake_grad_norm'))]))])
    if runs.get('anda') or runs.get('ada'):
        draw(figures / 'anda.png', "ANDA: alpha, D's scores and the leak checks", [
            ('p (ADA) / alpha (ANDA)', {**groups(runs, ('ada',), lambda run: run.binned('Progress/augment')),
                                        **groups(runs, ('anda',), lambda run: run.binned('ANDA/alpha'))}),
            ('D(x), no augmentation', groups(runs, ('ada', 'anda'), lambda run: run.probe('real_score'))),
            ('D(G(z)), no augmentation', groups(runs, ('ada', 'anda'), lambda run: run.probe('fake_score'))),
            ("D(ANDA's negatives as D is fed them)", groups(runs, ('anda',),
                                                          lambda run: run.binned('ANDA/scores/negative'))),
            ('share of fakes flagged as jigsaws', groups(runs, ('ada', 'anda'), lambda run: run.probe('jigsaw_rate'))),
            ('share of fakes flagged as rotated', groups(runs, ('ada', 'anda'),
                                                         lambda run: run.probe('rotation_rate')))])
    if metric and (runs.get('finetune') or runs.get('diffaugment')):
        draw(figures / 'primitives-fid.png', 'Primitives-PS: fine-tuning vs scratch (both DiffAugment)', [
            (metric, {label: [run.curve(metric) for run in runs.get(name, [])] for name, label in
                      (('diffaugment', 'from scratch'), ('finetune', 'fine-tuned from the pretraining'))})])
    if metric:
        fid_figure(results, runs, metric)
    fakes_montage(results, runs)
    write_tables(results, runs, metric)
    return runs


@click.command()
@click.option('--results', required=True, type=click.Path(file_okay=False, exists=True))
@click.option('--metric', default='fid1k_full', show_default=True)
def main(results, metric):
    """Draw the CPU study's figures and tables (see the module docstring)."""
    try:
        runs = build(Path(results), None if metric.lower() == 'none' else metric)
    except ResultsError as err:
        raise click.ClickException(str(err)) from None
    print(f'{sum(map(len, runs.values()))} runs of {len(runs)} configurations; tables and figures in {results}')


if __name__ == '__main__':
    main()
