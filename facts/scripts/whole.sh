# shellcheck shell=sh
# layra_whole: run the caller's layra_fact so that its output reaches pyinfra whole or not
# at all. Its stdout passes only as UTF-8 text (iconv stops at the first byte that is not,
# so pyinfra's UTF-8 reader never dies halfway through) and ends with a marker line that
# only a complete, readable output reaches: on a line of its own, after an empty one
# (an output that does not end with a newline would otherwise carry it on its last
# line). The exit status is layra_fact's own; its stderr passes unchanged.
# facts.shell.WholeOutputFact checks the marker.
layra_whole() {
  { { { (layra_fact) 3>&- 4>&-; echo "$?" >&3; } |
      { iconv -f UTF-8 -t UTF-8 && printf '\n%s\n' '--- layra:whole ---'; } >&4; } 3>&1 |
    { read -r status; exit "${status:-1}"; }; } 4>&1
}
