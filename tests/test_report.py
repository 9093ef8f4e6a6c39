"""scripts/report.py on real CPU training runs: upstream's loss with seeds 0 and 1, and ATop-k (0.2 kimg, 16x16).

Real FID needs an Inception network, so the test writes synthetic metric-fid50k_full.jsonl files into the run
directories: one row per tick, timestamped just before that tick's stats row (as the training loop writes them),
and for the ATop-k run one more row dated after training (as calc_metrics.py writes it afterwards)."""

import json
import math
import statistics
import subprocess
import sys

import PIL.Image
import pytest

from scripts.report import ReportError, Run, build_report
from tests.conftest import ROOT, read_stats, train

FIDS = {  # run name -> FID per tick (3 ticks: 0.004, 0.104, 0.204 kimg); best in the middle, so best != final
    'base0': [150.0, 90.0, 110.0],
    'base1': [140.0, 70.0, 95.0],
    'atopk': [160.0, 100.0, 120.0],
}
ATOPK_LATER_FID = 80.0  # computed afterwards on network-snapshot-000000.pkl, last saved at the final tick


def write_metric_rows(run_dir, fids):
    rows = [{'results': {'fid50k_full': fid}, 'metric': 'fid50k_full', 'snapshot_pkl': 'network-snapshot-000000.pkl',
             'timestamp': tick['timestamp'] - 1e-3} for tick, fid in zip(read_stats(run_dir), fids)]
    (run_dir / 'metric-fid50k_full.jsonl').write_text(''.join(json.dumps(row) + '\n' for row in rows))


@pytest.fixture(scope='module')
def runs(tmp_path_factory, dataset16):
    root = tmp_path_factory.mktemp('report-runs')
    common = ['--kimg', 0.04, '--tick', 0.02, '--aug', 'ada']  # three ticks: 0.004, 0.024 and 0.04 kimg
    runs = {'base0': train(root / 'base0', dataset16, *common, '--seed', 0),
            'base1': train(root / 'base1', dataset16, *common, '--seed', 1),
            'atopk': train(root / 'atopk', dataset16, *common, '--seed', 0, '--loss', 'plugins.atopk.Loss')}
    for name, run_dir in runs.items():
        assert len(read_stats(run_dir)) == 3, name
        write_metric_rows(run_dir, FIDS[name])
    later = {'results': {'fid50k_full': ATOPK_LATER_FID}, 'metric': 'fid50k_full',
             'snapshot_pkl': 'network-snapshot-000000.pkl', 'timestamp': read_stats(runs['atopk'])[-1]['timestamp'] + 60}
    with open(runs['atopk'] / 'metric-fid50k_full.jsonl', 'a') as file:
        file.write(json.dumps(later) + '\n')
    return runs


@pytest.fixture(scope='module')
def report(runs, tmp_path_factory):
    return build_report([runs['base0'], runs['atopk'], runs['base1']], tmp_path_factory.mktemp('report'))


def expected(run_dir, fids):
    """The table's numbers, computed here from stats.jsonl and the FIDs written above."""
    stats = read_stats(run_dir)
    kimgs = [row['Progress/kimg']['mean'] for row in stats]
    best = min(range(len(fids)), key=fids.__getitem__)
    return dict(kimg=kimgs[-1], best_fid=fids[best], best_kimg=kimgs[best], final_fid=fids[-1],
                sec_per_kimg=statistics.fmean(row['Timing/sec_per_kimg']['mean'] for row in stats[1:]))


def table_lines(report):
    return [line for line in report.path.read_text().splitlines() if line.startswith('| ') and '---' not in line]


def test_rows_match_the_runs_files(report, runs):
    by_run = {row['run']: row for row in report.rows}
    assert set(by_run) == set(runs.values())
    atopk_fids = FIDS['atopk'][:2] + [ATOPK_LATER_FID]  # the later row replaces the final tick's
    for name, run_dir in runs.items():
        row, want = by_run[run_dir], expected(run_dir, atopk_fids if name == 'atopk' else FIDS[name])
        for field, value in want.items():
            assert row[field] == pytest.approx(value), (name, field)
        assert row['seed'] == (1 if name == 'base1' else 0)
        assert row['method'] == ('atopk' if name == 'atopk' else 'StyleGAN2Loss')
        assert row['augmentation'] == 'ada bgc' and row['dataset'] == 'primitives16.zip 16x16 n=16'
    assert report.metric == 'fid50k_full'


