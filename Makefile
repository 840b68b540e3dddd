# chimera - a PostgreSQL-backed workflow supervisor.
#
#   make            build chimerad, chimera-worker and chimera-ctl into build/
#   make check      install missing packages, build, run unit + integration tests
#   make demo       install missing packages, build, run a local demo
#   make deps       install the build and test dependencies (apt-get, as root)
#   make install    install under $(DESTDIR)$(PREFIX), with the systemd unit and man pages
#   make deb        build a Debian package into build/deb/
#   make fuzz       install clang if missing, build the libFuzzer targets into
#                   build-fuzz/ and run each for FUZZ_TIME seconds (default 60)
#
# Respects CC, CFLAGS, CPPFLAGS, LDFLAGS, PREFIX and DESTDIR.  WERROR=1 turns
# warnings into errors (CI does); SANITIZE=1 builds with ASan + UBSan into
# build-san/.

PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
SBINDIR    ?= $(PREFIX)/sbin
LIBEXECDIR ?= $(PREFIX)/lib/chimera
DATADIR    ?= $(PREFIX)/share/chimera
SYSCONFDIR ?= /etc/chimera
MANDIR     ?= $(PREFIX)/share/man
# systemd also reads units from /usr/local/lib/systemd/system; the Debian
# package sets this to /lib/systemd/system, where bookworm's units live.
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system

CC         ?= cc
CFLAGS     ?= -O2 -g
PKG_CONFIG ?= pkg-config

WARNFLAGS  = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
             -Wpointer-arith -Wformat=2 -Wno-unused-parameter
ifeq ($(WERROR),1)
WARNFLAGS += -Werror
endif

ifeq ($(SANITIZE),1)
BUILD      ?= build-san
SANFLAGS    = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
BUILD      ?= build
SANFLAGS    =
endif

PKGS       = libevent jansson libpq
PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null)
CHECK_CFLAGS := $(shell $(PKG_CONFIG) --cflags check 2>/dev/null)
CHECK_LIBS   := $(shell $(PKG_CONFIG) --libs check 2>/dev/null)

ALL_CPPFLAGS = -D_GNU_SOURCE -Icommon -Isupervisor -Iworker -I$(BUILD) \
               -DCHIMERA_LIBEXECDIR='"$(LIBEXECDIR)"' $(CPPFLAGS)
ALL_CFLAGS   = -std=c11 $(WARNFLAGS) $(SANFLAGS) $(PKG_CFLAGS) $(CFLAGS)
ALL_LDFLAGS  = $(SANFLAGS) $(LDFLAGS)

COMMON_SRCS = common/log.c common/util.c common/frame.c common/config.c common/jbuf.c common/jscan.c \
              common/workflow.c
