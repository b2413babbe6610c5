"""rudikit.data.download and its cache and HTTP modules, on recorded responses: httpx.MockTransport
only, never the network."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

from rudikit.data import download as dl
from rudikit.data import download_cache as cache
from rudikit.data import download_http as http
from rudikit.data import police_uk

FIXTURES = Path(__file__).parent / "fixtures" / "police_uk"
STOPS = FIXTURES / "stops-force-city-of-london-2024-01.json"
STOPS_URL = "https://data.police.uk/api/stops-force?force=city-of-london&date=2024-01"

Handler = Callable[[httpx.Request], httpx.Response]


class FakeServer:
    """A MockTransport-backed client that records every request it gets."""

    def __init__(self, handler: Handler):
        self.requests: list[httpx.Request] = []
        self._handler = handler
        self.client = httpx.Client(transport=httpx.MockTransport(self._handle))

    def _handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self._handler(request)


def respond_file(path: Path) -> Handler:
    return lambda request: httpx.Response(200, content=path.read_bytes())


def offline(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("[Errno -3] Temporary failure in name resolution", request=request)


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture(autouse=True)
def no_real_network(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Belt and braces: a test that forgets its mock client fails instead of going online."""

    def refuse(self: httpx.HTTPTransport, request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"test tried to reach the real network: {request.url}")

    monkeypatch.setattr(httpx.HTTPTransport, "handle_request", refuse)
    monkeypatch.setattr(http, "DEFAULT_RETRY", http.RetryPolicy(sleep=lambda seconds: None))
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "default-cache"))


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def retry(sleeps: Sleeps) -> http.RetryPolicy:
    return http.RetryPolicy(attempts=3, backoff=1.0, sleep=sleeps)


def cache_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


# --- stops-force: parsing, cache, refresh ---------------------------------------------------


def test_stops_force_parses_to_normalised_table(tmp_path: Path) -> None:
    server = FakeServer(respond_file(STOPS))
    frame, report = dl.load_stops_force("city-of-london", "2024-01", cache_dir=tmp_path,
                                        client=server.client)

    (request,) = server.requests
    assert str(request.url) == STOPS_URL
    assert list(frame.columns) == list(police_uk.COLUMNS)
    assert {c: str(t) for c, t in frame.dtypes.items()} == {
        c: str(pd.Series(dtype=d).dtype) for c, d in police_uk.COLUMNS.items()}
    assert len(frame) == 5 and report.rows == 5
    assert (frame["force"] == "city-of-london").all()
    assert frame["record_id"].iloc[0] == "stops-force/city-of-london/2024-01.json:2"

    first, arrest, unlinked, vehicle, no_outcome = (frame.iloc[i] for i in range(5))
    assert first["datetime"] == pd.Timestamp("2024-01-01T04:54:31", tz="UTC")
    assert first["outcome"] == "A no further action disposal"
    assert first["outcome_linked_to_object_of_search"] is False or not first[
        "outcome_linked_to_object_of_search"]
    assert pd.isna(first["part_of_a_policing_operation"])          # operation: null
    assert first["street_name"] == "On or near Dean'S Court"
    assert first["age_range"] == "over 34" and first["gender"] == "Male"
    assert arrest["outcome"] == "Arrest" and arrest["outcome_linked_to_object_of_search"]
    assert arrest["latitude"] == pytest.approx(51.517846)
    assert arrest["longitude"] == pytest.approx(-0.109164)
    assert not arrest["part_of_a_policing_operation"]
    assert arrest["legislation"] == "Misuse of Drugs Act 1971 (section 23)"
    assert pd.isna(unlinked["outcome_linked_to_object_of_search"])  # null boolean
    assert pd.isna(unlinked["removal_of_more_than_just_outer_clothing"])
    assert vehicle["type"] == "Vehicle search"
    assert vehicle["datetime"] == pd.Timestamp("2024-01-20T00:59:00", tz="UTC")
    assert pd.isna(vehicle["latitude"]) and pd.isna(vehicle["longitude"])  # location: null
    # outcome "" with an empty outcome_object -> missing outcome
    assert pd.isna(no_outcome["outcome"])
    assert no_outcome["part_of_a_policing_operation"]
    assert no_outcome["removal_of_more_than_just_outer_clothing"]


