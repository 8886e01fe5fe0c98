"""The one connect(): SQLite features, PRAGMAs, vector encoding."""

from __future__ import annotations

import numpy as np
import pytest

from abathur_memory.errors import InvalidInput
from abathur_memory.store.sqlite import driver, vectors


def test_connect_has_fts5_and_jsonb_and_loads_no_extension(db_path):
    conn = driver.connect(db_path)
    try:
        assert driver.sqlite_version_info() >= (3, 45, 0)
        with pytest.raises(driver.OperationalError, match="no such function"):
            conn.execute("SELECT vec_version()")  # sqlite-vec was measured and dropped
        conn.execute("CREATE VIRTUAL TABLE t USING fts5(body)")
        conn.execute("INSERT INTO t VALUES ('hello world')")
        assert conn.execute("SELECT count(*) FROM t WHERE t MATCH 'hello'").fetchone()[0] == 1
        assert conn.execute("SELECT json_valid('{\"a\": 1}')").fetchone()[0] == 1
        assert conn.execute("SELECT json(jsonb('[1,2]'))").fetchone()[0] == "[1,2]"
    finally:
        conn.close()


def test_every_connection_gets_the_seed_pragmas(db_path):
    for _ in range(2):  # a second connection to an existing file gets them too
        conn = driver.connect(db_path, busy_timeout_ms=1234)
        try:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1
            assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
            assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 1234
            assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
        finally:
            conn.close()


def test_read_only_connection_refuses_writes(db_path):
    driver.connect(db_path).close()
    conn = driver.connect(db_path, read_only=True)
    try:
        with pytest.raises(driver.OperationalError):
            conn.execute("CREATE TABLE x (a)")
    finally:
        conn.close()


def test_busy_errors_are_recognised(db_path):
    first = driver.connect(db_path)
    second = driver.connect(db_path, busy_timeout_ms=10)
    try:
        first.execute("CREATE TABLE t (a)")
        first.execute("BEGIN IMMEDIATE")
        with pytest.raises(driver.OperationalError) as caught:
            second.execute("BEGIN IMMEDIATE")
        assert driver.is_busy_error(caught.value)
        assert not driver.is_busy_error(ValueError("locked"))
        first.execute("ROLLBACK")
    finally:
        first.close()
        second.close()


def test_vectors_round_trip_as_float32_little_endian():
    blob = vectors.encode([1.0, -2.5, 3.25], dim=3)
    assert blob == np.array([1.0, -2.5, 3.25], dtype="<f4").tobytes()
    assert vectors.decode(blob, dim=3).tolist() == [1.0, -2.5, 3.25]
    matrix = vectors.decode_many([blob, blob], dim=3)
    assert matrix.shape == (2, 3)


@pytest.mark.parametrize(
    ("value", "dim", "message"),
    [
        ([1.0, 2.0], 3, "expected 3"),
        ([[1.0], [2.0]], None, "one-dimensional"),
        ([1.0, float("nan")], None, "NaN"),
        ([float("inf")], None, "NaN or infinity"),
    ],
)
def test_vectors_refuse_bad_input(value, dim, message):
    with pytest.raises(InvalidInput, match=message):
        vectors.encode(value, dim=dim)


def test_vectors_refuse_bad_blobs():
    with pytest.raises(InvalidInput, match="whole number"):
        vectors.decode(b"\x00\x00\x00")
    with pytest.raises(InvalidInput, match="expected 4"):
        vectors.decode(vectors.encode([1.0, 2.0]), dim=4)
    with pytest.raises(InvalidInput, match="dimensions"):
        vectors.decode_many([vectors.encode([1.0]), vectors.encode([1.0, 2.0])], dim=1)
