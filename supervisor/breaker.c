/*
 * breaker.c - per-agent circuit breakers (see breaker.h).  A short list:
 * a supervisor runs a handful of agents, and only those that ever failed
 * get an entry.
 */
#include <stdlib.h>
#include <string.h>

#include "breaker.h"
#include "config.h"
#include "log.h"
#include "util.h"

struct breaker {
        char *agent;
        int failures;          /* faults in a row */
        int64_t open_until_ms; /* monotonic; 0 when closed */
        struct breaker *next;
};

struct breakers {
        struct breaker *head;
};

struct breakers *breakers_new(void)
{
        return util_calloc(1, sizeof(struct breakers));
}

void breakers_free(struct breakers *b)
{
        if (b == NULL)
                return;
        while (b->head != NULL) {
                struct breaker *next = b->head->next;
                free(b->head->agent);
                free(b->head);
                b->head = next;
        }
        free(b);
}

static struct breaker *find(const struct breakers *b, const char *agent)
{
        for (struct breaker *k = b->head; k != NULL; k = k->next)
                if (strcmp(k->agent, agent) == 0)
                        return k;
        return NULL;
}

void breakers_record(struct breakers *b, const struct config *cfg, const char *agent, bool fault)
{
        struct breaker *k = find(b, agent);
        char when[32];

        if (!fault) {
                if (k != NULL && k->failures > 0)
                        log_info("agent %s works again: circuit breaker closed", agent);
                if (k != NULL)
                        k->failures = 0, k->open_until_ms = 0;
                return;
        }
        if (cfg->breaker_failures <= 0 || workflow_agent_is_builtin(agent))
                return;
        if (k == NULL) {
                k = util_calloc(1, sizeof(*k));
                k->agent = util_strdup(agent);
                k->next = b->head;
                b->head = k;
        }
        k->failures++;
        if (k->failures >= cfg->breaker_failures) {
                k->open_until_ms = util_now_ms() + cfg->breaker_cooldown_ms;
                util_format_ms(cfg->breaker_cooldown_ms, when, sizeof(when));
                log_warnx("agent %s failed %d times in a row: circuit breaker open for %s; "
                          "tasks that need it wait",
                          agent, k->failures, when);
        }
}

int64_t breakers_open_ms(const struct breakers *b, const char *agent)
{
        const struct breaker *k = find(b, agent);
        int64_t left = k != NULL ? k->open_until_ms - util_now_ms() : 0;

        return left > 0 ? left : 0;
}

char *breakers_open_list(const struct breakers *b)
{
        json_t *open = json_array();
        char *text;

        for (const struct breaker *k = b->head; k != NULL; k = k->next)
                if (breakers_open_ms(b, k->agent) > 0)
                        json_array_append_new(open, json_string(k->agent));
        text = json_dumps(open, JSON_COMPACT);
        json_decref(open);
        if (text == NULL)
                fatalx("%s: out of memory", __func__);
        return text;
}

json_t *breakers_status_json(const struct breakers *b)
{
        json_t *list = json_array();

        for (const struct breaker *k = b->head; k != NULL; k = k->next) {
                if (k->failures == 0)
                        continue;
                json_array_append_new(list, json_pack("{s:s, s:i, s:I}", "agent", k->agent,
                                                      "failures", k->failures, "open_ms",
                                                      (json_int_t)breakers_open_ms(b, k->agent)));
        }
        return list;
}
