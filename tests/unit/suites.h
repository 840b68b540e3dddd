/* suites.h - the Check suites that tests/unit/check_unit.c runs. */
#ifndef CHIMERA_TEST_SUITES_H
#define CHIMERA_TEST_SUITES_H

#include <check.h>
#include <jansson.h>

/*
 * True when s is valid UTF-8 as jansson judges it: what a message needs to
 * go into a JSON reply, frame or last_error.
 */
static inline int is_json_text(const char *s)
{
        json_t *v = json_string(s);

        json_decref(v);
        return v != NULL;
}

Suite *util_suite(void);
Suite *frame_suite(void);
Suite *config_suite(void);
Suite *workflow_suite(void);
Suite *agent_proto_suite(void);
Suite *control_proto_suite(void);
Suite *http_proto_suite(void);
Suite *jdump_suite(void);
Suite *outbox_suite(void);
Suite *pgarray_suite(void);

#endif
