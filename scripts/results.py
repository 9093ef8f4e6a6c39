"""The one reader of a run's results files (stats.jsonl[.gz], metric-*.jsonl, probes.jsonl, done.json,
training_options.json, command.json) for every script, and `Run`, one run's files parsed, for the reports: a
malformed file is a ResultsError naming the file and line."""

import dataclasses
import gzip
import json
import math
import sys
import zlib
from pathlib import Path


class ResultsError(ValueError):
    """A results file that cannot be read, or a run that lacks one; the message names the file (and the line)."""


def read_text(path):
    """The text of a results file; a .gz is decompressed."""
    try:
        data = path.read_bytes()
        return (gzip.decompress(data) if path.suffix == '.gz' else data).decode()
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise ResultsError(f'{path}: not a whole gzip file ({err or type(err).__name__})') from None
    except UnicodeDecodeError as err:
        raise ResultsError(f'{path}: not UTF-8 text ({err})') from None
    except OSError as err:
        raise ResultsError(f'{path}: cannot be read ({err.strerror})') from None


def read_jsonl(path):
    """The rows of a JSON-lines file, each a JSON object, as (line number, row). A last line without its newline
    that does not parse is a row whose write was interrupted (a killed run): it is left out; any other bad line is
    an error."""
    text = read_text(path)
    lines = text.splitlines()
    rows = []
    for number, line in enumerate(lines, 1):
        if line.strip():
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                if number == len(lines) and not text.endswith('\n'):
                    break
                raise ResultsError(f'{path}, line {number}: not JSON ({err})') from None
            if not isinstance(row, dict):
                raise ResultsError(f'{path}, line {number}: {line.strip()[:40]!r} is not a JSON object')
            rows.append((number, row))
    return rows


def read_json_object(path):
    """A JSON file holding one object (done.json, training_options.json, ...)."""
    try:
        value = json.loads(read_text(path))
    except json.JSONDecodeError as err:
        raise ResultsError(f'{path}: not JSON ({err})') from None
    if not isinstance(value, dict):
        raise ResultsError(f'{path}: not a JSON object')
    return value


def field(path, number, row, *keys):
    """row[keys[0]][keys[1]]..., or a ResultsError naming the file, the line and the missing field."""
    value = row
    for depth, key in enumerate(keys):
        if not isinstance(value, dict) or key not in value:
            where = f'{path}, line {number}' if number is not None else str(path)
            raise ResultsError(f'{where}: no {".".join(map(str, keys[:depth + 1]))!r} field')
        value = value[key]
    return value


def read_stats(path):
    """stats.jsonl[.gz] rows: every field a training_stats entry {"num", "mean", "std"} (timestamp a number)."""
    rows = []
    for number, row in read_jsonl(path):
        for key, value in row.items():
            if not (isinstance(value, dict) and 'mean' in value if key != 'timestamp' else finite(value)):
                raise ResultsError(f'{path}, line {number}: {key!r} is {json.dumps(value)[:40]}, not '
                                   + ('a number' if key == 'timestamp' else 'a stats entry {"mean": ...}'))
        rows.append(row)
    return rows