SQL_SRCS    = $(sort $(wildcard sql/*.sql))
SUPERVISOR_SRCS = supervisor/chimerad.c supervisor/pool.c supervisor/db.c \
                  supervisor/queue.c supervisor/control.c supervisor/control_proto.c \
                  supervisor/migrate.c \
                  supervisor/breaker.c supervisor/notify.c supervisor/http.c \
                  supervisor/http_proto.c supervisor/cgroup.c supervisor/privsep.c \
                  supervisor/retention.c supervisor/pgarray.c \
                  $(BUILD)/sql_migrations.c
WORKER_SRCS = worker/chimera-worker.c worker/runner.c worker/outbox.c worker/jdump.c worker/agent.c \
              worker/agent_proto.c worker/confine.c
CTL_SRCS    = ctl/chimera-ctl.c
UNIT_SRCS   = tests/unit/check_unit.c tests/unit/check_util.c tests/unit/check_frame.c \
              tests/unit/check_config.c tests/unit/check_workflow.c \
              tests/unit/check_agent_proto.c tests/unit/check_control_proto.c \
              tests/unit/check_http_proto.c tests/unit/check_jdump.c tests/unit/check_outbox.c \
              tests/unit/check_pgarray.c \
              worker/agent_proto.c worker/jdump.c worker/outbox.c supervisor/control_proto.c \
              supervisor/http_proto.c supervisor/pgarray.c
INTEG_SRCS  = tests/integration/check_integration.c tests/integration/harness.c \
              tests/integration/test_queue.c tests/integration/test_pool.c \
              tests/integration/test_ctl.c tests/integration/test_show.c \
              tests/integration/test_chimera.c tests/integration/test_agents.c \
              tests/integration/test_faults.c tests/integration/test_retry.c \
              tests/integration/test_lifecycle.c tests/integration/test_commands.c \
              tests/integration/test_http.c tests/integration/test_systemd.c \
              tests/integration/test_partition.c tests/integration/test_prefetch.c \
              tests/integration/test_limits.c tests/integration/test_retention.c \
              tests/integration/test_security.c

obj = $(patsubst %.c,$(BUILD)/%.o,$(patsubst $(BUILD)/%,%,$(1)))

COMMON_OBJS     = $(call obj,$(COMMON_SRCS))
SUPERVISOR_OBJS = $(call obj,$(SUPERVISOR_SRCS))
WORKER_OBJS     = $(call obj,$(WORKER_SRCS))
CTL_OBJS        = $(call obj,$(CTL_SRCS))
UNIT_OBJS       = $(call obj,$(UNIT_SRCS))
INTEG_OBJS      = $(call obj,$(INTEG_SRCS))

EXAMPLE_AGENTS = examples/agents/e2e-tester examples/agents/coder examples/agents/guardian \
                 examples/agents/deployer examples/agents/validator

PROGRAMS = $(BUILD)/chimerad $(BUILD)/chimera-worker $(BUILD)/chimera-ctl

.PHONY: all check unit integration demo demo-stop deps install deb clean format bench \
        bench-programs check-format cppcheck pkgcheck fuzz fuzz-build FORCE

all: pkgcheck $(PROGRAMS)

pkgcheck:
	@$(PKG_CONFIG) --exists $(PKGS) || { \
	  echo "chimera: missing libraries ($(PKGS)); run 'make deps' (as root) first" >&2; exit 1; }

$(BUILD)/chimerad: $(SUPERVISOR_OBJS) $(COMMON_OBJS)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/chimera-worker: $(WORKER_OBJS) $(COMMON_OBJS)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/chimera-ctl: $(CTL_OBJS) $(COMMON_OBJS) $(BUILD)/supervisor/migrate.o $(BUILD)/sql_migrations.o
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/tests/check_unit: $(UNIT_OBJS) $(COMMON_OBJS)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(PKG_LIBS)

$(BUILD)/tests/check_integration: $(INTEG_OBJS) $(COMMON_OBJS)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(PKG_LIBS)

# The list of migrations, as a stamp that changes when a file is added or
# removed, so that a deleted migration is not left embedded in chimerad.
$(BUILD)/sql.list: FORCE
	@mkdir -p $(@D)
	@echo '$(SQL_SRCS)' | cmp -s - $@ || echo '$(SQL_SRCS)' > $@

$(BUILD)/sql_migrations.c: scripts/embed-sql.sh $(SQL_SRCS) $(BUILD)/sql.list
	@mkdir -p $(@D)
	sh scripts/embed-sql.sh $(SQL_SRCS) > $@.tmp && mv $@.tmp $@

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) $(CHECK_CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/sql_migrations.o: $(BUILD)/sql_migrations.c
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -c -o $@ $<

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# LIBEXECDIR is compiled in (chimerad looks there for chimera-worker).  The
# stamp holds the value the objects were built with and changes with it, so
# that `make && make install PREFIX=/usr` installs a chimerad that finds its
# worker instead of one built for /usr/local.
$(BUILD)/libexecdir.stamp: FORCE
	@mkdir -p $(@D)
	@echo '$(LIBEXECDIR)' | cmp -s - $@ || echo '$(LIBEXECDIR)' > $@

$(SUPERVISOR_OBJS) $(WORKER_OBJS) $(CTL_OBJS): $(BUILD)/libexecdir.stamp

# Tests: unit tests need no database; integration tests get a throwaway
# PostgreSQL from tests/pg.sh, started here and always stopped.
check: deps
	$(MAKE) all $(BUILD)/tests/check_unit $(BUILD)/tests/check_integration
	$(BUILD)/tests/check_unit
	sh tests/run-integration.sh $(BUILD)

unit: all $(BUILD)/tests/check_unit
	$(BUILD)/tests/check_unit

integration: all $(BUILD)/tests/check_integration
	sh tests/run-integration.sh $(BUILD)

demo: deps
	$(MAKE) all
	sh examples/demo.sh $(BUILD)

demo-stop:
	sh examples/demo.sh $(BUILD) stop

# Benchmarks (issue 6) against their own throwaway durable PostgreSQL:
# `make bench` runs every part, `make bench PART=latency` one of them
# (noop exec latency backlog sql; see bench/run.sh and README "Performance").
BENCH_PROGRAMS = $(BUILD)/bench/chimera-bench $(BUILD)/bench/echo-agent
# bare-agent (x86-64 only) starts without the C library, to price a process
# per phase apart from the agent's own start; elsewhere the bench skips it.
ifneq ($(filter x86_64-%,$(shell $(CC) -dumpmachine 2>/dev/null)),)
BENCH_PROGRAMS += $(BUILD)/bench/bare-agent
endif

bench: bench-programs
	BENCH_BUILD=$(BUILD) BENCH_NO_MAKE=1 sh bench/run.sh $(PART)

# What bench/run.sh needs built (it runs this itself unless BENCH_NO_MAKE).
bench-programs: all $(BENCH_PROGRAMS)

$(BUILD)/bench/chimera-bench: $(BUILD)/bench/bench.o
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/bench/echo-agent: $(BUILD)/bench/echo-agent.o
	$(CC) $(ALL_LDFLAGS) -o $@ $^

# No CFLAGS or LDFLAGS: sanitizers and stack protectors need the C library.
$(BUILD)/bench/bare-agent: bench/bare-agent.c
	@mkdir -p $(@D)
	$(CC) -O2 -static -nostdlib -fno-stack-protector -fno-asynchronous-unwind-tables -o $@ $<

deps:
	@sh scripts/deps.sh

# Paths inside the unit and the default config follow this install's
# directories, so that PREFIX=/opt/chimera gets a unit that starts
# /opt/chimera/sbin/chimerad.  An existing config is never overwritten.
install: all
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBEXECDIR) \
	        $(DESTDIR)$(DATADIR)/sql $(DESTDIR)$(SYSCONFDIR) $(DESTDIR)$(SYSTEMDUNITDIR) \
	        $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8
	install -m 755 $(BUILD)/chimerad $(DESTDIR)$(SBINDIR)/chimerad
	install -m 755 $(BUILD)/chimera-ctl $(DESTDIR)$(BINDIR)/chimera-ctl
	install -m 755 $(BUILD)/chimera-worker $(DESTDIR)$(LIBEXECDIR)/chimera-worker
	install -m 644 $(SQL_SRCS) $(DESTDIR)$(DATADIR)/sql/
	install -d $(DESTDIR)$(LIBEXECDIR)/agents
	install -m 755 $(EXAMPLE_AGENTS) $(DESTDIR)$(LIBEXECDIR)/agents/
	install -m 644 examples/agents/common.sh $(DESTDIR)$(LIBEXECDIR)/agents/
	sed -e 's|/usr/sbin/chimerad|$(SBINDIR)/chimerad|g' \
	    -e 's|/etc/chimera/chimerad.json|$(SYSCONFDIR)/chimerad.json|g' \
	    packaging/systemd/chimerad.service > $(DESTDIR)$(SYSTEMDUNITDIR)/chimerad.service.tmp
	chmod 644 $(DESTDIR)$(SYSTEMDUNITDIR)/chimerad.service.tmp
	mv $(DESTDIR)$(SYSTEMDUNITDIR)/chimerad.service.tmp $(DESTDIR)$(SYSTEMDUNITDIR)/chimerad.service
	install -m 644 packaging/man/chimera-ctl.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 644 packaging/man/chimerad.json.5 $(DESTDIR)$(MANDIR)/man5/
	install -m 644 packaging/man/chimerad.8 $(DESTDIR)$(MANDIR)/man8/
	test -e $(DESTDIR)$(SYSCONFDIR)/chimerad.json || { \
	  sed 's|/usr/lib/chimera/|$(LIBEXECDIR)/|g' packaging/chimerad.json \
	    > $(DESTDIR)$(SYSCONFDIR)/chimerad.json && \
	  chmod 640 $(DESTDIR)$(SYSCONFDIR)/chimerad.json; }

# A binary Debian package in build/deb/, built from a scratch copy of the
# tree (dpkg-buildpackage wants debian/ at the top and writes next to it).
deb:
	@sh scripts/build-deb.sh build/deb

# Fuzzing (issue 7): one libFuzzer target per input format from outside,
# in fuzz/, built with clang and ASan + UBSan into build-fuzz/ (linked with
# the decoder it tests and what that needs, never the event loop or libpq).
# `make fuzz` runs each for FUZZ_TIME seconds on a scratch copy of its seed
# corpus fuzz/corpus/TARGET/, so the committed corpus never grows by
# itself, and fails if any target finds a crash, a leak, undefined
# behaviour or a broken contract (the input is kept in build-fuzz/artifacts/).
# `make fuzz FUZZ_TARGETS=config FUZZ_TIME=600` runs one target longer.
FUZZ_CC       ?= clang
FUZZ_CFLAGS   ?= -O1 -g
FUZZ_TIME     ?= 60
FUZZ_TARGETS  ?= frame config agent_output control http_task
FUZZ_BUILD     = build-fuzz
FUZZ_SANFLAGS  = -fsanitize=address,undefined -fno-sanitize-recover=undefined \
                 -fno-omit-frame-pointer
FUZZ_CPPFLAGS  = -D_GNU_SOURCE -Icommon -Isupervisor -Iworker -Ifuzz $(CPPFLAGS)
FUZZ_ALL_CFLAGS = -std=c11 $(WARNFLAGS) $(FUZZ_SANFLAGS) -fsanitize=fuzzer-no-link \
                  $(shell $(PKG_CONFIG) --cflags jansson 2>/dev/null) $(FUZZ_CFLAGS)
FUZZ_LIBS      = $(shell $(PKG_CONFIG) --libs jansson 2>/dev/null || echo -ljansson)

FUZZ_BASE              = common/util.c common/log.c
FUZZ_SRCS_frame        = fuzz/fuzz_frame.c common/frame.c common/jscan.c common/jbuf.c common/workflow.c worker/agent_proto.c \
                         $(FUZZ_BASE)
FUZZ_SRCS_config       = fuzz/fuzz_config.c common/config.c common/workflow.c $(FUZZ_BASE)
FUZZ_SRCS_agent_output = fuzz/fuzz_agent_output.c worker/agent_proto.c $(FUZZ_BASE)
FUZZ_SRCS_control      = fuzz/fuzz_control.c supervisor/control_proto.c $(FUZZ_BASE)
FUZZ_SRCS_http_task    = fuzz/fuzz_http_task.c supervisor/http_proto.c $(FUZZ_BASE)

fuzzobj = $(patsubst %.c,$(FUZZ_BUILD)/%.o,$(1))

FUZZ_PROGRAMS = $(patsubst %,$(FUZZ_BUILD)/fuzz_%,$(FUZZ_TARGETS))

fuzz:
	@FUZZ_CC="$(FUZZ_CC)" sh scripts/deps.sh fuzz
	$(MAKE) fuzz-build
	sh fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_TIME) $(FUZZ_TARGETS)

fuzz-build: $(FUZZ_PROGRAMS)

$(FUZZ_BUILD)/fuzz_frame: $(call fuzzobj,$(FUZZ_SRCS_frame))
	$(FUZZ_CC) $(FUZZ_SANFLAGS) -fsanitize=fuzzer $(LDFLAGS) -o $@ $^ $(FUZZ_LIBS)

$(FUZZ_BUILD)/fuzz_config: $(call fuzzobj,$(FUZZ_SRCS_config))
	$(FUZZ_CC) $(FUZZ_SANFLAGS) -fsanitize=fuzzer $(LDFLAGS) -o $@ $^ $(FUZZ_LIBS)

$(FUZZ_BUILD)/fuzz_agent_output: $(call fuzzobj,$(FUZZ_SRCS_agent_output))
	$(FUZZ_CC) $(FUZZ_SANFLAGS) -fsanitize=fuzzer $(LDFLAGS) -o $@ $^ $(FUZZ_LIBS)

$(FUZZ_BUILD)/fuzz_control: $(call fuzzobj,$(FUZZ_SRCS_control))
	$(FUZZ_CC) $(FUZZ_SANFLAGS) -fsanitize=fuzzer $(LDFLAGS) -o $@ $^ $(FUZZ_LIBS)

$(FUZZ_BUILD)/fuzz_http_task: $(call fuzzobj,$(FUZZ_SRCS_http_task))
	$(FUZZ_CC) $(FUZZ_SANFLAGS) -fsanitize=fuzzer $(LDFLAGS) -o $@ $^ $(FUZZ_LIBS)

$(FUZZ_BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CPPFLAGS) $(FUZZ_ALL_CFLAGS) -MMD -MP -c -o $@ $<

-include $(shell find $(FUZZ_BUILD) -name '*.d' 2>/dev/null)

clean:
	rm -rf build build-san build-fuzz

FORMAT_SRCS = $(wildcard common/*.[ch] supervisor/*.[ch] worker/*.[ch] ctl/*.[ch] \
                         tests/unit/*.[ch] tests/integration/*.[ch] fuzz/*.[ch])

format:
	clang-format -i $(FORMAT_SRCS)

check-format:
	clang-format --dry-run --Werror $(FORMAT_SRCS)

cppcheck:
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability,performance \
	  --std=c11 -D_GNU_SOURCE --inline-suppr -Icommon -Isupervisor -Iworker -Ifuzz \
	  --include=$$($(PKG_CONFIG) --variable=includedir jansson)/jansson.h \
	  common supervisor worker ctl fuzz
