"""The DuckDB queries generated from the as-of declarations: who is scored, event counts, rates
and recency, states held, and labels, each over views the caller registers."""

from __future__ import annotations

from rudikit.features.asof.specs import (
    WINDOW_MONTHS,
    Cohort,
    EventSpec,
    LabelSpec,
    StateSpec,
    event_group_names,
)

#: Shortest exposure a rate divides by, so an officer two days into the job with one complaint
#: is not given a rate of 180 a year.
MIN_EXPOSURE_DAYS = 30


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"



def cohort_sql(cohort: Cohort) -> str:
    """Everyone active on each as-of date, over registered views ``officers`` and ``dates``."""
    ent, start = _q(cohort.entity), _q(cohort.start_column)
    conditions = [f"o.{start} IS NOT NULL", f"CAST(o.{start} AS DATE) < d.as_of_date"]
    if cohort.end_column:
        end = _q(cohort.end_column)
        conditions.append(f"(o.{end} IS NULL OR CAST(o.{end} AS DATE) > d.as_of_date)")
    birth = "NULL"
    if cohort.birth_year_column:
        birth = f"o.{_q(cohort.birth_year_column)}"
        if cohort.max_age is not None:
            conditions.append(f"({birth} IS NULL OR year(d.as_of_date) - {birth} "
                              f"<= {int(cohort.max_age)})")
    return f"""
        SELECT o.{ent} AS {ent}, CAST(d.as_of_date AS DATE) AS as_of_date,
               CAST(o.{start} AS DATE) AS start_date, CAST({birth} AS INTEGER) AS birth_year
        FROM officers o CROSS JOIN (SELECT CAST(as_of_date AS DATE) AS as_of_date FROM dates) d
        WHERE {' AND '.join(conditions)}
        ORDER BY as_of_date, {ent}
    """


def _event_groups(spec: EventSpec) -> tuple[list[str], list[tuple[str, str]]]:
    """Per-event boolean columns (computed once per event in ``ev``) and, per feature group,
    the SQL condition on a joined (event, as-of date) row that puts the event in the group."""
    columns: list[str] = []
    conditions = ["TRUE"]  # one per group of event_group_names, in its order
    for i, cat in enumerate(spec.categories):
        known = f"(e.__known_{i} IS NOT NULL AND e.__known_{i} < e.as_of_date)"
        for j, value in enumerate(cat.groups):
            parts = []
            if value in cat.values:
                flag = f"__c{i}_{j}"
                columns.append(f"bool_or(coalesce(CAST({_q(cat.column)} AS VARCHAR) = "
                               f"{_lit(value)}, FALSE)) AS {flag}")
                parts.append(f"({known} AND e.{flag})" if cat.known_from else f"e.{flag}")
            if cat.known_from and value == cat.unknown_value:
                parts.append(f"NOT {known}")
            conditions.append(" OR ".join(parts))
    for k, flag in enumerate(spec.flags):
        columns.append(f"bool_or(coalesce(CAST({_q(flag)} AS BOOLEAN), FALSE)) AS __f{k}")
        conditions.append(f"e.__f{k}")
    return columns, list(zip(event_group_names(spec), conditions, strict=True))


