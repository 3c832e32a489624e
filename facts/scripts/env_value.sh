# shellcheck shell=sh
# layra_env_value KEY ENV_FILE: print the value docker compose gives ${KEY} when it reads
# ENV_FILE, exactly, with nothing added; fail when it is unset or empty.
#
# docker compose itself reads the file (its dotenv rules: quotes, escapes, ${VAR}
# interpolation, comments, export, CRLF), interpolating ${KEY} into a one-line compose
# document given on stdin, and prints it as JSON; awk decodes the JSON string (and the $$
# compose writes for each $). Its warning that KEY is unset is left out (we say so, once);
# its errors (no such file, a malformed line) are not. The value travels through pipes
# only: never on a command line.
layra_env_value() {
  # shellcheck disable=SC2016 # ${%s} is for compose to interpolate, not the shell
  printf 'services: {}\nx-layra-value: ${%s}\n' "$1" |
    docker --log-level error compose -p layra-env --project-directory / --env-file "$2" -f - config --format json |
    LC_ALL=C awk '
      function utf8(c) {
        if (c < 128) return sprintf("%c", c)
        if (c < 2048) return sprintf("%c%c", 192 + int(c / 64), 128 + c % 64)
        if (c < 65536) return sprintf("%c%c%c", 224 + int(c / 4096), 128 + int(c / 64) % 64, 128 + c % 64)
        return sprintf("%c%c%c%c", 240 + int(c / 262144), 128 + int(c / 4096) % 64, 128 + int(c / 64) % 64, 128 + c % 64)
      }
      function hex4(s,   i, n) {
        for (i = 1; i <= 4; i++) n = n * 16 + index("0123456789abcdef", tolower(substr(s, i, 1))) - 1
        return n
      }
      index($0, "  \"x-layra-value\": \"") == 1 {
        s = substr($0, 21); found = 1
        while (s != "") {
          c = substr(s, 1, 1)
          if (c == "\"") break
          if (c == "$" && substr(s, 2, 1) == "$") { value = value "$"; s = substr(s, 3); continue }
          if (c != "\\") { value = value c; s = substr(s, 2); continue }
          e = substr(s, 2, 1); s = substr(s, 3)
          if (e == "n") value = value "\n"; else if (e == "t") value = value "\t"
          else if (e == "r") value = value "\r"; else if (e == "b") value = value "\b"
          else if (e == "f") value = value "\f"
          else if (e == "u") {
            c = hex4(s); s = substr(s, 5)
            if (c >= 55296 && c < 56320 && substr(s, 1, 2) == "\\u") {
              c = 65536 + (c - 55296) * 1024 + hex4(substr(s, 3)) - 56320; s = substr(s, 7)
            }
            value = value utf8(c)
          } else value = value e
        }
      }
      END { if (!found || value == "") exit 1; printf "%s", value }'
}
