"""The ``sql`` source kind: the stop-and-search archive loaded into a PostgreSQL and a MariaDB
table and read back gives the CSV route's table and checksums; incremental loads equal full
reloads; every bad setting is an error naming its key."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
import yaml
from typer.testing import CliRunner

from rudikit.cli import app
from rudikit.config import ProjectError, Source, load_project
from rudikit.data import sql
from rudikit.data.group_size import with_group_size
from rudikit.data.sources import SourceError, load_source, table_fingerprint, unify
from rudikit.monitoring.inputs import period_digests
from tests.conftest import REPO, squeezed, write_project

SQL_EXAMPLE = REPO / "examples" / "stop_search_sql"
T0 = pd.Timestamp("2026-01-05 09:00:00", tz="UTC")
T1 = pd.Timestamp("2026-01-06 10:30:00", tz="UTC")


@pytest.fixture(scope="module")
def csv_route(shared_data: object) -> object:
    """The whole archive extract read from its CSV files."""
    root = shared_data / "stop_and_search"  # type: ignore[operator]
    return load_source(Source(name="searches", kind="police_uk_archive", path=str(root)),
                       root, "data.sources[0]")


def _sql_source(table: str, **extra: object) -> Source:
    spec = {"name": "searches", "kind": "sql", "url_env": "RUDI_TEST_SOURCE_URL",
            "table": table, "layout": "police_uk", "updated_at": "updated_at",
            "key": "record_id"}
    return Source(**(spec | extra))


def _at(url: str, stamp: pd.Timestamp) -> object:
    """A time as the column stores it: MariaDB's DATETIME has no zone (the writer stores UTC)."""
    return stamp.tz_localize(None).to_pydatetime() if url.startswith("mysql") \
        else stamp.to_pydatetime()


def test_archive_in_a_table_gives_the_csv_routes_table_and_checksums(
        sql_server: tuple[str, str], csv_route: object, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    url, table = sql_server
    csv = csv_route
    monkeypatch.setenv("FORCE_DB_URL", url)
    archive = Path(csv.location)  # type: ignore[attr-defined]
    result = CliRunner().invoke(app, ["load-sql", str(archive), "--table", table,
                                      "--url-env", "FORCE_DB_URL"])
    assert result.exit_code == 0, result.output
    assert "wrote 22,587 rows from 21 files" in result.output  # PROVENANCE.md's count

    project = load_project(SQL_EXAMPLE)
    spec = project.data.sources[0].model_copy(update={"table": table})
    project = project.model_copy(update={"data": project.data.model_copy(
        update={"sources": [spec]})})
    frame, (loaded,) = unify(project, tmp_path)

    grouped = project.features.group_size  # the example counts people searched together
    assert grouped is not None
    counted = with_group_size(csv.frame, grouped.by, grouped.column)  # type: ignore[attr-defined]
    pd.testing.assert_frame_equal(frame, counted)
    assert loaded.checksum == table_fingerprint(csv.frame)  # type: ignore[attr-defined]
    assert period_digests(frame, "datetime", "month") == period_digests(
        counted, "datetime", "month")
    assert loaded.note == "full load of 22,587 rows"
    assert loaded.location == f"{url} {table}"

    again = CliRunner().invoke(app, ["load-sql", str(archive), "--table", table,
                                     "--url-env", "FORCE_DB_URL"])
    assert again.exit_code == 2
    assert "pass --replace" in again.output and "Traceback" not in again.output


def _changes(url: str, table: str, frame: pd.DataFrame) -> int:
    """Change one row's outcome and add a row, both stamped T1, as the force's records system
    would; returns the changed row's position."""
    changed = int(frame.index[frame["outcome"].notna() & (frame["outcome"] != "Arrest")][0])
    template = frame.iloc[10]
    row = {c: None if pd.isna(v) else getattr(v, "item", lambda v=v: v)()
           for c, v in template.items()}
    row |= {"record_id": f"{template.source_file}:9999", "source_row": 9999,
            "datetime": _at(url, template["datetime"]), "updated_at": _at(url, T1)}
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {table} SET outcome = 'Arrest', updated_at = :t "
                             "WHERE record_id = :r"), {"t": _at(url, T1),
                                                       "r": frame.record_id[changed]})
        # through Core, which quotes ``force`` (a reserved word on MariaDB)
        conn.execute(sa.Table(table, sa.MetaData(), autoload_with=conn).insert(), row)
    engine.dispose()
    return changed


