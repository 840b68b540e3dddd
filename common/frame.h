/*
 * frame.h - the socketpair protocol between chimerad and its workers.
 *
 * A frame is a 4-byte big-endian length followed by that many bytes of one
 * JSON object whose "type" names the frame.  Each side has one place where
 * a frame body becomes a typed, validated message, and nothing acts on a
 * frame that did not pass through it: frame_decode() in the worker (a
 * struct task_frame, trees of the payload and checkpoint its workflow runs
 * on), frame_decode_report() in chimerad (spans of the body, which it
 * passes on to PostgreSQL as text; it checks exactly what frame_decode()
 * checks, held to it by the fuzz target fuzz/fuzz_frame.c).  Both check
 * the body with one scanner (jscan.h).  Sizes are bounded by the configured maximum
 * (pool.max_frame_size) on both sides.
 *
 *   supervisor -> worker   task      {"type":"task","id","attempt","workflow",
 *                                     "trace_id","payload","state","definition",
 *                                     "agents": {name: {"argv","env","cwd","limits"}}}
 *                          shutdown  {"type":"shutdown"}
 *   worker -> supervisor   heartbeat {"type":"heartbeat","pid"}      (sent once
 *                                     when the worker is ready, and while idle)
 *                          progress  {"type":"progress","id","attempt","phase",
 *                                     "event":"started"}  when a phase starts,
 *                                    {..., "event":"spawned","pgid"}  when its agent
 *                                     program runs in process group pgid (2 to
 *                                     INT_MAX), and
 *                                    {..., "event":"finished","outcome","state",
 *                                     "next"?, "duration_ms"?, "error"?}  after it
 *                          result    {"type":"result","id","attempt","status",
 *                                     "result"?,"error"?,"state"?}
 *
 * result.status is "succeeded", "failed" (final, no retry) or "retry" (a
 * transient error: the supervisor requeues the task with a back-off).
 */
#ifndef CHIMERA_FRAME_H
#define CHIMERA_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <jansson.h>

#include "jbuf.h"

#define FRAME_HEADER_SIZE      4
#define FRAME_DEFAULT_MAX_SIZE (16u * 1024 * 1024)

enum frame_type {
        FRAME_TASK = 1,
        FRAME_PROGRESS,
        FRAME_RESULT,
        FRAME_HEARTBEAT,
        FRAME_SHUTDOWN,
};

/*
 * A task frame as the worker runs it.  The scalars are decoded, payload and
 * checkpoint are trees; the workflow's definition, its agents and the
 * paused agents stay text (checked JSON of the right type, copied out of
 * the body into the frame), because consecutive tasks of one workflow carry
 * the same texts: the runner parses a definition or an agents text only
 * when it differs from the one it parsed last (worker/runner.c).
 */
struct task_frame {
        int64_t id, attempt;
        char *workflow, *trace_id; /* owned */
        json_t *payload;           /* owned: any JSON */
        json_t *state;             /* owned: an object, or NULL for null */
        struct jtext definition;   /* an object */
        struct jtext agents;       /* an object */
        struct jtext open_agents;  /* an array, or JTEXT_NONE when absent */
};

struct frame {
        enum frame_type type;
        json_t *msg;            /* owned: the whole object, "type" included; NULL for a task */
        struct task_frame task; /* FRAME_TASK */
        char *texts;            /* owned: copies of the task's definition, agents and open_agents,
                                   which its spans point into */
};

/* "task", "progress", ...; "unknown" for anything else. */
const char *frame_type_name(enum frame_type type);

/*
 * Reads the length from a 4-byte header.  Returns 0 and stores it, or -1
 * when it is zero or larger than max.
 */
int frame_header_length(const unsigned char hdr[FRAME_HEADER_SIZE], size_t max, size_t *len)
    __attribute__((warn_unused_result));

/*
 * Decodes and validates one frame body of len bytes (without the header).
 * On success returns 0 and fills *out: out->task for a task frame, out->msg
 * for any other (release what it holds with frame_clear()).  On failure
 * returns -1, leaves *out cleared and writes a reason to err, valid UTF-8
 * whatever the body held.  The body must be JSON as jansson takes it, with
 * no repeated key in what is decoded (a task's definition and agents are
 * checked for those when the runner parses them).
 */
int frame_decode(const char *body, size_t len, struct frame *out, char *err, size_t errsz)
    __attribute__((warn_unused_result));

