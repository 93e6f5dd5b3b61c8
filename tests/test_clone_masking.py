"""Masking for the clone: rule files, the coverage gate, the engine on the real MariaDB, the PII scan.

The shop in tests/clone_masking.py has users with unique e-mails and logins, a JSON profile, orders that
carry the user's e-mail under a foreign key, addresses, sessions and an audit log. Expected masked values are
computed in Python with ``hmac`` (:func:`pipeline.clone.reference_value`), so every comparison also checks
that the server's SQL is real HMAC-SHA256 — and that no row was masked twice (a second pass would give
another value).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from pipeline.clone import (
    JOURNAL_TABLE,
    CloneError,
    CoverageError,
    KeyPads,
    RuleFile,
    RuleFileError,
    Strategy,
    apply_stubs,
    check_coverage,
    check_databases,
    find_pii,
    journal_state,
    load_rules,
    mask,
    masking,
    new_rule_file,
    parse_rules,
    plan_masking,
    reference_value,
)
from pipeline.clone.model import ColumnRule
from pipeline.clone.mysql import list_databases, read_schema
from pipeline.clone.scan import luhn
from pipeline.clone.schema import Column, Schema, Table
from pipeline.clone.sql import IPAD_VARIABLE, OPAD_VARIABLE, keyed_hash, message_of
from pipeline.errors import Location
from tests.clone_masking import RULES, USERS, create_shop, email_of, phone_of
from tests.conftest import ROOT, MySqlServer, demo_schema_statements

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
SHOP_TABLES = ["addresses", "audit_log", "email_events", "order_items", "orders", "sessions", "users"]
EMAIL = ColumnRule(Strategy.EMAIL, Location(""), length=16)
LOGIN = ColumnRule(Strategy.LOGIN, Location(""), length=16)
PHONE = ColumnRule(Strategy.PHONE, Location(""))


def rules_for(database: str, text: str = RULES, path: str = "masking/shop.yaml") -> RuleFile:
    rules, problems = parse_rules(path, text, database)
    assert problems == []
    assert rules is not None
    return rules


def dump(connection: Any, table: str) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM `{table}` ORDER BY 1")
        rows = list(cursor.fetchall())
    connection.commit()
    return rows


def dump_ordered(connection: Any, table: str, order: str) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM `{table}` ORDER BY {order}")
        rows = list(cursor.fetchall())
    connection.commit()
    return rows


def tables_of(connection: Any) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SHOW TABLES")
        names = sorted(name for (name,) in cursor.fetchall())
    connection.commit()
    return names


@pytest.fixture
def databases(mysql_server: MySqlServer) -> Iterator[Callable[[], Any]]:
    """Makes fresh databases holding the shop; returns an open connection to each; drops them all afterwards."""
    made: list[tuple[str, Any]] = []

    def make() -> Any:
        name = f"kpi_test_{uuid.uuid4().hex[:12]}"
        with mysql_server.connect() as admin, admin.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        connection = replace(mysql_server, database=name).connect(charset="utf8mb4")
        made.append((name, connection))
        create_shop(connection)
        return connection

    yield make
    for name, connection in made:
        connection.close()
        with mysql_server.connect() as admin, admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")


def database_of(connection: Any) -> str:
    return str(connection.db.decode() if isinstance(connection.db, bytes) else connection.db)


# -- rule files ---------------------------------------------------------------------------------------------------


def test_rule_file_problems_have_positions_hints_and_suggestions() -> None:
    text = (
        "tables:\n"
        "  users:\n"
        "    colums:\n"
        "      id: keep\n"
        "  orders:\n"
        "    columns:\n"
        "      id: keep\n"
        "      email: emial\n"
        "      note:\n"
        "      phone: {phone: {format: '090-##'}}\n"
        "      memo: fixed\n"
        "      profile: {json: {'$.a[*]': null}}\n"
        "  sessions: truncate\n"
        "scan: {sample: 0}\n"
    )
    rules, problems = parse_rules("masking/shop.yaml", text)
    assert rules is not None
    assert [(str(p.location), p.rule, p.message) for p in problems] == [
        ("masking/shop.yaml:3:5", "unknown-key", "unknown key of table 'users' 'colums' (did you mean 'columns'?)"),
        ("masking/shop.yaml:2:3", "missing-columns", "table 'users' has neither `columns:` nor `truncate`"),
        ("masking/shop.yaml:8:14", "unknown-strategy", "unknown strategy 'emial' (did you mean 'email'?)"),
        ("masking/shop.yaml:9:7", "empty-rule", "column 'note' has no rule"),
        (
            "masking/shop.yaml:10:31",
            "invalid-format",
            "phone format must be digits, + - ( ) . spaces and 4 to 17 '#', found '090-##'",
        ),
        ("masking/shop.yaml:11:13", "missing-value", "`fixed` needs a value: {fixed: VALUE}: one value in every row"),
        ("masking/shop.yaml:12:24", "invalid-path", "'$.a[*]' is not a JSON path this engine applies"),
        ("masking/shop.yaml:14:16", "invalid-value", "sample must be 1 or more, found 0"),
    ]
    assert problems[2].hint.startswith("allowed: keep, null, fixed, sql, hash, email")
    assert rules.database == "shop"
    assert rules.tables["sessions"].truncate


def test_null_spelt_out_is_the_null_strategy_and_yaml_errors_point_at_the_line() -> None:
    rules, problems = parse_rules("m.yaml", "tables:\n  t:\n    columns:\n      a: null\n      b: {fixed: 0}\n")
    assert problems == []
    assert rules is not None
    assert rules.tables["t"].columns["a"].strategy is Strategy.NULL
    assert rules.tables["t"].columns["b"].value == 0
    _, problems = parse_rules("m.yaml", "tables:\n  t:\n    columns:\n      a: keep\n     b: keep\n")
    assert [(str(p.location), p.rule) for p in problems] == [("m.yaml:5:6", "yaml-syntax")]
    _, problems = parse_rules("m.yaml", "database: shop\n")
    assert [(str(p.location), p.rule) for p in problems] == [("m.yaml:1:1", "missing-tables")]


def test_rules_that_do_not_fit_their_columns() -> None:
    users = Table(
        "users",
        (
            Column("users", "id", "bigint", "bigint", nullable=False),
            Column("users", "email", "varchar", "varchar(20)", nullable=False, max_length=20),
            Column("users", "age", "int", "int", nullable=False),
            Column("users", "domain", "varchar", "varchar(64)", max_length=64, generated=True),
        ),
        primary_key=("id",),
    )
    text = (
        "tables:\n  users:\n    columns:\n      id: hash\n      email: email\n      age: null\n"
        "      domain: null\n      nickname: keep\n  usres: truncate\n"
    )
    rules = rules_for("shop", text)
    coverage = check_coverage(rules, Schema("shop", {"users": users}))
    assert [(p.location.line, p.rule, p.message) for p in coverage.problems] == [
        (
            4,
            "primary-key-masked",
            "users.id is part of the primary key: masking walks the table by it and cannot change it",
        ),
        (4, "wrong-column-type", "`hash` writes text, but users.id is bigint"),
        (5, "too-long", "`email (length 16)` writes 34 characters; users.email holds 20"),
        (6, "null-not-allowed", "users.age is NOT NULL"),
        (7, "generated-column", "users.domain is a generated column: it follows the columns it is computed from"),
        (8, "unknown-column", "column 'nickname' is not in table users"),
        (9, "unknown-table", "table 'usres' is not in database shop (did you mean 'users'?)"),
    ]


def test_the_shop_rules_cover_the_demo_schema(mysql_db: MySqlServer) -> None:
    with mysql_db.connect() as connection:
        with connection.cursor() as cursor:
            for statement in demo_schema_statements():
                cursor.execute(statement)
        rules = load_rules(ROOT / "masking" / "shop.yaml", mysql_db.database)
        plan = plan_masking(connection, rules)
        connection.commit()
    assert [t.name for t in plan.tables] == ["orders", "users"]
    assert plan.text().splitlines()[-1] == "coverage: 10 columns in 2 tables, every one covered (9 kept)"


# -- keyed hashing ------------------------------------------------------------------------------------------------


def test_the_servers_keyed_hash_is_hmac_sha256(mysql_server: MySqlServer) -> None:
    long_key = b"a much longer key than sha-256's block of sixty-four bytes, hashed first" * 2
    values = ["taro@example.jp", "", "日本語のメモ 😀", "x" * 500]
    with mysql_server.connect(charset="utf8mb4") as connection, connection.cursor() as cursor:
        for key in (KEY, long_key):
            pads = KeyPads.from_key(key)
            cursor.execute(
                f"SET {IPAD_VARIABLE} = UNHEX(%s), {OPAD_VARIABLE} = UNHEX(%s)", (pads.inner.hex(), pads.outer.hex())
            )
            for value in values:
                cursor.execute(f"SELECT {keyed_hash(message_of('%s', None))}", (value,))
                assert cursor.fetchone()[0] == hmac.new(key, value.encode(), hashlib.sha256).hexdigest()
    assert "inner" not in repr(KeyPads.from_key(KEY))
    with pytest.raises(CloneError, match="at least 16 bytes"):
        KeyPads.from_key(b"short")


# -- the engine ---------------------------------------------------------------------------------------------------


def assert_masked_exactly_once(connection: Any, key: bytes) -> None:
    """Every masked value is the rule applied once to the original (tests/clone_masking.py's generator)."""
    for user_id, email, login, name, phone, profile, note in [r[:7] for r in dump(connection, "users")]:
        assert email == reference_value(EMAIL, email_of(user_id), key)
        assert login.startswith("user_")
        assert len(login) == 21
        assert len(name) == 64
        assert note is None
        assert phone == (reference_value(PHONE, phone_of(user_id), key) if user_id % 4 else None)
        if user_id % 17 == 0:
            assert profile is None
            continue
        document = json.loads(profile)
        assert document["phone"] == (reference_value(PHONE, phone_of(user_id), key) if user_id % 10 else None)
        assert document["birthday"] is None
        assert document["nickname"] == reference_value(
            LOGIN, f"{['taro', 'hanako', 'yuki', 'ken', 'aiko', 'sho', 'mei', 'riku'][user_id % 8]}{user_id}", key
        )
        assert document["prefs"] == {"newsletter": user_id % 2 == 0, "theme": "dark"}
    for _, user_id, user_email, *_ in dump(connection, "orders"):
        assert user_email == reference_value(EMAIL, email_of(user_id), key)
    for _, user_id, _, _, line1, phone in dump(connection, "addresses"):
        assert phone == reference_value(PHONE, phone_of(user_id), key)
        expected = hmac.new(key, f"{user_id}-1 Chiyoda".encode(), hashlib.sha256).hexdigest()[:8]
        assert line1 == f"1-2-3 {expected}"
    for order_id, line_no, _, gift_message in dump_ordered(connection, "order_items", "order_id, line_no"):
        message = f"happy birthday {order_id}".encode()
        assert gift_message == (hmac.new(key, message, hashlib.sha256).hexdigest() if line_no == 1 else None)
    events = dump_ordered(connection, "email_events", "event, email")
    assert sorted(email for email, _ in events) == sorted(
        reference_value(EMAIL, email_of(i), key) for i in range(1, 101)
    )
    audit = dump(connection, "audit_log")
    assert [r[0] for r in audit] == list(range(1, 201, 2))  # the 2023 rows are deleted
    assert all(r[1] == reference_value(EMAIL, email_of(r[0]), key) for r in audit)
    assert dump(connection, "sessions") == []
    assert tables_of(connection) == SHOP_TABLES  # no journal, no helper table


def test_masking_is_deterministic_keeps_joins_and_uniqueness(databases: Callable[[], Any]) -> None:
    first, second, third = databases(), databases(), databases()
    report = mask(first, rules_for(database_of(first)), KEY, chunk_rows=63)  # odd: chunks split an order's lines
    assert [str(t) for t in report.tables] == [
        "addresses: 400 rows changed in 7 chunks",
        "audit_log: 100 rows deleted; 100 rows changed in 2 chunks",
        "email_events: 100 rows changed in 1 chunk",
        "order_items: 100 rows changed in 4 chunks",
        "orders: 800 rows changed in 13 chunks",
        "sessions: truncated",
        "users: 400 rows changed in 7 chunks",
    ]
    assert report.text().endswith("PII scan: 9 columns sampled, nothing found")
    mask(second, rules_for(database_of(second)), KEY, chunk_rows=1000)
    mask(third, rules_for(database_of(third)), OTHER_KEY)
    assert_masked_exactly_once(first, KEY)
    for table in SHOP_TABLES:  # same key, another database, other chunk sizes: the same values
        assert dump(first, table) == dump(second, table)
    changed = [a[1] != b[1] for a, b in zip(dump(first, "users"), dump(third, "users"), strict=True)]
    assert all(changed)  # another key: other values
    with first.cursor() as cursor:
        cursor.execute("SELECT COUNT(DISTINCT email), COUNT(DISTINCT login), COUNT(*) FROM users")
        assert cursor.fetchone() == (USERS, USERS, USERS)
        cursor.execute("SELECT COUNT(*) FROM orders o JOIN users u ON u.email = o.user_email AND u.id = o.user_id")
        assert cursor.fetchone() == (2 * USERS,)  # the e-mail join finds the same user as the id join
        cursor.execute(
            "SELECT COUNT(*) FROM users u JOIN addresses a ON a.user_id = u.id "
            "WHERE u.phone = a.phone AND JSON_UNQUOTE(JSON_EXTRACT(u.profile, '$.phone')) = a.phone"
        )
        assert cursor.fetchone() == (len([i for i in range(1, USERS + 1) if i % 4 and i % 10 and i % 17]),)
    first.commit()


def test_a_rerun_does_nothing(databases: Callable[[], Any]) -> None:
    class Marker:
        digest: str | None = None

        def finished(self) -> str | None:
            return self.digest

        def record(self, digest: str) -> None:
            self.digest = digest

    connection = databases()
    rules = rules_for(database_of(connection))
    marker = Marker()
    assert mask(connection, rules, KEY, marker=marker).status == "masked"
    before = dump(connection, "users")
    assert mask(connection, rules, KEY, marker=marker).status == "already masked"
    with pytest.raises(CloneError, match="looks masked already") as caught:  # no marker: refused by content
        mask(connection, rules, KEY)
    assert "users.email, users.login hold masked values" in str(caught.value)
    assert dump(connection, "users") == before


def test_a_unique_collision_is_refused_before_anything_is_written(databases: Callable[[], Any]) -> None:
    connection = databases()
    before = {table: dump(connection, table) for table in SHOP_TABLES}
    rules = rules_for(
        database_of(connection), RULES.replace("      email: email\n", "      email: {email: {length: 2}}\n")
    )
    with pytest.raises(CloneError) as caught:
        mask(connection, rules, KEY)
    message = str(caught.value)
    assert "masking would merge distinct values of a unique key into one: users(email):" in message
    assert "(email: email (length 2))" in message
    assert "nothing was written" in message
    assert {table: dump(connection, table) for table in SHOP_TABLES} == before
    assert journal_state(connection, database_of(connection)) is None


def test_the_gate_refuses_an_unclassified_column_and_its_stub_lets_it_through(databases: Callable[[], Any]) -> None:
    connection = databases()
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE users ADD COLUMN secondary_email VARCHAR(255) NULL AFTER email")
        cursor.execute("UPDATE users SET secondary_email = CONCAT('alt', id, '@gmail.com') WHERE id % 2 = 0")
        cursor.execute(
            "CREATE TABLE coupons (id BIGINT NOT NULL PRIMARY KEY, code VARCHAR(32) NOT NULL UNIQUE, "
            "owner_phone VARCHAR(32) NULL, issued_at DATETIME NOT NULL)"
        )
        cursor.execute("INSERT INTO coupons VALUES (1, 'SPRING-24', '03-1234-5678', NOW())")
    connection.commit()
    rules = rules_for(database_of(connection))
    with pytest.raises(CoverageError) as caught:
        mask(connection, rules, KEY)
    error = caught.value
    assert [(str(p.location), p.message) for p in error.problems] == [
        ("masking/shop.yaml:2:1", "coupons.id (bigint NOT NULL) has no masking rule"),
        ("masking/shop.yaml:2:1", "coupons.code (varchar(32) NOT NULL) has no masking rule"),
        ("masking/shop.yaml:2:1", "coupons.owner_phone (varchar(32) NULL) has no masking rule"),
        ("masking/shop.yaml:2:1", "coupons.issued_at (datetime NOT NULL) has no masking rule"),
        ("masking/shop.yaml:3:3", "users.secondary_email (varchar(255) NULL) has no masking rule"),
    ]
    assert [stub.text for stub in error.stubs] == [
        "  coupons:\n"
        "    columns:\n"
        "      id: keep            # bigint NOT NULL, primary key; suggested — review\n"
        "      code: hash          # varchar(32) NOT NULL, unique; suggested — review\n"
        "      owner_phone: phone  # varchar(32) NULL; suggested — review\n"
        "      issued_at: keep     # datetime NOT NULL; suggested — review\n",
        "      secondary_email: email  # varchar(255) NULL; suggested — review\n",
    ]
    assert "paste into masking/shop.yaml after line 4 (table users), then review each guess:" in str(error)
    assert dump(connection, "users")[1][2] == "alt2@gmail.com"  # nothing touched
    pasted = apply_stubs(RULES, error.stubs)
    report = mask(connection, rules_for(database_of(connection), pasted), KEY)
    assert report.status == "masked"
    rows = dump(connection, "users")
    assert rows[0][2] is None
    assert rows[1][2] == reference_value(EMAIL, "alt2@gmail.com", KEY)
    assert dump(connection, "coupons")[0][2] == reference_value(PHONE, "03-1234-5678", KEY)


def test_the_scan_catches_a_column_wrongly_marked_keep(databases: Callable[[], Any]) -> None:
    connection = databases()
    database = database_of(connection)
    rules = rules_for(database, RULES.replace("      note: null\n", "      note: keep\n"))
    with pytest.raises(CloneError) as caught:
        mask(connection, rules, KEY)
    assert str(caught.value).splitlines()[:3] == [
        "masking/shop.yaml: the PII scan found personal data after masking; nothing may be shared:",
        "  users.note: email in 133 of 133 sampled values (first at key 3)",
        "  users.note: phone in 133 of 133 sampled values (first at key 3)",
    ]
    state = journal_state(connection, database)
    connection.commit()
    assert state is not None
    assert state.step == "masked"
    before = dump(connection, "users")
    with pytest.raises(CloneError, match="PII scan"):  # a rerun scans again; it does not mask again
        mask(connection, rules, KEY)
    assert dump(connection, "users") == before


def test_an_interrupted_clone_resumes_without_masking_twice(databases: Callable[[], Any], tmp_path: Path) -> None:
    connection = databases()
    database = database_of(connection)
    rules_path = tmp_path / "shop.yaml"
    rules_path.write_text(RULES, encoding="utf-8")
    host, port = connection.host, connection.port
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.clone_masking",
            host,
            str(port),
            database,
            str(rules_path),
            KEY.hex(),
            "10",
            "0.02",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        deadline = time.monotonic() + 30
        chunks = 0
        while chunks < 4:  # addresses and audit_log done, orders a few chunks in
            assert worker.poll() is None, "the worker finished before it could be interrupted"
            assert time.monotonic() < deadline
            time.sleep(0.01)
            with connection.cursor() as cursor:
                cursor.execute(f"SHOW TABLES LIKE '{JOURNAL_TABLE}'")
                if cursor.fetchone():
                    cursor.execute(f"SELECT chunks FROM {JOURNAL_TABLE} WHERE table_name = 'orders'")
                    chunks = (cursor.fetchone() or (0,))[0]
            connection.commit()
        worker.send_signal(signal.SIGKILL)
    finally:
        worker.kill()
        worker.wait()
    state = journal_state(connection, database)
    connection.commit()
    assert state is not None
    assert state.step == "masking"
    assert state.tables["addresses"].step == "done"
    assert state.tables["users"].step == "pending"
    assert 4 <= state.tables["orders"].chunks < 80
    assert dump(connection, "users")[0][1] == email_of(1)  # untouched yet
    report = mask(connection, load_rules(rules_path, database), KEY, chunk_rows=10)
    orders = next(t for t in report.tables if t.name == "orders")
    assert orders.resumed
    assert orders.rows == 2 * USERS
    assert orders.chunks == 80
    assert_masked_exactly_once(connection, KEY)


# -- the scan's patterns ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("mail taro@gmail.com today", {"email"}),
        ("u_0123456789abcdef@example.invalid", set()),
        ("support@shop.example.com", set()),
        ("TEL:03-1234-5678", {"phone"}),
        ("09012345678", {"phone"}),
        ("電話09012345678", {"phone"}),
        ("+81 90 1234 5678", {"phone"}),
        ("+1 415 555 0100", {"phone"}),
        ("card 4111 1111 1111 1111 exp 12/30", {"card"}),
        ("4111111111111112", set()),  # fails the Luhn check
        ("2024-03-01 12:34:56, order 12345, zip 100-0001", set()),
        ('{"prefs": {"newsletter": true}}', set()),
    ],
)
def test_pii_patterns(text: str, found: set[str]) -> None:
    assert find_pii(text, ["shop.example.com"]) == found