def test_incremental_load_equals_a_full_reload(sql_server: tuple[str, str], shared_data: object,
                                              tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    url, table = sql_server
    monkeypatch.setenv("RUDI_TEST_SOURCE_URL", url)
    month = shared_data / "stop_and_search/2020-01/2020-01-durham-stop-and-search.csv"  # type: ignore[operator]
    csv = load_source(Source(name="searches", kind="police_uk_archive", path=str(month)),
                      tmp_path, "data.sources[0]")
    assert sql.write_stop_search_table(csv.frame, url, table, T0) == 161
    source, cache = _sql_source(table), tmp_path / "cache"
    first = load_source(source, tmp_path, "data.sources[0]", cache_dir=cache)
    assert first.note == "full load of 161 rows"
    pd.testing.assert_frame_equal(first.frame, csv.frame)

    changed = _changes(url, table, first.frame)
    second = load_source(source, tmp_path, "data.sources[0]", cache_dir=cache)
    assert second.note == "incremental load: 2 rows changed since the last load (updated_at), " \
                          "162 in all"
    full = load_source(source, tmp_path, "data.sources[0]", cache_dir=tmp_path / "fresh")
    assert full.note == "full load of 162 rows"
    pd.testing.assert_frame_equal(second.frame, full.frame)
    assert second.checksum == full.checksum != first.checksum
    assert second.frame.loc[changed, "outcome"] == "Arrest" != first.frame.loc[changed, "outcome"]
    assert second.frame["record_id"].iloc[-1].endswith(":9999")
    # the monitor's integrity check sees the one changed month, with one more row
    before = {d.period: d for d in period_digests(first.frame, "datetime", "month")}
    after = {d.period: d for d in period_digests(second.frame, "datetime", "month")}
    assert after == {d.period: d for d in period_digests(full.frame, "datetime", "month")}
    assert [p for p in after if after[p] != before.get(p)] == ["2020-01"]
    assert after["2020-01"].row_count == before["2020-01"].row_count + 1

    unchanged = load_source(source, tmp_path, "data.sources[0]", cache_dir=cache)
    assert unchanged.note.startswith("incremental load: 0 rows changed")
    assert unchanged.checksum == full.checksum

    engine = sa.create_engine(url)
    with engine.begin() as conn:  # a deletion leaves no updated_at behind
        conn.execute(sa.text(f"DELETE FROM {table} WHERE record_id = :r"),
                     {"r": first.frame.record_id[0]})
    engine.dispose()
    third = load_source(source, tmp_path, "data.sources[0]", cache_dir=cache)
    assert third.note == "full load of 161 rows (rows were deleted in the source)"
    pd.testing.assert_frame_equal(
        third.frame, load_source(source, tmp_path, "data.sources[0]",
                                 cache_dir=tmp_path / "fresh2").frame)


def test_plain_table_incremental_equals_full(sql_server: tuple[str, str], tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """``layout: table``: the rows as the database types them, NULLs included."""
    url, table = sql_server
    monkeypatch.setenv("RUDI_TEST_SOURCE_URL", url)
    stamp = sa.DateTime(timezone=True).with_variant(sa.dialects.mysql.DATETIME(fsp=6), "mysql",
                                                    "mariadb")
    cases = sa.Table(table, sa.MetaData(), sa.Column("case_id", sa.Integer, primary_key=True),
                     sa.Column("station", sa.String(40)), sa.Column("score", sa.Double),
                     sa.Column("opened", stamp), sa.Column("changed", stamp, nullable=False))
    engine = sa.create_engine(url)
    rows = [{"case_id": i, "station": None if i % 4 == 0 else f"s{i % 3}",
             "score": None if i % 5 == 0 else i / 7, "changed": _at(url, T0),
             "opened": _at(url, T0 - pd.Timedelta(days=i))} for i in range(1, 41)]
    with engine.begin() as conn:
        cases.create(conn)
        conn.execute(cases.insert(), rows)
    source = _sql_source(table, layout="table", updated_at="changed", key="case_id")
    first = load_source(source, tmp_path, "data.sources[0]", cache_dir=tmp_path / "a")
    assert len(first.frame) == 40 and first.frame["case_id"].tolist() == list(range(1, 41))
    with engine.begin() as conn:
        conn.execute(cases.update().where(cases.c.case_id == 8).values(
            score=0.5, station="s9", changed=_at(url, T1)))
        conn.execute(cases.insert(), [{"case_id": 0, "station": "s0", "score": None,
                                       "opened": None, "changed": _at(url, T1)}])
    engine.dispose()
    second = load_source(source, tmp_path, "data.sources[0]", cache_dir=tmp_path / "a")
    full = load_source(source, tmp_path, "data.sources[0]", cache_dir=tmp_path / "b")
    assert second.note.startswith("incremental load: 2 rows changed")
    pd.testing.assert_frame_equal(second.frame, full.frame)
    assert second.checksum == full.checksum
    assert full.frame.set_index("case_id").loc[8, "station"] == "s9"

    query = Source(name="cases", kind="sql", url_env="RUDI_TEST_SOURCE_URL", updated_at="changed",
                   key="case_id", query=f"SELECT case_id, score, changed FROM {table} "
                                        "WHERE station <> 's1'")
    chosen = load_source(query, tmp_path, "data.sources[0]", cache_dir=tmp_path / "q")
    keep = (full.frame["station"].fillna("s1") != "s1").to_numpy(dtype=bool)  # NULL <> 's1'
    expected = full.frame.loc[keep, ["case_id", "score", "changed"]]  # is not true in SQL
    pd.testing.assert_frame_equal(chosen.frame, expected.reset_index(drop=True))
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # the query's filter and the updated_at filter together
        conn.execute(cases.update().where(cases.c.case_id.in_([1, 3])).values(
            score=9.0, changed=_at(url, T1 + pd.Timedelta(hours=1))))
    engine.dispose()
    again = load_source(query, tmp_path, "data.sources[0]", cache_dir=tmp_path / "q")
    assert again.note.startswith("incremental load: 1 row changed")  # case 1 is station s1, outside
    pd.testing.assert_frame_equal(again.frame, load_source(
        query, tmp_path, "data.sources[0]", cache_dir=tmp_path / "q2").frame)


# --- Errors: each names the source's key, none is a traceback ------------------------------


def _sqlite(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'force.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE cases (case_id INTEGER PRIMARY KEY, station TEXT, "
                             "changed_at TIMESTAMP)"))
        conn.execute(sa.text("INSERT INTO cases VALUES (1, 'a', '2026-01-01 00:00:00'), "
                             "(2, 'b', '2026-01-02 00:00:00')"))
    engine.dispose()
    return url


def test_query_source_on_sqlite(tmp_path: Path) -> None:
    url = _sqlite(tmp_path)
    source = Source(name="cases", kind="sql", url=url,
                    query="SELECT case_id, station FROM cases WHERE station <> 'b';")
    loaded = load_source(source, tmp_path, "data.sources[0]")
    assert loaded.frame.to_dict("list") == {"case_id": [1], "station": ["a"]}
    assert loaded.location.endswith("(query)")


@pytest.mark.parametrize(("spec", "message"), [
    ({"url_env": "RUDI_TEST_NOT_SET"},
     "data.sources[0].url_env: the environment variable RUDI_TEST_NOT_SET is not set"),
    ({"url": "postgresql://postgres@127.0.0.1:1/test"},
     "data.sources[0].url: cannot read source 'cases' from postgresql://postgres@127.0.0.1:1/test"
     " cases:"),
    ({"table": "case"}, "data.sources[0].table: cannot read the table or view 'case':"),
    ({"query": "SELECT nope FROM cases"}, "data.sources[0].query: cannot read the query:"),
    ({"updated_at": "changed", "key": "case_id"},
     "data.sources[0].updated_at: column 'changed' is not in the table or view 'cases'; did "
     "you mean 'changed_at'?"),
    ({"key": ["case"], "updated_at": "changed_at"},
     "data.sources[0].key: column 'case' is not in"),
    ({"url": "mysql+nodriver://root@127.0.0.1/test"}, "data.sources[0].url: not a usable"),
])
def test_errors_name_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                             spec: dict, message: str) -> None:
    monkeypatch.delenv("RUDI_TEST_NOT_SET", raising=False)
    base = {"name": "cases", "kind": "sql", "url": _sqlite(tmp_path), "table": "cases"}
    if "url_env" in spec or "query" in spec:
        base.pop("url" if "url_env" in spec else "table")
    with pytest.raises(SourceError) as caught:
        load_source(Source(**(base | spec)), tmp_path, "data.sources[0]")
    assert str(caught.value).startswith(message), str(caught.value)


