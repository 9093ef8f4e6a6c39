"""The one reader of a run's results files (stats.jsonl[.gz], metric-*.jsonl, probes.jsonl, done.json,
training_options.json, command.json) for every script: a malformed file is a ResultsError naming the file and line."""

import gzip
import json
import math
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
            if not (isinstance(value, dict) and 'mean' in value if key != 'timestamp' else _finite(value)):
                raise ResultsError(f'{path}, line {number}: {key!r} is {json.dumps(value)[:40]}, not '
                                   + ('a number' if key == 'timestamp' else 'a stats entry {"mean": ...}'))
        rows.append(row)
    return rows


def _finite(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


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
