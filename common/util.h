/*
 * util.h - small helpers shared by every program: durations and sizes as
 * the config spells them, clocks, and file-descriptor flags.
 */
#ifndef CHIMERA_UTIL_H
#define CHIMERA_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define CHIMERA_VERSION "0.1.0"

/*
 * Parses a duration with a unit: "250ms", "20s", "5m", "1h", "2d".  A bare
 * "0" is accepted as zero.  Returns 0 and stores milliseconds in *ms, or -1
 * for anything else (no unit, negative, overflow, trailing junk).
 */
int util_parse_duration(const char *s, int64_t *ms) __attribute__((warn_unused_result));

/*
 * Parses a size with a unit: "512B", "64KB", "16MB", "1GB" (powers of 1024;
 * "KiB"/"MiB"/"GiB" accepted too).  Returns 0 and stores bytes, or -1.
 */
int util_parse_size(const char *s, int64_t *bytes) __attribute__((warn_unused_result));

/* Formats milliseconds for messages: "250ms", "1.5s", "90s", "5m", "2h", "7d". */
void util_format_ms(int64_t ms, char *buf, size_t size);

/*
 * Formats a byte count for messages: "64MB" when a unit divides it, else
 * one decimal in the largest unit it reaches ("61.3MB", "900B").
 */
void util_format_size(int64_t bytes, char *buf, size_t size);

/* Milliseconds on the monotonic clock: for deadlines and durations. */
int64_t util_now_ms(void);

/* Sets FD_CLOEXEC / O_NONBLOCK on fd.  Return 0, or -1 with errno set. */
int util_set_cloexec(int fd) __attribute__((warn_unused_result));
int util_set_nonblock(int fd) __attribute__((warn_unused_result));

/*
 * The kind of a JSON value as an error message says it ("an array", "a
 * string", ...); "nothing" for NULL.  The result is a static string.
 */
const char *util_json_kind(const json_t *v);

/*
 * How many bytes of the NUL-terminated UTF-8 text s, at most max, end on a
 * whole character: the precision for "%.*s", so that a quote cut short
 * stays valid UTF-8 (JSON needs it).
 */
int util_utf8_cut(const char *s, size_t max);

/*
 * Length of the valid UTF-8 character at s (1 to 4), or 0 when there is
 * none (a stray or overlong byte, a surrogate, past U+10FFFF, or fewer
 * than its length in the avail bytes at s).  For a NUL-terminated text
 * pass UTIL_UTF8_NUL_TERMINATED: a NUL ends a sequence before any byte
 * past it is read.
 */
#define UTIL_UTF8_NUL_TERMINATED 4
size_t util_utf8_char_len(const unsigned char *s, size_t avail);

/*
 * Copies the character at *s (NUL-terminated text, *s not at its NUL) to o,
 * or U+FFFD for a byte that does not start one, and moves *s past what it
 * took.  Returns the bytes written to o: 1 to 4, never more than 4.
 */
size_t util_utf8_copy_char(char *o, const unsigned char **s);

/*
 * Makes the NUL-terminated text s valid UTF-8 in place, as jansson judges
 * it: every byte that does not start a whole, shortest-form character
 * outside the surrogates becomes '?'.  The length stays the same.  For
 * messages built from bytes we do not control (an agent's stderr, a quote
 * of bad JSON, a key cut short) before they go into JSON, which refuses
 * anything else.
 */
void util_utf8_sanitize(char *s);

/*
 * A JSON string of s (new reference), whatever bytes s holds: text that
 * is not UTF-8 (a name cut inside a character by "%.100s", a row from a
 * SQL_ASCII database) gets U+FFFD for each byte that is not part of a
 * valid sequence, rather than no string at all.  NULL gives NULL.
 */
json_t *util_json_text(const char *s);

/*
 * Writes value (one write) into the existing file name, relative to dirfd
 * (or AT_FDCWD), as cgroup and /proc files want; 0, or -1 with errno set.
 * Only system calls: safe in a child that shares the parent's memory.
 */
int util_write_file_at(int dirfd, const char *name, const char *value);

/* Stores v at p as 4 bytes, most significant first (frame headers, PostgreSQL's binary formats). */
void util_put_be32(void *p, uint32_t v);

/* strdup that aborts on out-of-memory; NULL in gives NULL out. */
char *util_strdup(const char *s);

/* calloc that aborts on out-of-memory. */
void *util_calloc(size_t n, size_t size);

/* realloc that aborts on out-of-memory. */
void *util_realloc(void *p, size_t size);

#endif
