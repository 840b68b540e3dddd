/*
 * frame.c - encoding and the decode points of the supervisor<->worker
 * socketpair protocol (see frame.h for the frame types and fields).
 *
 * frame_decode() (for the worker) and frame_decode_report() (spans, for
 * chimerad) check everything a receiver relies on before it acts:
 * the body is one JSON object, "type" is known, and each field the type
 * requires is present with the right JSON type.  The receiver can then read
 * fields without re-checking them.  Whether a frame makes sense in the
 * receiver's state (a result for the task it sent) is the receiver's check.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "frame.h"
#include "jscan.h"
#include "util.h"

static const char *const type_names[] = {
    [FRAME_TASK] = "task",           [FRAME_PROGRESS] = "progress", [FRAME_RESULT] = "result",
    [FRAME_HEARTBEAT] = "heartbeat", [FRAME_SHUTDOWN] = "shutdown",
};

#define NTYPES (sizeof(type_names) / sizeof(type_names[0]))

/* A field a frame type requires: its name and the JSON types accepted. */
struct field_rule {
        const char *name;
        unsigned types; /* bit set of (1 << json_type) */
};

#define T(t)      (1u << (t))
#define T_INT     T(JSON_INTEGER)
#define T_STR     T(JSON_STRING)
#define T_OBJ     T(JSON_OBJECT)
#define T_ANY     (~0u)
#define T_OBJNULL (T(JSON_OBJECT) | T(JSON_NULL))

static const struct field_rule progress_rules[] = {
    {"id", T_INT}, {"attempt", T_INT}, {"phase", T_STR}, {"event", T_STR}, {NULL, 0},
};
/* A "spawned" progress frame names the process group of the agent now running. */
static const struct field_rule spawned_rules[] = {
    {"pgid", T_INT},
    {NULL, 0},
};
/* A "finished" progress frame carries the phase's outcome and the checkpoint. */
static const struct field_rule finished_rules[] = {
    {"outcome", T_STR},
    {"state", T_OBJ},
    {NULL, 0},
};
static const struct field_rule result_rules[] = {
    {"id", T_INT},
    {"attempt", T_INT},
    {"status", T_STR},
    {NULL, 0},
};
static const struct field_rule heartbeat_rules[] = {
    {"pid", T_INT},
    {NULL, 0},
};
static const struct field_rule no_rules[] = {
    {NULL, 0},
};

/* A task frame is decoded in place (decode_task()), not as a tree. */
static const struct field_rule *const rules_by_type[] = {
    [FRAME_TASK] = no_rules,       [FRAME_PROGRESS] = progress_rules,
    [FRAME_RESULT] = result_rules, [FRAME_HEARTBEAT] = heartbeat_rules,
    [FRAME_SHUTDOWN] = no_rules,
};

const char *frame_type_name(enum frame_type type)
{
        if ((unsigned)type < NTYPES && type_names[type] != NULL)
                return type_names[type];
        return "unknown";
}

int frame_header_length(const unsigned char hdr[FRAME_HEADER_SIZE], size_t max, size_t *len)
{
        uint32_t n = ((uint32_t)hdr[0] << 24) | ((uint32_t)hdr[1] << 16) | ((uint32_t)hdr[2] << 8) |
                     (uint32_t)hdr[3];

        if (n == 0 || n > max)
                return -1;
        *len = n;
        return 0;
}

static int lookup_type(const char *name, enum frame_type *out)
{
        for (unsigned i = 1; i < NTYPES; i++) {
                if (type_names[i] != NULL && strcmp(type_names[i], name) == 0) {
                        *out = (enum frame_type)i;
                        return 0;
                }
        }
        return -1;
}

static int check_rules(json_t *msg, enum frame_type type, const struct field_rule *rules, char *err,
                       size_t errsz)
{
        for (const struct field_rule *r = rules; r->name != NULL; r++) {
                json_t *v = json_object_get(msg, r->name);
                if (v == NULL) {
                        snprintf(err, errsz, "%s frame without \"%s\"", type_names[type], r->name);
                        return -1;
                }
                if (!(r->types & T(json_typeof(v)))) {
                        snprintf(err, errsz, "%s frame: \"%s\" has the wrong type",
                                 type_names[type], r->name);
                        return -1;
                }
        }
        return 0;
}

/*
 * chimerad kills the process group a "spawned" frame names when the worker
 * dies: it must be one a pid_t holds, not a number that a cast would turn
 * into some other process's group (nor 1, every process's).
 */
