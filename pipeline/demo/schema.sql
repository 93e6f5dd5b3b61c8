-- The demo shop the example KPIs query, in MySQL syntax (the DuckDB demo source is transpiled from it).
CREATE TABLE users (
  id         BIGINT       NOT NULL PRIMARY KEY,
  email      VARCHAR(255) NOT NULL,
  country    CHAR(2)      NOT NULL,
  plan       VARCHAR(16)  NOT NULL,
  created_at DATETIME     NOT NULL
);
CREATE TABLE orders (
  id         BIGINT        NOT NULL PRIMARY KEY,
  user_id    BIGINT        NOT NULL,
  status     VARCHAR(16)   NOT NULL,
  amount     DECIMAL(12,2) NOT NULL,
  created_at DATETIME      NOT NULL
);