def test_json_nulls_become_missing_values(tmp_path: Path) -> None:
    server = FakeServer(respond_file(STOPS))
    frame, report = dl.load_stops_force("city-of-london", "2024-01", cache_dir=tmp_path,
                                        client=server.client)
    assert report.errors == []
    assert frame["street_id"].iloc[0] == "1490797"  # an integer id next to a null one
    vehicle = frame.iloc[3]
    for column in ("latitude", "longitude", "street_id", "street_name", "gender",
                   "age_range", "officer_defined_ethnicity", "self_defined_ethnicity"):
        assert pd.isna(vehicle[column]), column


def test_cache_is_reused_without_network_and_checksummed(tmp_path: Path) -> None:
    server = FakeServer(respond_file(STOPS))
    path = dl.fetch_stops_force("city-of-london", "2024-01", cache_dir=tmp_path,
                                client=server.client)
    again = dl.fetch_stops_force("city-of-london", "2024-01", cache_dir=tmp_path,
                                 client=server.client)
    assert again == path and len(server.requests) == 1
    assert path == tmp_path / "api" / "stops-force" / "city-of-london" / "2024-01.json"
    assert path.read_bytes() == STOPS.read_bytes()
    assert cache.recorded_sha256(path) == hashlib.sha256(STOPS.read_bytes()).hexdigest()
    assert cache_files(tmp_path) == ["api/stops-force/city-of-london/2024-01.json",
                                     "api/stops-force/city-of-london/2024-01.json.sha256"]


def test_refresh_downloads_again(tmp_path: Path) -> None:
    bodies = iter([STOPS.read_bytes(), b"[]"])
    server = FakeServer(lambda request: httpx.Response(200, content=next(bodies)))
    dl.fetch_stops_force("city-of-london", "2024-01", cache_dir=tmp_path, client=server.client)
    path = dl.fetch_stops_force("city-of-london", "2024-01", cache_dir=tmp_path,
                                client=server.client, refresh=True)
    assert len(server.requests) == 2
    assert path.read_bytes() == b"[]"
    assert cache.recorded_sha256(path) == hashlib.sha256(b"[]").hexdigest()


def test_corrupted_cache_entry_is_fetched_again(tmp_path: Path) -> None:
    server = FakeServer(respond_file(STOPS))
    path = dl.fetch_stops_force("city-of-london", "2024-01", cache_dir=tmp_path,
                                client=server.client)
    path.write_text("[{\"truncated\"", encoding="utf-8")
    with pytest.warns(UserWarning, match="does not match its recorded SHA-256"):
        dl.fetch_stops_force("city-of-london", "2024-01", cache_dir=tmp_path,
                             client=server.client)
    assert len(server.requests) == 2 and path.read_bytes() == STOPS.read_bytes()


def test_cache_entry_older_than_max_age_is_stale(tmp_path: Path) -> None:
    """By the injected clock, against the file's modification time."""
    path = tmp_path / "month.json"
    path.write_text("[]", encoding="utf-8")
    written = path.stat().st_mtime
    assert cache.is_cached(path, max_age=60, clock=lambda: written + 60)
    assert not cache.is_cached(path, max_age=60, clock=lambda: written + 61)
    assert cache.is_cached(path, clock=lambda: written + 10**9)  # no max_age: never stale


def test_empty_month_is_cached_and_reported(tmp_path: Path) -> None:
    server = FakeServer(lambda request: httpx.Response(200, json=[]))
    frame, report = dl.load_stops_force("essex", ["2024-01"], cache_dir=tmp_path,
                                        client=server.client)
    assert len(frame) == 0 and list(frame.columns) == list(police_uk.COLUMNS)
    (warning,) = report.warnings
    assert "no stop-and-search records for essex in 2024-01" in warning.problem