static int check_pgid(json_t *msg, char *err, size_t errsz)
{
        json_int_t pgid = json_integer_value(json_object_get(msg, "pgid"));

        if (pgid > 1 && pgid <= INT_MAX)
                return 0;
        snprintf(err, errsz,
                 "progress frame: \"pgid\" %" JSON_INTEGER_FORMAT " is not a process group", pgid);
        return -1;
}

static int check_fields(json_t *msg, enum frame_type type, char *err, size_t errsz)
{
        const char *event;

        if (check_rules(msg, type, rules_by_type[type], err, errsz) < 0)
                return -1;
        if (type != FRAME_PROGRESS)
                return 0;
        event = json_string_value(json_object_get(msg, "event"));
        if (strcmp(event, "started") == 0)
                return 0;
        if (strcmp(event, "spawned") == 0)
                return check_rules(msg, type, spawned_rules, err, errsz) < 0
                           ? -1
                           : check_pgid(msg, err, errsz);
        if (strcmp(event, "finished") == 0)
                return check_rules(msg, type, finished_rules, err, errsz);
        snprintf(err, errsz, "progress frame with unknown event \"%.*s\"", util_utf8_cut(event, 32),
                 event);
        return -1;
}

/* Characters of a JSON number token. */
static bool number_char(char c)
{
        return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E';
}

/*
 * A number of this many characters may not fit: 19 digits reach past
 * INT64_MAX, and a real past DBL_MAX has over 300.  Shorter ones always fit.
 */
#define LONG_NUMBER 19

int frame_check_json(const char *text, size_t len, const char *what, char *err, size_t errsz)
{
        size_t depth = 0, run = 0;
        bool in_string = false, escaped = false, long_number = false;
        json_error_t jerr;
        json_t *v;

        for (size_t i = 0; i < len; i++) {
                char c = text[i];
                if (in_string) {
                        in_string = escaped || c != '"';
                        escaped = !escaped && c == '\\';
                        continue;
                }
                run = number_char(c) ? run + 1 : 0;
                long_number = long_number || run >= LONG_NUMBER;
                if (c == '"') {
                        in_string = true;
                } else if (c == '{' || c == '[') {
                        if (++depth > FRAME_MAX_NESTING) {
                                snprintf(err, errsz, "%s is nested deeper than %d levels", what,
                                         FRAME_MAX_NESTING);
                                return -1;
                        }
                } else if ((c == '}' || c == ']') && depth > 0) {
                        depth--;
                }
        }
        if (!long_number)
                return 0;
        /* As the worker will decode it. */
        v = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
        if (v == NULL) {
                snprintf(err, errsz, "%s cannot be handed to a worker: %s", what, jerr.text);
                return -1;
        }
        json_decref(v);
        return 0;
}

char *frame_encode(json_t *msg, size_t max, size_t *outlen, char *err, size_t errsz)
{
        /* Most frames are small: one pass into a guess, a second only when it was short. */
        size_t cap = 1024, n;
        char *buf = malloc(FRAME_HEADER_SIZE + cap), *bigger;

        if (buf == NULL) {
                snprintf(err, errsz, "out of memory for a frame");
                return NULL;
        }
        n = json_dumpb(msg, buf + FRAME_HEADER_SIZE, cap, JSON_COMPACT);
        if (n == 0) {
                free(buf);
                snprintf(err, errsz, "frame cannot be encoded as JSON");
                return NULL;
        }
        if (n > max) {
                free(buf);
                snprintf(err, errsz, "frame of %zu bytes exceeds the maximum of %zu", n, max);
                return NULL;
        }
        if (n > cap) {
                bigger = realloc(buf, FRAME_HEADER_SIZE + n);
                if (bigger == NULL) {
                        free(buf);
                        snprintf(err, errsz, "out of memory for a frame of %zu bytes", n);
                        return NULL;
                }
                buf = bigger;
                if (json_dumpb(msg, buf + FRAME_HEADER_SIZE, n, JSON_COMPACT) != n) {
                        free(buf);
                        snprintf(err, errsz, "frame changed size while encoding");
                        return NULL;
                }
        }
        util_put_be32(buf, (uint32_t)n);
        *outlen = FRAME_HEADER_SIZE + n;
        return buf;
}

void frame_clear(struct frame *f)
{
        json_decref(f->msg);
        f->msg = NULL;
        free(f->task.workflow);
        free(f->task.trace_id);
        json_decref(f->task.payload);
        json_decref(f->task.state);
        free(f->texts);
        memset(&f->task, 0, sizeof(f->task));
        f->texts = NULL;
}

