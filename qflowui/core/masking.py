"""Mask secrets in anything that came from QFlow, before it is stored, shown or logged.

QFlow is an untrusted upstream: a secret can hide under any key, inside any string, inside
a string that holds JSON, at any depth. Every rule is one row of `RULES` below, with the
reason it exists; the code under the table only applies them. In short, a value becomes
MASK ("********") when

- its key names a secret (key words, short key names), unless the key names a property of
  a secret (its id, name, ARN, type, dates: visible keys and endings). A value under a
  secret key is masked whatever it looks like; inside a secret *container* only the
  identifiers of `visible-inside-secret` stay;
- it is the value of a Name/Value pair whose name names a secret;
- it has the shape of a credential wherever it stands (a URL password, an auth header, a
  private key, a JWT, a GitHub/Slack/... token, an AWS secret key, `password=...` in free
  text): then only that part of the string is replaced.

Guarantees: `mask()` returns a copy and never mutates its input; `mask(mask(x)) == mask(x)`
(stored data may be masked again); no recursion on the data's depth (dicts and lists are
walked with an explicit stack); `nothing_to_mask(json_text)` is True only when masking
the value would change nothing.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from typing import Any, NamedTuple

MASK = "********"
_AUTH_SCHEMES = ("bearer", "basic", "token", "negotiate", "ntlm")


class Rule(NamedTuple):
    """One row of the table. `where`: "key" (a dict key, or a `key=` in text), "pair" (a
    Name/Value dict) or "text" (any string). `matches`: words, or regular expressions whose
    group `secret` is the part replaced by MASK."""

    name: str
    where: str
    matches: tuple[str, ...]
    why: str


# fmt: off
RULES: tuple[Rule, ...] = (
    Rule("key-words", "key", (
        "credential", "secret", "token", "password", "passwd", "passphrase", "passcode",
        "pincode", "apikey", "authorization", "privatekey", "privkey", "sessionkey",
        "signature", "cookie", "accesskey", "accountkey", "connectionstring", "encryptionkey",
        "signingkey", "masterkey",
    ), "A key holding one of these words names a secret (clientSecret, X-Api-Key, DB-PASSWORD,"
       " aws_session_token, SecretAccessKey, AccountKey): case and separators are ignored."),
    Rule("short-key-names", "key", (
        "pwd", "pw", "pass", "pin", "pat", "sas", "sig", "dsn", "psk", "otp", "auth",
    ), "Too short to look for inside longer keys (path, pattern, spinner, passengers, compass):"
       " they count only as the whole key (any case) or its last word (DB_PWD, userPin, x.pin)."),
    Rule("visible-keys", "key", (
        "tokens", "nexttoken", "nextpagetoken", "pagetoken", "continuationtoken",
        "paginationtoken",
    ), "Counts and pagination cursors named after tokens are not credentials."),
    Rule("visible-key-endings", "key", (
        "keyid", "keyids", "arn", "arns", "name", "names", "type", "count",
        "length", "lastused", "lastusedat", "lastuseddate", "lastchanged", "lastchangeddate",
        "lastrotated", "lastrotateddate", "lastset", "createdat", "createdate", "createddate",
        "creationdate", "updatedat", "rotatedat", "expiry", "expirydate", "expiration",
        "expirationdate", "expirationtime", "expiresat", "expiresin", "policy", "enabled",
        "required", "status", "version", "algorithm", "method", "url", "uri", "endpoint",
    ), "A key ending like this names a property of a secret, not the secret (AccessKeyId,"
       " SecretArn, SharedAccessKeyName, tokenType, tokenExpiry, passwordLastUsed)."),
    Rule("visible-inside-secret", "key", (
        "type", "arn", "rolearn", "account", "accountid", "connectorid", "qflowconnectorid",
        "portaluuid", "ismigrated", "region", "name", "id", "tenantid", "subscriptionid",
        "projectid", "cloudtype", "accesskeyid", "status", "createdate", "username",
        "clientemail", "clientid", "privatekeyid",
    ), "Inside a container under a secret key (credentials: {...}) these identifiers stay so"
       " an analyst can tell which account ran; everything else in it is masked."),
    Rule("pair-names", "pair", (
        "name", "key", "parametername", "parameterkey", "paramname", "paramkey",
        "variablename", "variablekey", "varname", "envname", "settingname", "optionname",
        "attributename",
    ), "Name/Value pairs (ECS environment, SSM parameters, tags, Kubernetes env, CloudFormation"
       " parameters): when the name under one of these keys names a secret..."),
    Rule("pair-values", "pair", (
        "value", "values", "parametervalue", "paramvalue", "variablevalue", "varvalue",
        "settingvalue", "optionvalue", "attributevalue", "stringvalue", "defaultvalue",
    ), "...the value under one of these keys is masked; the name itself stays visible."),
    Rule("url-password", "text", (
        r"[A-Za-z][A-Za-z0-9+.-]*://[^\s:/?#@\"'<>\\]*:(?P<secret>[^\s\"'<>\\]*?)"
        r"@(?=[^\s\"'<>\\@/?#]*(?:[/?#\s\"'<>\\]|$))",
    ), "A password in a URL or connection string (postgres://dbadmin:pw@db/prod, redis://:pw@h):"
       " only the password goes; scheme, user and host stay."),
    Rule("auth-header", "text", (
        rf"(?i)(?<![A-Za-z0-9])(?:{'|'.join(_AUTH_SCHEMES)})[ \t]+"
        r"(?P<secret>[A-Za-z0-9._~+/*-](?:[A-Za-z0-9._~+/*=-]*[A-Za-z0-9_~+/*=-])?)",
    ), "The credentials after an HTTP auth scheme (Bearer, Basic, Token...); the scheme stays,"
       " and a plain word after it (\"Bearer token\", \"token included\") is prose."),
    Rule("private-key", "text", (
        r"-----BEGIN (?P<label>[A-Z0-9 ]*PRIVATE KEY[A-Z0-9 ]*)-----(?P<secret>.*?)"
        r"(?:-----END (?P=label)-----|\Z)",
    ), "A PEM private key of any kind (RSA, EC, OPENSSH, ENCRYPTED, PGP), newlines real or"
       " escaped: the body goes, the BEGIN/END lines stay; unterminated, it goes to the end."),
    Rule("jwt", "text", (
        r"(?<![A-Za-z0-9])(?P<secret>eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*)",
    ), "A JSON Web Token (eyJ...) is a bearer credential."),
    Rule("vendor-tokens", "text", (
        r"(?<![A-Za-z0-9])gh[pousr]_(?P<secret>[A-Za-z0-9_]{20,})",
        r"(?<![A-Za-z0-9])github_pat_(?P<secret>[A-Za-z0-9_]{20,})",
        r"(?<![A-Za-z0-9])xox[a-z]-(?P<secret>[A-Za-z0-9-]{8,})",
        r"(?<![A-Za-z0-9])xapp-(?P<secret>[A-Za-z0-9-]{8,})",
        r"hooks\.slack\.com/(?:services|workflows|triggers)/(?P<secret>[A-Za-z0-9/_-]{8,})",
        r"(?<![A-Za-z0-9])glpat-(?P<secret>[A-Za-z0-9_-]{20,})",
        r"(?<![A-Za-z0-9])sk_live_(?P<secret>[A-Za-z0-9]{16,})",
        r"(?<![A-Za-z0-9])rk_live_(?P<secret>[A-Za-z0-9]{16,})",
        r"(?<![A-Za-z0-9])AIza(?P<secret>[0-9A-Za-z_-]{35})",
        r"(?<![A-Za-z0-9])npm_(?P<secret>[A-Za-z0-9]{36})",
    ), "Tokens with a vendor prefix (GitHub ghp_/gho_/ghs_/ghu_/ghr_/github_pat_, Slack xox?-,"
       " xapp- and webhooks, GitLab, Stripe, Google API keys, npm) go wherever they stand."),
    Rule("aws-secret-key", "text", (
        r"(?<![A-Za-z0-9/+])(?P<secret>(?=[A-Za-z0-9/+]{0,39}[A-Z])(?=[A-Za-z0-9/+]{0,39}[a-z])"
        r"(?=[A-Za-z0-9/+]{0,39}[0-9/+])[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])",
    ), "40 characters of base64 mixing cases and digits: an AWS secret access key (the AKIA..."
       " access key id is an identifier and stays)."),
    Rule("key-value-in-text", "text", (
        r"(?<![\w.-])(?P<key>[^\W\d][\w.-]{0,80}+)(?P<sep>(?:\\?[\"'])?[ \t]*[:=][ \t]*)"
        r"(?=(?P<q>\\?[\"'])?(?P<secret>(?(q)(?:(?!(?P=q))(?:\\.|[^\n\\]))*|[^\s\"',;&}\]]+)))",
    ), "password=..., token: ..., \"client_secret\": \"...\", AccountKey=...;, &sig=... in free"
       " text (errors, tags, variables, logs): the value goes when the key rules call it secret"
       " (the value is a lookahead: in \"failed: pwd=x\" the search goes on after \"failed:\")."),
    Rule("plain-words", "text", (
        "the", "a", "an", "is", "are", "was", "were", "be", "been", "not", "no", "none", "null",
        "nil", "true", "false", "yes", "ok", "empty", "blank", "missing", "invalid", "expired",
        "required", "provided", "given", "found", "present", "absent", "incorrect", "wrong",
        "denied", "failed", "failure", "error", "unknown", "unset", "undefined", "revoked",
        "malformed", "rejected", "mismatch", "changed", "reset", "updated", "created",
        "deleted", "removed", "disabled", "enabled", "must", "has", "have", "had", "for", "of",
        "in", "on", "to", "from", "with", "without", "and", "or", "this", "that", "it", "its",
        "your", "you", "please", "should", "cannot", "can", "could", "may", "will", "does",
        "did", "do", "when", "if", "too", "expires", "specified", "supplied", "set", "n/a",
        *_AUTH_SCHEMES,
    ), "After `key:`/`key=` in free text these words, or a capitalised word that starts a"
       " sentence, are prose: \"ExpiredToken: The security token ... is expired\" stays (an"
       " auth scheme too: \"Authorization: Bearer ...\" keeps it, its token has its own rule)."),
)
# fmt: on

_RULE = {rule.name: rule for rule in RULES}
_KEY_WORDS = _RULE["key-words"].matches
_SHORT_NAMES = frozenset(_RULE["short-key-names"].matches)
_VISIBLE_KEYS = frozenset(_RULE["visible-keys"].matches)
_VISIBLE_ENDINGS = _RULE["visible-key-endings"].matches
_VISIBLE_INSIDE_SECRET = frozenset(_RULE["visible-inside-secret"].matches)
_PAIR_NAMES = frozenset(_RULE["pair-names"].matches)
_PAIR_VALUES = frozenset(_RULE["pair-values"].matches)
_PLAIN_WORDS = frozenset(_RULE["plain-words"].matches)


# --- keys ---------------------------------------------------------------------------------


def _trie(words: Any) -> str:
    """A regex for any of `words`, factored on common prefixes: Python's re tries one branch."""

    def branch(rests: list[str]) -> str:
        heads: dict[str, list[str]] = {}
        for rest in rests:
            if rest:
                heads.setdefault(rest[0], []).append(rest[1:])
        alts = [re.escape(head) + branch(tails) for head, tails in sorted(heads.items())]
        body = "" if not alts else alts[0] if len(alts) == 1 else f"(?:{'|'.join(alts)})"
        return f"(?:{body})?" if body and "" in rests else body

    return branch(sorted(set(words)))


