# common.sh - shared by the example agents (sourced, not run).
#
# An agent reads one JSON request on stdin, for instance
#   {"task_id":42,"attempt":1,"trace_id":"...","workflow":"chimera",
#    "phase":"guardian_review","action":"review_code","payload":{...},
#    "results":{"e2e_test_generation":{...},"code_implementation":{...}}}
# and answers one JSON object on stdout; its exit status is the outcome
# (0 done, 75 try again later, anything else the phase failed).
#
# The examples must run anywhere chimera does, so they use POSIX sh and awk
# only.  json_get is a small JSON scanner rather than a grep: a grep for
# "guardian_review" would also match the word inside a payload string or a
# nested object, and these agents are meant to be exact about what they read.
#
# agent_begin handles what every agent does, driven by the payload:
#   "delay_ms": N             sleep N milliseconds first (default 0)
#   "fail_phase": "P"         phase P fails (exit 1) every time
#   "transient_phase": "P"    phase P exits 75 on attempt 1, succeeds later
#   "hang_phase": "P"         phase P never finishes (until chimera kills it);
#                             it starts a background child first, to show
#                             that the whole process group goes
#   "hang_ignore_term": true  ... and the hang ignores SIGTERM (needs SIGKILL)
#   "slow_phase": "P",        phase P sleeps "slow_ms" milliseconds (default
#   "slow_ms": N              3000) on attempt 1 only
# where P is a phase name, such as "staging_deployment".

# Prints the raw JSON text of member $1 of the object on stdin (nothing if
# absent): a string keeps its quotes, an object its braces.  Only the
# top-level object's members count; keys are compared in their escaped form.
json_get() {
        awk -v want="$1" '
        { text = text $0 "\n" }
        END {
                n = length(text); depth = 0; instr = 0; esc = 0
                expect_key = 0; keystart = 0; key = ""; vstart = 0
                for (i = 1; i <= n; i++) {
                        c = substr(text, i, 1)
                        if (instr) {
                                if (esc) esc = 0
                                else if (c == "\\") esc = 1
                                else if (c == "\"") {
                                        instr = 0
                                        if (keystart) {
                                                key = substr(text, keystart, i - keystart)
                                                keystart = 0
                                        }
                                }
                                continue
                        }
                        if (c == "\"") {
                                instr = 1
                                if (depth == 1 && expect_key) {
                                        keystart = i + 1
                                        expect_key = 0
                                }
                        } else if (c == "{" || c == "[") {
                                depth++
                                if (depth == 1)
                                        expect_key = 1
                        } else if (c == "}" || c == "]" || (c == "," && depth == 1)) {
                                if (depth == 1 && vstart) {
                                        v = substr(text, vstart, i - vstart)
                                        sub(/[ \t\r\n]+$/, "", v)
                                        print v
                                        exit
                                }
                                if (c == ",")
                                        expect_key = 1
                                else
                                        depth--
                        } else if (c == ":" && depth == 1 && key == want) {
                                vstart = i + 1
                                while (substr(text, vstart, 1) ~ /[ \t\r\n]/)
                                        vstart++
                        }
                }
        }'
}

# A raw JSON number as a shell integer: digits only, at most 9 of them;
# anything else (absent, negative, a fraction, a string) counts as 0.
to_int() {
        case $1 in
        '' | *[!0-9]* | ??????????*) echo 0 ;;
        *) echo "$1" ;;
        esac
}

sleep_ms() {
        [ "$1" -gt 0 ] || return 0
        sleep "$(($1 / 1000)).$(printf '%03d' $(($1 % 1000)))"
}

say() {
        echo "$AGENT: task ${TASK_ID:-?} attempt ${ATTEMPT:-?} phase $PHASE: $*" >&2
}

# Prints the answer: status, then fixed text (never payload text, which
# would need escaping), then optional extra members ("\"n\":3").
answer() {
        printf '{"status":"%s","phase":"%s","summary":"%s"%s}\n' \
                "$1" "$PHASE" "$2" "${3:+,$3}"
}

# Prints the raw JSON text of payload member $1.
payload_get() {
        printf '%s' "$PAYLOAD" | json_get "$1"
}

# Tells whether payload member $1 names the phase this agent is running.
names_this_phase() {
        [ "$(payload_get "$1")" = "\"$PHASE\"" ]
}

# Tells whether an earlier run of phase $1 has a result in this task.
has_result() {
        [ -n "$(printf '%s' "$RESULTS" | json_get "$1")" ]
}

hang() {
        if [ "$(payload_get hang_ignore_term)" = true ]; then
                trap '' TERM
        fi
        say "hanging (hang_phase)"
        sleep 100000 &
        sleep 100000
        exit 1
}

# Reads the request and applies the payload flags above.  $1 is the agent's
# usual phase, used when the request does not say which phase runs.  Sets
# REQUEST, PAYLOAD, RESULTS, PHASE, TASK_ID and ATTEMPT.
agent_begin() {
        AGENT=$(basename -- "$0")
        REQUEST=$(cat)
        PAYLOAD=$(printf '%s' "$REQUEST" | json_get payload)
        RESULTS=$(printf '%s' "$REQUEST" | json_get results)
        TASK_ID=$(to_int "$(printf '%s' "$REQUEST" | json_get task_id)")
        ATTEMPT=$(to_int "$(printf '%s' "$REQUEST" | json_get attempt)")
        PHASE=$(printf '%s' "$REQUEST" | json_get phase)
        case $PHASE in
        \"*\")
                PHASE=${PHASE#\"}
                PHASE=${PHASE%\"}
                ;;
        *) PHASE=$1 ;;
        esac
        case $PHASE in
        '' | *[!a-z0-9_-]*) PHASE=$1 ;; # keeps answers free of characters to escape
        esac

        sleep_ms "$(to_int "$(payload_get delay_ms)")"
        if names_this_phase transient_phase && [ "$ATTEMPT" -le 1 ]; then
                say "temporary trouble, try again later (transient_phase)"
                exit 75
        fi
        if names_this_phase fail_phase; then
                say "failing on purpose (fail_phase)"
                exit 1
        fi
        if names_this_phase hang_phase; then
                hang
        fi
        if names_this_phase slow_phase && [ "$ATTEMPT" -le 1 ]; then
                slow=$(payload_get slow_ms)
                [ -n "$slow" ] || slow=3000
                say "slow on purpose (slow_phase)"
                sleep_ms "$(to_int "$slow")"
        fi
}
