/*
 * breaker.h - per-agent circuit breakers.
 *
 * An agent program that misbehaves (crashes, times out, exits 75, answers
 * garbage, cannot be started) circuit_breaker.failures times in a row is
 * "open" for circuit_breaker.cooldown: tasks that reach a phase needing it
 * are deferred (queued again, uncharged, until the cool-down ends) instead
 * of failing one after another.  After the cool-down the next run decides:
 * a success closes the breaker, another fault opens it again at once.
 */
#ifndef CHIMERA_BREAKER_H
#define CHIMERA_BREAKER_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

struct breakers;
struct config;

struct breakers *breakers_new(void);
void breakers_free(struct breakers *b);

/* Records one run of agent: fault true when it misbehaved, false for any answer. */
void breakers_record(struct breakers *b, const struct config *cfg, const char *agent, bool fault);

/* Milliseconds until agent's breaker closes, or 0 when it is closed. */
int64_t breakers_open_ms(const struct breakers *b, const char *agent);

/* The agents whose breaker is open now, as a JSON array text (malloc'd): "[]" mostly. */
char *breakers_open_list(const struct breakers *b);

/* [{"agent", "failures", "open_ms"}] for every agent with failures; a new reference. */
json_t *breakers_status_json(const struct breakers *b);

#endif
