"""rudikit.data.synthetic: same layout as the real archive, realistic marginals, learnable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import SharedData

from rudikit.data import police_uk
from rudikit.data import synthetic as syn
from rudikit.data import synthetic_tables as tables

FORCES = tables.DEFAULT_FORCES


def success_label(frame: pd.DataFrame) -> np.ndarray:
    """The project's target: outcome linked to object of search, and not 'no further action'."""
    linked = frame["outcome_linked_to_object_of_search"].fillna(False).to_numpy(bool)
    acted = (frame["outcome"].fillna("") != tables.NFA).to_numpy(bool)
    return linked & acted


def distribution(values: pd.Series) -> pd.Series:
    return values.astype(object).fillna("<missing>").value_counts(normalize=True)


def total_variation(observed: pd.Series, expected: dict[str | None, float]) -> float:
    expected_s = pd.Series({("<missing>" if k is None else k): v for k, v in expected.items()})
    expected_s = expected_s.groupby(level=0).sum() / expected_s.sum()
    keys = observed.index.union(expected_s.index)
    return 0.5 * float((observed.reindex(keys, fill_value=0)
                        - expected_s.reindex(keys, fill_value=0)).abs().sum())


def table_marginal(values: tuple, attribute: str) -> dict:
    """The all-forces marginal implied by the hard-coded per-force count tables."""
    totals = np.sum([getattr(tables.PROFILES[f], attribute) for f in FORCES], axis=0)
    return dict(zip(values, totals.tolist(), strict=True))


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], pd.DataFrame,
                                                               list[police_uk.ValidationReport]]:
    folder = tmp_path_factory.mktemp("synthetic")
    paths = syn.generate_archive(folder, seed=0)
    loaded = [police_uk.read_archive_file(p) for p in paths]
    frame = police_uk.concat([f for f, _ in loaded])
    frame["month"] = frame["source_file"].str[:7]
    return paths, frame, [r for _, r in loaded]


def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    kwargs = {"rows_per_month": 600, "months": ("2020-01", "2020-02")}
    first = syn.generate_archive(tmp_path / "a", seed=7, **kwargs)
    second = syn.generate_archive(tmp_path / "b", seed=7, **kwargs)
    other = syn.generate_archive(tmp_path / "c", seed=8, **kwargs)
    assert [p.relative_to(tmp_path / "a") for p in first] == [
        p.relative_to(tmp_path / "b") for p in second]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(first, second, strict=True))
    assert any(a.read_bytes() != c.read_bytes() for a, c in zip(first, other, strict=True))


def test_layout_header_and_line_endings(archive) -> None:
    paths, _, _ = archive
    root = paths[0].parent.parent
    assert [p.relative_to(root).as_posix() for p in paths] == [
        f"{m}/{m}-{f}-stop-and-search.csv" for m in tables.DEFAULT_MONTHS for f in FORCES]
    expected = (",".join(police_uk.ARCHIVE_COLUMNS) + "\r\n").encode()
    for path in paths:
        data = path.read_bytes()
        assert data.startswith(expected), path.name
        assert data.endswith(b"\r\n") and data.count(b"\n") == data.count(b"\r\n")


def test_header_is_identical_to_a_real_file(archive, shared_data: SharedData) -> None:
    paths, _, _ = archive
    folder = shared_data / "stop_and_search"
    real = sorted(folder.glob("*/*-stop-and-search.csv"))
    assert real, f"no archive files under {folder}"
    with real[0].open("rb") as handle:
        real_header = handle.readline()
    with paths[0].open("rb") as handle:
        assert handle.readline() == real_header


def test_loader_reads_output_without_problems(archive) -> None:
    paths, frame, reports = archive
    assert all(r.problems == [] for r in reports), [str(p) for r in reports for p in r.problems]
    assert len(frame) == 3 * tables.DEFAULT_ROWS_PER_MONTH
    assert sorted(frame["force"].unique()) == sorted(FORCES)
    assert frame["datetime"].notna().all() and frame["type"].notna().all()
    months = frame["datetime"].dt.strftime("%Y-%m")
    assert (months == frame["month"]).all()