def finite(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def read_metric_results(path):
    """[(line number, row, results)] of a metric-*.jsonl file: each row's "results" object, whose values are numbers
    (NaN for a failed evaluation)."""
    rows = []
    for number, row in read_jsonl(path):
        results = field(path, number, row, 'results')
        if not isinstance(results, dict):
            raise ResultsError(f'{path}, line {number}: "results" is not an object')
        for name, value in results.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ResultsError(f'{path}, line {number}: {name} is {value!r}, not a number')
        rows.append((number, row, results))
    return rows


def reported(stats, key):
    """[(kimg, mean of `key`)] over the ticks that reported `key` with a finite mean. Upstream's stats collector
    repeats a statistic's last values through ticks that report none (`keep_previous`): a row equal to the one
    before it, spread included, is such a repeat and is skipped (a constant's repeats, spread 0, are kept)."""
    points, previous = [], None
    for row in stats:
        value = row.get(key)
        if value is not None and finite(value.get('mean')) and not (value == previous and value.get('std')):
            points.append((row['Progress/kimg']['mean'], value['mean']))
        previous = value
    return points


@dataclasses.dataclass
class Run:
    """One training run's files, parsed: train.py's run directory, or a study's record of one (stats.jsonl.gz).
    The reports subclass it for what they derive (scripts/report.py, study/report.py)."""
    path: Path
    options: dict  # training_options.json
    stats: list  # the stats.jsonl rows with a finite Progress/kimg
    curves: dict = dataclasses.field(default_factory=dict, repr=False)  # metric -> curve, read once

    @classmethod
    def load(cls, path):
        path = Path(path)
        if not path.is_dir():
            raise ResultsError(f'{path}: no such run directory')
        options_path, stats_path = path / 'training_options.json', path / 'stats.jsonl'
        if not options_path.is_file():
            raise ResultsError(f'{path}: no training_options.json, not a training run directory')
        if not stats_path.is_file() and stats_path.with_suffix('.jsonl.gz').is_file():  # as the CPU study keeps them
            stats_path = stats_path.with_suffix('.jsonl.gz')
        if not stats_path.is_file():
            raise ResultsError(f'{path}: no stats.jsonl (did the run finish its first tick?)')
        stats = [row for row in read_stats(stats_path) if finite(row.get('Progress/kimg', {}).get('mean'))]
        if not stats:
            raise ResultsError(f'{stats_path}: no stats rows with Progress/kimg')
        return cls(path=path, options=read_json_object(options_path), stats=stats)

    @property
    def seed(self):
        return self.options.get('random_seed', 0)

    def series(self, key):
        """[(kimg, mean of `key`)] over the ticks that reported `key` (see `reported`)."""
        return reported(self.stats, key)

    def protocols(self, metric):
        """The distinct protocols (what was measured, patch 0034) of the rows of metric-<metric>.jsonl, each as JSON
        text, or None for rows written without one."""
        path = self.path / f'metric-{metric}.jsonl'
        rows = read_metric_results(path) if path.is_file() else []
        return sorted({json.dumps(row['protocol'], sort_keys=True) if row.get('protocol') else None
                       for _, row, _ in rows}, key=str)

    def row_kimg(self, row):
        """The kimg of a metric row: its snapshot's, from the file name (KeyError or ValueError without one)."""
        return snapshot_kimg(row['snapshot_pkl'])

    def curve(self, metric):
        """[(kimg, value)] of `metric` from metric-<metric>.jsonl (the value of that name, or a row's only value),
        sorted by kimg (`row_kimg`): of several rows for one kimg, the newest finite one. A non-finite value (a
        failed evaluation) is left out, saying so on stderr. Read once."""
        if metric not in self.curves:
            self.curves[metric] = self._read_curve(metric)
        return self.curves[metric]

    def _read_curve(self, metric):
        path = self.path / f'metric-{metric}.jsonl'
        if not path.is_file():
            return []
        points = {}  # kimg -> value
        for number, row, results in sorted(read_metric_results(path), key=lambda item: item[1].get('timestamp', 0)):
            if metric in results:
                value = results[metric]
            elif len(results) == 1:
                (value,) = results.values()
            else:
                raise ResultsError(f'{path}, line {number}: results {sorted(results)} hold no value named {metric!r}')
            if not math.isfinite(value):
                print(f'{path}, line {number}: {metric} is {value}; left out', file=sys.stderr)
                continue
            try:
                points[self.row_kimg(row)] = value
            except ResultsError:
                raise
            except (KeyError, ValueError) as err:
                raise ResultsError(f'{path}, line {number}: no kimg for this row ({err})') from None
        return sorted(points.items())


def snapshot_kimg(name):
    """kimg of a snapshot from its file name (network-snapshot-000012.004.pkl -> 12.004); ValueError for another
    name."""
    stem = Path(name).stem
    if not stem.startswith('network-snapshot-'):
        raise ValueError(f'{name!r} is not named network-snapshot-NNNNNN[.NNN].pkl')
    return float(stem[len('network-snapshot-'):])


CONVERGENCE_FRACTION = 0.95  # Primitives-PS: the kimg where a run reaches 95% of the scratch baseline's best FID


def convergence_kimg(curve, scratch_best):
    """kimg of the first evaluated point of `curve` [(kimg, FID)] with FID <= scratch_best / CONVERGENCE_FRACTION,
    else NaN: the point a researcher reads off the metric rows, with no assumption between evaluations (so an
    upper bound at the evaluation interval)."""
    threshold = scratch_best / CONVERGENCE_FRACTION
    return next((kimg for kimg, value in curve if value <= threshold), math.nan)
