#include "emu_rate.h"

void emu_rate_init(emu_rate *rate, int64_t per_second, int64_t now_ns)
{
    emu_rate_set(rate, per_second, now_ns);
}

void emu_rate_set(emu_rate *rate, int64_t per_second, int64_t now_ns)
{
    if (per_second < 1)
        per_second = 1;
    if (per_second > EMU_RATE_MAX)
        per_second = EMU_RATE_MAX;
    rate->per_second = (double)per_second;
    for (int i = 0; i < EMU_EP_COUNT; i++) {
        rate->tokens[i] = rate->per_second;
        rate->refilled_ns[i] = now_ns;
    }
}

bool emu_rate_allow(emu_rate *rate, emu_endpoint endpoint, int64_t now_ns)
{
    if ((unsigned)endpoint >= EMU_EP_COUNT)
        return false;
    int64_t elapsed_ns = now_ns - rate->refilled_ns[endpoint];
    if (elapsed_ns > 0) {
        double refill = (double)elapsed_ns * rate->per_second / 1e9;
        rate->tokens[endpoint] += refill;
        if (rate->tokens[endpoint] > rate->per_second)
            rate->tokens[endpoint] = rate->per_second;
        rate->refilled_ns[endpoint] = now_ns;
    }
    if (rate->tokens[endpoint] < 1.0)
        return false;
    rate->tokens[endpoint] -= 1.0;
    return true;
}
