# shellcheck shell=sh
# The binlog coordinates a dump is consistent with, as JSON, read from the head of the dump
# on stdin (decompressed): mariadb-dump --master-data=2 [--gtid] and mysqldump
# --source-data=2 write them as comments before any data:
#   -- CHANGE MASTER TO MASTER_LOG_FILE='binlog.000002', MASTER_LOG_POS=1234;
#   -- CHANGE REPLICATION SOURCE TO SOURCE_LOG_FILE='binlog.000002', SOURCE_LOG_POS=1234;
#   -- SET GLOBAL gtid_slave_pos='0-1-42';   (MariaDB with --gtid)
# Prints {"file": ..., "position": ..., "gtid": ...}; fails (exit 1) without them. Its
# caller gives it the dump's first bytes only (they hold the comments); all of them are read.
head=$(sed -n '1,60p')
coordinates=$(printf '%s\n' "$head" |
  sed -n "s/^-- CHANGE [A-Z ]* TO [A-Z]*_LOG_FILE='\([A-Za-z0-9._-]*\)', [A-Z]*_LOG_POS=\([0-9][0-9]*\);\$/\1 \2/p" |
  head -n 1)
gtid=$(printf '%s\n' "$head" | sed -n "s/^-- SET GLOBAL gtid_slave_pos='\([0-9,-]*\)';\$/\1/p" | head -n 1)
if [ -z "$coordinates" ]; then
  echo "the dump names no binlog coordinates (no CHANGE MASTER / REPLICATION SOURCE line in its head)" >&2
  exit 1
fi
printf '{"file": "%s", "position": %s, "gtid": "%s"}\n' "${coordinates% *}" "${coordinates#* }" "$gtid"
