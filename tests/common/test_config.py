"""Layered settings: defaults < instance conf < .flaskenv < KEY < <SVC>_KEY < overrides."""

from pathlib import Path

import pytest

from hivematrix.common.config import COMMON_DEFAULTS, SettingsError, load_settings


def write_conf(home: Path, service: str, text: str) -> None:
    path = home / service / "instance" / f"{service}.conf"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def write_flaskenv(home: Path, service: str, text: str) -> None:
    path = home / service / ".flaskenv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def load(home: Path, overrides=None, *, defaults=None, **environ: str):
    """``load_settings("svc")`` with only ``environ`` (plus the home) as the environment."""
    return load_settings("svc", overrides, defaults=defaults,
                         environ={"HIVEMATRIX_HOME": str(home), **environ})


@pytest.fixture
def all_layers(hm_home: Path) -> Path:
    """LOG_LEVEL set in every file layer, each to a different value."""
    write_conf(hm_home, "svc", "[log]\nlevel = CONF\n")
    write_flaskenv(hm_home, "svc", "LOG_LEVEL=FLASKENV\n")
    return hm_home


# --- precedence ----------------------------------------------------------------------------

def test_embedded_defaults_apply_when_nothing_is_configured(hm_home: Path) -> None:
    settings = load(hm_home)
    assert settings["LOG_LEVEL"] == "INFO"
    assert settings["JWT_LEEWAY"] == 30
    assert settings["LOG_JSON"] is True
    assert settings["CORE_SERVICE_URL"] == COMMON_DEFAULTS["CORE_SERVICE_URL"]
    assert settings["SERVICE_NAME"] == "svc"


def test_paths_default_into_the_home_folder(hm_home: Path) -> None:
    settings = load(hm_home)
    assert settings["HIVEMATRIX_HOME"] == str(hm_home)
    assert settings["SERVICES_FILE"] == str(hm_home / "services.json")
    assert settings["DATABASE_URL"] == f"sqlite:///{hm_home / 'svc' / 'svc.db'}"


def test_home_defaults_to_var_in_the_working_directory(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings("svc", environ={})
    assert settings["HIVEMATRIX_HOME"] == str(tmp_path / "var")


def test_service_defaults_beat_common_defaults(hm_home: Path) -> None:
    settings = load(hm_home, defaults={"LOG_LEVEL": "DEBUG", "PAGE_SIZE": 25})
    assert settings["LOG_LEVEL"] == "DEBUG"
    assert settings["PAGE_SIZE"] == 25


def test_instance_conf_beats_defaults(hm_home: Path) -> None:
    write_conf(hm_home, "svc", "[log]\nlevel = WARNING\n")
    assert load(hm_home)["LOG_LEVEL"] == "WARNING"


def test_instance_conf_beats_service_defaults(hm_home: Path) -> None:
    write_conf(hm_home, "svc", "[page]\nsize = 10\n")
    assert load(hm_home, defaults={"PAGE_SIZE": 25})["PAGE_SIZE"] == 10


def test_instance_conf_database_connection_string_becomes_database_url(hm_home: Path) -> None:
    write_conf(hm_home, "svc",
               "[database]\nconnection_string = postgresql+psycopg://hm@db.example/svc\n")
    assert load(hm_home)["DATABASE_URL"] == "postgresql+psycopg://hm@db.example/svc"


def test_percent_signs_in_conf_passwords_survive(hm_home: Path) -> None:
    url = "postgresql://hm:p%40ss%word%%x@db/svc"
    write_conf(hm_home, "svc", f"[database]\nconnection_string = {url}\n")
    assert load(hm_home)["DATABASE_URL"] == url


def test_other_conf_sections_become_section_key(hm_home: Path) -> None:
    write_conf(hm_home, "svc", "[mail]\nsmtp_host = smtp.example\n")
    assert load(hm_home)["MAIL_SMTP_HOST"] == "smtp.example"


def test_flaskenv_beats_instance_conf(all_layers: Path) -> None:
    assert load(all_layers)["LOG_LEVEL"] == "FLASKENV"


def test_environment_key_beats_flaskenv(all_layers: Path) -> None:
    assert load(all_layers, LOG_LEVEL="ENV")["LOG_LEVEL"] == "ENV"


def test_service_prefixed_environment_key_beats_plain_key(all_layers: Path) -> None:
    settings = load(all_layers, LOG_LEVEL="ENV", SVC_LOG_LEVEL="SVC_ENV")
    assert settings["LOG_LEVEL"] == "SVC_ENV"


def test_service_prefix_of_another_service_is_ignored(all_layers: Path) -> None:
    assert load(all_layers, LEDGER_LOG_LEVEL="OTHER")["LOG_LEVEL"] == "FLASKENV"


def test_explicit_overrides_beat_everything(all_layers: Path) -> None:
    settings = load(all_layers, {"LOG_LEVEL": "OVERRIDE"}, LOG_LEVEL="ENV",
                    SVC_LOG_LEVEL="SVC_ENV")
    assert settings["LOG_LEVEL"] == "OVERRIDE"


def test_environment_overrides_a_key_known_only_from_the_conf_file(hm_home: Path) -> None:
    write_conf(hm_home, "svc", "[mail]\nsmtp_host = smtp.example\n")
    assert load(hm_home, SVC_MAIL_SMTP_HOST="relay.example")["MAIL_SMTP_HOST"] == "relay.example"


def test_environment_overrides_database_url_from_conf(hm_home: Path) -> None:
    write_conf(hm_home, "svc", "[database]\nconnection_string = sqlite:///conf.db\n")
    assert load(hm_home, SVC_DATABASE_URL="sqlite:///env.db")["DATABASE_URL"] == "sqlite:///env.db"


def test_unrelated_environment_variables_do_not_leak_in(hm_home: Path) -> None:
    settings = load(hm_home, PATH="/usr/bin", SVC_UNKNOWN="x")
    assert "PATH" not in settings
    assert "UNKNOWN" not in settings
    assert "SVC_UNKNOWN" not in settings


def test_home_from_overrides_is_where_files_are_read(hm_home: Path, tmp_path: Path) -> None:
    other_home = tmp_path / "other-home"
    write_conf(other_home, "svc", "[log]\nlevel = FROM_OVERRIDE_HOME\n")
    settings = load(hm_home, {"HIVEMATRIX_HOME": str(other_home)})
    assert settings["LOG_LEVEL"] == "FROM_OVERRIDE_HOME"
    assert settings["SERVICES_FILE"] == str(other_home / "services.json")


def test_service_name_cannot_be_overridden(hm_home: Path) -> None:
    assert load(hm_home, {"SERVICE_NAME": "impostor"})["SERVICE_NAME"] == "svc"


def test_os_environ_is_read_when_no_environ_is_given(hm_home: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SVC_JWT_LEEWAY", "7")
    assert load_settings("svc")["JWT_LEEWAY"] == 7


# --- types ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "expected"), [
    ("1", True), ("true", True), ("Yes", True), ("ON", True), (" true ", True),
    ("0", False), ("false", False), ("no", False), ("off", False), ("", False),
])
def test_booleans_are_parsed(hm_home: Path, raw: str, expected: bool) -> None:
    assert load(hm_home, LOG_JSON=raw)["LOG_JSON"] is expected


