from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from agentcorp.errors import ConfigError
from agentcorp.policy.config import ApproverConfig, PolicyConfig, SecretSpec, secrets_from_spec


def test_from_spec_reads_attributes_and_mappings_alike() -> None:
    approver = SimpleNamespace(kind="webhook", url="http://127.0.0.1:9/x", timeout=5)
    obj = SimpleNamespace(
        allow_apps=["mousepad"],
        allow_urls=None,
        forbid_keys=["alt+F2"],
        forbid_text=[r"\d{16}"],
        confirm=["Delete"],
        approver=approver,
    )
    as_map: dict[str, Any] = {
        "allow_apps": ["mousepad"],
        "forbid_keys": ["alt+F2"],
        "forbid_text": [r"\d{16}"],
        "confirm": ["Delete"],
        "approver": {"kind": "webhook", "url": "http://127.0.0.1:9/x", "timeout": 5},
    }
    a, b = PolicyConfig.from_spec(obj), PolicyConfig.from_spec(as_map)
    assert a == b
    assert a.allow_urls == ()
    assert a.approver == ApproverConfig("webhook", "http://127.0.0.1:9/x", 5.0)
    assert PolicyConfig.from_spec(None) == PolicyConfig()


def test_from_spec_reads_the_real_spec_model() -> None:
    from agentcorp.spec import models

    pol = models.Policy(
        allow_urls=["https://*.acme.test/*"],
        confirm=["Pay"],
        approver=models.Approver(kind="prompt", timeout="2m"),
    )
    cfg = PolicyConfig.from_spec(pol)
    assert cfg.allow_urls == ("https://*.acme.test/*",)
    assert cfg.approver.kind == "prompt"
    assert cfg.approver.timeout == 120.0
    specs = secrets_from_spec(
        ["PLAIN", models.SecretSpec(name="BO_PW", allow_domains=["localhost:8000"])]
    )
    assert specs == (SecretSpec("PLAIN"), SecretSpec("BO_PW", allow_domains=("localhost:8000",)))
    assert specs[1].env_var == "BO_PW"


@pytest.mark.parametrize(
    ("obj", "where"),
    [
        ({"forbid_text": ["(unclosed"]}, "policy.forbid_text[0]: bad regular expression"),
        ({"confirm": ["ok", "[z-a]"]}, "policy.confirm[1]"),
        ({"forbid_keys": ["ctrl+"]}, "policy.forbid_keys[0]"),
        ({"allow_urls": "https://x/*"}, "policy.allow_urls: must be a list"),
        ({"allow_apps": [3]}, "policy.allow_apps[0]: must be a string"),
        ({"approver": {"kind": "maybe"}}, "policy.approver.kind"),
        ({"approver": {"kind": "webhook"}}, "policy.approver.url: required"),
        ({"approver": {"kind": "webhook", "url": "ftp://x"}}, "policy.approver.url"),
        ({"approver": {"timeout": "soon"}}, "policy.approver.timeout"),
        ({"approver": {"timeout": -1}}, "policy.approver.timeout"),
    ],
)
def test_garbage_policy_is_one_line_naming_the_field(obj: dict[str, Any], where: str) -> None:
    with pytest.raises(ConfigError) as info:
        PolicyConfig.from_spec(obj)
    msg = str(info.value)
    assert where in msg
    assert "\n" not in msg


@pytest.mark.parametrize(
    ("obj", "where"),
    [
        ("NAME", "secrets: must be a mapping or a list"),
        ([{"name": 5}], "secrets[0].name"),
        ([{"name": "bad-name"}], "secrets.bad-name: name must match"),
        ({"PW": {"allow_domains": "x.test"}}, "secrets.PW.allow_domains: must be a list"),
        ({"PW": {"env": 3}}, "secrets.PW.env"),
    ],
)
def test_garbage_secrets_are_one_line(obj: Any, where: str) -> None:
    with pytest.raises(ConfigError) as info:
        secrets_from_spec(obj)
    assert where in str(info.value)
    assert "\n" not in str(info.value)


def test_to_dict_round_trips_through_from_spec() -> None:
    cfg = PolicyConfig(allow_apps=("a",), confirm=("Pay",), approver=ApproverConfig("allow"))
    assert PolicyConfig.from_spec(cfg.to_dict()) == cfg
