"""An exporter retry with the same run id after a ``kill -9``, in a folder and on S3 (moto's server).

The guarantees under test (README, Exporting): a retry re-exports only the partitions without a manifest; a
committed partition's files are never rewritten (bytes, modification times and S3 versions compared); every
committed run folder holds exactly the files its manifest lists; nothing a killed attempt left survives the
retry — neither hidden temp files nor S3 multipart uploads. The kill is ``SIGKILL`` at a chosen point
(:mod:`tests.killpoints`), so each run leaves the same debris.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import duckdb
import pytest

from pipeline.core.lake import MANIFEST_NAME
from pipeline.core.manifest import Manifest
from pipeline.export import export
from pipeline.sources import open_source
from pipeline.stores import LocalStore, Store, open_store
from tests.exporting import days, make_kpi, read_partition

ROOT = Path(__file__).resolve().parent.parent
RUN = "20240304T060000000Z-abcdef"
DAYS = ("2024-03-01", "2024-03-02", "2024-03-03")
HEADER = """
grain: day
time_column: day
timezone: Asia/Tokyo
columns:
  day: {type: DATE}
  id:  {type: INT64}
  pad: {type: STRING}
"""
SQL = "SELECT CAST(created_at AS DATE) AS day, id, pad FROM big WHERE created_at >= :start AND created_at < :end"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A KPI over a DuckDB shop whose first day is large enough (about 11 MB of Parquet) for a multipart upload."""
    make_kpi(tmp_path / "q", "big", HEADER, SQL)
    with duckdb.connect(str(tmp_path / "shop.duckdb")) as db:
        db.execute(
            "CREATE TABLE big AS SELECT TIMESTAMP '2024-03-01 01:00' + INTERVAL (range % 3600) SECOND AS created_at,"
            " range AS id, md5(range::VARCHAR) || md5((range * 7)::VARCHAR) AS pad FROM range(400000)"
        )
        db.execute("INSERT INTO big SELECT TIMESTAMP '2024-03-02 10:00', 1000000 + range, 'x' FROM range(5)")
        db.execute("INSERT INTO big SELECT TIMESTAMP '2024-03-03 10:00', 2000000 + range, 'y' FROM range(7)")
    return tmp_path