_NON_ALNUM = re.compile(r"[^a-z0-9]")
_KEY_WORD = re.compile(_trie(_KEY_WORDS))
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


def _nfkc(text: str) -> str:
    # Fullwidth letters, the Kelvin sign, ligatures... fold to the ASCII a reader sees.
    return text if text.isascii() else unicodedata.normalize("NFKC", text)


def _norm(key: str) -> str:
    return _NON_ALNUM.sub("", _nfkc(key).lower())


@functools.lru_cache(maxsize=16384)
def is_sensitive_key(key: str) -> bool:
    """Whether a key (or a Name/Value pair's name, or a `key=` in text) names a secret."""
    if not isinstance(key, str):
        return False
    text = _nfkc(key)
    norm = _NON_ALNUM.sub("", text.lower())
    if not norm or norm in _VISIBLE_KEYS or norm.endswith(_VISIBLE_ENDINGS):
        return False
    if _KEY_WORD.search(norm):
        return True
    if text.strip("_-. ").lower() in _SHORT_NAMES:
        return True
    words = _WORD.findall(text)
    while words and words[-1].isdigit():
        words.pop()
    return bool(words) and words[-1].lower() in _SHORT_NAMES


# A key's roles in a dict, cached: the same few keys repeat across a whole payload.
_SECRET, _PAIR_NAME, _PAIR_VALUE, _VISIBLE = 1, 2, 4, 8
_FLAGS: dict[str, int] = {}


