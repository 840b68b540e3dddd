/*
 * check_outbox.c - the worker's outbox: frames written in place go out
 * together with their headers, and a frame over the maximum is refused,
 * with the reason in the log, without harming the frames queued around it.
 */
#include <check.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "frame.h"
#include "outbox.h"
#include "suites.h"

static void queue(const char *body, size_t max, int want)
{
        struct jbuf *b = outbox_begin();

        jbuf_raw(b, body, strlen(body));
        ck_assert_int_eq(outbox_end(max), want);
}

/* Queues body, which must be refused with why in the worker's log (stderr). */
static void refuse_logged(const char *body, size_t max, const char *why)
{
        int p[2], saved = dup(STDERR_FILENO);
        char log[512] = {0};
        ssize_t n;

        ck_assert_int_eq(pipe(p), 0);
        dup2(p[1], STDERR_FILENO);
        queue(body, max, -1);
        dup2(saved, STDERR_FILENO);
        close(saved);
        close(p[1]);
        n = read(p[0], log, sizeof(log) - 1);
        close(p[0]);
        ck_assert_int_gt(n, 0);
        ck_assert_msg(strstr(log, why) != NULL, "%s", log);
}

/*
 * Reads what the outbox wrote on fd and checks that it is exactly the
 * frames of bodies, in order.
 */
static void expect_frames(int fd, const char *const *bodies, size_t n)
{
        char buf[4096];
        size_t off = 0, len;
        ssize_t got = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

        ck_assert_int_gt(got, 0);
        for (size_t i = 0; i < n; i++) {
                ck_assert_uint_ge((size_t)got - off, FRAME_HEADER_SIZE);
                ck_assert_int_eq(frame_header_length((unsigned char *)buf + off, 1 << 20, &len), 0);
                off += FRAME_HEADER_SIZE;
                ck_assert_uint_eq(len, strlen(bodies[i]));
                ck_assert(memcmp(buf + off, bodies[i], len) == 0);
                off += len;
        }
        ck_assert_uint_eq(off, (size_t)got);
}

START_TEST(queued_frames_go_out_together)
{
        static const char *const bodies[] = {
            "{\"type\":\"progress\",\"id\":1,\"attempt\":1,\"phase\":\"p\",\"event\":\"started\"}",
            "{\"type\":\"result\",\"id\":1,\"attempt\":1,\"status\":\"succeeded\"}",
        };
        int sv[2];

        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        queue(bodies[0], 1024, 0);
        queue(bodies[1], 1024, 0);
        ck_assert_int_eq(outbox_flush(sv[0]), 0);
        expect_frames(sv[1], bodies, 2);
        /* Flushed frames are gone: an empty flush writes nothing. */
        ck_assert_int_eq(outbox_flush(sv[0]), 0);
        ck_assert_int_eq(recv(sv[1], (char[1]){0}, 1, MSG_DONTWAIT), -1);
        close(sv[0]);
        close(sv[1]);
}
END_TEST

START_TEST(a_frame_over_the_maximum_is_refused_alone)
{
        static const char *const kept[] = {"{\"type\":\"first\"}", "{\"type\":\"third\"}"};
        char big[200];
        int sv[2];

        memset(big, 'x', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        queue(kept[0], 64, 0);
        refuse_logged(big, 64, "cannot send a frame: frame of 199 bytes exceeds the maximum of 64");
        queue(kept[1], 64, 0);
        /* A body of exactly the maximum still goes: only a larger one is refused. */
        queue("{\"type\":\"fourth\"}", strlen("{\"type\":\"fourth\"}"), 0);
        ck_assert_int_eq(outbox_flush(sv[0]), 0);
        expect_frames(sv[1], (const char *const[]){kept[0], kept[1], "{\"type\":\"fourth\"}"}, 3);
        close(sv[0]);
        close(sv[1]);
}
END_TEST

START_TEST(a_failed_flush_forgets_the_frames)
{
        static const char *const after[] = {"{\"type\":\"after\"}"};
        int sv[2], sv2[2];

        signal(SIGPIPE, SIG_IGN);
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv2), 0);
        queue("{\"type\":\"lost\"}", 1024, 0);
        close(sv[1]);
        ck_assert_int_eq(outbox_flush(sv[0]), -1);
        queue(after[0], 1024, 0);
        ck_assert_int_eq(outbox_flush(sv2[0]), 0);
        expect_frames(sv2[1], after, 1);
        close(sv[0]);
        close(sv2[0]);
        close(sv2[1]);
}
END_TEST

Suite *outbox_suite(void)
{
        Suite *s = suite_create("outbox");
        TCase *tc = tcase_create("frames");

        tcase_add_test(tc, queued_frames_go_out_together);
        tcase_add_test(tc, a_frame_over_the_maximum_is_refused_alone);
        tcase_add_test(tc, a_failed_flush_forgets_the_frames);
        suite_add_tcase(s, tc);
        return s;
}
