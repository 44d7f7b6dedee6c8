from __future__ import annotations

from pathlib import Path

import pytest

from plugin.errors import ConfigError
from plugin.settings import Security, SlackMode, load_settings


def test_defaults_need_nothing() -> None:
    settings = load_settings()
    assert not settings.m365.configured
    assert settings.smtp.port == 587 and settings.smtp.security is Security.STARTTLS
    assert settings.store.url == "sqlite:///emaildoctor.db"
    assert settings.slack.mode is SlackMode.HTTP


def test_environment_and_env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = tmp_path / "settings.env"
    env_file.write_text(
        "EMAILDOCTOR_M365__TENANT_ID=7c4d0e52-3b1a-4f7e-9a51-2d7b8e6f1c90\n"
        "EMAILDOCTOR_M365__CLIENT_ID=3f6e8a4b-9d2c-4e1f-8b7a-5c6d4e3f2a10\n"
        "EMAILDOCTOR_M365__CLIENT_SECRET=from-the-file\n"
        "EMAILDOCTOR_SLACK__IT_USER_IDS=U1, U2\n"
    )
    monkeypatch.setenv("EMAILDOCTOR_SMTP__TIMEOUT", "12")
    settings = load_settings(env_file)
    assert settings.m365.configured
    assert settings.m365.client_secret is not None
    assert settings.m365.client_secret.get_secret_value() == "from-the-file"
    assert "from-the-file" not in repr(settings) and "from-the-file" not in str(settings.model_dump())
    assert settings.smtp.timeout == 12
    assert settings.slack.it_user_ids == ("U1", "U2")
    assert list(settings.secret_values()) == ["from-the-file"]


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"EMAILDOCTOR_M365__TENANT_ID": "t", "EMAILDOCTOR_M365__CLIENT_ID": "c"}, "EMAILDOCTOR_M365__CLIENT_SECRET"),
        (
            {
                "EMAILDOCTOR_M365__TENANT_ID": "t",
                "EMAILDOCTOR_M365__CLIENT_ID": "c",
                "EMAILDOCTOR_M365__CLIENT_SECRET": "s",
                "EMAILDOCTOR_M365__CERTIFICATE_PATH": "/x.pem",
            },
            "not both",
        ),
        ({"EMAILDOCTOR_M365__TENANT_ID": "t"}, "m365.client_id"),
        (
            {"EMAILDOCTOR_M365__GRAPH_URL": "http://graph.example"},
            "m365.graph_url (EMAILDOCTOR_M365__GRAPH_URL): must be an https:// URL",
        ),
        ({"EMAILDOCTOR_SMTP__TIMEOUT": "0"}, "smtp.timeout (EMAILDOCTOR_SMTP__TIMEOUT)"),
        ({"EMAILDOCTOR_SMTP__SECURITY": "ssl"}, "smtp.security (EMAILDOCTOR_SMTP__SECURITY)"),
        (
            {"EMAILDOCTOR_STORE__URL": "mysql://x"},
            "store.url (EMAILDOCTOR_STORE__URL): must be a sqlite:/// or postgresql://",
        ),
        (
            {"EMAILDOCTOR_SLACK__MODE": "socket", "EMAILDOCTOR_SLACK__BOT_TOKEN": "xoxb-1"},
            "EMAILDOCTOR_SLACK__APP_TOKEN",
        ),
    ],
)
def test_invalid_combinations_name_the_setting(
    env: dict[str, str], named: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert named in str(caught.value)


def test_errors_never_echo_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMAILDOCTOR_M365__TENANT_ID", "t")
    monkeypatch.setenv("EMAILDOCTOR_M365__CLIENT_ID", "c")
    monkeypatch.setenv("EMAILDOCTOR_M365__CLIENT_SECRET", "a-very-secret-value")
    monkeypatch.setenv("EMAILDOCTOR_M365__CERTIFICATE_PATH", "/x.pem")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "a-very-secret-value" not in str(caught.value)
