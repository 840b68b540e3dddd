/* test_commands.c - (being written) */
#include "harness.h"
#include "suites.h"

Suite *commands_suite(void)
{
        return suite_create("commands");
}