/* Reads exactly len bytes; returns len, 0 on EOF before the first byte, -1 otherwise. */
static ssize_t read_full(int fd, char *buf, size_t len)
{
        size_t got = 0;

        while (got < len) {
                ssize_t n = read(fd, buf + got, len - got);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -1;
                if (n == 0)
                        return got == 0 ? 0 : -1;
                got += (size_t)n;
        }
        return (ssize_t)got;
}

/*
 * Reads the body of a frame of len bytes whose first got bytes are already
 * in part, then decodes it.  Returns 1, or -1 with the reason in err.
 */
static int read_body(int fd, const char *part, size_t got, size_t len, struct frame *out, char *err,
                     size_t errsz)
{
        char *body = malloc(len);
        int rc;

        if (body == NULL) {
                snprintf(err, errsz, "out of memory for a frame of %zu bytes", len);
                return -1;
        }
        if (got > 0)
                memcpy(body, part, got);
        errno = 0;
        if (read_full(fd, body + got, len - got) != (ssize_t)(len - got)) {
                snprintf(err, errsz, "reading a frame body: %s",
                         errno ? strerror(errno) : "truncated");
                free(body);
                return -1;
        }
        rc = frame_decode(body, len, out, err, errsz);
        free(body);
        return rc < 0 ? -1 : 1;
}

int frame_read_fd(int fd, size_t max, struct frame *out, char *err, size_t errsz)
{
        unsigned char hdr[FRAME_HEADER_SIZE];
        size_t len;
        ssize_t n;

        n = read_full(fd, (char *)hdr, sizeof(hdr));
        if (n == 0)
                return 0;
        if (n < 0) {
                snprintf(err, errsz, "reading a frame header: %s",
                         errno ? strerror(errno) : "truncated");
                return -1;
        }
        if (frame_header_length(hdr, max, &len) < 0) {
                snprintf(err, errsz, "frame length out of range (maximum %zu)", max);
                return -1;
        }
        return read_body(fd, NULL, 0, len, out, err, errsz);
}

int frame_reader_next(struct frame_reader *r, int fd, size_t max, struct frame *out, char *err,
                      size_t errsz)
{
        size_t len, whole;
        ssize_t n;
        int rc;

        for (;;) {
                if (r->have >= FRAME_HEADER_SIZE) {
                        if (frame_header_length((const unsigned char *)r->buf, max, &len) < 0) {
                                snprintf(err, errsz, "frame length out of range (maximum %zu)",
                                         max);
                                return -1;
                        }
                        whole = FRAME_HEADER_SIZE + len;
                        if (whole > sizeof(r->buf)) {
                                /* Bigger than the buffer: what it holds is the start of
                                 * this frame (the peer sends one frame at a time). */
                                rc = read_body(fd, r->buf + FRAME_HEADER_SIZE,
                                               r->have - FRAME_HEADER_SIZE, len, out, err, errsz);
                                r->have = 0;
                                return rc;
                        }
                        if (r->have >= whole) {
                                rc = frame_decode(r->buf + FRAME_HEADER_SIZE, len, out, err, errsz);
                                r->have -= whole;
                                memmove(r->buf, r->buf + whole, r->have);
                                return rc < 0 ? -1 : 1;
                        }
                }
                n = read(fd, r->buf + r->have, sizeof(r->buf) - r->have);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n == 0 && r->have == 0)
                        return 0;
                if (n <= 0) {
                        snprintf(err, errsz, "reading a frame: %s",
                                 n < 0 ? strerror(errno) : "truncated");
                        return -1;
                }
                r->have += (size_t)n;
        }
}

int frame_write_fd(int fd, json_t *msg, size_t max, char *err, size_t errsz)
{
        size_t len, off = 0;
        char *buf = frame_encode(msg, max, &len, err, errsz);

        if (buf == NULL)
                return -1;
        while (off < len) {
                ssize_t n = write(fd, buf + off, len - off);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        snprintf(err, errsz, "writing a frame: %s", strerror(errno));
                        free(buf);
                        return -1;
                }
                off += (size_t)n;
        }
        free(buf);
        return 0;
}

/* ---- frames from a worker, decoded in place ---- */

