from api.auth import bearer_token, token_allowed

TOKENS = ("token-one-0123456789", "token-two-0123456789")


def test_any_configured_token_is_allowed():
    assert token_allowed("token-one-0123456789", TOKENS)
    assert token_allowed("token-two-0123456789", TOKENS)


def test_others_are_refused():
    assert not token_allowed("token-one-012345678", TOKENS)  # a prefix
    assert not token_allowed("", TOKENS)
    assert not token_allowed(None, TOKENS)
    assert not token_allowed("token-one-0123456789", ())


def test_bearer_token_of_a_header():
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer   abc ") == "abc"
    assert bearer_token("Basic abc") is None
    assert bearer_token(None) is None
    assert bearer_token("Bearer ") is None
