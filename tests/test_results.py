"""Every reader of results files names the file and the line of a malformed one (scripts/results.py and its users)."""

import gzip
import json

import click
import pytest

from scripts.results import ResultsError, read_jsonl

ROW = {'Progress/kimg': {'mean': 0.1}, 'timestamp': 1.0}
METRIC_ROW = {'results': {'fid50k_full': 12.5}, 'snapshot_pkl': 'network-snapshot-000000.pkl', 'timestamp': 1.0}


def lines(*rows):
    return ''.join((row if isinstance(row, str) else json.dumps(row)) + '\n' for row in rows)


def test_a_row_cut_by_a_kill_is_left_out_and_a_bad_row_elsewhere_is_an_error(tmp_path):
    path = tmp_path / 'stats.jsonl'
    path.write_text(lines(ROW, ROW) + json.dumps(ROW)[:20])
    assert read_jsonl(path) == [(1, ROW), (2, ROW)]
    path.write_text(lines(ROW, '{"cut', ROW))
    with pytest.raises(ResultsError, match=r'stats.jsonl, line 2: not JSON'):
        read_jsonl(path)
    path.write_text(lines(ROW, '[1, 2]'))
    with pytest.raises(ResultsError, match=r"stats.jsonl, line 2: '\[1, 2\]' is not a JSON object"):
        read_jsonl(path)


def test_a_gzip_file_that_is_not_gzip_is_named(tmp_path):
    path = tmp_path / 'stats.jsonl.gz'
    path.write_text(lines(ROW))
    with pytest.raises(ResultsError, match=r'stats.jsonl.gz: not a whole gzip file'):
        read_jsonl(path)
    path.write_bytes(gzip.compress(lines(ROW, ROW).encode())[:-12])  # cut short
    with pytest.raises(ResultsError, match=r'stats.jsonl.gz: not a whole gzip file'):
        read_jsonl(path)


@pytest.mark.parametrize('files, message', [
    ({'stats_jsonl.gz': b'not gzip'}, r'stats.jsonl.gz: not a whole gzip file'),
    ({'probes.jsonl': lines({'kimg': 0.1}, 'oops', {'kimg': 0.2})}, r'probes.jsonl, line 2: not JSON'),
    ({'metric-fid50k_full.jsonl': lines(METRIC_ROW, {'snapshot_pkl': 'x.pkl'})},
     r"metric-fid50k_full.jsonl, line 2: no 'results' field"),
    ({'metric-fid50k_full.jsonl': lines({'results': {'fid50k_full': 'bad'}, 'snapshot_pkl': 'x.pkl'})},
     r"metric-fid50k_full.jsonl, line 1: fid50k_full is 'bad', not a number"),
    ({'done.json': '{"seconds": '}, r'done.json: not JSON'),
], ids=['stats not gzip', 'probes row', 'metric without results', 'metric not a number', 'done.json'])
def test_the_study_report_names_the_malformed_file_and_line(tmp_path, files, message):
    from study.report import Run
    run = tmp_path / 'run'
    run.mkdir()
    (run / 'stats.jsonl.gz').write_bytes(gzip.compress(lines(ROW).encode()))
    (run / 'training_options.json').write_text('{}')
    for name, text in files.items():
        (run / name.replace('stats_jsonl', 'stats.jsonl')).write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ResultsError, match=message):
        Run.load(run).curve('fid50k_full')


def test_pretrain_finetune_names_a_bad_metric_row(tmp_path):
    from scripts.pretrain_finetune import read_fids
    (tmp_path / 'metric-fid50k_full.jsonl').write_text(lines(METRIC_ROW, '{"results": 3}'))
    with pytest.raises(ResultsError, match=r'metric-fid50k_full.jsonl, line 2: "results" is not an object'):
        read_fids(tmp_path)


def test_the_study_names_a_bad_metric_row(tmp_path):
    from study.runs import evaluated_snapshots
    (tmp_path / 'metric-fid1k_full.jsonl').write_text(lines(METRIC_ROW, {'results': {}}, METRIC_ROW))
    with pytest.raises(click.ClickException, match=r"metric-fid1k_full.jsonl, line 2: no 'snapshot_pkl' field"):
        evaluated_snapshots(tmp_path, 'fid1k_full')


def test_the_probes_name_a_bad_probes_row(tmp_path):
    from study.probes import complete_rows
    (tmp_path / 'probes.jsonl').write_text(lines({'snapshot': 'a.pkl'}, '{"snapshot": ') + lines({'snapshot': 'b'}))
    with pytest.raises(ResultsError, match=r'probes.jsonl, line 2: not JSON'):
        complete_rows(tmp_path / 'probes.jsonl')