def test_markdown_table_has_each_run_and_the_seed_aggregate(report, runs):
    header, *lines = table_lines(report)
    assert header.split(' | ')[0] == '| method' and 'best FID' in header and 'sec/kimg' in header
    assert len(lines) == 4  # three runs, then one aggregate for the two baseline seeds
    for name in ('base0', 'base1', 'atopk'):
        (line,) = [line for line in lines if f'{runs[name].parent.name}/{runs[name].name}' in line]
        cells = [cell.strip() for cell in line.strip('|').split('|')]
        want = expected(runs[name], FIDS[name] if name != 'atopk' else FIDS['atopk'][:2] + [ATOPK_LATER_FID])
        assert cells[4:8] + cells[9:10] == [f'{want["kimg"]:.3g}', f'{want["best_fid"]:.2f}',
                                            f'{want["best_kimg"]:.3g}', f'{want["final_fid"]:.2f}',
                                            f'{want["sec_per_kimg"]:.1f}']

    (aggregate,) = report.aggregates
    assert aggregate['seeds'] == [0, 1] and aggregate['method'] == 'StyleGAN2Loss'
    bests = [min(FIDS['base0']), min(FIDS['base1'])]
    finals = [FIDS['base0'][-1], FIDS['base1'][-1]]
    assert aggregate['best_fid'] == pytest.approx((statistics.fmean(bests), statistics.stdev(bests)))
    assert aggregate['final_fid'] == pytest.approx((statistics.fmean(finals), statistics.stdev(finals)))
    speeds = [expected(runs[name], FIDS[name])['sec_per_kimg'] for name in ('base0', 'base1')]
    (line,) = [line for line in lines if 'mean ± std of 2' in line]
    assert f'{statistics.fmean(bests):.2f} ± {statistics.stdev(bests):.2f}' in line
    assert f'{statistics.fmean(finals):.2f} ± {statistics.stdev(finals):.2f}' in line
    assert f'{statistics.fmean(speeds):.1f} ± {statistics.stdev(speeds):.1f}' in line
    assert lines.index(line) == 2  # right after the group's own rows
    assert 'r1_gamma=' in report.path.read_text()  # the shared loss option, stated once


def test_fine_tuned_runs_get_the_kimg_where_they_reach_95_percent_of_scratch(runs, tmp_path):
    import shutil
    finetuned = tmp_path / 'finetuned'
    shutil.copytree(runs['base0'], finetuned)
    options = json.loads((finetuned / 'training_options.json').read_text())
    options['resume_pkl'] = '/pretrain/network-snapshot-000300.pkl'
    (finetuned / 'training_options.json').write_text(json.dumps(options))
    write_metric_rows(finetuned, [100.0, 84.0, 60.0])
    continued = tmp_path / 'continued'                                          # an interrupted run resumed
    shutil.copytree(finetuned, continued)
    (continued / 'log.txt').write_text('Training state: restored (kimg 0.064, tick 2)\n')
    assert Run.load(continued).fine_tuned is False and Run.load(finetuned).fine_tuned is True
    report = build_report([runs['base0'], runs['base1'], finetuned], tmp_path / 'report')
    by_run = {row['run']: row for row in report.rows}
    kimgs = [row['Progress/kimg']['mean'] for row in read_stats(finetuned)]
    # Scratch's best, averaged over seeds 0 and 1: (90 + 70) / 2 = 80; 95% of it is FID <= 84.21.
    assert by_run[finetuned]['converged_kimg'] == pytest.approx(kimgs[1])
    assert by_run[finetuned]['method'] == 'StyleGAN2Loss (fine-tuned)'
    assert math.isnan(by_run[runs['base0']]['converged_kimg'])                  # 90 never reaches 84.21
    assert by_run[runs['base1']]['converged_kimg'] == pytest.approx(kimgs[1])   # 70 at the second tick
    (aggregate,) = report.aggregates                                             # the fine-tune is its own group
    assert aggregate['seeds'] == [0, 1]
    assert all(math.isnan(value) for value in aggregate['converged_kimg'])      # seed 0 never reached it
    assert f'| {kimgs[1]:.3g} |' in [line for line in table_lines(report) if 'fine-tuned' in line][0]


def test_score_gap_is_real_minus_fake_per_tick(runs):
    stats = read_stats(runs['base0'])
    kimgs, gaps = zip(*Run.load(runs['base0']).score_gap())
    assert kimgs == tuple(row['Progress/kimg']['mean'] for row in stats)
    assert gaps == pytest.approx([row['Loss/scores/real']['mean'] - row['Loss/scores/fake']['mean'] for row in stats])