/* The fields of a worker's frames that chimerad reads. */
enum rfield {
        RF_TYPE,
        RF_ID,
        RF_ATTEMPT,
        RF_PID,
        RF_PGID,
        RF_PHASE,
        RF_EVENT,
        RF_STATUS,
        RF_OUTCOME,
        RF_NEXT,
        RF_DURATION,
        RF_ERROR,
        RF_STDERR,
        RF_AGENT,
        RF_FAULT,
        RF_STARTED,
        RF_STATE,
        RF_RESULT,
        RF_USAGE,
        RF_END,
        RF_WORKFLOW, /* the supervisor's task frame */
        RF_TRACE_ID,
        RF_PAYLOAD,
        RF_DEFINITION,
        RF_AGENTS,
        RF_OPEN_AGENTS,
        RF_COUNT
};

static const char *const rfield_names[RF_COUNT] = {
    [RF_TYPE] = "type",
    [RF_ID] = "id",
    [RF_ATTEMPT] = "attempt",
    [RF_PID] = "pid",
    [RF_PGID] = "pgid",
    [RF_PHASE] = "phase",
    [RF_EVENT] = "event",
    [RF_STATUS] = "status",
    [RF_OUTCOME] = "outcome",
    [RF_NEXT] = "next",
    [RF_DURATION] = "duration_ms",
    [RF_ERROR] = "error",
    [RF_STDERR] = "stderr",
    [RF_AGENT] = "agent",
    [RF_FAULT] = "fault",
    [RF_STARTED] = "started",
    [RF_STATE] = "state",
    [RF_RESULT] = "result",
    [RF_USAGE] = "usage",
    [RF_END] = "end",
    [RF_WORKFLOW] = "workflow",
    [RF_TRACE_ID] = "trace_id",
    [RF_PAYLOAD] = "payload",
    [RF_DEFINITION] = "definition",
    [RF_AGENTS] = "agents",
    [RF_OPEN_AGENTS] = "open_agents",
};

struct rscan {
        struct jtext v[RF_COUNT];
        json_type t[RF_COUNT];
};

static int report_member(void *arg, const char *key, struct jtext value, json_type type, char *err,
                         size_t errsz)
{
        struct rscan *rs = arg;

        if (key == NULL)
                return 0;
        for (int i = 0; i < RF_COUNT; i++) {
                if (rfield_names[i][0] != key[0] || strcmp(rfield_names[i], key) != 0)
                        continue;
                if (rs->v[i].p != NULL) {
                        snprintf(err, errsz, "frame is not JSON: duplicate object key \"%s\"", key);
                        return -1;
                }
                rs->v[i] = value;
                rs->t[i] = type;
                return 0;
        }
        return 0;
}

struct report_rule {
        enum rfield field;
        unsigned types;
};

#define T_BOOL (T(JSON_TRUE) | T(JSON_FALSE))

static const struct report_rule report_progress_rules[] = {
    {RF_ID, T_INT}, {RF_ATTEMPT, T_INT}, {RF_PHASE, T_STR}, {RF_EVENT, T_STR}, {RF_COUNT, 0}};
static const struct report_rule report_spawned_rules[] = {{RF_PGID, T_INT}, {RF_COUNT, 0}};
static const struct report_rule report_finished_rules[] = {
    {RF_OUTCOME, T_STR}, {RF_STATE, T_OBJ}, {RF_COUNT, 0}};
static const struct report_rule report_result_rules[] = {
    {RF_ID, T_INT}, {RF_ATTEMPT, T_INT}, {RF_STATUS, T_STR}, {RF_COUNT, 0}};
static const struct report_rule report_heartbeat_rules[] = {{RF_PID, T_INT}, {RF_COUNT, 0}};

static int report_check(const struct rscan *rs, enum frame_type type,
                        const struct report_rule *rules, char *err, size_t errsz)
{
        for (const struct report_rule *r = rules; r->field != RF_COUNT; r++) {
                if (rs->v[r->field].p == NULL) {
                        snprintf(err, errsz, "%s frame without \"%s\"", type_names[type],
                                 rfield_names[r->field]);
                        return -1;
                }
                if (!(r->types & T(rs->t[r->field]))) {
                        snprintf(err, errsz, "%s frame: \"%s\" has the wrong type",
                                 type_names[type], rfield_names[r->field]);
                        return -1;
                }
        }
        return 0;
}

/* v if it has one of the types, else none. */
static struct jtext typed(const struct rscan *rs, enum rfield f, unsigned types)
{
        return rs->v[f].p != NULL && (types & T(rs->t[f])) ? rs->v[f] : JTEXT_NONE;
}

