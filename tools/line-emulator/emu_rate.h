/* emu_rate: LINE's per-endpoint rate limit as token buckets.
 *
 * Each endpoint has a bucket of `per_second` tokens refilled continuously at `per_second`
 * tokens a second; a request takes one token or is refused (the API answers 429, without a
 * Retry-After header, as LINE does). Not thread-safe: the event-loop thread owns it. */
#ifndef EMU_RATE_H
#define EMU_RATE_H

#include <stdbool.h>
#include <stdint.h>

#include "emu_endpoint.h"

#define EMU_RATE_MAX 1000000

typedef struct emu_rate {
    double per_second;
    double tokens[EMU_EP_COUNT];
    int64_t refilled_ns[EMU_EP_COUNT];
} emu_rate;

/* per_second is clamped to 1..EMU_RATE_MAX; buckets start full. */
void emu_rate_init(emu_rate *rate, int64_t per_second, int64_t now_ns);
/* Changes the rate; buckets start full again. */
void emu_rate_set(emu_rate *rate, int64_t per_second, int64_t now_ns);
/* Takes a token for one request at now_ns (monotonic); false = over the limit. */
bool emu_rate_allow(emu_rate *rate, emu_endpoint endpoint, int64_t now_ns);

#endif