/*
 * Encodes msg (borrowed; it must carry a valid "type") as header + compact
 * JSON into a malloc'd buffer the caller frees.  Returns NULL with a reason
 * in err when it cannot be encoded or exceeds max bytes.
 */
char *frame_encode(json_t *msg, size_t max, size_t *outlen, char *err, size_t errsz)
    __attribute__((warn_unused_result));

/*
 * How deep a payload or checkpoint may nest.  A worker decodes its task
 * frame with jansson, which stops at 2048 levels; the frame, the agent's
 * request and the checkpoint's results each add a few, and a limit far
 * below jansson's leaves room for them all.
 */
#define FRAME_MAX_NESTING 1000

/*
 * Checks a JSON text of len bytes from outside the pool (a row's payload or
 * state, as PostgreSQL prints jsonb), which the supervisor splices into a
 * task frame without parsing it, for what a worker could not decode:
 * nesting deeper than FRAME_MAX_NESTING, or a number jansson cannot hold
 * (an integer beyond 64 bits, a real beyond a double's range).  what
 * names the text in the message.  One pass over the text; only one that
 * holds a long number is parsed.  Returns 0, or -1 with the reason in err
 * ("payload is nested deeper than 1000 levels").
 */
int frame_check_json(const char *text, size_t len, const char *what, char *err, size_t errsz)
    __attribute__((warn_unused_result));

/*
 * A frame from a worker, as frame_decode_report() finds it: the values are
 * spans of the body (borrowed: valid while the body is), JTEXT_NONE when
 * absent.  For type FRAME_TASK or FRAME_SHUTDOWN (frames a worker never
 * sends) only the type is set.
 */
enum report_event {
        REPORT_STARTED = 1,
        REPORT_SPAWNED,
        REPORT_FINISHED,
};

struct report {
        enum frame_type type;
        int64_t id, attempt; /* progress, result */
        int64_t pid;         /* heartbeat */
        enum report_event event;
        int64_t pgid;        /* spawned: 2 to INT_MAX */
        bool started, fault; /* finished: "started": true, "fault": true */
        struct jtext phase;  /* progress: a string */
        struct jtext status; /* result: "succeeded", "failed", "retry" or "defer" */
        /* finished: the event's detail ("outcome" a string, the others any JSON) */
        struct jtext outcome, next, duration_ms, detail_error, stderr_tail;
        struct jtext agent;      /* finished: a string, or none */
        struct jtext state;      /* finished: an object; result: an object or none */
        struct jtext result;     /* result: any JSON, or none */
        struct jtext error;      /* result: a string, or none */
        struct jtext usage, end; /* finished: objects, or none */
};

/*
 * The one decode point of the frames a worker sends (heartbeat, progress,
 * result), for chimerad: checks the body (jscan.h: JSON as jansson takes
 * it, no repeated key among those read) and each field the type requires,
 * as frame_decode() does, and fills *out with spans instead of a tree.
 * Returns 0, or -1 with a reason in err, valid UTF-8 whatever the body held.
 */
int frame_decode_report(const char *body, size_t len, struct report *out, char *err, size_t errsz)
    __attribute__((warn_unused_result));

/* Releases what the frame holds; safe on a cleared frame. */
void frame_clear(struct frame *f);

/*
 * A buffered reader of frames from one fd, for the worker: a frame that
 * fits in the buffer costs one read() instead of two (header, then body),
 * and bytes read past a frame are kept for the next call.  Zero it before
 * the first call.  frame_reader_next() returns as frame_read_fd() does.
 */
struct frame_reader {
        char buf[64 * 1024];
        size_t have;
};

int frame_reader_next(struct frame_reader *r, int fd, size_t max, struct frame *out, char *err,
                      size_t errsz) __attribute__((warn_unused_result));

/*
 * Blocking helpers for the worker.  frame_read_fd() returns 1 with a frame,
 * 0 on a clean EOF before any byte of a frame, -1 on an error or an invalid
 * frame (reason in err).  frame_write_fd() returns 0 or -1.
 */
int frame_read_fd(int fd, size_t max, struct frame *out, char *err, size_t errsz)
    __attribute__((warn_unused_result));
int frame_write_fd(int fd, json_t *msg, size_t max, char *err, size_t errsz)
    __attribute__((warn_unused_result));

#endif
