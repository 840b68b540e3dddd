/*
 * notify.c - the sd_notify protocol (placeholder: does nothing yet).
 */
#include "chimerad.h"
#include "notify.h"

void notify_start(struct supervisor *sv)
{
}

void notify_ready(struct supervisor *sv)
{
}

void notify_reloading(struct supervisor *sv)
{
}

void notify_stopping(struct supervisor *sv)
{
}

void notify_status(struct supervisor *sv)
{
}

void notify_stop(struct supervisor *sv)
{
}
