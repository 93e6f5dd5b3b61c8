"""A realistic shop schema for the masking tests, its rules, and a worker that masks in a child process.

Users with unique e-mails and logins, a JSON profile (phone, birthday, nickname), orders that carry the
user's e-mail (a foreign key to ``users.email``), addresses, sessions to truncate and an audit log to thin
out. ``python -m tests.clone_masking HOST PORT DATABASE RULES KEYHEX CHUNK PAUSE`` masks one database; the
interruption test kills it mid-table.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta
from typing import Any

import pymysql

SCHEMA = """
CREATE TABLE users (
  id         BIGINT       NOT NULL PRIMARY KEY,
  email      VARCHAR(255) NOT NULL,
  login      VARCHAR(64)  NOT NULL,
  name       VARCHAR(100) NOT NULL,
  phone      VARCHAR(32)  NULL,
  profile    JSON         NULL,
  note       TEXT         NULL,
  plan       VARCHAR(16)  NOT NULL,
  created_at DATETIME     NOT NULL,
  UNIQUE KEY uq_users_email (email),
  UNIQUE KEY uq_users_login (login)
) ENGINE=InnoDB;
CREATE TABLE addresses (
  id          BIGINT       NOT NULL PRIMARY KEY,
  user_id     BIGINT       NOT NULL,
  postal_code VARCHAR(8)   NOT NULL,
  prefecture  VARCHAR(16)  NOT NULL,
  line1       VARCHAR(200) NOT NULL,
  phone       VARCHAR(32)  NULL,
  CONSTRAINT fk_addresses_user FOREIGN KEY (user_id) REFERENCES users (id)
) ENGINE=InnoDB;
CREATE TABLE orders (
  id         BIGINT        NOT NULL PRIMARY KEY,
  user_id    BIGINT        NOT NULL,
  user_email VARCHAR(255)  NOT NULL,
  status     VARCHAR(16)   NOT NULL,
  amount     DECIMAL(12,2) NOT NULL,
  created_at DATETIME      NOT NULL,
  CONSTRAINT fk_orders_user FOREIGN KEY (user_id) REFERENCES users (id),
  CONSTRAINT fk_orders_email FOREIGN KEY (user_email) REFERENCES users (email)
) ENGINE=InnoDB;
CREATE TABLE sessions (
  token      CHAR(64) NOT NULL PRIMARY KEY,
  user_id    BIGINT   NOT NULL,
  expires_at DATETIME NOT NULL,
  CONSTRAINT fk_sessions_user FOREIGN KEY (user_id) REFERENCES users (id)
) ENGINE=InnoDB;
CREATE TABLE order_items (
  order_id     BIGINT       NOT NULL,
  line_no      INT          NOT NULL,
  sku          VARCHAR(16)  NOT NULL,
  gift_message VARCHAR(200) NULL,
  PRIMARY KEY (order_id, line_no)
) ENGINE=InnoDB;
CREATE TABLE email_events (
  email VARCHAR(255) NOT NULL,
  event VARCHAR(16)  NOT NULL
) ENGINE=InnoDB;
CREATE TABLE audit_log (
  id          BIGINT       NOT NULL PRIMARY KEY,
  actor_email VARCHAR(255) NOT NULL,
  action      VARCHAR(32)  NOT NULL,
  created_at  DATETIME     NOT NULL
) ENGINE=InnoDB
"""

RULES = """\
# The shop's masking rules, as a team would write them.
tables:
  users:
    columns:
      id: keep
      email: email
      login: login
      name: hash
      phone: phone
      profile:
        json:
          $.phone: phone
          $.birthday: null
          $.nickname: login
      note: null
      plan: keep
      created_at: keep
  addresses:
    columns:
      id: keep
      user_id: keep
      postal_code: keep
      prefecture: keep
      line1: {sql: "CONCAT('1-2-3 ', LEFT({hash}, 8))"}
      phone: phone
  orders:
    columns:
      id: keep
      user_id: keep
      user_email: email
      status: keep
      amount: keep
      created_at: keep
  order_items:
    columns:
      order_id: keep
      line_no: keep
      sku: keep
      gift_message: hash
  email_events:                 # no primary key: rewritten in one transaction
    columns:
      email: email
      event: keep
  sessions: truncate
  audit_log:
    delete_where: "created_at < '2024-01-01'"
    columns:
      id: keep
      actor_email: email
      action: keep
      created_at: keep
