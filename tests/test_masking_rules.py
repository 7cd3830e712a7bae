"""The masking rules of qflowui.core.masking, shape by shape: what goes, what stays.

Every secret below is asserted absent from the output, and what an analyst needs (scheme,
user, host, names, ids) present; ordinary text comes back unchanged. No database needed.
"""

from __future__ import annotations

import copy
import json

import pytest

from qflowui.core.masking import (
    MASK,
    RULES,
    is_sensitive_key,
    mask,
    mask_free_text,
    mask_payload,
    mask_text,
    mask_url_credentials,
    mask_variable_strings,
    nothing_to_mask,
)


def _dump(value) -> str:
    return json.dumps(value, ensure_ascii=False)


def _everywhere(text: str) -> list[tuple[str, str]]:
    """`text` as free text, under a harmless key, in a list, and inside a string holding JSON."""
    return [
        ("free text", mask_free_text(text)),
        ("value", _dump(mask({"note": text}))),
        ("list", _dump(mask({"items": ["x", text]}))),
        ("json string", _dump(mask({"stepMessage": json.dumps({"detail": text})}))),
    ]


# --- 1. URL and connection-string passwords ----------------------------------------------

URLS = [
    ("postgres://dbadmin:S3cr3tPw@db:5432/prod", "S3cr3tPw", "postgres://dbadmin:"),
    ("mongodb+srv://root:M0ng0Pass@cluster0.example.net/db", "M0ng0Pass", "mongodb+srv://root:"),
    ("redis://:R3disPass@cache:6379/0", "R3disPass", "redis://:"),
    ("https://svc:HttpPass9@example.com/x", "HttpPass9", "https://svc:"),
    ("amqp://user:Amqp-Pass@mq/vhost", "Amqp-Pass", "amqp://user:"),
]


@pytest.mark.parametrize(("url", "secret", "head"), URLS)
def test_a_url_password_is_masked_and_scheme_user_and_host_stay(url, secret, head):
    host = url.split("@", 1)[1]
    expected = f"{head}{MASK}@{host}"

    assert mask_url_credentials(url) == expected
    for where, out in _everywhere(url):
        assert secret not in out, where
        assert expected in out, where


def test_a_url_password_inside_an_error_message_is_masked():
    out = mask_free_text("could not connect to postgres://a:b4dPass@h/db: timeout")

    assert out == f"could not connect to postgres://a:{MASK}@h/db: timeout"


def test_a_url_without_a_password_is_left_alone():
    for text in ("https://example.com/a?b=c", "https://user@example.com/x", "mailto:a@b.com"):
        assert mask_free_text(text) == text


def test_a_password_holding_an_at_sign_goes_whole():
    out = mask_url_credentials("postgres://u:p@ss@db/prod")

    assert out == f"postgres://u:{MASK}@db/prod"


# --- 2. Name/Value pairs -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("pair", "name_key", "value_key"),
    [
        ({"Name": "DB_PASSWORD", "Value": "pair-secret-1"}, "Name", "Value"),
        ({"Key": "password", "Value": "pair-secret-2"}, "Key", "Value"),
        ({"name": "API_TOKEN", "value": "pair-secret-3"}, "name", "value"),
        ({"key": "clientSecret", "value": "pair-secret-4"}, "key", "value"),
        (
            {"ParameterName": "/prod/db/password", "value": "pair-secret-5"},
            "ParameterName",
            "value",
        ),
        (
            {"ParameterKey": "DBPassword", "ParameterValue": "pair-secret-6"},
            "ParameterKey",
            "ParameterValue",
        ),
        ({"NAME": "SMTP_PASS", "VALUE": "pair-secret-7"}, "NAME", "VALUE"),
        ({"name": "GITHUB_PAT", "value": ["pair-secret-8"]}, "name", "value"),
    ],
)
def test_the_value_of_a_pair_whose_name_is_secret_is_masked_and_the_name_stays(
    pair, name_key, value_key
):
    task = {"containerDefinitions": [{"environment": [pair, {"name": "REGION", "value": "eu"}]}]}

    out = mask(task)

    first, second = out["containerDefinitions"][0]["environment"]
    assert "pair-secret" not in _dump(out)
    assert first[name_key] == pair[name_key]
    assert second == {"name": "REGION", "value": "eu"}