def _key_flags(key: Any) -> int:
    if not isinstance(key, str):
        return 0
    if type(key) is not str:
        key = str.__str__(key)
    norm = _norm(key)
    flags = (
        (_SECRET if is_sensitive_key(key) else 0)
        | (_PAIR_NAME if norm in _PAIR_NAMES else 0)
        | (_PAIR_VALUE if norm in _PAIR_VALUES else 0)
        | (_VISIBLE if norm in _VISIBLE_INSIDE_SECRET else 0)
    )
    if len(_FLAGS) >= 65536:  # upstream controls the keys: keep the cache bounded
        _FLAGS.clear()
    _FLAGS[key] = flags
    return flags


# --- free text ----------------------------------------------------------------------------


def _compile(name: str) -> re.Pattern[str]:
    (pattern,) = _RULE[name].matches
    return re.compile(pattern, re.DOTALL)


_URL = _compile("url-password")
_AUTH = _compile("auth-header")
_AWS_SECRET = _compile("aws-secret-key")
_KEY_VALUE = _compile("key-value-in-text")


_LEADING_GUARD = r"(?<![A-Za-z0-9])"


def _anchor(source: str) -> str:
    """The literal a fixed-shape token pattern starts with: a cheap `in` test before it runs."""
    head = source.removeprefix(_LEADING_GUARD).removeprefix("(?P<secret>")
    literal = re.match(r"(?:[A-Za-z0-9_ /-]|\\\.)+", head)
    if not literal or len(literal.group(0)) < 2:
        raise ValueError(f"a fixed-shape token pattern must start with a literal: {source}")
    return literal.group(0).replace("\\", "")