"""

USERS = 400
_FIRST = ("taro", "hanako", "yuki", "ken", "aiko", "sho", "mei", "riku")
_LAST = ("yamada", "suzuki", "sato", "tanaka", "ito", "watanabe", "kato")


def phone_of(i: int) -> str:
    return f"090-{1000 + i:04d}-{(i * 7919) % 10000:04d}"


def email_of(i: int) -> str:
    return f"{_FIRST[i % 8]}.{_LAST[i % 7]}{i}@mail{i % 5}.co.jp"


def create_shop(connection: Any, users: int = USERS) -> None:
    """The schema and deterministic rows: ``users`` users, two orders and one address each."""
    start = datetime(2024, 3, 1)
    with connection.cursor() as cursor:
        for statement in SCHEMA.split(";"):
            cursor.execute(statement)
        rows = []
        for i in range(1, users + 1):
            profile: dict[str, Any] | None = {
                "phone": phone_of(i) if i % 10 else None,
                "birthday": f"19{60 + i % 40}-0{1 + i % 9}-1{i % 10}",
                "nickname": f"{_FIRST[i % 8]}{i}",
                "prefs": {"newsletter": i % 2 == 0, "theme": "dark"},
            }
            if i % 17 == 0:
                profile = None
            note = f"call {phone_of(i)} or write to {email_of(i)}" if i % 3 == 0 else None
            rows.append(
                (
                    i,
                    email_of(i),
                    f"{_FIRST[i % 8]}_{i}",
                    f"{_LAST[i % 7].title()} {_FIRST[i % 8].title()}",
                    phone_of(i) if i % 4 else None,
                    json.dumps(profile) if profile is not None else None,
                    note,
                    ("free", "pro", "team")[i % 3],
                    start + timedelta(hours=i),
                )
            )
        cursor.executemany("INSERT INTO users VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)", rows)
        cursor.executemany(
            "INSERT INTO addresses VALUES (%s, %s, %s, %s, %s, %s)",
            [(i, i, f"1{i % 90:02d}-{i:04d}", "Tokyo", f"{i}-1 Chiyoda", phone_of(i)) for i in range(1, users + 1)],
        )
        cursor.executemany(
            "INSERT INTO orders VALUES (%s, %s, %s, %s, %s, %s)",
            [
                (n, i, email_of(i), ("paid", "shipped", "refunded")[n % 3], 1000 + n, start + timedelta(hours=n))
                for n, i in enumerate([i for i in range(1, users + 1) for _ in range(2)], start=1)
            ],
        )
        cursor.executemany(
            "INSERT INTO order_items VALUES (%s, %s, %s, %s)",
            [
                (n, line, f"SKU-{n % 13}", f"happy birthday {n}" if line == 1 else None)
                for n in range(1, 101)
                for line in (1, 2)
            ],
        )
        cursor.executemany(
            "INSERT INTO email_events VALUES (%s, %s)", [(email_of(i), "opened") for i in range(1, min(users, 100) + 1)]
        )
        cursor.executemany(
            "INSERT INTO sessions VALUES (%s, %s, %s)",
            [(f"{i:064x}", i, start) for i in range(1, min(users, 50) + 1)],
        )
        cursor.executemany(
            "INSERT INTO audit_log VALUES (%s, %s, %s, %s)",
            [(i, email_of(i), "login", datetime(2023 + i % 2, 6, 1)) for i in range(1, 201)],
        )
    connection.commit()


def main(argv: list[str]) -> None:
    from pipeline.clone import load_rules, mask

    host, port, database, rules_path, key_hex, chunk, pause = argv
    connection = pymysql.connect(host=host, port=int(port), user="root", database=database, charset="utf8mb4")
    rules = load_rules(rules_path, database)
    mask(connection, rules, bytes.fromhex(key_hex), chunk_rows=int(chunk), pause=float(pause))


if __name__ == "__main__":
    main(sys.argv[1:])
