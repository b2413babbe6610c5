"""``rudi audit``: the stand-alone fairness audit of a scored CSV or Parquet file (see
:func:`rudikit.fairness.audit.audit`), its tables on the terminal and its CSV, JSON and HTML
outputs."""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

if TYPE_CHECKING:
    import pandas as pd

    from rudikit.fairness.disparities import Reference


def _fail(message: str) -> typer.Exit:
    Console(stderr=True).print(f"[bold red]Error:[/bold red] [red]{message}[/red]", highlight=False)
    return typer.Exit(2)


def _read_table(path: Path, columns: list[str], where: str | None = None) -> pd.DataFrame:
    """Read only ``columns`` (and those ``where`` names), keep the rows ``where`` selects."""
    import pandas as pd

    from rudikit.fairness.inputs import available_columns

    suffixes = "".join(path.suffixes).lower()
    if suffixes.endswith(".parquet"):
        head = pd.read_parquet(path).iloc[:0]
    else:
        head = pd.read_csv(path, nrows=0)
    missing = [c for c in columns if c not in head.columns]
    if missing:
        raise ValueError(f"column(s) {missing} not found in {path}; available: "
                         f"{available_columns(head.columns)}")
    wanted = list(dict.fromkeys([*columns, *_where_columns(where, list(head.columns))]))
    if suffixes.endswith(".parquet"):
        frame = pd.read_parquet(path, columns=wanted)
    else:
        frame = pd.read_csv(path, usecols=wanted)
    if where is None:
        return frame
    return _filter_rows(frame, where)[columns]


