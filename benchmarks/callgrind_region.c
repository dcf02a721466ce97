/* Marks measured regions for callgrind (see eval_instructions.py); natively the calls do nothing.
   Each dump writes the counts since the last one and zeroes them. */
#include <valgrind/callgrind.h>

void region_start(void) { CALLGRIND_START_INSTRUMENTATION; CALLGRIND_ZERO_STATS; }

void region_mark(void) { CALLGRIND_DUMP_STATS_AT("mark"); }

void region_stop(void) { CALLGRIND_DUMP_STATS_AT("region"); CALLGRIND_STOP_INSTRUMENTATION; }