# Fixed-shape tokens: (anchor, pattern, pattern without its leading guard to scan big texts).
_FORMATS = tuple(
    (
        _anchor(source),
        re.compile(source, re.DOTALL),
        re.compile(source.removeprefix(_LEADING_GUARD), re.DOTALL),
    )
    for name in ("private-key", "jwt", "vendor-tokens")
    for source in _RULE[name].matches
)
_FORMAT_GATE = re.compile(_trie(anchor for anchor, _, _ in _FORMATS))
# Cheap tests before the key=value and auth rules, run on the text lower-cased with all but
# [a-z0-9:=] deleted, as keys are normalized (api_key, "Private-Key" :): a key word, then
# the rest of the key, then its separator; a short name is the key's end (DB_PWD=, not
# mapping=); an auth scheme anywhere.
_KEY_HINT = re.compile(
    rf"(?:{_trie(_KEY_WORDS)})[a-z0-9]*[:=]|(?:{_trie(_SHORT_NAMES)})[0-9]*[:=]".encode()
)
_SCHEME_HINT = re.compile(_trie(_AUTH_SCHEMES).encode())
_ALL_BUT_ALNUM_SEP = bytes(
    b for b in range(256) if not (48 <= b <= 58 or 97 <= b <= 122 or b == 61)
)
_AWS_HINT = re.compile(r"[A-Za-z0-9/+]{40}")
_PLAIN_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+")
_CAPITALISED = re.compile(r"[A-Z][a-z]+")


def _masked(match: re.Match[str]) -> str:
    start, end = match.span("secret")
    whole = match.string
    return f"{whole[match.start() : start]}{MASK}{whole[end : match.end()]}"


def _is_masked(value: str) -> bool:
    return value == MASK or (bool(value) and not value.strip("*"))


def _format_repl(match: re.Match[str]) -> str:
    secret = match.group("secret")
    return _masked(match) if secret and not _is_masked(secret) else match.group(0)


def _url_repl(match: re.Match[str]) -> str:
    secret = match.group("secret")
    return _masked(match) if secret and secret != MASK else match.group(0)


