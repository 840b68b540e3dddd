/*
 * jdump.h - a jansson value written into a jbuf as compact JSON, for the
 * checkpoint and the agents' results in the frames a worker sends.
 */
#ifndef CHIMERA_JDUMP_H
#define CHIMERA_JDUMP_H

#include <jansson.h>

#include "jbuf.h"

/*
 * Appends v (borrowed; NULL writes null) to b as compact JSON, the same
 * value jbuf_json() writes, in the same member order.  The text may differ
 * only in how a control character in a string is escaped (\u0008 for \b).
 * v must not contain itself, which no value parsed or copied can.
 */
void jdump(struct jbuf *b, json_t *v);

#endif
