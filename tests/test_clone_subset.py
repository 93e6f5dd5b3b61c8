"""Subsetting and realistic fakes, on the real MariaDB: the shop of tests/clone_masking.py cut to a fraction of
its users with every table that references them, and names, kana and addresses faked consistently.

Expected rows and values are computed in Python from HMAC-SHA256 and Faker, so each test also holds the server's
SQL to the documented rule (the subset's fraction by the keyed hash of the primary key; a fake seeded from the
keyed hash of the value)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Any

import pytest

from pipeline.clone import CloneError, CoverageError, mask, parse_rules
from pipeline.clone.fakes import fake
from pipeline.clone.model import RuleFile
from tests.clone_masking import RULES, USERS, email_of
from tests.test_clone_masking import KEY, OTHER_KEY, database_of, databases, dump, rules_for

__all__ = ["databases"]  # the fixture, shared with tests/test_clone_masking.py

SUBSET = (
    RULES.replace(
        """  users:
    columns:""",
        """  users:
    subset: {fraction: 0.25}
    columns:""",
    )
    .replace(
        """  order_items:
    columns:""",
        """  order_items:
    references: {order_id: orders.id}     # no constraint declares it
    columns:""",
    )
    .replace(
        """  email_events:                 # no primary key: rewritten in one transaction
    columns:""",
        """  email_events:
    references: {email: users.email}
    columns:""",
    )
)


def digest(value: str, key: bytes = KEY) -> str:
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def kept_users(key: bytes = KEY, fraction: float = 0.25) -> set[int]:
    """The users a fraction keeps: the first 32 bits of the keyed hash of the primary key, below the fraction."""
    return {i for i in range(1, USERS + 1) if int(digest(str(i), key)[:8], 16) < int(fraction * 2**32)}


def count(connection: Any, sql: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql)
        (value,) = cursor.fetchone()
    connection.commit()
    return int(value)


def orphans(connection: Any) -> dict[str, int]:
    """Rows whose reference finds nothing, for every key of the shop (declared and not), by query."""
    return {
        "addresses.user_id": count(
            connection, "SELECT COUNT(*) FROM addresses a LEFT JOIN users u ON u.id = a.user_id WHERE u.id IS NULL"
        ),
        "orders.user_id": count(
            connection, "SELECT COUNT(*) FROM orders o LEFT JOIN users u ON u.id = o.user_id WHERE u.id IS NULL"
        ),
        "orders.user_email": count(
            connection,
            "SELECT COUNT(*) FROM orders o LEFT JOIN users u ON u.email = o.user_email WHERE u.id IS NULL",
        ),
        "order_items.order_id": count(
            connection,
            "SELECT COUNT(*) FROM order_items i LEFT JOIN orders o ON o.id = i.order_id WHERE o.id IS NULL",
        ),
        "email_events.email": count(
            connection, "SELECT COUNT(*) FROM email_events e LEFT JOIN users u ON u.email = e.email WHERE u.id IS NULL"
        ),
    }


def test_a_fraction_of_users_keeps_their_rows_in_every_table_and_no_reference_dangles(
    databases: Callable[[], Any],
) -> None:
    first, second = databases(), databases()
    report = mask(first, rules_for(database_of(first), SUBSET), KEY, chunk_rows=37)
    kept = kept_users()
    assert 60 <= len(kept) <= 140  # about a quarter of 400
    assert {row[0] for row in dump(first, "users")} == kept
    assert {row[1] for row in dump(first, "orders")} == kept
    assert len(dump(first, "orders")) == 2 * len(kept)
    assert {row[1] for row in dump(first, "addresses")} == kept
    owners = {order_id: (order_id + 1) // 2 for order_id in range(1, 2 * USERS + 1)}  # two orders per user
    assert {row[0] for row in dump(first, "order_items")} == {o for o in range(1, 101) if owners[o] in kept}
    assert len(dump(first, "email_events")) == len(kept & set(range(1, 101)))
    assert orphans(first) == dict.fromkeys(orphans(first), 0)
    assert dump(first, "sessions") == []
    assert [r[0] for r in dump(first, "audit_log")] == list(range(1, 201, 2))  # not referencing users: untouched
    lines = report.text().splitlines()
    assert f"  subset: users: {USERS - len(kept):,} rows removed" in lines
    assert f"  subset: orders: {2 * (USERS - len(kept)):,} rows removed" in lines
    assert "PII scan: 9 columns sampled, nothing found" in lines

    # the same key keeps the same rows in every run; another key others
    mask(second, rules_for(database_of(second), SUBSET), KEY, chunk_rows=500)
    assert dump(first, "users") == dump(second, "users")
    assert kept_users(OTHER_KEY) != kept


def test_a_subset_whose_rows_the_rules_orphan_is_refused_before_anything_is_shared(
    databases: Callable[[], Any],
) -> None:
    connection = databases()
    text = SUBSET.replace("subset: {fraction: 0.25}", 'subset: {where: "id <= 300"}\n    delete_where: "id > 290"')
    with pytest.raises(CloneError, match=r"orders\(user_id\) → users\(id\): 20 rows") as raised:
        mask(connection, rules_for(database_of(connection), text), KEY)
    assert "the subset left references to rows that are gone" in str(raised.value)
    with connection.cursor() as cursor:
        cursor.execute("SELECT step FROM kpi_masking_progress WHERE table_name = ''")
        assert cursor.fetchone() == ("masked",)  # not done: the copy is never taken for masked
    connection.commit()


FAKES = (
    RULES.replace("      name: hash\n", "      name: {fake: name}\n")
    .replace("      login: login\n", "      login: {fake: {kind: kana_name, locale: ja_JP}}\n")
    .replace(
        "      line1: {sql: \"CONCAT('1-2-3 ', LEFT({hash}, 8))\"}\n",
        "      line1: {fake: {kind: address, locale: en_US}}\n",
    )
)
CONTACTS = """
  contacts:
    columns:
      id: keep
      full_name: {fake: name}