def _auth_repl(match: re.Match[str]) -> str:
    """Mask what follows Bearer/Basic/Token only if it looks like a credential, not a word."""
    token = match.group("secret")
    bare = token.rstrip("=")
    if (
        _is_masked(token)
        or len(token) < 4
        or _PLAIN_WORD.fullmatch(bare)
        or (bare.isdigit() and len(bare) < 8)
    ):
        return match.group(0)
    return _masked(match)


def _value_is_secret(match: re.Match[str]) -> bool:
    """A `key: value` in text: is the value a secret, or prose such as "Token: The ..."?"""
    if not is_sensitive_key(match.group("key")):
        return False
    value = match.group("secret")
    if not value or _is_masked(value):
        return False
    word = value.rstrip(".,;:!?").lower()
    if word in _PLAIN_WORDS or value == "-----BEGIN":  # prose; a PEM key has its own rule
        return False
    end = match.end("secret")
    return not (
        match.group("q") is None
        and ":" in match.group("sep")
        and _CAPITALISED.fullmatch(value)
        and match.string[end : end + 1] == " "
        and match.string[end + 1 : end + 2].isalpha()
    )  # "ExpiredToken: The security token ...": a sentence starts


def _mask_key_values(text: str) -> str:
    parts, done = [], 0
    for match in _KEY_VALUE.finditer(text):
        start, end = match.span("secret")
        if start >= done and _value_is_secret(match):
            parts += (text[done:start], MASK)
            done = end
    return "".join([*parts, text[done:]]) if parts else text


def mask_url_credentials(text: str) -> str:
    """`postgres://dbadmin:S3cr3t@db:5432/prod` -> `postgres://dbadmin:********@db:5432/prod`."""
    if not isinstance(text, str) or "://" not in text:
        return text
    return _URL.sub(_url_repl, text)


_JSON_HEADS = frozenset("{[ \n\t\r")
# Payloads repeat the same short strings (states, regions, types, dates): each is checked
# once per process. Only strings that hold no secret are remembered, and not for long.
_MEMO: dict[str, str] = {}
_MEMO_MAX_LEN = 100


def _mask_free(text: str) -> str:
    if text in _MEMO:
        return text
    masked = _apply_text_rules(text)
    # Never a string that may hold JSON: the walk decodes those, with stronger rules.
    if masked == text and len(text) <= _MEMO_MAX_LEN and text[:1] not in _JSON_HEADS:
        if len(_MEMO) >= 32768:
            _MEMO.clear()
        _MEMO[text] = text
    return masked


def _apply_text_rules(text: str) -> str:
    # Until nothing changes: masking twice must be masking once, and this holds it even if
    # one rule's MASK ever lets another rule match. Strings without secrets pass once.
    for _ in range(8):
        masked = _text_rules_once(text)
        if masked == text:
            break
        text = masked
    return text


def _text_rules_once(text: str) -> str:
    # Each rule is gated by a cheap test first. Fixed shapes go first (a
    # `password: -----BEGIN ...` must keep its BEGIN line for the private-key rule).
    if "://" in text:
        text = _URL.sub(_url_repl, text)
    size = len(text)
    if size >= 13:
        if _FORMAT_GATE.search(text):
            for anchor, pattern, _ in _FORMATS:
                if anchor in text:
                    text = pattern.sub(_format_repl, text)
        if size >= 40 and _AWS_HINT.search(text):
            text = _AWS_SECRET.sub(MASK, text)
    if size >= 4 and ("=" in text or ":" in text or " " in text or "\t" in text):
        squeezed = _nfkc(text).lower().encode().translate(None, _ALL_BUT_ALNUM_SEP)
        if ("=" in text or ":" in text) and _KEY_HINT.search(squeezed):
            text = _mask_key_values(text)
        if size >= 10 and _SCHEME_HINT.search(squeezed):
            text = _AUTH.sub(_auth_repl, text)
    return text


def mask_free_text(text: str) -> str:
    """A free string (an error, a tag, a variable, a log line) with every secret part masked."""
    if not isinstance(text, str) or not text:
        return text
    return _mask_free(text)


def mask_text(text: str) -> str:
    """The parts of a free string that look like secrets, masked (same rules as mask_free_text)."""
    return mask_free_text(text)