static int report_progress(const struct rscan *rs, struct report *out, char *err, size_t errsz)
{
        char event[40];

        if (report_check(rs, FRAME_PROGRESS, report_progress_rules, err, errsz) < 0)
                return -1;
        out->id = jtext_int(rs->v[RF_ID]);
        out->attempt = jtext_int(rs->v[RF_ATTEMPT]);
        out->phase = rs->v[RF_PHASE];
        if (jtext_streq(rs->v[RF_EVENT], "started")) {
                out->event = REPORT_STARTED;
                return 0;
        }
        if (jtext_streq(rs->v[RF_EVENT], "spawned")) {
                out->event = REPORT_SPAWNED;
                if (report_check(rs, FRAME_PROGRESS, report_spawned_rules, err, errsz) < 0)
                        return -1;
                out->pgid = jtext_int(rs->v[RF_PGID]);
                if (out->pgid > 1 && out->pgid <= INT_MAX)
                        return 0;
                snprintf(err, errsz, "progress frame: \"pgid\" %lld is not a process group",
                         (long long)out->pgid);
                return -1;
        }
        if (jtext_streq(rs->v[RF_EVENT], "finished")) {
                out->event = REPORT_FINISHED;
                if (report_check(rs, FRAME_PROGRESS, report_finished_rules, err, errsz) < 0)
                        return -1;
                out->outcome = rs->v[RF_OUTCOME];
                out->next = rs->v[RF_NEXT];
                out->duration_ms = rs->v[RF_DURATION];
                out->detail_error = rs->v[RF_ERROR];
                out->stderr_tail = rs->v[RF_STDERR];
                out->agent = typed(rs, RF_AGENT, T_STR);
                out->fault = rs->v[RF_FAULT].p != NULL && rs->t[RF_FAULT] == JSON_TRUE;
                out->started = rs->v[RF_STARTED].p != NULL && rs->t[RF_STARTED] == JSON_TRUE;
                out->state = rs->v[RF_STATE];
                out->usage = typed(rs, RF_USAGE, T_OBJ);
                out->end = typed(rs, RF_END, T_OBJ);
                return 0;
        }
        jtext_string(rs->v[RF_EVENT], event, sizeof(event));
        snprintf(err, errsz, "progress frame with unknown event \"%s\"", event);
        return -1;
}

/*
 * Checks that body is one JSON object with a known "type", collecting the
 * members either decoder reads into *rs.  Returns 0 with the type in *t,
 * or -1 with a reason in err.
 */
static int scan_frame(const char *body, size_t len, struct rscan *rs, enum frame_type *t, char *err,
                      size_t errsz)
{
        char name[40];

        memset(rs, 0, sizeof(*rs));
        if (jscan_object(body, len, report_member, rs, err, errsz) < 0) {
                if (strncmp(err, "not ", 4) == 0) {
                        char why[256];
                        snprintf(why, sizeof(why), "%s", err);
                        snprintf(err, errsz, "frame is %s", why);
                }
                return -1;
        }
        if (rs->v[RF_TYPE].p == NULL || rs->t[RF_TYPE] != JSON_STRING) {
                snprintf(err, errsz, "frame without a \"type\" string");
                return -1;
        }
        jtext_string(rs->v[RF_TYPE], name, sizeof(name));
        if (rs->v[RF_TYPE].n > sizeof(name) || lookup_type(name, t) < 0) {
                snprintf(err, errsz, "unknown frame type \"%s\"", name);
                return -1;
        }
        return 0;
}

int frame_decode_report(const char *body, size_t len, struct report *out, char *err, size_t errsz)
{
        struct rscan rs;
        enum frame_type t;
        int rc = -1;

        memset(out, 0, sizeof(*out));
        if (scan_frame(body, len, &rs, &t, err, errsz) < 0)
                goto out;
        out->type = t;
        switch (t) {
        case FRAME_HEARTBEAT:
                if (report_check(&rs, t, report_heartbeat_rules, err, errsz) < 0)
                        goto out;
                out->pid = jtext_int(rs.v[RF_PID]);
                break;
        case FRAME_PROGRESS:
                if (report_progress(&rs, out, err, errsz) < 0)
                        goto out;
                break;
        case FRAME_RESULT:
                if (report_check(&rs, t, report_result_rules, err, errsz) < 0)
                        goto out;
                out->id = jtext_int(rs.v[RF_ID]);
                out->attempt = jtext_int(rs.v[RF_ATTEMPT]);
                out->status = rs.v[RF_STATUS];
                out->result = rs.v[RF_RESULT];
                out->error = typed(&rs, RF_ERROR, T_STR);
                out->state = typed(&rs, RF_STATE, T_OBJ);
                break;
        default:
                break; /* a supervisor's frame: the receiver refuses it */
        }
        rc = 0;
out:
        if (rc < 0 && errsz > 0)
                util_utf8_sanitize(err);
        return rc;
}