def event_sql(spec: EventSpec, entity: str = "officer_uid") -> str:
    """The DuckDB query for one spec over registered views ``cohort`` and ``events``.

    Events are first collapsed to one row per (officer, id) — a complaint with three
    allegations is one complaint, in every category any of its allegations has — so the big
    (officer, as-of date, past event) join counts rows instead of distinct ids. A category with
    ``known_from`` is known once every row of the event has passed that date.
    """
    ent = _q(entity)
    date = _q(spec.date_column)
    ident = _q(spec.id_column) if spec.id_column else "row_number() OVER ()"
    columns, groups = _event_groups(spec)
    known = [
        f"CASE WHEN count({_q(cat.known_from)}) = count(*) "
        f"THEN max(CAST({_q(cat.known_from)} AS DATE)) END AS __known_{i}"
        if cat.known_from else f"NULL AS __known_{i}"
        for i, cat in enumerate(spec.categories)
    ]
    aggs, finals = [], [f"c.{ent}", "c.as_of_date"]
    for g, (group, cond) in enumerate(groups):
        for window in spec.windows:
            months = WINDOW_MONTHS[window]
            in_window = cond if months is None else (
                f"({cond}) AND e.__event_date >= e.as_of_date - INTERVAL {months} MONTH")
            raw = f"n{g}_{window}"
            aggs.append(f"sum(CASE WHEN {in_window} THEN 1 ELSE 0 END) AS {raw}")
            name = f"{spec.name}_{group}_{window}"
            count = f"coalesce(a.{raw}, 0)"
            rate = f"coalesce(a.{raw}, 0) / x.exposure_{window}"
            if spec.complete_from and group not in spec.complete_groups:
                count = f"CASE WHEN x.complete_{window} THEN {count} END"
                rate = f"CASE WHEN x.complete_{window} THEN {rate} END"
            if "count" in spec.metrics:
                finals.append(f"CAST({count} AS INTEGER) AS {_q(name + '_count')}")
            if "rate" in spec.metrics:
                finals.append(f"CAST({rate} AS FLOAT) AS {_q(name + '_rate')}")
        if "recency" in spec.metrics:
            aggs.append(f"max(CASE WHEN {cond} THEN e.__event_date END) AS last{g}")
            finals.append(f"CAST(date_diff('day', a.last{g}, c.as_of_date) AS INTEGER) "
                          f"AS {_q(spec.name + '_' + group + '_days_since')}")
    data_start = f"DATE {_lit(spec.data_start)}" if spec.data_start else "NULL"
    exposures = []
    for window in spec.windows:
        months = WINDOW_MONTHS[window]
        window_start = "NULL" if months is None else f"as_of_date - INTERVAL {months} MONTH"
        begin = f"CAST(greatest(start_date, {window_start}, {data_start}) AS DATE)"
        exposures.append(f"greatest(date_diff('day', {begin}, as_of_date), "
                         f"{MIN_EXPOSURE_DAYS}) / 365.25 AS exposure_{window}")
        if spec.complete_from:  # the window starts on or after the day recording was complete
            exposures.append(f"CAST(greatest(start_date, {window_start}) AS DATE) >= "
                             f"DATE {_lit(spec.complete_from)} AS complete_{window}")
    per_event = ", ".join([*known, *columns])
    return f"""
        WITH src AS (
            SELECT *, {ident} AS __id FROM events
            WHERE {date} IS NOT NULL AND {ent} IS NOT NULL
        ),
        ev AS (
            SELECT {ent}, __id, min(CAST({date} AS DATE)) AS __event_date, {per_event}
            FROM src GROUP BY {ent}, __id
        ),
        joined AS (
            SELECT c.as_of_date, e.*
            FROM cohort c JOIN ev e ON e.{ent} = c.{ent} AND e.__event_date < c.as_of_date
        ),
        agg AS (
            SELECT {ent}, as_of_date, {', '.join(aggs)}
            FROM joined e GROUP BY {ent}, as_of_date
        ),
        x AS (
            SELECT {ent}, as_of_date, {', '.join(exposures)} FROM cohort
        )
        SELECT {', '.join(finals)}
        FROM cohort c
        JOIN x ON x.{ent} = c.{ent} AND x.as_of_date = c.as_of_date
        LEFT JOIN agg a ON a.{ent} = c.{ent} AND a.as_of_date = c.as_of_date
        ORDER BY c.as_of_date, c.{ent}
    """


def state_sql(spec: StateSpec, entity: str = "officer_uid") -> str:
    """The latest value of a history before each as-of date, and how many days it had held."""
    ent = _q(entity)
    start = f"CAST(h.{_q(spec.start_column)} AS DATE)"
    alive = ""
    if spec.end_column:
        alive = (f" AND (h.{_q(spec.end_column)} IS NULL "
                 f"OR CAST(h.{_q(spec.end_column)} AS DATE) >= c.as_of_date)")
    return f"""
        WITH ranked AS (
            SELECT c.{ent}, c.as_of_date, CAST(h.{_q(spec.value_column)} AS VARCHAR) AS value,
                   {start} AS started,
                   row_number() OVER (PARTITION BY c.{ent}, c.as_of_date
                                      ORDER BY {start} DESC, value) AS rn
            FROM cohort c JOIN history h
              ON h.{ent} = c.{ent} AND {start} < c.as_of_date{alive}
        )
        SELECT c.{ent}, c.as_of_date, r.value AS {_q(spec.name)},
               CAST(date_diff('day', r.started, c.as_of_date) AS INTEGER)
                   AS {_q(spec.name + '_days')}
        FROM cohort c LEFT JOIN ranked r
          ON r.{ent} = c.{ent} AND r.as_of_date = c.as_of_date AND r.rn = 1
        ORDER BY c.as_of_date, c.{ent}
    """


def label_sql(spec: LabelSpec, entity: str, data_end: str) -> str:
    """The label of each (officer, as-of date) of registered views ``cohort`` and ``events``:
    missing when the window runs past ``data_end`` (``YYYY-MM-DD``), else 1 or 0."""
    where = f"({spec.where})" if spec.where else "TRUE"
    months = int(spec.window_months)
    return f"""
        WITH ev AS (
            SELECT {_q(entity)} AS entity, CAST({_q(spec.date_column)} AS DATE) AS d
            FROM events WHERE {_q(spec.date_column)} IS NOT NULL AND {where}
        ),
        hits AS (
            SELECT DISTINCT c.{_q(entity)}, c.as_of_date
            FROM cohort c JOIN ev ON ev.entity = c.{_q(entity)}
             AND ev.d >= c.as_of_date AND ev.d < c.as_of_date + INTERVAL {months} MONTH
        )
        SELECT c.{_q(entity)}, c.as_of_date,
               CASE WHEN c.as_of_date + INTERVAL {months} MONTH
                         > DATE {_lit(data_end)} + INTERVAL 1 DAY
                    THEN NULL
                    WHEN h.as_of_date IS NULL THEN 0 ELSE 1 END AS {_q(spec.name)}
        FROM cohort c LEFT JOIN hits h
          ON h.{_q(entity)} = c.{_q(entity)} AND h.as_of_date = c.as_of_date
        ORDER BY c.as_of_date, c.{_q(entity)}
    """