def mask_variable_strings(items: list[Any]) -> list[Any]:
    """Execution variables come as ["region=us-east-1", ...]: mask the sensitive ones."""
    out = []
    for item in items:
        if isinstance(item, str) and "=" in item:
            key, _, val = item.partition("=")
            out.append(f"{key}={MASK}" if val and is_sensitive_key(key) else mask_free_text(item))
        else:
            out.append(mask(item))
    return out


# --- JSON values --------------------------------------------------------------------------

_MAX_JSON_IN_STRING = 8  # strings holding JSON holding strings holding JSON...


def _secret_scalar(value: Any) -> Any:
    """A scalar under a secret key: masked whatever it looks like, unless it holds nothing."""
    if value is None or value is True or value is False or value == "":
        return value
    if type(value) is str and _is_masked(value):
        return value
    return MASK


def _mask_string(text: str, level: int) -> str:
    if len(text) < 4:  # no rule matches fewer characters
        return text
    if text[0] in _JSON_HEADS and text.lstrip()[:1] in ("{", "["):
        masked = _mask_json_string(text, level)
        if masked is not None:
            return masked
    return _mask_free(text)


def _mask_json_string(text: str, level: int) -> str | None:
    """A string holding JSON: decoded, masked, re-encoded. None if it holds no JSON."""
    if level >= _MAX_JSON_IN_STRING:
        return text if nothing_to_mask(text) else MASK
    try:
        inner = json.loads(text)
    except RecursionError:
        return text if nothing_to_mask(text) else MASK  # too deep to read: no chance taken
    except ValueError:
        return None
    if not isinstance(inner, dict | list):
        return None
    masked = _walk(inner, level + 1)
    try:
        if masked == inner:
            return text
        return json.dumps(masked, ensure_ascii=False)
    except (RecursionError, ValueError, TypeError):
        return MASK


def _place(item: Any, secret: bool, level: int, stack: list[Any]) -> Any:
    """What goes in the copy for `item`: a scalar's masked value, or an empty container that
    is filled when the stack reaches it."""
    kind = type(item)
    if kind is not dict and kind is not list and kind is not str:
        if isinstance(item, dict):
            item, kind = dict(item), dict
        elif isinstance(item, list | tuple):
            item, kind = list(item), list
        elif isinstance(item, str):
            item, kind = str.__str__(item), str
    if kind is dict or kind is list:
        child: Any = {} if kind is dict else []
        stack.append((item, child, secret))
        return child
    if secret:
        return _secret_scalar(item)
    if kind is str:
        return _mask_string(item, level)
    return item


def _walk(value: Any, level: int) -> Any:
    """The masked copy of a JSON value, built with an explicit stack: no recursion on depth.

    The common cases (a str, a number, a container, a known key) are inlined: a 10 MB
    payload has ~300,000 strings and as many keys.
    """
    stack: list[tuple[Any, Any, bool]] = []
    root = _place(value, False, level, stack)
    pop, push, flags_of, memo = stack.pop, stack.append, _FLAGS.get, _MEMO.get
    while stack:
        src, dst, secret = pop()
        if type(dst) is list:
            append = dst.append
            for item in src:
                kind = type(item)
                if secret:
                    append(_place(item, True, level, stack))
                elif kind is str:
                    masked = item if len(item) < 4 else memo(item)
                    append(masked if masked is not None else _mask_string(item, level))
                elif kind is dict or kind is list:
                    child: Any = {} if kind is dict else []
                    push((item, child, False))
                    append(child)
                else:
                    append(_place(item, False, level, stack))
            continue
        if secret:
            for key, item in src.items():
                flags = flags_of(key) if type(key) is str else None
                if flags is None:
                    flags = _key_flags(key)
                dst[key] = _place(item, not flags & _VISIBLE, level, stack)
            continue
        names = value_keys = None
        for key, item in src.items():
            flags = flags_of(key) if type(key) is str else None
            if flags is None:
                flags = _key_flags(key)
            if flags:
                if flags & _SECRET:
                    dst[key] = _place(item, True, level, stack)
                    continue
                if flags & _PAIR_NAME and type(item) is str:
                    names = [item] if names is None else [*names, item]
                if flags & _PAIR_VALUE:
                    value_keys = [key] if value_keys is None else [*value_keys, key]
            kind = type(item)
            if kind is str:
                masked = item if len(item) < 4 else memo(item)
                dst[key] = masked if masked is not None else _mask_string(item, level)
            elif kind is dict or kind is list:
                child = {} if kind is dict else []
                push((item, child, False))
                dst[key] = child
            elif kind is int or kind is float or kind is bool or item is None:
                dst[key] = item
            else:
                dst[key] = _place(item, False, level, stack)
        if value_keys and names and any(is_sensitive_key(name) for name in names):
            for key in value_keys:  # a Name/Value pair whose name is a secret's
                dst[key] = _place(src[key], True, level, stack)
    return root