def test_luhn() -> None:
    assert luhn("79927398713")
    assert not luhn("79927398710")


def test_the_schema_reader_sees_mariadb_json_keys_and_triggers(databases: Callable[[], Any]) -> None:
    connection = databases()
    with connection.cursor() as cursor:
        cursor.execute("CREATE TRIGGER users_au AFTER UPDATE ON users FOR EACH ROW SET @x = 1")
        schema = read_schema(cursor, database_of(connection))
    connection.commit()
    users = schema.tables["users"]
    assert users.primary_key == ("id",)
    assert sorted(users.unique_keys) == [("email",), ("login",)]
    assert users.triggers == ("users_au (AFTER UPDATE)",)
    assert [c.name for c in users.columns if c.json] == ["profile"]
    with pytest.raises(CoverageError, match="would fire users_au"):
        mask(connection, rules_for(database_of(connection)), KEY)


def test_a_database_without_rules_gets_a_whole_file_to_review(databases: Callable[[], Any]) -> None:
    connection = databases()
    database = database_of(connection)
    with connection.cursor() as cursor:
        schema = read_schema(cursor, database)
        assert database in list_databases(cursor)
    connection.commit()
    problems = check_databases([database, "mysql_extra"], {database: rules_for(database), "gone": rules_for("gone")})
    assert [(str(p.location), p.rule, p.message) for p in problems] == [
        ("masking/mysql_extra.yaml", "unclassified-database", "database mysql_extra has no masking rule file"),
        ("masking/shop.yaml:1:1", "unknown-database", "database gone is not on the cluster"),
    ]
    text = new_rule_file(schema)
    assert text.splitlines()[:5] == [
        f"# Masking rules for database {database}: review every guess before merging.",
        "tables:",
        "  addresses:",
        "    columns:",
        "      id: keep           # bigint NOT NULL, primary key; suggested — review",
    ]
    assert "      email: email      # varchar(255) NOT NULL, unique; suggested — review" in text.splitlines()
    assert check_coverage(rules_for(database, text), schema).ok