def test_generate_frame_is_what_the_files_contain(archive) -> None:
    _, frame, _ = archive
    raw = syn.generate_frame(seed=0, include_truth=True)
    assert list(raw.columns) == ["force", "month", *police_uk.ARCHIVE_COLUMNS,
                                 "success_probability"]
    assert len(raw) == len(frame)
    key = ["force", "month"]
    assert (raw.groupby(key).size().sort_index()
            == frame.groupby(key).size().sort_index()).all()
    assert raw["success_probability"].between(0, 1).all()


def test_marginals_match_the_real_tables(archive) -> None:
    _, frame, _ = archive
    tolerance = 0.02
    checks = {
        "force": (distribution(frame["force"]),
                  {f: tables.PROFILES[f].rows for f in FORCES}),
        "type": (distribution(frame["type"]), table_marginal(tables.TYPES, "types")),
        "object": (distribution(frame["object_of_search"]),
                   table_marginal(tables.OBJECTS, "objects")),
        "operation": (distribution(frame["part_of_a_policing_operation"].astype("string")),
                      table_marginal(("False", "True", None), "operation")),
        "removal": (distribution(frame["removal_of_more_than_just_outer_clothing"]
                                 .astype("string")),
                    table_marginal(("False", "True", None), "removal")),
        "hour": (distribution(frame["datetime"].dt.hour),
                 dict(enumerate(tables.HOUR_COUNTS))),
        "weekday": (distribution(frame["datetime"].dt.day_of_week),
                    dict(enumerate(tables.WEEKDAY_COUNTS))),
    }
    for name, (observed, expected) in checks.items():
        assert total_variation(observed, expected) < tolerance, name
    # Officer-defined ethnicity among people searched, and gender split.
    person = frame["type"] != "Vehicle search"
    officer = distribution(frame.loc[person, "officer_defined_ethnicity"].dropna())
    assert total_variation(officer, table_marginal(tables.OFFICER_ETHNICITIES[:4],
                                                   "officer_ethnicity")) < tolerance
    male = (frame["gender"].dropna() == "Male").mean()
    assert male == pytest.approx(tables.GENDER_COUNTS[0] / sum(tables.GENDER_COUNTS), abs=0.01)
    # Real data: ~6% missing gender, ~8% missing age, a third of rows without coordinates.
    assert frame["gender"].isna().mean() == pytest.approx(0.064, abs=0.015)
    assert frame["age_range"].isna().mean() == pytest.approx(0.078, abs=0.015)
    location_missing = sum(tables.PROFILES[f].rows * tables.PROFILES[f].location_missing
                           for f in FORCES) / sum(tables.PROFILES[f].rows for f in FORCES)
    assert frame["latitude"].isna().mean() == pytest.approx(location_missing, abs=0.015)
    assert frame.groupby("force")["latitude"].apply(lambda s: s.isna().mean()).loc[
        "south-yorkshire"] == 1.0
    outcome = distribution(frame["outcome"])
    assert outcome[tables.NFA] == pytest.approx(17107 / 22587, abs=0.02)


def test_fields_are_consistent_with_each_other(archive) -> None:
    _, frame, _ = archive
    by_object = frame.groupby("object_of_search")["legislation"]
    share = by_object.apply(lambda s: s.value_counts(normalize=True))
    assert share[("Controlled drugs", "Misuse of Drugs Act 1971 (section 23)")] > 0.95
    for obj in ("Offensive weapons", "Article for use in theft", "Stolen goods"):
        assert share[(obj, "Police and Criminal Evidence Act 1984 (section 1)")] > 0.9, obj
    assert share[("Anything to threaten or harm anyone",
                  "Criminal Justice and Public Order Act 1994 (section 60)")] > 0.8
    black = frame.loc[frame["officer_defined_ethnicity"] == "Black", "self_defined_ethnicity"]
    assert black.dropna().str.startswith(("Black", "Mixed", "Other ethnic group")).mean() > 0.95
    vehicle = frame[frame["type"] == "Vehicle search"]
    assert vehicle[["gender", "age_range", "officer_defined_ethnicity"]].isna().all().all()
    khat = frame["outcome"] == "Khat or Cannabis warning"
    assert (frame.loc[khat.fillna(False), "object_of_search"] == "Controlled drugs").all()
    label = success_label(frame)
    assert frame.loc[label, "outcome_linked_to_object_of_search"].all()