def test_plots_exist_are_images_and_are_linked(report):
    names = [name for name, _ in report.plots]
    assert names == ['fid.png', 'score-gap.png', 'augment-p.png', 'controllers-ATopk.png']
    text = report.path.read_text()
    for name in names:
        path = report.path.parent / name
        assert path.stat().st_size > 0 and f']({name})' in text
        with PIL.Image.open(path) as image:
            image.verify()
            assert image.format == 'PNG' and min(image.size) > 100
    controllers = dict(report.plots)['controllers-ATopk.png']
    assert 'ATopk/k' in controllers and 'ATopk/p' in controllers


def test_bad_input_names_the_bad_path(tmp_path, runs):
    with pytest.raises(ReportError, match='missing-run'):
        build_report([tmp_path / 'missing-run'], tmp_path / 'out')
    no_stats = tmp_path / 'no-stats'
    no_stats.mkdir()
    (no_stats / 'training_options.json').write_text((runs['base0'] / 'training_options.json').read_text())
    with pytest.raises(ReportError, match='no-stats.*no stats.jsonl'):
        build_report([no_stats], tmp_path / 'out')
    with pytest.raises(ReportError, match='--metric fid1k: no run has metric-fid1k.jsonl.*found: fid50k_full'):
        build_report([runs['base0']], tmp_path / 'out', metric='fid1k')
    result = subprocess.run([sys.executable, 'scripts/report.py', str(tmp_path / 'missing-run'), '--out',
                             str(tmp_path / 'out')], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode != 0 and 'missing-run: no such run directory' in result.stderr


def test_an_outdir_stands_for_its_run_directories(runs, tmp_path):
    report = build_report([runs['base0'].parent, runs['base1'].parent], tmp_path / 'out', metric='fid50k_full')
    assert [row['run'] for row in report.rows] == [runs['base0'], runs['base1']]
    assert [name for name, _ in report.plots] == ['fid.png', 'score-gap.png', 'augment-p.png']


def test_a_row_cut_by_a_kill_is_left_out_and_other_bad_rows_are_errors(tmp_path):
    from scripts.results import read_jsonl as _read_jsonl
    rows = [{'Progress/kimg': {'mean': 0.1}}, {'Progress/kimg': {'mean': 0.2}}]
    path = tmp_path / 'stats.jsonl'
    complete = ''.join(json.dumps(row) + '\n' for row in rows)
    path.write_text(complete + json.dumps(rows[0])[:20])  # the last write interrupted
    assert _read_jsonl(path) == [(1, rows[0]), (2, rows[1])]
    path.write_text(json.dumps(rows[0])[:20] + '\n' + complete)
    with pytest.raises(ReportError, match='stats.jsonl, line 1: not JSON'):
        _read_jsonl(path)


def copy_run(source, target, **replace):
    """A copy of a run directory's report inputs, with some files' text replaced."""
    target.mkdir()
    for name in ('training_options.json', 'stats.jsonl', 'metric-fid50k_full.jsonl'):
        (target / name).write_text(replace.get(name.replace('.', '_').replace('-', '_'), (source / name).read_text()))
    return target


def test_malformed_inputs_are_named_and_nothing_is_written(tmp_path, runs):
    base = runs['base0']
    stats = (base / 'stats.jsonl').read_text().splitlines()
    metric_row = json.loads((base / 'metric-fid50k_full.jsonl').read_text().splitlines()[0])
    cases = [
        (dict(training_options_json='{oops'), 'training_options.json: not JSON'),
        (dict(training_options_json='[1, 2]'), 'training_options.json: not a JSON object'),
        (dict(stats_jsonl='5\n'), "stats.jsonl, line 1: '5' is not a JSON object"),
        (dict(stats_jsonl=stats[0] + '\n{"Progress/kimg": 3}\n'),
         """stats.jsonl, line 2: 'Progress/kimg' is 3, not a stats entry"""),
        (dict(metric_fid50k_full_jsonl=json.dumps(dict(metric_row, results={'fid50k_full': 'abc'})) + '\n'),
         "metric-fid50k_full.jsonl, line 1: fid50k_full is 'abc', not a number"),
        (dict(metric_fid50k_full_jsonl=json.dumps(dict(metric_row, results=None)) + '\n'),
         'metric-fid50k_full.jsonl, line 1: "results" is not an object'),
    ]
    for index, (replace, message) in enumerate(cases):
        run = copy_run(base, tmp_path / f'run{index}', **replace)
        with pytest.raises(ReportError, match=message):
            build_report([run], tmp_path / 'out')
        assert not (tmp_path / 'out').exists()
    (tmp_path / 'a-file').write_text('')
    for out, message in [('', '--out must name a folder'), (tmp_path / 'a-file', 'is a file, not a folder'),
                         ('/proc/no-such-dir/out', 'cannot create /proc/no-such-dir/out: No such file')]:
        with pytest.raises(ReportError, match=message):
            build_report([base], out)
    with pytest.raises(ReportError, match='a-file: a file, not a run directory'):
        build_report([tmp_path / 'a-file'], tmp_path / 'out')
    with pytest.raises(ReportError, match='--metric must name a metric'):
        build_report([base], tmp_path / 'out', metric='')


def test_duplicates_count_once_nan_fids_are_left_out_and_stale_plots_removed(tmp_path, runs, capfd):
    lines = (runs['base0'] / 'metric-fid50k_full.jsonl').read_text().splitlines()
    failed = json.loads(lines[1])
    failed['results']['fid50k_full'] = float('nan')  # the best tick's evaluation failed
    run = copy_run(runs['base0'], tmp_path / 'run', metric_fid50k_full_jsonl='\n'.join(
        [lines[0], json.dumps(failed), lines[2]]) + '\n')
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'controllers-ANDA.png').write_bytes(b'an earlier report\'s plot')
    report = build_report([run, run, run.parent], out)
    assert len(report.rows) == 1 and not report.aggregates
    final_kimg = read_stats(run)[2]['Progress/kimg']['mean']
    assert report.rows[0]['best_fid'] == FIDS['base0'][2] and report.rows[0]['best_kimg'] == final_kimg
    err = capfd.readouterr().err
    assert 'counted once' in err and err.count('fid50k_full is nan; left out') == 1
    assert not (out / 'controllers-ANDA.png').exists()