def test_a_pair_whose_name_is_not_secret_stays_whole():
    tags = [{"Key": "Name", "Value": "web"}, {"Key": "owner", "Value": "secops@example.com"}]
    ecs = [{"name": "DB_PASSWORD", "valueFrom": "arn:aws:ssm:eu-west-1:123456789012:parameter/db"}]

    assert mask(tags) == tags
    assert mask(ecs) == ecs  # a reference to a secret is not the secret


# --- 3. Key names ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "pwd",
        "PWD",
        "PwD",
        "_pwd_",
        "pass",
        "passwd",
        "pin",
        "pat",
        "sas",
        "dsn",
        "db_pwd",
        "DB-PASS",
        "userPin",
        "GITHUB_PAT",
        "x.pin",
        "password",
        "Password",
        "DB-PASSWORD",
        "X-Api-Key",
        "api_key",
        "client.secret",
        "clientSecret",
        "Client_Secret",
        "aws_session_token",
        "SecretAccessKey",
        "authorization",
        "privateKey",
        "private_key",
        "passphrase",
        "sessionKey",
        "signature",
        "Cookie",
        "AccountKey",
        "SharedAccessKey",
        "connectionString",
        "credentials",
        "pin_password",
    ],
)
def test_these_keys_name_secrets(key):
    assert is_sensitive_key(key)
    assert mask({key: "key-secret-value"}) == {key: MASK}


@pytest.mark.parametrize(
    "key",
    [
        "path",
        "pattern",
        "spinner",
        "passengers",
        "compass",
        "tokens",
        "nextToken",
        "tokenCount",
        "tokenType",
        "tokenExpiry",
        "expiresAt",
        "KeyName",
        "keyName",
        "keyId",
        "AccessKeyId",
        "passwordLastUsed",
        "PasswordLastChanged",
        "SecretArn",
        "SharedAccessKeyName",
        "private_key_id",
        "client_email",
        "project_id",
        "region",
        "pinned",
        "patch",
        "signal",
    ],
)
def test_these_keys_name_no_secret(key):
    value = {key: "visible-value-1"}

    assert not is_sensitive_key(key)
    assert mask(value) == value


def test_counts_names_and_paths_stay_visible():
    value = {"tokens": 12, "keyName": "x", "path": "/a/b", "pattern": "x*", "tokenType": "Bearer"}

    assert mask(value) == value


# --- 4. Values under secret keys ---------------------------------------------------------


def test_a_value_under_a_secret_key_is_masked_whatever_it_looks_like():
    value = {
        "pin_password": "123456789012",
        "secret": "arn:aws:iam::123456789012:role/x",
        "token": 42,
        "apiKey": 3.5,
        "password": ["a", {"nested": "b"}],
    }

    out = mask(value)

    assert out == {
        "pin_password": MASK,
        "secret": MASK,
        "token": MASK,
        "apiKey": MASK,
        "password": [MASK, {"nested": MASK}],
    }


def test_an_empty_or_already_masked_value_under_a_secret_key_is_kept():
    value = {"password": None, "token": "", "secret": True, "apiKey": MASK, "pwd": "***", "pat": []}

    assert mask(value) == value


def test_identifiers_inside_a_secret_container_stay_visible():
    value = {
        "credentials": {
            "type": "aws",
            "accountId": "123456789012",
            "roleArn": "arn:aws:iam::123456789012:role/QFLOW",
            "secretKey": "container-secret-1",
            "externalId": "container-secret-2",
        }
    }

    out = mask(value)

    assert out["credentials"] == {
        "type": "aws",
        "accountId": "123456789012",
        "roleArn": "arn:aws:iam::123456789012:role/QFLOW",
        "secretKey": MASK,
        "externalId": MASK,
    }


def test_identifiers_outside_secrets_stay_visible():
    value = {"OwnerId": "123456789012", "Arn": "arn:aws:iam::123456789012:role/x", "n": 7}

    assert mask(value) == value


# --- 5. Well-known token formats ---------------------------------------------------------

