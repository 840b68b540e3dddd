/*
 * outbox.c - the frames a worker has to send, written together (outbox.h).
 *
 * The queued frames are one buffer, ready for write(): a frame's body is
 * written in place after four bytes left for its header, which are filled
 * in once the body's length is known.  No frame is built elsewhere and
 * copied in.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "frame.h"
#include "log.h"
#include "outbox.h"
#include "util.h"

static struct jbuf out;    /* the queued frames, then the one being written */
static size_t frame_start; /* where the frame being written begins (its header) */

struct jbuf *outbox_begin(void)
{
        frame_start = out.len;
        jbuf_reserve(&out, FRAME_HEADER_SIZE);
        out.len += FRAME_HEADER_SIZE;
        return &out;
}

int outbox_end(size_t max)
{
        size_t n = out.len - frame_start - FRAME_HEADER_SIZE;
        unsigned char *hdr = (unsigned char *)out.p + frame_start;

        if (n > max) {
                log_warnx("cannot send a frame: frame of %zu bytes exceeds the maximum of %zu", n,
                          max);
                out.len = frame_start;
                return -1;
        }
        util_put_be32(hdr, (uint32_t)n);
        return 0;
}

int outbox_flush(int fd)
{
        size_t off = 0;

        while (off < out.len) {
                ssize_t n = write(fd, out.p + off, out.len - off);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        log_warn("writing to the supervisor");
                        jbuf_reset(&out);
                        return -1;
                }
                off += (size_t)n;
        }
        jbuf_reset(&out);
        return 0;
}
