/* test_http.c - (being written) */
#include "harness.h"
#include "suites.h"

Suite *http_suite(void)
{
        return suite_create("http");
}