def test_a_damaged_copy_means_a_full_read(tmp_path: Path) -> None:
    source = Source(name="cases", kind="sql", url=_sqlite(tmp_path), table="cases",
                    updated_at="changed_at", key="case_id")
    first = load_source(source, tmp_path, "data.sources[0]")
    assert first.note == "full load of 2 rows"
    assert load_source(source, tmp_path, "data.sources[0]").note.startswith(
        "incremental load: 0 rows changed")
    (tmp_path / ".rudi" / "cache" / "sql" / "cases" / "rows.parquet").write_bytes(b"not parquet")
    again = load_source(source, tmp_path, "data.sources[0]")
    assert again.note == "full load of 2 rows"
    pd.testing.assert_frame_equal(again.frame, first.frame)


def test_the_password_is_never_shown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUDI_TEST_SOURCE_URL", "postgresql://force:s3cret@127.0.0.1:1/records")
    with pytest.raises(SourceError) as caught:
        load_source(Source(name="cases", kind="sql", url_env="RUDI_TEST_SOURCE_URL",
                           table="cases"), tmp_path, "data.sources[0]")
    assert "from postgresql://force:***@127.0.0.1:1/records cases" in str(caught.value)
    assert "s3cret" not in str(caught.value)


def test_a_key_that_repeats_is_refused(tmp_path: Path) -> None:
    source = Source(name="cases", kind="sql", url=_sqlite(tmp_path), table="cases",
                    updated_at="changed_at", key="station")
    engine = sa.create_engine(source.url)  # type: ignore[arg-type]
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE cases SET station = 'a'"))
    engine.dispose()
    with pytest.raises(SourceError, match=r"data.sources\[0\].key: station does not identify "
                                          r"a row: 1 rows repeat a key"):
        load_source(source, tmp_path, "data.sources[0]")