def test_a_statistic_repeated_by_upstreams_collector_is_skipped():
    from scripts.results import reported
    fresh = {'num': 4, 'mean': -3.5, 'std': 1.3}
    constant = {'num': 4, 'mean': 1.0, 'std': 0.0}
    stats = [{'Progress/kimg': {'mean': kimg}, 'neg': neg, 'k': constant} for kimg, neg in
             [(0.1, fresh), (0.2, dict(fresh)), (0.3, dict(fresh, mean=-2.0)), (0.4, {'num': 0, 'mean': math.nan})]]
    assert reported(stats, 'neg') == [(0.1, -3.5), (0.3, -2.0)]  # 0.2 repeats 0.1's values: no report that tick
    assert reported(stats, 'k') == [(0.1, 1.0), (0.2, 1.0), (0.3, 1.0), (0.4, 1.0)]  # a constant is kept


def test_mean_curve_leaves_out_a_runs_missing_report_and_keeps_a_gap_where_all_miss():
    from scripts.report import mean_curve
    kimg, mean, std = mean_curve([[(1, 2.0), (2, math.nan), (3, math.nan)], [(1, 4.0), (2, 5.0), (3, math.nan)]])
    assert list(kimg) == [1, 2, 3]
    assert mean[:2].tolist() == [3.0, 5.0] and math.isnan(mean[2])
    assert std.tolist() == [pytest.approx(statistics.stdev([2.0, 4.0])), 0.0, 0.0]


def test_the_report_says_what_each_metric_measured(runs, tmp_path):
    import shutil
    measured = tmp_path / 'measured'
    shutil.copytree(runs['base0'], measured)
    protocol = dict(reference=dict(path='/data/ffhq.zip', images=70000), generated=50000, network=dict(
        url='https://x/inception.pt', file='/n/default_1.pt', sha256='0123456789abcdef' * 4, resize='bilinear'))
    rows = [dict(json.loads(line), protocol=protocol)
            for line in (measured / 'metric-fid50k_full.jsonl').read_text().splitlines()]
    (measured / 'metric-fid50k_full.jsonl').write_text(''.join(json.dumps(row) + '\n' for row in rows))
    text = build_report([runs['base1'], measured], tmp_path / 'report').path.read_text()
    assert ('- 50000 generated images; against /data/ffhq.zip (70000 images); network /n/default_1.pt (sha256 '
            '0123456789ab...); resize: bilinear: measured') in text
    assert f'- not recorded (rows written before patch 0034, or a metric that computes no feature statistics): ' \
        f'{runs["base1"].name}' in text
