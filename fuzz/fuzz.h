/*
 * fuzz.h - what the libFuzzer targets in fuzz/ share: a check that stops
 * the run with a message when a decoder breaks its contract.
 *
 * Sanitizers find crashes, leaks and undefined behaviour on their own; the
 * checks here find the quieter bugs, such as an error message that is not
 * valid UTF-8 and so cannot be put in the JSON reply or frame it is meant
 * for.  A failed check aborts, which libFuzzer reports as a crash and
 * saves the input for.
 */
#ifndef CHIMERA_FUZZ_H
#define CHIMERA_FUZZ_H

#include <stdio.h>
#include <stdlib.h>

#include <jansson.h>

#define FUZZ_CHECK(cond, ...)                                                                      \
        do {                                                                                       \
                if (!(cond)) {                                                                     \
                        fprintf(stderr, "fuzz check failed: %s: ", #cond);                         \
                        fprintf(stderr, __VA_ARGS__);                                              \
                        fputc('\n', stderr);                                                       \
                        abort();                                                                   \
                }                                                                                  \
        } while (0)

/* True when s can become a JSON string: it is valid UTF-8 (jansson checks). */
static inline int fuzz_is_json_text(const char *s)
{
        json_t *v = json_string(s);
        int ok = v != NULL;

        json_decref(v);
        return ok;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

#endif