GITHUB = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
TOKENS = [
    (GITHUB, GITHUB[4:]),
    ("gho_" + "Z" * 20 + "9" * 16, "Z" * 20),
    ("ghs_" + "s" * 36, "s" * 36),
    ("ghu_" + "u1" * 18, "u1" * 18),
    ("ghr_" + "r2" * 18, "r2" * 18),
    (
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuv",
        "11ABCDEFG0123456789_abcdefghijklmnopqrstuv",
    ),
    ("xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOp", "AbCdEfGhIjKlMnOp"),
    ("xoxp-2222-3333-4444-abcdef123456", "abcdef123456"),
    ("xoxa-2-abcdefgh12345", "abcdefgh12345"),
    ("xoxs-1111-abcdefgh12", "abcdefgh12"),
    ("xoxr-1111-abcdefgh12", "abcdefgh12"),
    ("https://hooks.slack.com/services/T000/B000/XXXXsecretXXXX", "XXXXsecretXXXX"),
    ("glpat-abcdefghij0123456789", "abcdefghij0123456789"),
    ("sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc", "4eC39HqLyjWDarjtT1zdp7dc"),
    ("AIzaSyA-1234567890abcdefghijklmnopqrstu", "SyA-1234567890abcdefghijklmnopqrstu"),
    ("npm_" + "a1B2" * 9, "a1B2" * 9),
    ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJlLXZhbHVl", "c2lnbmF0dXJlLXZhbHVl"),
    ("Bearer abcDEF123456opaque", "abcDEF123456opaque"),
    ("Basic dXNlcjpwYXNz", "dXNlcjpwYXNz"),
    ("Authorization: Bearer abcdef0123456789", "abcdef0123456789"),
    ("wJalrXUtnFEMI/K7MDENG/bPxRfiCYzSECRET012", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzSECRET012"),
]


@pytest.mark.parametrize(("text", "secret"), TOKENS)
def test_a_known_token_format_is_masked_anywhere(text, secret):
    for where, out in _everywhere(f"rotated {text} today"):
        assert secret not in out, where
    assert secret not in mask_free_text(text)  # alone, however short


def test_bearer_and_basic_keep_the_scheme_word():
    assert mask_free_text("Bearer abcDEF123456opaque") == f"Bearer {MASK}"
    assert mask_free_text("Authorization: Basic dXNlcjpwYXNz") == f"Authorization: Basic {MASK}"


def test_a_token_prefix_stays_so_an_analyst_knows_what_it_was():
    assert mask_free_text(GITHUB) == f"ghp_{MASK}"
    assert mask_free_text("xoxb-1234567890-abcdefghij") == f"xoxb-{MASK}"


@pytest.mark.parametrize(
    "kind",
    [
        "RSA PRIVATE KEY",
        "OPENSSH PRIVATE KEY",
        "ENCRYPTED PRIVATE KEY",
        "PRIVATE KEY",
        "EC PRIVATE KEY",
        "PGP PRIVATE KEY BLOCK",
    ],
)
@pytest.mark.parametrize("newline", ["\n", "\\n"])
def test_a_private_key_of_any_kind_is_masked(kind, newline):
    body = "MIIEpAIBAAKCAQEAprivatekeybody0123"
    pem = f"-----BEGIN {kind}-----{newline}{body}{newline}-----END {kind}-----{newline}"

    for where, out in _everywhere(pem):
        assert body not in out, where
    assert f"-----BEGIN {kind}-----{MASK}-----END {kind}-----" in mask_free_text(pem)


def test_an_unterminated_private_key_is_masked_to_the_end():
    out = mask_free_text("key: -----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg truncated")

    assert "MIIEvQIBADANBg" not in out and "truncated" not in out


def test_an_azure_connection_string_keeps_the_account_and_loses_the_key():
    text = (
        "DefaultEndpointsProtocol=https;AccountName=prodstore;AccountKey=Zm9vYmFyYmF6cXV4+/==;"
        "EndpointSuffix=core.windows.net"
    )

    for where, out in _everywhere(text):
        assert "Zm9vYmFyYmF6cXV4" not in out, where
        assert "AccountName=prodstore" in out and "EndpointSuffix=core.windows.net" in out, where


def test_azure_shared_access_keys_and_sas_signatures_are_masked():
    bus = "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=Root;SharedAccessKey=k3yV4lue="
    sas = "https://acct.blob.core.windows.net/c/b?sv=2020-08-04&sp=r&sig=s1gN%2Bvalue"
    signature = "SharedAccessSignature=sv=2020&sig=s1gnatureVal"

    assert mask_free_text(bus) == bus.replace("k3yV4lue=", MASK)
    assert "SharedAccessKeyName=Root" in mask_free_text(bus)
    assert mask_free_text(sas) == sas.replace("s1gN%2Bvalue", MASK)
    assert "s1gnatureVal" not in mask_free_text(signature)


def test_a_google_service_account_keeps_its_identity_and_loses_its_key():
    account = {
        "type": "service_account",
        "project_id": "prod-123",
        "private_key_id": "0123abcd",
        "private_key": "-----BEGIN PRIVATE KEY-----\nMIIgooglekeybody\n-----END PRIVATE KEY-----\n",
        "client_email": "scanner@prod-123.iam.gserviceaccount.com",
        "client_id": "1234567890",
    }

    for holder in ({"serviceAccount": account}, {"credentials": account}):
        out = mask(holder)
        text = _dump(out)
        assert "MIIgooglekeybody" not in text
        for visible in ("prod-123", "scanner@prod-123.iam.gserviceaccount.com", "0123abcd"):
            assert visible in text
    as_text = mask_free_text(json.dumps(account))
    assert "MIIgooglekeybody" not in as_text and "scanner@prod-123" in as_text


def test_an_aws_access_key_id_stays_and_its_secret_goes():
    value = {"AccessKeyId": "AKIAIOSFODNN7EXAMPLE", "note": "AKIAIOSFODNN7EXAMPLE"}
    text = (
        "export AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    )

    assert mask(value) == value
    out = mask_free_text(text)
    assert "AKIAIOSFODNN7EXAMPLE" in out and "wJalrXUtnFEMI" not in out


# --- 6. key=value in free text -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("login failed: password=hunter2", "hunter2"),
        ("password: hunter2 for user bob", "hunter2"),
        ("pwd=abc", "abc"),
        ("DB_PWD=abc123", "abc123"),
        ("token=tok_0123456789", "tok_0123456789"),
        ("secret: Sup3rS3cret", "Sup3rS3cret"),
        ("apiKey=ak-7777", "ak-7777"),
        ('api_key: "my key here"', "my key here"),
        ("Authorization: Bearer eyJzdWIi0123456789", "eyJzdWIi0123456789"),
        ('{"client_secret": "cs-value-1", "id": 3', "cs-value-1"),
        ("{'password': 'single quoted'}", "single quoted"),
        ('escaped {\\"client_secret\\": \\"cs-esc-2\\"}', "cs-esc-2"),
        ("pin: 1234", "1234"),
        ("X-Amz-Security-Token=FwoGZXIvYXdzEBY&X-Amz-Signature=abc123", "FwoGZXIvYXdzEBY"),
        ("X-Amz-Security-Token=FwoGZXIvYXdzEBY&X-Amz-Signature=abc123", "abc123"),
        (
            "Login failed: password=error-pw-45; Authorization: Bearer bearer-value-46",
            "error-pw-45",
        ),
        (
            "Login failed: password=error-pw-45; Authorization: Bearer bearer-value-46",
            "bearer-value-46",
        ),
    ],
)
def test_a_secret_after_key_equals_or_colon_in_free_text_is_masked(text, secret):
    out = mask_free_text(text)

    assert secret not in out
    assert MASK in out