def test_base_rate_is_close_to_the_real_one(archive) -> None:
    _, frame, _ = archive
    assert success_label(frame).mean() == pytest.approx(tables.REAL_BASE_RATE, abs=0.015)
    per_force = pd.Series(success_label(frame)).groupby(frame["force"].to_numpy()).mean()
    assert per_force["leicestershire"] < 0.02 and per_force["durham"] > 0.35


def test_signal_is_learnable_and_beats_object_baseline(archive) -> None:
    sklearn = pytest.importorskip("sklearn")
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import OneHotEncoder

    assert sklearn
    _, frame, _ = archive
    y = success_label(frame)
    features = pd.DataFrame({
        "force": frame["force"], "type": frame["type"], "gender": frame["gender"],
        "age": frame["age_range"], "object": frame["object_of_search"],
        "hour": frame["datetime"].dt.hour,
    }).astype(object).fillna("missing").astype(str)
    train = (frame["month"] != "2020-02").to_numpy()
    test = ~train
    encoder = OneHotEncoder(handle_unknown="ignore")
    model = LogisticRegression(max_iter=1000)
    model.fit(encoder.fit_transform(features[train]), y[train])
    auc = roc_auc_score(y[test], model.predict_proba(encoder.transform(features[test]))[:, 1])
    rates = pd.Series(y[train]).groupby(features["object"][train].to_numpy()).mean()
    baseline = features["object"][test].map(rates).fillna(y[train].mean()).to_numpy()
    baseline_auc = roc_auc_score(y[test], baseline)
    assert auc > 0.65
    assert auc > baseline_auc + 0.05, (auc, baseline_auc)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"forces": ["atlantis"]}, "forces: no synthetic profile for 'atlantis'"),
    ({"months": ["2020-13"]}, "months: '2020-13' is not a month in YYYY-MM form"),
    ({"months": ["2020-01", "2020-01"]}, "months: duplicates"),
    ({"rows_per_month": -1}, "rows_per_month: expected a whole number >= 0"),
])
def test_bad_arguments_are_named(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        syn.generate_archive(tmp_path, **kwargs)


def test_small_and_single_force_runs_work(tmp_path: Path) -> None:
    paths = syn.generate_archive(tmp_path, months="2021-06", forces="durham", rows_per_month=5)
    frame, report = police_uk.read_archive_file(paths[0])
    assert paths[0].name == "2021-06-durham-stop-and-search.csv"
    assert len(frame) == 5 and report.problems == []
    empty = syn.generate_archive(tmp_path / "empty", months="2021-06", forces="essex",
                                 rows_per_month=0)
    assert empty[0].read_bytes() == (",".join(police_uk.ARCHIVE_COLUMNS) + "\r\n").encode()


def test_the_archive_written_block_by_block_holds_the_generators_rows(tmp_path: Path) -> None:
    """The archive is written one force-month at a time as the seeded stream draws it: its
    files, read back in order, hold exactly the rows of :func:`generate_frame` (one frame of
    everything) with the same seed."""
    kwargs = {"months": ("2020-01", "2020-02"), "rows_per_month": 400, "seed": 5}
    paths = syn.generate_archive(tmp_path, **kwargs)
    frame = syn.generate_frame(**kwargs)
    read = pd.concat([pd.read_csv(p, dtype="string", keep_default_na=False, na_values=[""])
                      for p in paths], ignore_index=True)
    expected = frame[list(tables.HEADER)]
    assert len(read) == len(expected) == 800
    pd.testing.assert_frame_equal(read, expected.reset_index(drop=True))
    assert [f"{p.parent.name}/{p.name}" for p in paths] == [
        f"{m}/{m}-{f}-stop-and-search.csv" for m in kwargs["months"] for f in tables.DEFAULT_FORCES]