@pytest.mark.parametrize(("source", "message"), [
    ({"url": "postgresql://force:s3cret@db.local/records", "table": "t"},
     "data.sources[0].url: holds a password; rudi.yaml must not"),
    ({"url_env": "X", "url": "sqlite:///x.db", "table": "t"}, "exactly one of 'url_env'"),
    ({"url_env": "X", "table": "t", "query": "SELECT 1"}, "exactly one of 'table' and"),
    ({"url_env": "X", "table": "t", "updated_at": "u"}, "'updated_at' needs 'key'"),
])
def test_project_file_refuses_bad_sql_sources(tmp_path: Path, source: dict,
                                              message: str) -> None:
    folder = write_project(tmp_path / "p", data={
        "sources": [{"name": "searches", "kind": "sql"} | source]})
    with pytest.raises(ProjectError) as caught:
        load_project(folder)
    assert any(message in p for p in caught.value.problems), caught.value.problems


def test_sql_keys_on_another_kind_are_refused(tmp_path: Path) -> None:
    folder = write_project(tmp_path / "p", data={"sources": [
        {"name": "searches", "kind": "csv", "path": "x.csv", "table": "t"}]})
    with pytest.raises(ProjectError) as caught:
        load_project(folder)
    assert any("table: only for source kind 'sql'" in p for p in caught.value.problems)


def test_validate_names_the_missing_variable(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FORCE_DB_URL", raising=False)
    result = CliRunner().invoke(app, ["validate", str(SQL_EXAMPLE)])
    assert result.exit_code == 2
    assert squeezed("error: cannot load the data: - data.sources[0].url_env: the environment "
                    "variable FORCE_DB_URL is not set") in squeezed(result.output)
    assert "Traceback" not in result.output


def test_example_is_the_stop_search_example_read_from_a_table() -> None:
    """Only the data source (and the governance note on it) differ, so the two stay one
    example; the packaged copy `rudi init --example stop_search_sql` uses is the same file."""
    read = [yaml.safe_load((REPO / "examples" / name / "rudi.yaml").read_text(encoding="utf-8"))
            for name in ("stop_search", "stop_search_sql")]
    for config in read:
        config.pop("data"), config["governance"].pop("data_governance_plan")
    assert read[0] == read[1]
    packaged = REPO / "src" / "rudikit" / "examples" / "stop_search_sql" / "rudi.yaml"
    assert packaged.read_text() == (SQL_EXAMPLE / "rudi.yaml").read_text()


def test_load_sql_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUDI_TEST_NOT_SET", raising=False)
    unset = CliRunner().invoke(app, ["load-sql", str(tmp_path), "--table", "t",
                                     "--url-env", "RUDI_TEST_NOT_SET"])
    assert unset.exit_code == 2
    assert squeezed("--url-env: the environment variable RUDI_TEST_NOT_SET is not set") in \
        squeezed(unset.output)
    monkeypatch.setenv("RUDI_TEST_SOURCE_URL", f"sqlite:///{tmp_path / 'db.sqlite'}")
    empty = CliRunner().invoke(app, ["load-sql", str(tmp_path / "none"), "--table", "t",
                                     "--url-env", "RUDI_TEST_SOURCE_URL"])
    assert empty.exit_code == 2 and "does not exist" in " ".join(empty.output.split())
    assert "Traceback" not in unset.output + empty.output