def mask_payload(value: Any) -> Any:
    """A masked copy of a JSON-like value (dicts, lists, scalars; tuples come back as lists)."""
    return _walk(value, 0)


def mask(value: Any) -> Any:
    """A copy of `value` (JSON-like) with every secret replaced by MASK; see RULES."""
    return _walk(value, 0)


# --- the quick check ----------------------------------------------------------------------
#
# `nothing_to_mask(json_text)` spares the walk (~0.5 s for 10 MB) to the big inventories that
# hold no secret. It must answer False whenever any rule could fire: a wrong True leaks a
# secret, a wrong False only costs time. Each test below stands for rules of the table.

# The text lower-cased with every byte but [a-z0-9] and the quote deleted holds the
# normalized form of every key and string (is_sensitive_key's `norm`), quote-separated.
_SQUEEZE = bytes(b for b in range(256) if not (48 <= b <= 57 or 97 <= b <= 122 or b == 34))
_BASE64_RUN = bytes(
    97 if (48 <= b <= 57 or 65 <= b <= 90 or 97 <= b <= 122 or b in b"/+=") else 32
    for b in range(256)
)
_SQUEEZED_WORDS = tuple(word.encode() for word in (*_KEY_WORDS, *_AUTH_SCHEMES))
_ESCAPE = re.compile(r"\\[\\bfnrt]")


def _short_name_may_be_key(text: str) -> bool:
    """Whether a short key name (pin, pwd...) in `text` could be a whole key or its last word.

    Conservative: a hit is dismissed only when it cannot be one: glued to a letter after it
    (path, pinned, PINCode), or starting lower-case glued to a letter before it (spinner).
    """
    low = text.lower()
    if len(low) != len(text):
        return True
    for word in _SHORT_NAMES:
        i = low.find(word)
        while i >= 0:
            after = text[i + len(word) : i + len(word) + 1]
            before = text[i - 1 : i] if i else ""
            if not ("a" <= after <= "z" or "A" <= after <= "Z") and not (
                "a" <= text[i] <= "z"
                and ("a" <= before <= "z" or "A" <= before <= "Z")
                and text[i - 2 : i - 1] != "\\"
            ):
                return True
            i = low.find(word, i + 1)
    return False


def nothing_to_mask(text: str) -> bool:
    """True only if no rule of mask_payload() can change the JSON value whose text this is.

    A cheap pass over the text (~0.2 s for 10 MB, against ~0.6 s for the walk). Anything
    doubtful answers False.
    """
    # Escapes that could hide a letter, a quote splitting a key, a slash of a URL; JSON held
    # in strings (escaped quotes) takes the walk too.
    if "\\" in text and ("\\u" in text or '\\"' in text or "\\/" in text):
        return False
    # Each JSON string once, still between quotes: a big inventory repeats its keys and most
    # of its values, and every test below looks inside one string at a time.
    text = '"'.join(set(text.split('"')))
    if "://" in text and "@" in text:  # url-password
        return False
    for anchor, _, unguarded in _FORMATS:  # private-key, jwt, vendor-tokens
        if anchor in text and unguarded.search(text):
            return False
    source = _nfkc(text)
    spaced = source
    if "\\" in source:  # \n \t ... separate words in a key, and vanish once it is normalized
        spaced = _ESCAPE.sub(" ", source)
        source = _ESCAPE.sub("", source)
    squeezed = source.lower().encode().translate(None, _SQUEEZE)
    if any(word in squeezed for word in _SQUEEZED_WORDS):  # key-words, auth-header, pairs
        return False
    if _short_name_may_be_key(spaced):  # short-key-names, pairs
        return False
    return b"a" * 40 not in text.encode().translate(_BASE64_RUN)  # aws-secret-key
