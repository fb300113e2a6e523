/* LINE webhook signature: DESIGN.md §4 vectors, rejection cases, header-name matching. */
#include "testkit.h"

#include <string.h>

#include "ingress_signature.h"

typedef struct vector {
    const char *secret;
    const char *body;
    const char *signature;
} vector;

/* DESIGN.md §4 */
static const vector vectors[] = {
    {"test_secret", "{\"hello\":\"world\"}", "t7Hn4ZDHqs6e+wdvI5TyQIvzie0DmMUmuXEBqyyE/tM="},
    {"channel_secret", "bodybodybodybody", "/gg9a+LvFevTH1sd7XCQycD7tsWclCsInj7MhBHxN7k="},
};

static st_code verify(const char *secret, const char *body, const char *signature)
{
    st_error err = {0};
    return ingress_signature_verify(secret, strlen(secret), body, strlen(body), signature,
                                    signature == NULL ? 0 : strlen(signature), &err);
}

ESS_TEST(design_vectors_compute)
{
    (void)state;
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        char signature[INGRESS_SIGNATURE_B64_SIZE];
        st_error err = {0};
        assert_int_equal(ingress_signature_compute(vectors[i].secret, strlen(vectors[i].secret),
                                                   vectors[i].body, strlen(vectors[i].body),
                                                   signature, &err),
                         ST_OK);
        assert_string_equal(signature, vectors[i].signature);
    }
}

ESS_TEST(design_vectors_verify)
{
    (void)state;
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++)
        assert_int_equal(verify(vectors[i].secret, vectors[i].body, vectors[i].signature), ST_OK);
}

ESS_TEST(rejects_what_does_not_match)
{
    (void)state;
    static const struct {
        const char *name, *secret, *body, *signature;
    } cases[] = {
        {"other body", "test_secret", "{\"hello\":\"world!\"}",
         "t7Hn4ZDHqs6e+wdvI5TyQIvzie0DmMUmuXEBqyyE/tM="},
        {"other secret", "test_secreT", "{\"hello\":\"world\"}",
         "t7Hn4ZDHqs6e+wdvI5TyQIvzie0DmMUmuXEBqyyE/tM="},
        {"one character off", "test_secret", "{\"hello\":\"world\"}",
         "t7Hn4ZDHqs6e+wdvI5TyQIvzie0DmMUmuXEBqyyE/tN="},
        {"truncated", "test_secret", "{\"hello\":\"world\"}",
         "t7Hn4ZDHqs6e+wdvI5TyQIvzie0DmMUmuXEBqyyE/tM"},
        {"trailing space", "test_secret", "{\"hello\":\"world\"}",
         "t7Hn4ZDHqs6e+wdvI5TyQIvzie0DmMUmuXEBqyyE/tM= "},
        {"hex instead of base64", "test_secret", "{\"hello\":\"world\"}",
         "b7b1e7e190c7aace9efb076f2394f2408bf389ed"},
        {"empty", "test_secret", "{\"hello\":\"world\"}", ""},
        {"missing", "test_secret", "{\"hello\":\"world\"}", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        st_code code = verify(cases[i].secret, cases[i].body, cases[i].signature);
        if (code != ST_INVALID)
            fail_msg("case '%s': expected invalid, got %s", cases[i].name, st_name(code));
    }
}

ESS_TEST(error_text_never_quotes_secret_or_signature)
{
    (void)state;
    st_error err = {0};
    const char *signature = "AAAAt7Hn4ZDHqs6e+wdvI5TyQIvzie0DmMUmuXEBqyy=";
    assert_int_equal(
        ingress_signature_verify("test_secret", 11, "{}", 2, signature, strlen(signature), &err),
        ST_INVALID);
    assert_null(strstr(err.message, "test_secret"));
    assert_null(strstr(err.message, "AAAA"));
}

ESS_TEST(empty_secret_is_refused)
{
    (void)state;
    char signature[INGRESS_SIGNATURE_B64_SIZE];
    assert_int_equal(ingress_signature_compute("", 0, "{}", 2, signature, NULL), ST_INVALID);
    assert_int_equal(ingress_signature_verify(NULL, 0, "{}", 2, "x", 1, NULL), ST_INVALID);
}

ESS_TEST(empty_body_is_signed)
{
    (void)state;
    char signature[INGRESS_SIGNATURE_B64_SIZE];
    /* HMAC-SHA256("test_secret", "") */
    assert_int_equal(ingress_signature_compute("test_secret", 11, NULL, 0, signature, NULL), ST_OK);
    assert_int_equal(strlen(signature), 44);
    assert_int_equal(ingress_signature_verify("test_secret", 11, "", 0, signature, 44, NULL),
                     ST_OK);
}

ESS_TEST(header_name_in_any_case)
{
    (void)state;
    static const char *const accepted[] = {"x-line-signature", "X-Line-Signature",
                                           "X-LINE-SIGNATURE", "x-LiNe-SiGnAtUrE"};
    static const char *const refused[] = {"x-line-signatur", "x-line-signature2",
                                          "x_line_signature", "", "signature"};
    for (size_t i = 0; i < sizeof(accepted) / sizeof(accepted[0]); i++)
        assert_true(ingress_signature_header_matches(accepted[i], strlen(accepted[i])));
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
        assert_false(ingress_signature_header_matches(refused[i], strlen(refused[i])));
    assert_false(ingress_signature_header_matches(NULL, 0));
}

ESS_TEST_MAIN(NULL, NULL)