def test_several_months_concatenate_and_merge_reports(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.params["date"] == "2024-01":
            return httpx.Response(200, content=STOPS.read_bytes())
        return httpx.Response(200, json=json.loads(STOPS.read_text())[:2])

    server = FakeServer(handler)
    frame, report = dl.load_stops_force("city-of-london", ["2024-01", "2024-02"],
                                        cache_dir=tmp_path, client=server.client)
    assert len(frame) == 7 and report.rows == 7 and len(server.requests) == 2
    assert frame["source_file"].unique().tolist() == ["stops-force/city-of-london/2024-01.json",
                                                     "stops-force/city-of-london/2024-02.json"]


def test_not_json_is_not_cached(tmp_path: Path) -> None:
    server = FakeServer(lambda request: httpx.Response(200, text="<!DOCTYPE html><p>oops"))
    with pytest.raises(http.DownloadError, match="did not return JSON"):
        dl.fetch_stops_force("essex", "2024-01", cache_dir=tmp_path, client=server.client)
    assert cache_files(tmp_path) == []


def test_bad_arguments_fail_before_any_request(tmp_path: Path) -> None:
    server = FakeServer(respond_file(STOPS))
    with pytest.raises(ValueError, match="force: 'Essex Police' is not a data.police.uk force"):
        dl.fetch_stops_force("Essex Police", "2024-01", cache_dir=tmp_path, client=server.client)
    with pytest.raises(ValueError, match="month: '2024-1' is not a month in YYYY-MM form"):
        dl.fetch_stops_force("essex", "2024-1", cache_dir=tmp_path, client=server.client)
    assert server.requests == []


# --- HTTP behaviours: 429, 5xx, 404 ---------------------------------------------------------


def test_rate_limit_429_then_200_is_retried(tmp_path: Path, retry: http.RetryPolicy,
                                            sleeps: Sleeps) -> None:
    answers = iter([httpx.Response(429, headers={"Retry-After": "2"}),
                    httpx.Response(200, content=STOPS.read_bytes())])
    server = FakeServer(lambda request: next(answers))
    path = dl.fetch_stops_force("city-of-london", "2024-01", cache_dir=tmp_path,
                                client=server.client, retry=retry)
    assert path.read_bytes() == STOPS.read_bytes()
    assert len(server.requests) == 2 and sleeps == [2.0]


def test_rate_limit_retries_are_bounded(tmp_path: Path, retry: http.RetryPolicy,
                                        sleeps: Sleeps) -> None:
    server = FakeServer(lambda request: httpx.Response(429))
    with pytest.raises(http.DownloadError) as caught:
        dl.fetch_stops_force("essex", "2024-01", cache_dir=tmp_path, client=server.client,
                             retry=retry)
    message = str(caught.value)
    assert "gave up after 3 attempts" in message and "HTTP 429" in message
    assert "15 requests a second" in message
    assert len(server.requests) == 3 and sleeps == [1.0, 2.0]  # exponential backoff
    assert cache_files(tmp_path) == []


def test_server_errors_are_retried(tmp_path: Path, retry: http.RetryPolicy,
                                   sleeps: Sleeps) -> None:
    answers = iter([httpx.Response(503), httpx.Response(502),
                    httpx.Response(200, content=STOPS.read_bytes())])
    server = FakeServer(lambda request: next(answers))
    dl.fetch_stops_force("city-of-london", "2024-01", cache_dir=tmp_path, client=server.client,
                         retry=retry)
    assert len(server.requests) == 3 and sleeps == [1.0, 2.0]


def test_unknown_force_404_names_the_force(tmp_path: Path) -> None:
    server = FakeServer(lambda request: httpx.Response(404))
    with pytest.raises(dl.UnknownForceError) as caught:
        dl.fetch_stops_force("atlantis", "2024-01", cache_dir=tmp_path, client=server.client)
    assert caught.value.force == "atlantis"
    message = str(caught.value)
    assert "does not know the force 'atlantis'" in message
    assert "https://data.police.uk/api/stops-force?force=atlantis&date=2024-01" in message
    assert "list_forces()" in message
    assert len(server.requests) == 1  # 404 is an answer, not retried
    assert cache_files(tmp_path) == []


def test_unknown_force_suggests_close_ids_from_cached_force_list(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/forces":
            return httpx.Response(200, content=(FIXTURES / "forces.json").read_bytes())
        return httpx.Response(404)

    server = FakeServer(handler)
    dl.list_forces(cache_dir=tmp_path, client=server.client)
    with pytest.raises(dl.UnknownForceError, match="Did you mean 'essex'"):
        dl.fetch_stops_force("esex", "2024-01", cache_dir=tmp_path, client=server.client)
    with pytest.raises(dl.UnknownForceError, match="force exists, so that month is probably"):
        dl.fetch_stops_force("essex", "2009-01", cache_dir=tmp_path, client=server.client)


def test_forces_and_available_months(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        name = {"/api/forces": "forces.json",
                "/api/crimes-street-dates": "crimes-street-dates.json"}[request.url.path]
        return httpx.Response(200, content=(FIXTURES / name).read_bytes())

    server = FakeServer(handler)
    forces = dl.list_forces(cache_dir=tmp_path, client=server.client)
    assert forces["city-of-london"] == "City of London Police" and len(forces) == 5
    assert dl.available_months("leicestershire", cache_dir=tmp_path,
                               client=server.client) == ["2024-01"]
    assert dl.available_months(cache_dir=tmp_path, client=server.client) == ["2024-01",
                                                                              "2024-02"]
    assert len(server.requests) == 2  # the second available_months() call used the cache


# --- offline and interrupted downloads --------------------------------------------------------


@pytest.mark.parametrize("error", [httpx.ConnectError, httpx.ConnectTimeout])
def test_offline_without_cache_raises_clear_error(tmp_path: Path, error: type) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error("[Errno -3] Temporary failure in name resolution", request=request)

    server = FakeServer(handler)
    with pytest.raises(http.DownloadError) as caught:
        dl.fetch_stops_force("city-of-london", "2024-01", cache_dir=tmp_path,
                             client=server.client)
    exc = caught.value
    message = str(exc)
    assert isinstance(exc, http.OfflineError) and exc.url == STOPS_URL
    assert message.startswith(f"Could not reach {STOPS_URL}: this machine appears to be offline")
    assert "Temporary failure in name resolution" in message
    assert "point the project's data source at that folder" in message
    assert "rudikit.data.synthetic.generate_archive" in message
    assert exc.__cause__ is None and exc.__suppress_context__  # no httpx traceback chained
    assert len(server.requests) == 1  # connect errors fail fast, no retry loop
    assert cache_files(tmp_path) == []


def test_offline_with_cache_serves_the_cache(tmp_path: Path) -> None:
    online = FakeServer(respond_file(STOPS))
    path = dl.fetch_stops_force("city-of-london", "2024-01", cache_dir=tmp_path,
                                client=online.client)
    cut_off = FakeServer(offline)
    frame, report = dl.load_stops_force("city-of-london", "2024-01", cache_dir=tmp_path,
                                        client=cut_off.client)
    assert len(frame) == 5 and report.rows == 5 and cut_off.requests == []
    # Asked to refresh while offline: warn and keep using the good cached copy.
    with pytest.warns(UserWarning, match="could not refresh"):
        again = dl.fetch_stops_force("city-of-london", "2024-01", cache_dir=tmp_path,
                                     client=cut_off.client, refresh=True)
    assert again == path and path.read_bytes() == STOPS.read_bytes()


def broken_stream(request: httpx.Request) -> httpx.Response:
    def body() -> Iterator[bytes]:
        yield STOPS.read_bytes()[:100]
        raise httpx.ReadError("connection reset by peer", request=request)

    return httpx.Response(200, content=body())


def test_interrupted_download_leaves_no_cache_file(tmp_path: Path, retry: http.RetryPolicy,
                                                   sleeps: Sleeps) -> None:
    server = FakeServer(broken_stream)
    with pytest.raises(http.DownloadError, match="download interrupted") as caught:
        dl.fetch_stops_force("city-of-london", "2024-01", cache_dir=tmp_path,
                             client=server.client, retry=retry)
    assert "connection reset by peer" in str(caught.value)
    assert len(server.requests) == 3  # bounded retries
    assert cache_files(tmp_path) == []  # neither the file, its checksum nor a .part left


def test_interrupted_refresh_keeps_the_previous_good_copy(tmp_path: Path,
                                                          retry: http.RetryPolicy) -> None:
    good = FakeServer(respond_file(STOPS))
    path = dl.fetch_stops_force("city-of-london", "2024-01", cache_dir=tmp_path,
                                client=good.client)
    broken = FakeServer(broken_stream)
    with pytest.warns(UserWarning, match="could not refresh"):
        dl.fetch_stops_force("city-of-london", "2024-01", cache_dir=tmp_path,
                             client=broken.client, refresh=True, retry=retry)
    assert path.read_bytes() == STOPS.read_bytes()
    assert cache.recorded_sha256(path) == cache.sha256_file(path)
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".part")]


def test_short_body_against_content_length_is_not_cached(tmp_path: Path,
                                                         retry: http.RetryPolicy) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Length": "5000"},
                              stream=httpx.ByteStream(b"[]"))

    server = FakeServer(handler)
    with pytest.raises(http.DownloadError, match="got 2 of 5000 bytes"):
        dl.fetch_stops_force("essex", "2024-01", cache_dir=tmp_path, client=server.client,
                             retry=retry)
    assert cache_files(tmp_path) == []