def test_free_text_keeps_the_key_and_the_words_around_it():
    assert mask_free_text("login failed: password=hunter2; retry") == (
        f"login failed: password={MASK}; retry"
    )


# --- 7. Ordinary text stays --------------------------------------------------------------

PROSE = [
    "ExpiredToken: The security token included in the request is expired",
    "InvalidClientTokenId: The security token included in the request is invalid.",
    "UnrecognizedClientException: The security token included in the request is invalid.",
    "SignatureDoesNotMatch: The request signature we calculated does not match",
    "InvalidSignatureException: Signature expired: 20240101T000000Z is now earlier than now",
    "KeyName: prod-keypair",
    '"tokenType": "Bearer"',
    "The password for user admin has expired",
    "Access denied: missing secret permission",
    "Password must be at least 12 characters",
    "authorization failed for user bob",
    "token: expired",
    "password: required",
    "secret: none",
    "the Bearer token was rejected",
    "Basic authentication is disabled",
    "status='Failed' reason='Timeout'",
    "ThrottlingException: Rate exceeded",
    "AccessDenied: User: arn:aws:iam::123456789012:user/bob is not authorized",
    "path=/var/lib/x pattern=*.log",
    "2024-01-01T00:00:00Z",
    "arn:aws:ec2:us-east-1:123456789012:instance/i-0abc",
]