"""


def add_contacts(connection: Any) -> None:
    """A second table holding the users' names: the same name must fake alike in both."""
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE contacts (id BIGINT PRIMARY KEY, full_name VARCHAR(100) NOT NULL)")
        cursor.execute("INSERT INTO contacts SELECT id + 1000, name FROM users WHERE id <= 60")
    connection.commit()


def originals(connection: Any) -> dict[int, tuple[str, str]]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, name, login FROM users")
        found = {int(i): (str(n), str(lg)) for i, n, lg in cursor.fetchall()}
    connection.commit()
    return found


def test_fakes_are_realistic_the_same_in_every_table_and_run_and_unique_where_the_column_is(
    databases: Callable[[], Any],
) -> None:
    first, second, third = databases(), databases(), databases()
    for connection in (first, second, third):
        add_contacts(connection)
    before = originals(first)
    addresses = {row[0]: row[4] for row in dump(first, "addresses")}
    rules: RuleFile = rules_for(database_of(first), FAKES + CONTACTS)
    mask(first, rules, KEY, chunk_rows=41)
    users = {row[0]: row for row in dump(first, "users")}
    for user_id, (name, login) in before.items():
        assert users[user_id][3] == fake("name", "ja_JP", digest(name))  # seeded by the keyed hash of the value
        # login has a unique key: the fake carries 8 characters of the keyed hash, checked for collisions first
        assert users[user_id][2] == fake("kana_name", "ja_JP", digest(login), suffix=8, max_length=64)
    assert all(any("\u3040" <= ch <= "\u30ff" for ch in users[i][2]) for i in users)  # kana
    assert all(not users[i][3].isascii() for i in users)  # Japanese names
    with first.cursor() as cursor:
        cursor.execute("SELECT COUNT(DISTINCT login), COUNT(DISTINCT name), COUNT(*) FROM users")
        distinct_logins, distinct_names, rows = cursor.fetchone()
    assert distinct_logins == rows == USERS
    fakes_of = {name: {users[i][3] for i, (n, _) in before.items() if n == name} for name, _ in before.values()}
    assert all(len(found) == 1 for found in fakes_of.values())  # equal names stay equal
    assert distinct_names <= len(fakes_of)  # (a name is not unique: two may fake alike)
    for contact_id, full_name in [(r[0], r[1]) for r in dump(first, "contacts")]:
        assert full_name == users[contact_id - 1000][3]  # the same name, the same fake, in another table
    for address_id, line1 in [(r[0], r[4]) for r in dump(first, "addresses")]:
        assert line1 == fake("address", "en_US", digest(addresses[address_id]), max_length=200)
        assert line1 != addresses[address_id]
    assert all(r[1] == f"u_{digest(email_of(r[0]))[:16]}@example.invalid" for r in dump(first, "users"))

    mask(second, rules_for(database_of(second), FAKES + CONTACTS), KEY, chunk_rows=1000)
    mask(third, rules_for(database_of(third), FAKES + CONTACTS), OTHER_KEY)
    assert dump(first, "users") == dump(second, "users")  # another run, other chunks: the same fakes
    assert dump(first, "contacts") == dump(second, "contacts")
    assert [r[3] for r in dump(first, "users")] != [r[3] for r in dump(third, "users")]  # another key: others


def test_fake_rules_that_cannot_apply_are_refused_at_their_position(databases: Callable[[], Any]) -> None:
    connection = databases()
    text = RULES.replace("      id: keep\n      email: email\n", "      id: keep\n      email: {fake: nmae}\n", 1)
    _, problems = parse_rules("masking/shop.yaml", text, database_of(connection))
    assert [(p.rule, p.message) for p in problems] == [("unknown-fake", "unknown fake 'nmae' (did you mean 'name'?)")]
    assert problems[0].location.line == 6
    bad = RULES.replace("      amount: keep\n", "      amount: {fake: name}\n").replace(
        "      email: email\n      event: keep\n", "      email: {fake: name}\n      event: keep\n"
    )
    with pytest.raises(CoverageError) as raised:
        mask(connection, rules_for(database_of(connection), bad), KEY)
    found = {(p.rule, p.message.split(":")[0]) for p in raised.value.problems}
    assert ("wrong-column-type", "`fake` writes text, but orders.amount is decimal(12,2) NOT NULL") in {
        (p.rule, p.message) for p in raised.value.problems
    }
    assert (
        "fake-needs-primary-key",
        "`fake` writes email_events.email row by row, by primary key, and email_events has none",
    ) in {(p.rule, p.message) for p in raised.value.problems}
    assert found


def test_unique_fakes_whose_hash_suffixes_would_collide_are_refused_before_any_write(
    databases: Callable[[], Any],
) -> None:
    """Four hex characters for 400 logins: two of them share a prefix (computed in Python for this key)."""
    connection = databases()
    before = dump(connection, "users")
    short = FAKES.replace(
        "login: {fake: {kind: kana_name, locale: ja_JP}}", "login: {fake: {kind: kana_name, length: 4}}"
    )
    with pytest.raises(
        CloneError, match=r"would merge distinct values of a unique key into one: users\(login\): 1 groups"
    ):
        mask(connection, rules_for(database_of(connection), short), KEY)
    assert dump(connection, "users") == before  # nothing was written
