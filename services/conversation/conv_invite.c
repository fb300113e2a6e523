#include "conv_invite.h"

#include <string.h>

#include <openssl/evp.h>

static const char alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"; /* Crockford base32 */

void conv_invite_format(const unsigned char random[CONV_INVITE_RANDOM_BYTES],
                        char ret_code[CONV_INVITE_TEXT_MAX])
{
    unsigned long long bits = 0;
    for (size_t i = 0; i < CONV_INVITE_RANDOM_BYTES; i++)
        bits = bits << 8 | random[i];
    size_t at = 0;
    for (size_t i = 0; i < CONV_INVITE_CHARS; i++) {
        if (i > 0 && i % 4 == 0)
            ret_code[at++] = '-';
        ret_code[at++] = alphabet[(bits >> (59 - 5 * i)) & 0x1F];
    }
    ret_code[at] = '\0';
}

/* The canonical character of c, or 0 when c is not part of a code. */
static char canonical_char(char c)
{
    if (c >= 'a' && c <= 'z')
        c = (char)(c - 'a' + 'A');
    if (c == 'O')
        return '0';
    if (c == 'I' || c == 'L')
        return '1';
    if (c == 'U')
        return 0;
    return strchr(alphabet, c) != NULL && c != '\0' ? c : 0;
}

bool conv_invite_normalise(const char *typed, char ret_canonical[CONV_INVITE_CHARS + 1])
{
    if (typed == NULL)
        return false;
    char canonical[CONV_INVITE_CHARS + 1];
    size_t count = 0;
    size_t len = strnlen(typed, 65);
    if (len > 64)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = typed[i];
        if (c == ' ' || c == '-' || c == '\t')
            continue;
        char value = canonical_char(c);
        if (value == 0 || count == CONV_INVITE_CHARS)
            return false;
        canonical[count++] = value;
    }
    if (count != CONV_INVITE_CHARS)
        return false;
    canonical[count] = '\0';
    memcpy(ret_canonical, canonical, sizeof(canonical));
    return true;
}

void conv_invite_hash(const char canonical[CONV_INVITE_CHARS + 1],
                      unsigned char ret_hash[CONV_INVITE_HASH_BYTES])
{
    unsigned int len = 0;
    EVP_Digest(canonical, strnlen(canonical, CONV_INVITE_CHARS), ret_hash, &len, EVP_sha256(),
               NULL);
}