@pytest.mark.parametrize("text", PROSE)
def test_ordinary_text_is_left_exactly_as_is(text):
    assert mask_free_text(text) == text
    assert mask_text(text) == text
    assert mask({"error": text}) == {"error": text}


@pytest.mark.parametrize(
    "value",
    [
        {"tokens": 12},
        {"keyName": "x"},
        {"path": "/a/b"},
        {"pattern": "x*"},
        {"status": "Failed", "code": "ExpiredToken"},
        {"tokenType": "Bearer", "expiresAt": 1700000000},
    ],
)
def test_ordinary_values_are_left_as_is(value):
    assert mask(value) == value


# --- 8. Robustness -----------------------------------------------------------------------


def _bottom(value, depth: int):
    for _ in range(depth):
        value = value["a"] if isinstance(value, dict) else value[0]
    return value


def test_a_dict_nested_ten_thousand_levels_deep_is_masked_without_recursion():
    value: dict = {"password": "deep-secret-1", "Name": "ok"}
    for _ in range(10_000):
        value = {"a": value}

    out = mask(value)

    assert _bottom(out, 10_000) == {"password": MASK, "Name": "ok"}
    assert _bottom(value, 10_000)["password"] == "deep-secret-1"  # the input is untouched


def test_a_list_nested_ten_thousand_levels_deep_is_masked_without_recursion():
    value: list = [{"Name": "DB_PASSWORD", "Value": "deep-secret-2"}]
    for _ in range(10_000):
        value = [value]

    out = mask_payload(value)

    assert _bottom(out, 10_000) == [{"Name": "DB_PASSWORD", "Value": MASK}]


def test_a_string_holding_json_too_deep_to_decode_is_not_let_through():
    deep = "[" * 5_000 + json.dumps({"password": "deep-json-secret"}) + "]" * 5_000

    out = mask({"blob": deep})

    assert "deep-json-secret" not in out["blob"]


def test_a_string_holding_json_is_decoded_masked_and_reencoded():
    inner = {"result": {"client_secret": "nested-secret", "Name": "API_TOKEN", "Value": "v-1"}}

    out = mask({"stepMessage": json.dumps(inner)})

    decoded = json.loads(out["stepMessage"])
    assert decoded == {"result": {"client_secret": MASK, "Name": "API_TOKEN", "Value": MASK}}


def test_a_string_holding_clean_json_keeps_its_exact_text():
    text = '{"a" :  1, "b": [1,2]}'

    assert mask({"s": text}) == {"s": text}


def test_mask_returns_a_copy_and_never_mutates_its_input():
    value = {"password": "p", "list": [{"token": "t"}], "s": json.dumps({"secret": "x"})}
    before = copy.deepcopy(value)

    out = mask(value)

    assert value == before
    assert out is not value and out["list"] is not value["list"]


def test_tuples_and_mapping_subclasses_are_masked_too():
    from collections import OrderedDict

    out = mask({"x": (OrderedDict(password="tuple-secret"),)})

    assert out == {"x": [{"password": MASK}]}


