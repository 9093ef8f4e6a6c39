"""The shared overfitting heuristic is ADA's r_t: in one real run beside upstream's ADA, with the same target and
speed, its p equals the augment pipe's after every adjustment, bit for bit (R1 passes included); and APA's p is the
run's 'Progress/augment' when there is no pipe, as released APA logs it."""

import json

from tests.conftest import read_stats, train

SPEED = 0.16  # kimg per unit of p: at batch 4 each adjustment moves p by 0.1


def probe_rows(probe_dir):
    return [json.loads(line) for line in (probe_dir / 'beside_ada.jsonl').read_text().splitlines()]


def test_the_heuristics_p_equals_adas_at_every_adjustment(tmp_path, dataset16, monkeypatch):
    monkeypatch.setenv('PROBE_DIR', str(tmp_path))
    train(tmp_path / 'runs', dataset16, '--kimg', 0.4, '--aug', 'ada', '--target', 0.6, '--ada-kimg', SPEED,
          '--loss', 'tests.probes.BesideADALoss', '--loss-kwargs', json.dumps({'atopk': {'speed_kimg': SPEED}}))
    rows = probe_rows(tmp_path)
    assert [row['batch_idx'] for row in rows] == list(range(1, 101))
    assert all(row['heuristic'] == row['ada'] for row in rows), [(r['heuristic'], r['ada']) for r in rows]
    adjusted = [row['ada'] for row in rows[3::4]]  # after minibatches 4, 8, ...: 25 adjustments
    assert len(set(adjusted)) > 5 and any(b < a for a, b in zip(adjusted, adjusted[1:]))  # p went up and down


def test_apas_heuristic_p_is_the_runs_augment_figure_without_a_pipe(tmp_path, dataset16, monkeypatch):
    monkeypatch.setenv('PROBE_DIR', str(tmp_path))
    run_dir = train(tmp_path / 'runs', dataset16, '--kimg', 0.2, '--aug', 'noaug', '--loss', 'tests.probes.BesideADALoss',
                    '--loss-kwargs', json.dumps({'apa': {'p': 'heuristic', 'speed_kimg': SPEED}}))
    p_after = {row['batch_idx']: row['p_host']['apa'] for row in probe_rows(tmp_path)}
    ticks = read_stats(run_dir)
    # Ticks after minibatches 1, 26 and 50 (0.1 kimg of batch 4 each): the p of the last adjustment before them.
    assert [tick['Progress/augment']['mean'] for tick in ticks] == [p_after[1], p_after[26], p_after[50]]
    assert p_after[50] > 0