/* ---- the worker's decode point ---- */

static const struct report_rule task_rules[] = {
    {RF_ID, T_INT},         {RF_ATTEMPT, T_INT}, {RF_WORKFLOW, T_STR},
    {RF_TRACE_ID, T_STR},   {RF_PAYLOAD, T_ANY}, {RF_STATE, T_OBJNULL},
    {RF_DEFINITION, T_OBJ}, {RF_AGENTS, T_OBJ},  {RF_COUNT, 0},
};

/* The tree of a member's span, which jscan_object() checked, with no repeated key. */
static json_t *task_tree(struct jtext v, const char *name, char *err, size_t errsz)
{
        json_error_t jerr;
        json_t *tree = json_loadb(v.p, v.n, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);

        if (tree == NULL)
                snprintf(err, errsz, "frame is not JSON: task \"%s\": %s", name, jerr.text);
        return tree;
}

/* Copies span v to *at and returns the copy's span (JTEXT_NONE stays so). */
static struct jtext keep_span(struct jtext v, char **at)
{
        struct jtext copy = {*at, v.n};

        if (v.p == NULL)
                return JTEXT_NONE;
        memcpy(*at, v.p, v.n);
        *at += v.n;
        return copy;
}

static int decode_task(const struct rscan *rs, struct frame *out, char *err, size_t errsz)
{
        struct task_frame *t = &out->task;
        char *at;

        if (report_check(rs, FRAME_TASK, task_rules, err, errsz) < 0)
                return -1;
        if (rs->v[RF_OPEN_AGENTS].p != NULL && rs->t[RF_OPEN_AGENTS] != JSON_ARRAY) {
                snprintf(err, errsz, "task frame: \"open_agents\" has the wrong type");
                return -1;
        }
        t->id = jtext_int(rs->v[RF_ID]);
        t->attempt = jtext_int(rs->v[RF_ATTEMPT]);
        t->payload = task_tree(rs->v[RF_PAYLOAD], "payload", err, errsz);
        if (t->payload == NULL)
                return -1;
        if (rs->t[RF_STATE] == JSON_OBJECT) {
                t->state = task_tree(rs->v[RF_STATE], "state", err, errsz);
                if (t->state == NULL)
                        return -1;
        }
        t->workflow = jtext_strdup(rs->v[RF_WORKFLOW]);
        t->trace_id = jtext_strdup(rs->v[RF_TRACE_ID]);
        /* The texts only, not the body: a large payload is not kept twice. */
        at = out->texts = util_calloc(1, rs->v[RF_DEFINITION].n + rs->v[RF_AGENTS].n +
                                             rs->v[RF_OPEN_AGENTS].n + 1);
        t->definition = keep_span(rs->v[RF_DEFINITION], &at);
        t->agents = keep_span(rs->v[RF_AGENTS], &at);
        t->open_agents = keep_span(rs->v[RF_OPEN_AGENTS], &at);
        return 0;
}

/* Any other frame, as a tree: the worker only ever reads "shutdown". */
static int decode_tree(const char *body, size_t len, enum frame_type t, struct frame *out,
                       char *err, size_t errsz)
{
        json_error_t jerr;

        out->msg = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
        if (out->msg == NULL) {
                snprintf(err, errsz, "frame is not JSON: %s", jerr.text);
                return -1;
        }
        return check_fields(out->msg, t, err, errsz);
}

int frame_decode(const char *body, size_t len, struct frame *out, char *err, size_t errsz)
{
        struct rscan rs;
        enum frame_type t;

        memset(out, 0, sizeof(*out));
        if (scan_frame(body, len, &rs, &t, err, errsz) < 0)
                goto fail;
        if (t == FRAME_TASK ? decode_task(&rs, out, err, errsz) < 0
                            : decode_tree(body, len, t, out, err, errsz) < 0)
                goto fail;
        out->type = t;
        return 0;
fail:
        /* The reason goes into log lines and JSON, but jansson quotes the bytes
         * near a syntax error, which may end inside a character. */
        if (errsz > 0)
                util_utf8_sanitize(err);
        frame_clear(out);
        return -1;
}
