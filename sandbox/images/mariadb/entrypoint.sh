#!/bin/bash
# First start with an empty datadir: install the system tables and create the
# root password, database and user from MARIADB_* env vars. Passwords travel
# only through the environment and SQL on stdin, never through argv.
set -euo pipefail
DATADIR=/var/lib/mysql
SOCK=/run/mysqld/mysqld.sock
mkdir -p /run/mysqld
chown mysql:mysql /run/mysqld "$DATADIR"

sql_str() {  # quote a value as an SQL string literal (builtins only)
  local s=${1//\\/\\\\}
  s=${s//\'/\\\'}
  printf "'%s'" "$s"
}
# shellcheck disable=SC2016 # the backticks are SQL identifier quotes, not a command
sql_ident() { local s=${1//\`/\`\`}; printf '`%s`' "$s"; }

if [ ! -d "$DATADIR/mysql" ]; then
  : "${MARIADB_ROOT_PASSWORD:?MARIADB_ROOT_PASSWORD must be set}"
  echo "sandbox-mariadb: initialising $DATADIR" >&2
  mariadb-install-db --user=mysql --datadir="$DATADIR" \
    --auth-root-authentication-method=normal --skip-test-db >/dev/null
  INIT_SOCK=/run/mysqld/init.sock
  mariadbd --user=mysql --datadir="$DATADIR" --skip-networking \
    --socket="$INIT_SOCK" --skip-log-error >/dev/null 2>&1 &
  pid=$!
  for _ in $(seq 1 120); do
    mariadb-admin --no-defaults --socket="$INIT_SOCK" -uroot ping >/dev/null 2>&1 && break
    sleep 0.25
  done
  {
    printf 'SET @@SESSION.SQL_LOG_BIN=0;\n'
    printf "DELETE FROM mysql.global_priv WHERE User='' OR (User='root' AND Host NOT IN ('localhost'));\n"
    printf "ALTER USER 'root'@'localhost' IDENTIFIED BY %s;\n" "$(sql_str "$MARIADB_ROOT_PASSWORD")"
    printf "CREATE USER 'root'@'%%' IDENTIFIED BY %s;\n" "$(sql_str "$MARIADB_ROOT_PASSWORD")"
    printf "GRANT ALL ON *.* TO 'root'@'%%' WITH GRANT OPTION;\n"
    if [ -n "${MARIADB_DATABASE:-}" ]; then
      printf 'CREATE DATABASE IF NOT EXISTS %s;\n' "$(sql_ident "$MARIADB_DATABASE")"
    fi
    if [ -n "${MARIADB_USER:-}" ] && [ -n "${MARIADB_PASSWORD:-}" ]; then
      printf "CREATE USER %s@'%%' IDENTIFIED BY %s;\n" "$(sql_str "$MARIADB_USER")" "$(sql_str "$MARIADB_PASSWORD")"
      if [ -n "${MARIADB_DATABASE:-}" ]; then
        printf "GRANT ALL ON %s.* TO %s@'%%';\n" "$(sql_ident "$MARIADB_DATABASE")" "$(sql_str "$MARIADB_USER")"
      fi
    fi
    printf 'FLUSH PRIVILEGES;\n'
  } | mariadb --no-defaults --socket="$INIT_SOCK" -uroot
  kill -TERM "$pid"
  wait "$pid" || true
  echo "sandbox-mariadb: initialised" >&2
fi

exec mariadbd --user=mysql --datadir="$DATADIR" --socket="$SOCK" \
  --bind-address=0.0.0.0 --port=3306 --skip-name-resolve "$@"
