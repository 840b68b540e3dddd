/* test_lifecycle.c - (being written) */
#include "harness.h"
#include "suites.h"

Suite *lifecycle_suite(void)
{
        return suite_create("lifecycle");
}