def _where_columns(where: str | None, header: list[str]) -> list[str]:
    """The header columns a ``--where`` expression may read: its names and `quoted` names.

    A name that is not a column (a function, a local) is simply not loaded; over-reading a column
    named inside a string literal costs only memory.
    """
    if not where:
        return []
    quoted = set(re.findall(r"`([^`]+)`", where))
    names = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", re.sub(r"`[^`]*`", " ", where)))
    return [c for c in header if c in quoted or c in names]


def _filter_rows(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    """``frame.query(where)`` (pandas syntax, python engine) with an error naming --where."""
    if not where.strip():
        raise ValueError("--where is empty; give a pandas query such as 'age >= 18'")
    try:
        kept = frame.query(where, engine="python")
    except Exception as err:  # noqa: BLE001 - any failure of user code is a bad --where
        raise ValueError(f"--where {where!r}: {type(err).__name__}: {err}") from None
    if len(kept) == 0:
        raise ValueError(f"--where {where!r} keeps none of the {len(frame)} rows")
    return kept.reset_index(drop=True)


def _parse_reference(values: list[str] | None) -> Reference:
    from rudikit.fairness.groups import GROUP_KEY_SEP

    if not values:
        return "majority"
    if len(values) == 1 and values[0] in ("majority", "min_metric"):
        return values[0]  # type: ignore[return-value]
    mapping: dict[str, str] = {}
    for v in values:
        attr, sep, group = v.partition(GROUP_KEY_SEP)
        if not sep or not attr or not group:
            raise ValueError(f"--reference {v!r}: expected ATTRIBUTE=GROUP (e.g. race=Caucasian), "
                             "'majority' or 'min_metric'")
        mapping[attr.strip()] = group.strip()
    return mapping


_Data = Annotated[Path, typer.Argument(
    metavar="DATA", help="CSV (or .parquet) file with one row per case.", show_default=False)]
_Label = Annotated[str, typer.Option(
    "--label", "-y", metavar="COLUMN", help="Column with the observed outcome (0/1).",
    show_default=False)]
_Score = Annotated[str, typer.Option(
    "--score", "-s", metavar="COLUMN", show_default=False,
    help="Column with the model score, or with 0/1 predictions when none of --threshold, "
    "--top-k and --top-pct is given.")]
_Attr = Annotated[list[str] | None, typer.Option(
    "--attr", "-a", metavar="COLUMN", help="Protected attribute column; repeat for several.")]
_Intersect = Annotated[list[str] | None, typer.Option(
    "--intersect", metavar="COL,COL", help="Columns to cross, e.g. race,sex; repeatable.")]
_TopK = Annotated[int | None, typer.Option(
    "--top-k", metavar="K", help="Flag the K highest scores (ties: see --tie-break).")]
_TopPct = Annotated[float | None, typer.Option(
    "--top-pct", metavar="PCT", help="Flag the highest PCT percent of scores.")]
_Threshold = Annotated[float | None, typer.Option(
    "--threshold", metavar="T", help="Flag scores >= T.")]
_Reference = Annotated[list[str] | None, typer.Option(
    "--reference", metavar="ATTR=GROUP",
    help="Reference group, repeatable (other attributes use their largest group); or "
    "'majority' or 'min_metric'.")]
_MinGroup = Annotated[int, typer.Option(
    "--min-group-size", metavar="N",
    help="A group whose metric has a smaller denominator (flagged cases for precision, "
    "positives for recall, ...) is reported as insufficient data.")]
_Correction = Annotated[str, typer.Option(
    "--correction", metavar="holm|fdr_bh",
    help="Multiple-comparison correction of the tests behind 'unfair' (per attribute and "
    "metric): Holm or Benjamini-Hochberg.")]
_TieBreak = Annotated[str, typer.Option(
    "--tie-break", metavar="expected|stable|random",
    help="Ties at the k-th score: each counted by its expected share, input order, or random "
         "with --seed.")]
_Seed = Annotated[int, typer.Option("--seed", metavar="SEED", help="Random seed.")]
_Where = Annotated[str | None, typer.Option(
    "--where", metavar="EXPR", show_default=False,
    help="Audit only the rows this pandas query selects, e.g. "
    "\"days_b_screening_arrest.abs() <= 30 and is_recid != -1\".")]
_Csv = Annotated[Path | None, typer.Option(
    "--csv", metavar="PATH", help="Write the tidy disparity table.", show_default=False)]
_Json = Annotated[Path | None, typer.Option(
    "--json", metavar="PATH", show_default=False,
    help="Write settings, summary, groups and disparities as JSON.")]
_Html = Annotated[Path | None, typer.Option(
    "--html", metavar="PATH", help="Write a self-contained HTML report.", show_default=False)]


def audit_command(
    data: _Data,
    label: _Label,
    score: _Score,
    attr: _Attr = None,
    intersect: _Intersect = None,
    top_k: _TopK = None,
    top_pct: _TopPct = None,
    threshold: _Threshold = None,
    reference: _Reference = None,
    min_group_size: _MinGroup = 50,
    correction: _Correction = "holm",
    tie_break: _TieBreak = "expected",
    seed: _Seed = 0,
    where: _Where = None,
    csv: _Csv = None,
    json_path: _Json = None,
    html: _Html = None,
) -> None:
    """Audit a scored data set for group fairness.

    Per attribute and intersection: group sizes, confusion counts and every rate metric.

    Each group is compared with a reference group: ratio, difference, Wilson interval, z-test;
    'unfair' only where a test against the bounds, corrected, supports it ('inconclusive'
    otherwise).

    Example: rudi audit scores.csv -y y -s s -a race -a sex --intersect race,sex --top-pct 10
    """
    import pandas as pd

    from rudikit.fairness.audit import audit
    from rudikit.fairness.selection import TIE_BREAKS, TiedAtCutWarning

    try:
        if not data.exists():
            raise _fail(f"data file {str(data)!r} does not exist")
        if not data.is_file():
            raise _fail(f"data path {str(data)!r} is not a file")
        if not attr and not intersect:
            raise _fail("give at least one protected attribute with --attr")
        chosen = [n for n, v in (("--top-k", top_k), ("--top-pct", top_pct),
                                 ("--threshold", threshold)) if v is not None]
        if len(chosen) > 1:
            raise _fail(f"give only one of --top-k, --top-pct and --threshold, got {chosen}")
        if tie_break not in TIE_BREAKS:
            raise _fail(f"--tie-break must be one of {', '.join(TIE_BREAKS)}, got {tie_break!r}")
        if correction not in ("holm", "fdr_bh"):
            raise _fail(f"--correction must be 'holm' or 'fdr_bh', got {correction!r}")
        crossed = [[c.strip() for c in spec.split(",") if c.strip()] for spec in intersect or []]
        attributes = list(attr or [])
        columns = list(dict.fromkeys([label, score, *attributes, *(c for x in crossed for c in x)]))
        ref = _parse_reference(reference)
        frame = _read_table(data, columns, where)
        with warnings.catch_warnings():  # the report prints the tie warning itself
            warnings.simplefilter("ignore", TiedAtCutWarning)
            result = audit(
                frame, label, score, attributes, intersections=crossed or None,
                threshold=threshold, top_k=top_k, top_pct=top_pct,
                tie_break=tie_break,  # type: ignore[arg-type]
                random_state=seed, reference=ref, min_group_size=min_group_size,
                correction=correction,  # type: ignore[arg-type]
            )
        if where is not None:
            result.settings["where"] = where
    except typer.Exit:
        raise
    except (ValueError, OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise _fail(str(err)) from None
    console = Console()
    result.render(console)
    try:
        for path, write in ((csv, result.to_csv), (json_path, result.to_json),
                            (html, result.to_html)):
            if path is not None:
                console.print(f"wrote {write(path)}")
    except OSError as err:
        raise _fail(str(err)) from None


def register(app: typer.Typer) -> None:
    app.command("audit")(audit_command)