def test_default_cache_dir_follows_environment(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "cache"))
    assert cache.default_cache_dir() == tmp_path / "cache" / "police_uk"
    monkeypatch.delenv(cache.CACHE_ENV)
    assert cache.default_cache_dir() == Path.home() / ".cache" / "rudikit" / "police_uk"


# --- archive ---------------------------------------------------------------------------------

HEADER = ",".join(police_uk.ARCHIVE_COLUMNS)
ROW = ("Person search,{month}-05T18:01:00+00:00,False,,51.620370,0.294799,Male,18-24,"
       "White - English/Welsh/Scottish/Northern Irish/British,White,"
       "Misuse of Drugs Act 1971 (section 23),Controlled drugs,Arrest,True,False")


def archive_csv(month: str, rows: int = 2) -> bytes:
    return "\r\n".join([HEADER] + [ROW.format(month=month)] * rows).encode() + b"\r\n"


def make_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("2020-01/", "")
        for month in ("2019-12", "2020-01"):
            for force in ("essex", "durham", "city-of-london"):
                archive.writestr(f"{month}/{month}-{force}-stop-and-search.csv",
                                 archive_csv(month, 3 if force == "essex" else 1))
            archive.writestr(f"{month}/{month}-essex-street.csv", "Crime ID,Month\r\n1,x\r\n")
            archive.writestr(f"{month}/{month}-essex-outcomes.csv", "Crime ID,Month\r\n1,x\r\n")
        # A hostile member path: must not be written outside the destination.
        archive.writestr("../../2020-01-kent-stop-and-search.csv", archive_csv("2020-01"))
    return buffer.getvalue()


