/* libFuzzer target: the Thai phone parser (services/conversation/conv_phone.c) on arbitrary
 * bytes. Besides "no crash, no leak, no undefined behaviour" it checks what the conversation
 * relies on for every accepted input: the result is "0" + 8 or 9 digits with an allowed
 * second digit (mobile 06/08/09 ten digits, landline 02-05/07 nine), and parsing the result
 * again gives the result (normal form). A violation aborts (a finding). */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conv_phone.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char phone[CONV_PHONE_MAX];
    memset(phone, 'z', sizeof(phone));
    st_code status = conv_phone_parse((const char *)data, size, phone);
    conv_phone_looks_attempted((const char *)data, size, 3);
    if (status != ST_OK) {
        if (status != ST_INVALID && status != ST_LIMIT)
            abort();
        if (phone[0] != 'z') /* untouched on failure */
            abort();
        if (size <= CONV_PHONE_INPUT_MAX && status == ST_LIMIT)
            abort();
        return 0;
    }
    size_t len = strnlen(phone, sizeof(phone));
    if (len == sizeof(phone) || phone[0] != '0')
        abort();
    for (size_t i = 0; i < len; i++)
        if (phone[i] < '0' || phone[i] > '9')
            abort();
    char second = phone[1];
    bool mobile = len == 10 && (second == '6' || second == '8' || second == '9');
    bool landline = len == 9 && (second == '2' || second == '3' || second == '4' ||
                                 second == '5' || second == '7');
    if (!mobile && !landline)
        abort();
    char again[CONV_PHONE_MAX];
    if (conv_phone_parse(phone, len, again) != ST_OK || strcmp(again, phone) != 0)
        abort();
    char masked[CONV_PHONE_MASKED_MAX];
    conv_phone_mask(phone, masked);
    if (strstr(masked, phone + 2) != NULL) /* the middle digits never show */
        abort();
    return 0;
}
