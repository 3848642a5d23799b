"""The SSRF guard: refused targets, development mode, the allow-list, address pinning."""

import pytest

from quittance.config import Settings
from quittance.webhook import ssrf

TEST = Settings(env="test")


@pytest.fixture(autouse=True)
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = {
        "hooks.example.com": ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"],
        "rebind.example.com": ["93.184.216.34", "127.0.0.1"],
        "inside.corp": ["10.2.3.4"],
    }

    def resolve(host: str, port: int) -> list[str]:
        if host not in answers:
            raise ssrf.UrlUnresolvable(f"{host} does not resolve")
        return answers[host]

    monkeypatch.setattr(ssrf, "resolver", resolve)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x",
        "http://127.8.9.10/x",
        "http://10.0.0.1/x",
        "http://172.16.5.4/x",
        "http://192.168.1.1/x",
        "http://169.254.169.254/x",
        "http://100.64.0.1/x",
        "http://0.0.0.0/x",
        "http://224.0.0.1/x",
        "http://[::1]/x",
        "http://[fe80::1]/x",
        "http://[fc00::1]/x",
        "http://[::ffff:10.0.0.1]/x",
        "http://localhost/x",
        "http://api.localhost/x",
        "http://metadata.google.internal/x",
        "http://rebind.example.com/x",
        "http://inside.corp/x",
    ],
)
def test_refused(url: str) -> None:
    with pytest.raises(ssrf.UrlForbidden):
        ssrf.check_url(url, TEST, strict=True)


def test_public_names_are_pinned_to_the_checked_address() -> None:
    target = ssrf.check_url("https://user:pw@hooks.example.com:8443/a?b=1", TEST, strict=True)
    assert target.url == "https://user:pw@93.184.216.34:8443/a?b=1"
    assert target.host_header == "hooks.example.com:8443"
    assert target.server_name == "hooks.example.com"
    literal = ssrf.check_url("https://93.184.216.34/a", TEST, strict=True)
    assert literal == ssrf.Target("https://93.184.216.34/a")


def test_unresolvable_passes_when_saving_but_not_when_sending() -> None:
    url = "https://not-yet.example.org/hook"
    assert ssrf.check_url(url, TEST, strict=False) == ssrf.Target(url)
    with pytest.raises(ssrf.UrlUnresolvable):
        ssrf.check_url(url, TEST, strict=True)


def test_development_allows_everything() -> None:
    dev = Settings(env="development")
    assert ssrf.check_url("http://127.0.0.1:8080/x", dev, strict=True).url.endswith(":8080/x")


def test_allow_list_by_name_address_and_network() -> None:
    by_address = Settings(env="test", webhook_allowed_hosts="127.0.0.1")
    ssrf.check_url("http://127.0.0.1:9000/x", by_address, strict=True)
    with pytest.raises(ssrf.UrlForbidden):
        ssrf.check_url("http://127.0.0.2:9000/x", by_address, strict=True)
    by_name = Settings(env="test", webhook_allowed_hosts="inside.corp, localhost")
    ssrf.check_url("http://inside.corp/x", by_name, strict=True)
    ssrf.check_url("http://localhost:1234/x", by_name, strict=True)
    by_network = Settings(env="test", webhook_allowed_hosts=["10.0.0.0/8"])
    ssrf.check_url("http://inside.corp/x", by_network, strict=True)
    with pytest.raises(ssrf.UrlForbidden):
        ssrf.check_url("http://192.168.0.1/x", by_network, strict=True)
