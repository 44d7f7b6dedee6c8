from __future__ import annotations

from pathlib import Path

import pytest

from plugin.errors import ConfigError
from plugin.settings import Security, SlackMode, load_settings


def test_defaults_need_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    settings = load_settings()
    assert not settings.m365.configured
    assert settings.smtp.port == 587 and settings.smtp.security is Security.STARTTLS
    # never the working directory: the per-user config and data folders (XDG on Linux)
    assert settings.store.url == f"sqlite:///{tmp_path / 'data' / 'emaildoctor' / 'emaildoctor.db'}"
    assert settings.directory.path == tmp_path / "config" / "emaildoctor" / "directory.yaml"
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


def test_paths_follow_each_platforms_convention() -> None:
    from plugin.paths import config_dir, data_dir

    home = Path("~").expanduser()
    assert config_dir({"XDG_CONFIG_HOME": "/etc/xdg-c"}, "linux") == Path("/etc/xdg-c/emaildoctor")
    assert data_dir({}, "linux") == home / ".local/share/emaildoctor"
    assert config_dir({"XDG_CONFIG_HOME": "relative"}, "linux") == home / ".config/emaildoctor"  # XDG: ignored
    assert data_dir({}, "darwin") == home / "Library/Application Support/emaildoctor"
    assert config_dir({"APPDATA": "C:\\Users\\a\\AppData\\Roaming"}, "win32").name == "emaildoctor"


@pytest.mark.parametrize(
    ("name", "value", "phrase"),
    [
        ("EMAILDOCTOR_M365__CA_FILE", "", "m365.ca_file (EMAILDOCTOR_M365__CA_FILE): is empty"),
        (
            "EMAILDOCTOR_SLACK__CA_FILE",
            "/nonexistent/ca.pem",
            "EMAILDOCTOR_SLACK__CA_FILE): /nonexistent/ca.pem: no such",
        ),
        ("EMAILDOCTOR_SMTP__CA_FILE", "NOT-PEM", "holds no PEM certificate"),
        ("EMAILDOCTOR_SLACK__HOST", "256.1.1.1", "slack.host (EMAILDOCTOR_SLACK__HOST): '256.1.1.1' is not a valid"),
        ("EMAILDOCTOR_SLACK__HOST", "bad host", "is not a valid host name"),
        ("EMAILDOCTOR_SLACK__PORT", "99999", "slack.port (EMAILDOCTOR_SLACK__PORT)"),
        ("EMAILDOCTOR_SMTP__PORT", "0", "smtp.port (EMAILDOCTOR_SMTP__PORT)"),
    ],
)
def test_files_hosts_and_ports_are_checked_when_settings_load(
    name: str, value: str, phrase: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if value == "NOT-PEM":
        value = str(tmp_path / "not.pem")
        Path(value).write_text("just text\n")
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert phrase in str(caught.value) and "\n" not in str(caught.value)


def test_a_pem_ca_bundle_and_an_ip_host_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    monkeypatch.setenv("EMAILDOCTOR_M365__CA_FILE", str(bundle))
    monkeypatch.setenv("EMAILDOCTOR_SLACK__HOST", "::1")
    settings = load_settings()
    assert settings.m365.ca_file == bundle and settings.slack.host == "::1"
