#!/usr/bin/env bash
# The README's test command, timed twice: on the machine as it is ("quiet"), then with two CPU-bound
# processes running beside it ("busy"). Prints both durations and exit codes in a table; the suite must
# pass in both. Arguments go to tests/run.sh (e.g. `-m "not slow"` for a quick look).
#   bash benchmarks/busy_suite.sh [pytest arguments]
# Nothing else should run meanwhile: the point is a quiet baseline and a known load.
set -uo pipefail
cd "$(dirname "$0")/.."

hogs=()
stop_hogs() {
  for pid in "${hogs[@]}"; do kill "$pid" 2>/dev/null; done
  hogs=()
}
trap stop_hogs EXIT INT TERM

run_suite() {  # run_suite LABEL: times tests/run.sh, keeps its output in suite-LABEL.log
  local start end
  start=$(date +%s.%N)
  bash tests/run.sh "$@" >"suite-$label.log" 2>&1
  status=$?
  end=$(date +%s.%N)
  seconds=$(python3 -c "print(f'{$end - $start:.0f}')")
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
label=quiet
run_suite "$@"
quiet_seconds=$seconds quiet_status=$status

for _ in 1 2; do
  python3 -c 'while True: pass' &
  hogs+=($!)
done
label=busy
run_suite "$@"
busy_seconds=$seconds busy_status=$status
stop_hogs

printf '\n%-28s %10s %10s  %s\n' "bash tests/run.sh" "seconds" "exit code" "log"
printf '%-28s %10s %10s  %s\n' "quiet" "$quiet_seconds" "$quiet_status" "suite-quiet.log"
printf '%-28s %10s %10s  %s\n' "beside two CPU hogs" "$busy_seconds" "$busy_status" "suite-busy.log"
printf '(%s cores; load average before the quiet run: %s)\n' "$(nproc)" "$load_before"
for label in quiet busy; do
  echo; echo "slowest tests, $label:"; sed -n '/slowest .* durations/,/^$/p' "suite-$label.log" | sed -n '2,11p'
done
[ "$quiet_status" = 0 ] && [ "$busy_status" = 0 ]
