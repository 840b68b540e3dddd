/*
 * bare-agent - echo-agent without the C library: reads its request from
 * stdin to the end, answers {} on stdout and exits 0, in system calls of
 * its own (x86-64 Linux only).
 *
 * Every program linked with glibc, static or not, asks the processor about
 * itself as it starts (CPUID, dozens of times: features, then each cache
 * level).  On a virtual machine each CPUID traps to the hypervisor; on the
 * bench machine that is ~7 us apiece and most of a process's price.  This
 * agent starts without any of it, so `make bench` can show what chimera's
 * process per phase costs (clone, exec, pipes, wait, frames, PostgreSQL)
 * apart from what the agent's own start costs.  Built without CFLAGS: a
 * sanitizer's or a stack protector's runtime needs the C library.
 */
#if !defined(__x86_64__) || !defined(__linux__)
#error "bare-agent is for x86-64 Linux"
#endif

#define SYS_READ  0
#define SYS_WRITE 1
#define SYS_EXIT  60
#define E_INTR    4

static long sys3(long nr, long a, long b, long c)
{
        long ret;

        __asm__ volatile("syscall"
                         : "=a"(ret)
                         : "a"(nr), "D"(a), "S"(b), "d"(c)
                         : "rcx", "r11", "memory");
        return ret;
}

__attribute__((noreturn)) void bare_main(void);

__attribute__((noreturn)) void bare_main(void)
{
        static const char answer[] = "{}\n";
        char buf[4096];
        long n;

        for (;;) {
                n = sys3(SYS_READ, 0, (long)buf, sizeof(buf));
                if (n > 0 || n == -E_INTR)
                        continue;
                break;
        }
        n = sys3(SYS_WRITE, 1, (long)answer, sizeof(answer) - 1);
        sys3(SYS_EXIT, n == (long)sizeof(answer) - 1 ? 0 : 1, 0, 0);
        __builtin_unreachable();
}

/* The kernel enters here with the stack 16-byte aligned; a call expects it 8 off. */
__asm__(".text\n"
        ".global _start\n"
        "_start:\n"
        "        xor %ebp, %ebp\n"
        "        and $-16, %rsp\n"
        "        call bare_main\n"
        "        hlt\n");