@pytest.fixture(scope="module")
def zip_bytes() -> bytes:
    return make_zip()


def zip_server(zip_bytes: bytes) -> FakeServer:
    def handler(request: httpx.Request) -> httpx.Response:
        assert str(request.url) == "https://data.police.uk/data/archive/2020-01.zip"
        chunks = [zip_bytes[i:i + 1000] for i in range(0, len(zip_bytes), 1000)]
        return httpx.Response(200, content=iter(chunks))  # streamed, no Content-Length

    return FakeServer(handler)


def test_archive_extracts_only_requested_forces_and_months(tmp_path: Path,
                                                           zip_bytes: bytes) -> None:
    server = zip_server(zip_bytes)
    dest = tmp_path / "data"
    paths = dl.fetch_archive("2020-01", ["essex", "durham"], dest, months=["2019-12", "2020-01"],
                             cache_dir=tmp_path / "cache", client=server.client)
    assert [p.relative_to(dest).as_posix() for p in paths] == [
        "2019-12/2019-12-durham-stop-and-search.csv",
        "2019-12/2019-12-essex-stop-and-search.csv",
        "2020-01/2020-01-durham-stop-and-search.csv",
        "2020-01/2020-01-essex-stop-and-search.csv",
    ]
    assert cache_files(dest) == [p.relative_to(dest).as_posix() for p in paths]
    assert not (tmp_path / "2020-01-kent-stop-and-search.csv").exists()
    frame, report = police_uk.read_archive_file(paths[-1])
    assert len(frame) == 3 and report.errors == [] and (frame["force"] == "essex").all()
    assert frame["outcome"].tolist() == ["Arrest"] * 3
    cached = tmp_path / "cache" / "archive" / "2020-01.zip"
    assert cached.read_bytes() == zip_bytes
    assert cache.recorded_sha256(cached) == hashlib.sha256(zip_bytes).hexdigest()


