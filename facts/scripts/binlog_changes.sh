# shellcheck shell=sh
# What a range of the binlog changes in one database, read from `mariadb-binlog -v
# --base64-output=DECODE-ROWS` (or mysqlbinlog's) on stdin, every database's events (the
# caller does not filter them: a DDL statement names its database in its text only).
# Environment: DB (the database), PKS ("table:1,2 other:1": each table's primary key
# columns by position), LIMIT (keys listed per table). Prints, tab-separated:
#   rows  <table> <inserted> <updated> <deleted>   per table of DB with row events
#   key   <table> <INSERT|UPDATE|DELETE> <k1,k2>   the first LIMIT rows' primary keys
#   ddl   <statement, first 200 characters>        a statement other than DML naming DB
#   transactions <n>                                the transactions with a row event of DB
#   end                                             only where the reader printed its footer
# A reader that stopped short (an error, a file gone) prints no footer: then no `end`, and exit 1.
awk -v db="$DB" -v pks="$PKS" -v limit="${LIMIT:-100}" '
  BEGIN {
    n = split(pks, each, " ")
    for (i = 1; i <= n; i++) { split(each[i], kv, ":"); pk[kv[1]] = kv[2] }
    qdb = "`" db "`"
  }
  function flush_row() {
    if (table == "" || op == "") return
    key = ""
    if (table in pk) {
      m = split(pk[table], cols, ",")
      for (c = 1; c <= m; c++) key = key (c > 1 ? "," : "") ((cols[c] in val) ? val[cols[c]] : "?")
    }
    if (listed[table]++ < limit) printf "key\t%s\t%s\t%s\n", table, op, key
    delete val; op = ""
  }
  function statement_done() {
    if (stmt == "") return
    s = stmt; stmt = ""
    sub(/\/\*!\*\/;$/, "", s)
    # the text as the client sent it: any case, leading blanks and comments
    while (s ~ /^[ \t]+/ || s ~ /^\/\*[^!]/) {
      sub(/^[ \t]+/, "", s)
      if (s ~ /^\/\*[^!]/) { if (!sub(/^\/\*([^*]|\*[^\/])*\*\//, "", s)) break }
    }
    upper = toupper(s)
    if (upper ~ /^(BEGIN|COMMIT|ROLLBACK|START TRANSACTION|SET |USE |DELIMITER|XA |SAVEPOINT|RELEASE )/) return
    if (upper !~ /^(CREATE|ALTER|DROP|RENAME|TRUNCATE|OPTIMIZE|REPAIR|ANALYZE|GRANT|REVOKE)[ \t]/) return
    named = index(s, qdb) || index(s, " " db ".") || s ~ ("[ \t]" db "([ \t;]|$)")
    # unqualified, it is on the session database; a database statement names its own
    if (named || (current_db == db && upper !~ /^[A-Z]+ (DATABASE|SCHEMA)/ && index(s, ".") == 0))
      printf "ddl\t%s\n", substr(s, 1, 200)
  }
  /^### (INSERT INTO|UPDATE|DELETE FROM) / {
    flush_row()
    target = ($2 == "INSERT" || $2 == "DELETE") ? $4 : $3
    split(target, parts, "`")
    if (parts[2] != db) { table = ""; next }
    table = parts[4]; op = $2; where = 1
    if (op == "INSERT") ins[table]++; else if (op == "UPDATE") upd[table]++; else del[table]++
    seen[table] = 1
    if (!in_tx) { in_tx = 1; transactions++ }
    next
  }
  /^### SET$/ { if (op == "INSERT") where = 1; else where = 0; next }
  /^### WHERE$/ { where = 1; next }
  /^###   @[0-9]+=/ {
    if (table == "" || !where) next
    eq = index($0, "="); col = substr($0, 8, eq - 8); v = substr($0, eq + 1)
    sub(/ \/\*.*\*\/$/, "", v)
    if (!(col in val)) val[col] = v
    next
  }
  /^# at [0-9]+/ { flush_row(); statement_done(); next }
  /^(COMMIT|ROLLBACK)/ { flush_row(); statement_done(); in_tx = 0; next }
  /^use `/ { split($0, u, "`"); current_db = u[2]; next }
  /PSEUDO_SLAVE_MODE=0/ { footer = 1; next }
  /^#/ || /^\/\*!/ || /^\/\*M!/ { next }
  { stmt = (stmt == "" ? $0 : stmt " " $0) }
  /\/\*!\*\/;$/ { statement_done() }
  END {
    flush_row(); statement_done()
    for (t in seen) printf "rows\t%s\t%d\t%d\t%d\n", t, ins[t], upd[t], del[t]
    printf "transactions\t%d\n", transactions
    if (!footer) { print "the binlog reader stopped before its end (see above)" > "/dev/stderr"; exit 1 }
    print "end"
  }
'