def test_integers_are_parsed(hm_home: Path) -> None:
    value = load(hm_home, JWT_LEEWAY=" 5 ")["JWT_LEEWAY"]
    assert value == 5 and type(value) is int


def test_floats_are_parsed(hm_home: Path) -> None:
    value = load(hm_home, HTTP_TIMEOUT="2.5")["HTTP_TIMEOUT"]
    assert value == 2.5 and type(value) is float


def test_float_settings_accept_whole_numbers(hm_home: Path) -> None:
    value = load(hm_home, DISK_DEGRADED_PERCENT="80")["DISK_DEGRADED_PERCENT"]
    assert value == 80.0 and type(value) is float


def test_values_from_conf_files_are_parsed_too(hm_home: Path) -> None:
    write_conf(hm_home, "svc", "[jwt]\nleeway = 12\n")
    write_flaskenv(hm_home, "svc", "LOG_JSON=off\n")
    settings = load(hm_home)
    assert settings["JWT_LEEWAY"] == 12
    assert settings["LOG_JSON"] is False


def test_string_settings_are_kept_verbatim(hm_home: Path) -> None:
    assert load(hm_home, SECRET_KEY=" 007 ")["SECRET_KEY"] == " 007 "


def test_unknown_keys_from_files_stay_strings(hm_home: Path) -> None:
    write_conf(hm_home, "svc", "[page]\nsize = 10\n")
    assert load(hm_home)["PAGE_SIZE"] == "10"


def test_overrides_are_not_parsed(hm_home: Path) -> None:
    assert load(hm_home, {"JWT_LEEWAY": "not parsed"})["JWT_LEEWAY"] == "not parsed"


@pytest.mark.parametrize(("key", "raw"), [
    ("JWT_LEEWAY", "soon"), ("JWT_LEEWAY", "1.5"), ("LOG_JSON", "maybe"),
    ("HTTP_TIMEOUT", "fast"), ("MAX_CONTENT_LENGTH", ""),
])
def test_bad_values_raise_settings_error_naming_the_setting(hm_home: Path, key: str,
                                                            raw: str) -> None:
    with pytest.raises(SettingsError, match=key) as caught:
        load(hm_home, **{key: raw})
    assert repr(raw) in str(caught.value)


def test_bad_value_from_prefixed_environment_names_the_setting(hm_home: Path) -> None:
    with pytest.raises(SettingsError, match="JWKS_CACHE_SECONDS"):
        load(hm_home, SVC_JWKS_CACHE_SECONDS="five minutes")


def test_bad_value_in_conf_file_names_the_setting_and_the_file(hm_home: Path) -> None:
    write_conf(hm_home, "svc", "[jwt]\nleeway = lots\n")
    with pytest.raises(SettingsError, match="JWT_LEEWAY") as caught:
        load(hm_home)
    assert str(hm_home / "svc" / "instance" / "svc.conf") in str(caught.value)


def test_bad_value_in_flaskenv_names_the_file(hm_home: Path) -> None:
    write_flaskenv(hm_home, "svc", "LOG_JSON=perhaps\n")
    with pytest.raises(SettingsError, match="LOG_JSON") as caught:
        load(hm_home)
    assert str(hm_home / "svc" / ".flaskenv") in str(caught.value)


def test_bad_value_from_environment_names_the_variable(hm_home: Path) -> None:
    write_flaskenv(hm_home, "svc", "HTTP_TIMEOUT=3\n")
    with pytest.raises(SettingsError, match="environment variable SVC_HTTP_TIMEOUT"):
        load(hm_home, HTTP_TIMEOUT="4", SVC_HTTP_TIMEOUT="slow")


def test_bad_value_hidden_by_a_higher_layer_is_harmless(hm_home: Path) -> None:
    write_flaskenv(hm_home, "svc", "JWT_LEEWAY=lots\n")
    assert load(hm_home, JWT_LEEWAY="3")["JWT_LEEWAY"] == 3


def test_settings_error_is_a_value_error() -> None:
    assert issubclass(SettingsError, ValueError)
