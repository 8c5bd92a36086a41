#!/usr/bin/env bash
# Runs Go fuzz targets one after another. Each argument is pkg:FuzzName or
# pkg:FuzzName:EXECS.
#
# Budget: FUZZ_EXECS (default 40000) executions per target, or a target's own
# EXECS, when FUZZTIME is empty; a duration per target when FUZZTIME is set
# (`make fuzz`).
#
# Why counts in CI: with a duration, go1.26's fuzz coordinator can report its
# own deadline as a failure ("context deadline exceeded", no failing input)
# when a worker is mid-call as the time runs out (go.dev/issue/75804, fixed
# in Go 1.27). A count has no deadline to race. For long duration runs that
# one message is reported as a warning when no failing input was written;
# every other failure fails.
set -uo pipefail

go=${GO:-go}
execs=${FUZZ_EXECS:-40000}
fuzztime=${FUZZTIME:-}

for t in "$@"; do
	IFS=: read -r pkg name own <<<"$t"
	if [[ -n $fuzztime ]]; then
		budget=$fuzztime
	else
		budget=${own:-$execs}x
	fi
	echo "fuzz $pkg $name for $budget"
	log=$(mktemp)
	"$go" test -run='^$' -fuzz="^$name\$" -fuzztime="$budget" "$pkg" 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	if ((rc != 0)); then
		if [[ -n $fuzztime ]] && grep -q '^    context deadline exceeded$' "$log" &&
			! grep -q 'Failing input written to\|panic:\|_test.go:[0-9]' "$log"; then
			echo "fuzz: $name: the coordinator's own deadline race (go.dev/issue/75804), no failing input: not a finding" >&2
		else
			rm -f "$log"
			exit 1
		fi
	fi
	rm -f "$log"
done