ALL_SHAPES = (
    [{"db": url} for url, _, _ in URLS]
    + [
        {"environment": [{"Name": "DB_PASSWORD", "Value": "x"}]},
        {"tags": [{"Key": "password", "Value": "x"}]},
        {"env": [{"name": "API_TOKEN", "value": "x"}]},
        {"params": [{"ParameterName": "/prod/db/password", "value": "x"}]},
        {"pwd": "x"},
        {"db_pass": "x"},
        {"userPin": "1234"},
        {"GITHUB_PAT": "x"},
        {"SAS": "x"},
        {"pin_password": "123456789012"},
        {"credentials": {"type": "t", "accountId": "123456789012", "secretKey": "k"}},
        {"note": "Authorization: Basic dXNlcjpwYXNz"},
        {"note": "Bearer abcdef0123456789"},
        {"k": "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----"},
        {"k": "-----BEGIN OPENSSH PRIVATE KEY-----\\nb3Bl\\n-----END OPENSSH PRIVATE KEY-----"},
        {"k": "AccountName=a;AccountKey=Zm9vYmFy;EndpointSuffix=core.windows.net"},
        {"k": "https://a.blob.core.windows.net/c?sv=1&sig=abc"},
        {"serviceAccount": {"private_key": "x", "client_email": "a@b"}},
        {"k": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJl"},
        {"k": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzSECRET012"},
        {"error": "login failed: pwd=abc"},
        {"error": "could not connect to postgres://a:b@h/db: timeout"},
        {"stepMessage": json.dumps({"client_secret": "x"})},
        {"k": "D\u00e9j\u00e0 vu: password=x"},
        {"\uff50\uff41\uff53\uff53\uff57\uff4f\uff52\uff44": "fullwidth"},
        {"TO\u212aEN": "kelvin"},
        {"db\npwd": "escaped newline in a key"},
        {"pass\tword": "escaped tab in a key"},
    ]
    + [{"note": f"rotated {text} today"} for text, _ in TOKENS]
)


@pytest.mark.parametrize("value", ALL_SHAPES, ids=lambda v: _dump(v)[:40])
def test_the_quick_check_never_calls_a_payload_with_a_secret_clean(value):
    assert mask(value) != value
    for text in (_dump(value), json.dumps(value), json.dumps(value, separators=(",", ":"))):
        assert not nothing_to_mask(text)


@pytest.mark.parametrize("value", ALL_SHAPES, ids=lambda v: _dump(v)[:40])
def test_masking_twice_is_masking_once(value):
    once = mask(value)

    assert mask(once) == once
    assert mask_free_text(_dump(once)) == mask_free_text(mask_free_text(_dump(once)))


@pytest.mark.parametrize("text", PROSE)
def test_masking_text_twice_is_masking_it_once(text):
    for _, out in _everywhere(text + " password=p4ss ghp_" + "x" * 36):
        assert mask_free_text(out) == out


CLEAN = [
    {"collection": [{"path": "/a", "pattern": "*", "Tags": [{"Key": "Name", "Value": "web"}]}]},
    {"InstanceId": "i-0abc", "OwnerId": "123456789012", "State": {"Name": "running"}},
    {"message": "Fetched 12 resources in us-east-1", "spinner": True, "passengers": 3},
    {"compass": "north", "pinned": False, "patch": "1.2", "signal": "SIGTERM", "high": "through"},
]


@pytest.mark.parametrize("value", CLEAN, ids=lambda v: _dump(v)[:40])
def test_the_quick_check_lets_clean_payloads_skip_the_walk(value):
    assert nothing_to_mask(json.dumps(value, separators=(",", ":")))
    assert mask(value) == value


# --- the rest of the public API ----------------------------------------------------------


def test_variable_strings_mask_the_sensitive_ones():
    items = ["region=us-east-1", "password=var-secret", "DB_PWD=var-2", "note=token=abc123x", 7]

    assert mask_variable_strings(items) == [
        "region=us-east-1",
        f"password={MASK}",
        f"DB_PWD={MASK}",
        f"note=token={MASK}",
        7,
    ]


def test_text_functions_pass_non_strings_and_empty_strings_through():
    for value in (None, "", 5):
        assert mask_free_text(value) == value
        assert mask_text(value) == value
        assert mask_url_credentials(value) == value


# --- the rule table ----------------------------------------------------------------------


def test_every_rule_says_why():
    assert len({rule.name for rule in RULES}) == len(RULES)
    for rule in RULES:
        assert rule.why and rule.matches and rule.where in ("key", "pair", "text"), rule.name


def test_no_secret_word_is_mistaken_for_a_harmless_key_ending():
    rules = {rule.name: rule for rule in RULES}
    endings = rules["visible-key-endings"].matches
    for word in (*rules["key-words"].matches, *rules["short-key-names"].matches):
        assert not word.endswith(endings), word
        assert is_sensitive_key(word), word