def test_one_run_at_a_time(
    databases: Callable[[], Any], mysql_server: MySqlServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    connection = databases()
    database = database_of(connection)
    monkeypatch.setattr(masking, "LOCK_WAIT_SECONDS", 0)
    with mysql_server.connect() as other, other.cursor() as cursor:
        cursor.execute("SELECT GET_LOCK(%s, 0)", (f"kpi-clone-mask:{database}"[:64],))
        with pytest.raises(CloneError, match=f"another run is masking database {database}") as caught:
            mask(connection, rules_for(database), KEY)
    assert caught.value.retryable
    assert mask(connection, rules_for(database), KEY).status == "masked"  # the lock went with the session


def test_whole_column_rules_and_custom_sql_that_sees_masked_values(databases: Callable[[], Any]) -> None:
    connection = databases()
    profiles = {row[0]: row[5] for row in dump(connection, "users")}
    text = RULES.replace(
        "      profile:\n        json:\n          $.phone: phone\n          $.birthday: null\n"
        "          $.nickname: login\n",
        "      profile: hash\n",
    )
    text = text.replace("      note: null\n", "      note: {sql: \"CONCAT('was ', email)\"}\n")
    text = text.replace("      plan: keep\n", "      plan: {fixed: free}\n")
    mask(connection, rules_for(database_of(connection), text), KEY)
    for user_id, email, _, _, _, profile, note, plan, _ in dump(connection, "users"):
        original = profiles[user_id]
        assert profile == (
            None if original is None else json.dumps(hmac.new(KEY, original.encode(), "sha256").hexdigest())
        )
        assert note == f"was {email}"  # custom SQL runs last: it reads the masked e-mail
        assert plan == "free"


def test_custom_sql_the_server_refuses_is_reported_at_its_rule(databases: Callable[[], Any]) -> None:
    connection = databases()
    text = RULES.replace("LEFT({hash}, 8)", "LEFT(no_such_column, 8)")
    with pytest.raises(RuleFileError) as caught:
        mask(connection, rules_for(database_of(connection), text), KEY)
    assert [(str(p.location), p.rule) for p in caught.value.problems] == [("masking/shop.yaml:24:14", "sql-refused")]
    assert "Unknown column 'no_such_column'" in caught.value.problems[0].message
    assert journal_state(connection, database_of(connection)) is None
    connection.commit()


def test_a_clone_interrupted_after_masking_finishes_without_masking_again(databases: Callable[[], Any]) -> None:
    class Marker:
        def __init__(self, fail: bool) -> None:
            self.fail, self.digest = fail, ""

        def finished(self) -> str | None:
            return self.digest or None

        def record(self, digest: str) -> None:
            if self.fail:
                raise ConnectionError("the tag API timed out")  # the run stops between its last commit and the drop
            self.digest = digest

    connection = databases()
    database = database_of(connection)
    with pytest.raises(ConnectionError):
        mask(connection, rules_for(database), KEY, marker=Marker(fail=True))
    state = journal_state(connection, database)
    connection.commit()
    assert state is not None
    assert state.step == "done"
    masked = dump(connection, "users")
    marker = Marker(fail=False)
    assert mask(connection, rules_for(database), KEY, marker=marker).status == "already masked"
    assert marker.digest
    assert dump(connection, "users") == masked
    assert tables_of(connection) == SHOP_TABLES
