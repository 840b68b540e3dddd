/*
 * outbox.c - the frames a worker has to send, written together (outbox.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "frame.h"
#include "log.h"
#include "outbox.h"
#include "util.h"

static char *out;
static size_t outlen, outcap;

int outbox_add(json_t *msg, size_t max)
{
        char err[256];
        size_t len;
        char *frame = frame_encode(msg, max, &len, err, sizeof(err));

        json_decref(msg);
        if (frame == NULL) {
                log_warnx("cannot send a frame: %s", err);
                return -1;
        }
        if (outlen + len > outcap) {
                outcap = outlen + len > 2 * outcap ? outlen + len : 2 * outcap;
                out = util_realloc(out, outcap);
        }
        memcpy(out + outlen, frame, len);
        outlen += len;
        free(frame);
        return 0;
}

int outbox_flush(int fd)
{
        size_t off = 0;

        while (off < outlen) {
                ssize_t n = write(fd, out + off, outlen - off);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        log_warn("writing to the supervisor");
                        outlen = 0;
                        return -1;
                }
                off += (size_t)n;
        }
        outlen = 0;
        return 0;
}
