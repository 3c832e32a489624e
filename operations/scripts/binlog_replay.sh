# shellcheck shell=sh
# Replays a binlog range onto the server it is read from, inside the database's container
# (operations.mysql.shadow_replayed): the reader's output goes straight into the client,
# with no round trip through docker. Arguments: the user, then the reader's own
# (--database, --rewrite-db, the range, the files); the password is MYSQL_PWD. The replay
# is not logged again (sql_log_bin=0). A reader that fails midway makes the client fail
# too: its last line is then a statement that cannot parse, so that a partial replay never
# passes for a whole one.
user=$1
shift
reader=mariadb-binlog
client=mariadb
if ! command -v "$reader" >/dev/null 2>&1; then
  reader=mysqlbinlog
  client=mysql
fi
{
  echo 'SET SESSION sql_log_bin = 0;'
  "$reader" -R -u "$user" "$@" </dev/null || echo 'the binlog reader failed: the replay is refused;'
} | "$client" -u "$user" --default-character-set=utf8mb4