def test_archive_defaults_to_its_own_month_and_reuses_the_cached_zip(tmp_path: Path,
                                                                      zip_bytes: bytes) -> None:
    server = zip_server(zip_bytes)
    first = dl.fetch_archive("2020-01", "essex", tmp_path / "a", cache_dir=tmp_path / "cache",
                             client=server.client)
    second = dl.fetch_archive("2020-01", None, tmp_path / "b", cache_dir=tmp_path / "cache",
                              client=server.client)
    assert [p.name for p in first] == ["2020-01-essex-stop-and-search.csv"]
    assert [p.name for p in second] == [
        "2020-01-city-of-london-stop-and-search.csv", "2020-01-durham-stop-and-search.csv",
        "2020-01-essex-stop-and-search.csv", "2020-01-kent-stop-and-search.csv"]
    assert all(p.parent == tmp_path / "b" / "2020-01" for p in second)
    assert len(server.requests) == 1


def test_archive_missing_force_warns_or_fails_clearly(tmp_path: Path, zip_bytes: bytes) -> None:
    server = zip_server(zip_bytes)
    with pytest.warns(UserWarning, match="no stop-and-search file for merseyside 2020-01"):
        paths = dl.fetch_archive("2020-01", ["essex", "merseyside"], tmp_path / "d",
                                 cache_dir=tmp_path / "cache", client=server.client)
    assert [p.name for p in paths] == ["2020-01-essex-stop-and-search.csv"]
    with pytest.raises(http.DownloadError, match=r"the zip has months 2019-12\.\.2020-01"):
        dl.fetch_archive("2020-01", ["merseyside"], tmp_path / "d",
                         cache_dir=tmp_path / "cache", client=server.client)


def test_archive_that_is_not_a_zip_is_not_cached(tmp_path: Path) -> None:
    server = FakeServer(lambda request: httpx.Response(200, content=b"PK\x03\x04 truncated"))
    with pytest.raises(http.DownloadError, match="did not return a complete zip file"):
        dl.fetch_archive("2020-01", ["essex"], tmp_path / "d", cache_dir=tmp_path / "cache",
                         client=server.client)
    assert not (tmp_path / "cache").exists() or cache_files(tmp_path / "cache") == []


def test_archive_offline_without_cache(tmp_path: Path) -> None:
    server = FakeServer(offline)
    with pytest.raises(http.OfflineError, match="data/archive/2020-01.zip: this machine appears"):
        dl.fetch_archive("2020-01", ["essex"], tmp_path / "d", cache_dir=tmp_path / "cache",
                         client=server.client)


def test_police_uk_api_source_reads_the_cache(tmp_path: Path) -> None:
    """A `police_uk_api` source in rudi.yaml downloads into its cache folder once; a project
    run then reads the cached month without touching the network."""
    from rudikit.config import Source
    from rudikit.data.sources import load_source

    server = FakeServer(respond_file(STOPS))
    dl.fetch_stops_force("city-of-london", "2024-01", cache_dir=tmp_path / "cache",
                         client=server.client)
    source = Source(name="api", kind="police_uk_api", force="city-of-london",
                    months=["2024-01"], path=str(tmp_path / "cache"))
    loaded = load_source(source, tmp_path, "data.sources[0]")
    assert len(server.requests) == 1
    assert loaded.origin == "real" and len(loaded.files) == 1
    assert len(loaded.frame) == len(json.loads(STOPS.read_text()))
    assert (loaded.frame["force"] == "city-of-london").all()
