/*
 * fuzz_config.c - libFuzzer target for the config parser, fed as chimerad
 * reads a config file (config_parse_buffer() is config_load() without the
 * file), workflow definitions included.
 *
 * A config either loads whole or is refused with one message that names
 * the origin; the message must be valid UTF-8 because `chimera-ctl reload`
 * receives it inside a JSON reply.  A loaded config must hold what
 * config.h promises its readers: at least one queue, an argv for every
 * agent, workflows whose edges and agents resolve.
 */
#include <string.h>

#include "config.h"
#include "fuzz.h"

#define ORIGIN "fuzz.json"

static void check_workflow(const struct config *cfg, const struct workflow *wf)
{
        FUZZ_CHECK(config_workflow(cfg, wf->name) == wf, "lookup of workflow %s", wf->name);
        FUZZ_CHECK(wf->initial >= 0 && (size_t)wf->initial < wf->nphases, "initial %d",
                   wf->initial);
        for (size_t i = 0; i < wf->nphases; i++) {
                const struct wf_phase *p = &wf->phases[i];

                FUZZ_CHECK(strcmp(workflow_target_name(wf, p->on_success), "(unknown)") != 0 &&
                               strcmp(workflow_target_name(wf, p->on_failure), "(unknown)") != 0,
                           "phase %s has an edge to nowhere", p->name);
                FUZZ_CHECK(p->timeout_ms > 0, "phase %s timeout %lld", p->name,
                           (long long)p->timeout_ms);
                FUZZ_CHECK(workflow_agent_is_builtin(p->agent) ||
                               config_agent(cfg, p->agent) != NULL,
                           "phase %s names an unknown agent %s", p->name, p->agent);
        }
}

static void check_config(const struct config *cfg)
{
        FUZZ_CHECK(cfg->nqueues > 0 && cfg->queues[0] != NULL, "no queue");
        FUZZ_CHECK(cfg->pool_size >= 1 && cfg->pool_size <= 1024, "pool.size %d", cfg->pool_size);
        FUZZ_CHECK(cfg->retry_max_ms >= cfg->retry_base_ms, "retry.max below retry.base");
        FUZZ_CHECK(cfg->control_socket != NULL && cfg->control_socket[0] != '\0', "control_socket");
        for (size_t i = 0; i < cfg->nagents; i++) {
                const struct agent_def *a = &cfg->agents[i];

                FUZZ_CHECK(a->argc > 0 && a->argv[0] != NULL && a->argv[a->argc] == NULL,
                           "agent %s argv", a->name);
                FUZZ_CHECK(config_agent(cfg, a->name) == a, "lookup of agent %s", a->name);
        }
        for (size_t i = 0; i < cfg->nworkflows; i++)
                check_workflow(cfg, cfg->workflows[i]);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
        char err[1024];
        struct config *cfg;

        err[0] = '\0';
        cfg = config_parse_buffer((const char *)data, size, ORIGIN, err, sizeof(err));
        if (cfg == NULL) {
                FUZZ_CHECK(strncmp(err, ORIGIN, strlen(ORIGIN)) == 0,
                           "the refusal does not name the origin: %s", err);
                FUZZ_CHECK(fuzz_is_json_text(err), "refusal is not UTF-8: %s", err);
                return 0;
        }
        check_config(cfg);
        config_free(cfg);
        return 0;
}