def kpi_export(project: Path, lake: str, kill: str | None = None) -> subprocess.CompletedProcess[str]:
    """``kpi export big --start … --end … --run-id RUN`` in a child process, killed at ``kill`` if given."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("KPI_TEST_KILL", None)
    if kill:
        env["KPI_TEST_KILL"] = kill
    command = [sys.executable, "-m", "tests.killpoints", "--queries", str(project / "q"), "export", "big"]
    command += ["--start", DAYS[0], "--end", DAYS[-1], "--run-id", RUN]
    command += ["--source", f"duckdb:///{project / 'shop.duckdb'}", "--lake", lake, "--json"]
    return subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=300, check=False)


def run_folder(day: str) -> str:
    return f"big/day={day}/run={RUN}"


def manifest_of(store: Store, day: str) -> Manifest:
    key = f"{run_folder(day)}/{MANIFEST_NAME}"
    return Manifest.parse(store.get_bytes(key), where=key, hint="")


# -- a folder ------------------------------------------------------------------------------------------------------


def on_disk(lake: Path, day: str) -> dict[str, tuple[bytes, int, int]]:
    """Every file of a run folder, hidden ones included: name → (bytes, mtime in ns, inode)."""
    folder = lake / run_folder(day)
    found = {}
    for name in sorted(os.listdir(folder)) if folder.exists() else []:
        stat = (folder / name).stat()
        found[name] = ((folder / name).read_bytes(), stat.st_mtime_ns, stat.st_ino)
    return found


def assert_committed_exactly(store: Store, lake: Path) -> None:
    for day in DAYS:
        manifest = manifest_of(store, day)
        listed = sorted(f.path.rsplit("/", 1)[1] for f in manifest.files)
        assert sorted(on_disk(lake, day)) == sorted([MANIFEST_NAME, *listed]), day  # nothing else, hidden or not
        assert manifest.run_id == RUN
        assert read_partition(store, manifest).num_rows == manifest.rows


def test_a_retry_after_a_kill_mid_write_removes_its_files_and_temp_files_and_commits_every_partition(
    project: Path,
) -> None:
    lake = project / "lake"
    # Files are published one partition after another once the stream ended: kill at the last one's.
    killed = kpi_export(project, str(lake), kill=f"os.link:*/day={DAYS[2]}/*/part-00000.parquet")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    debris = {day: sorted(on_disk(lake, day)) for day in DAYS}
    assert debris[DAYS[0]] == debris[DAYS[1]] == ["part-00000.parquet"]  # complete, but no manifest names them
    (temp,) = debris[DAYS[2]]
    assert temp.startswith(".part-00000.parquet.")
    assert temp.endswith(".tmp")

    retried = kpi_export(project, str(lake))
    assert retried.returncode == 0, retried.stderr
    assert [(p["partition"], p["rows"]) for p in json.loads(retried.stdout)] == [
        ("2024-03-01", 400_000),
        ("2024-03-02", 5),
        ("2024-03-03", 7),
    ]
    assert_committed_exactly(LocalStore(lake), lake)


def test_a_retry_after_a_kill_between_two_commits_leaves_the_committed_partition_untouched(project: Path) -> None:
    lake = project / "lake"
    killed = kpi_export(project, str(lake), kill=f"os.replace:*/day={DAYS[1]}/*/{MANIFEST_NAME}")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    first = on_disk(lake, DAYS[0])
    assert MANIFEST_NAME in first  # committed before the kill
    assert any(n.startswith(f".{MANIFEST_NAME}.") for n in on_disk(lake, DAYS[1]))  # the manifest being written
    assert MANIFEST_NAME not in on_disk(lake, DAYS[2])

    retried = kpi_export(project, str(lake))
    assert retried.returncode == 0, retried.stderr
    assert on_disk(lake, DAYS[0]) == first  # same names, bytes, modification times and inodes: never rewritten
    assert_committed_exactly(LocalStore(lake), lake)

    done = {day: on_disk(lake, day) for day in DAYS}
    again = kpi_export(project, str(lake))  # every partition committed now: the retry writes nothing at all
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == json.loads(retried.stdout)
    assert {day: on_disk(lake, day) for day in DAYS} == done


def test_an_in_process_retry_skips_the_committed_partitions_rows(project: Path) -> None:
    """The same rule without a kill: the first attempt's third partition is lost (its manifest deleted, as if the
    commit never happened); the retry writes that one alone and returns the committed manifests as they were."""
    kpi = make_kpi(project / "q", "big", HEADER, SQL)
    store, source = LocalStore(project / "lake"), open_source(f"duckdb:///{project / 'shop.duckdb'}")
    first = export(kpi, days(DAYS[0], 3), source=source, store=store, run_id=RUN)
    store.delete([f"{run_folder(DAYS[2])}/{MANIFEST_NAME}"])
    before = {day: on_disk(project / "lake", day) for day in DAYS[:2]}
    retried = export(kpi, days(DAYS[0], 3), source=source, store=store, run_id=RUN)
    assert retried[:2] == first[:2]  # the committed manifests, read back unchanged
    assert retried[2].rows == 7
    assert retried[2].started_at != first[2].started_at  # this one was exported again
    assert {day: on_disk(project / "lake", day) for day in DAYS[:2]} == before


# -- S3 --------------------------------------------------------------------------------------------------------------


def s3_state(bucket: str, day: str) -> dict[str, Any]:
    """A run folder as S3 holds it: the current objects (key → ETag), every version and delete marker ever made
    (key → [(ETag, LastModified, VersionId)]), and the multipart uploads not completed."""
    s3, prefix = boto3.client("s3"), f"lake/{run_folder(day)}/"
    versions = s3.list_object_versions(Bucket=bucket, Prefix=prefix)
    history: dict[str, list[tuple[str, Any, str]]] = {}
    for version in versions.get("Versions", []) + versions.get("DeleteMarkers", []):
        history.setdefault(version["Key"], []).append(
            (version.get("ETag", "deleted"), version["LastModified"], version["VersionId"])
        )
    current = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    uploads = s3.list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads", [])
    return {
        "objects": {o["Key"]: o["ETag"] for o in current},
        "history": {key: sorted(found, key=str) for key, found in history.items()},
        "uploads": [u["Key"] for u in uploads],
    }


@pytest.fixture
def versioned_bucket(s3_bucket: str) -> str:
    """Versioned, as the deployed lake is: an overwrite would show as a second version."""
    boto3.client("s3").put_bucket_versioning(Bucket=s3_bucket, VersioningConfiguration={"Status": "Enabled"})
    return s3_bucket


def assert_committed_exactly_on_s3(bucket: str) -> None:
    store = open_store(f"s3://{bucket}/lake")
    for day in DAYS:
        manifest = manifest_of(store, day)
        state = s3_state(bucket, day)
        assert state["uploads"] == []
        expected = sorted([f"lake/{run_folder(day)}/{MANIFEST_NAME}", *(f"lake/{f.path}" for f in manifest.files)])
        assert sorted(state["objects"]) == expected, day
        assert read_partition(store, manifest).num_rows == manifest.rows


def test_a_retry_after_a_kill_mid_upload_aborts_the_multipart_upload(project: Path, versioned_bucket: str) -> None:
    lake = f"s3://{versioned_bucket}/lake"
    killed = kpi_export(project, lake, kill=f"s3:UploadPart:day={DAYS[0]}")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert s3_state(versioned_bucket, DAYS[0])["uploads"] == [f"lake/{run_folder(DAYS[0])}/part-00000.parquet"]

    retried = kpi_export(project, lake)
    assert retried.returncode == 0, retried.stderr
    assert_committed_exactly_on_s3(versioned_bucket)
    everything = boto3.client("s3").list_multipart_uploads(Bucket=versioned_bucket).get("Uploads", [])
    assert everything == []  # the killed attempt's upload was aborted, not left for the lifecycle rule


def test_a_retry_after_a_kill_between_two_commits_on_s3_never_rewrites_the_committed_one(
    project: Path, versioned_bucket: str
) -> None:
    lake = f"s3://{versioned_bucket}/lake"
    killed = kpi_export(project, lake, kill=f"s3:PutObject:day={DAYS[1]}/run={RUN}/{MANIFEST_NAME}")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    first = s3_state(versioned_bucket, DAYS[0])
    assert f"lake/{run_folder(DAYS[0])}/{MANIFEST_NAME}" in first["objects"]
    assert f"lake/{run_folder(DAYS[1])}/{MANIFEST_NAME}" not in s3_state(versioned_bucket, DAYS[1])["objects"]

    retried = kpi_export(project, lake)
    assert retried.returncode == 0, retried.stderr
    assert s3_state(versioned_bucket, DAYS[0]) == first  # the same versions, ETags and times: never rewritten
    assert all(len(found) == 1 for found in first["history"].values())  # and never written twice before either
    assert_committed_exactly_on_s3(versioned_bucket)
