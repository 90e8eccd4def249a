"""Settings are declared once (streams.settings.DECLARED): the file, the loader and the README agree."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from streams import settings as settings_mod
from streams.settings import DECLARED, DEFAULT_CONFIG, PROJECT_ROOT, SettingsError, load

SHIPPED = tomllib.loads(DEFAULT_CONFIG.read_text())


@pytest.mark.parametrize("setting", DECLARED, ids=lambda s: s.name)
def test_the_shipped_file_names_every_setting_with_its_default(setting):
    value = SHIPPED[setting.section][setting.key]
    assert (Path(value) if setting.type is Path else value) == setting.default


def test_the_shipped_file_has_nothing_undeclared():
    declared = {(s.section, s.key) for s in DECLARED}
    assert {(section, key) for section, table in SHIPPED.items() for key in table} == declared


def test_the_readme_table_is_the_generated_one():
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert settings_mod.reference_markdown() in readme, "run `trackguard settings --markdown` and paste it"


def test_precedence_file_then_environment_then_overrides(tmp_path):
    config = tmp_path / "t.toml"
    config.write_text(
        f'[kafka]\npartitions = 4\nbroker = "h:1"\n[carriers]\nfile = "{DEFAULT_CONFIG.parent / "carriers.toml"}"\n'
    )
    assert load(config, env={}).partitions == 4
    assert load(config, env={"TRACKGUARD_PARTITIONS": "16"}).partitions == 16
    assert load(config, env={"TRACKGUARD_PARTITIONS": "16"}, partitions=2).partitions == 2
    assert load(config, env={}, broker="kafka://a:1;b:2").broker == "a:1,b:2"


def test_tokens_from_the_environment_add_to_the_files(tmp_path):
    config = tmp_path / "t.toml"
    config.write_text(f'[access.tokens]\nL1 = "one"\n[carriers]\nfile = "{DEFAULT_CONFIG.parent / "carriers.toml"}"\n')
    settings = load(config, env={"TRACKGUARD_TOKENS": "L2=two, L1=uno", "TRACKGUARD_ADMIN_TOKEN": "adm"})
    assert settings.tokens == {"L1": "uno", "L2": "two"} and settings.admin_token == "adm"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[kafka]\napp_idd = 'x'\n", "unknown key 'app_idd' in [kafka] (did you mean 'app_id'?)"),
        ("[kafak]\n", "unknown section [kafak] (did you mean 'kafka'?)"),
        ("[worker]\nweb_port = 6066.5\n", "[worker] web_port must be a int"),
        ("[policy]\nfreeze_hours = true\n", "[policy] freeze_hours must be a float"),
        ("[kafka]\npartitions = 0\n", "partitions and replication must be at least 1"),
        ("[access.tokens]\nL1 = 5\n", "every entry must be"),
        ("[limits]\nmax_dead_letter_bytes = 1000\n", "max_dead_letter_bytes must leave room"),
    ],
)
def test_mistakes_are_errors_that_name_the_key(tmp_path, text, message):
    config = tmp_path / "t.toml"
    config.write_text(text + f'[carriers]\nfile = "{DEFAULT_CONFIG.parent / "carriers.toml"}"\n')
    with pytest.raises(SettingsError) as info:
        load(config, env={})
    assert message in str(info.value)


def test_the_web_bind_is_its_own_setting_not_inferred_from_the_broker():
    settings = load(env={"TRACKGUARD_BROKER": "kafka.example:9092"})
    assert settings.web_bind == "127.0.0.1" and settings.advertised_web_host == "127.0.0.1"
    exposed = load(env={"TRACKGUARD_WEB_BIND": "0.0.0.0", "TRACKGUARD_WEB_HOST": "worker-1"})
    assert (exposed.web_bind, exposed.advertised_web_host) == ("0.0.0.0", "worker-1")


def test_kafka_credentials_come_from_the_environment_reach_every_client_and_stay_out_of_reprs():
    settings = load(
        env={
            "TRACKGUARD_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "TRACKGUARD_KAFKA_USERNAME": "trackguard-worker",
            "TRACKGUARD_KAFKA_PASSWORD": "s3cret-pw",
            "TRACKGUARD_KAFKA_SSL_CAFILE": "/etc/ca.pem",
        }
    )
    assert settings.client_config(**{"linger.ms": 5}) == {
        "bootstrap.servers": settings.broker,
        "security.protocol": "sasl_ssl",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "trackguard-worker",
        "sasl.password": "s3cret-pw",
        "ssl.ca.location": "/etc/ca.pem",
        "linger.ms": 5,
    }
    assert "s3cret-pw" not in repr(settings)
    assert load().client_config() == {"bootstrap.servers": load().broker}  # PLAINTEXT: librdkafka's default


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"TRACKGUARD_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT"}, "needs sasl_username and sasl_password"),
        ({"TRACKGUARD_KAFKA_SECURITY_PROTOCOL": "TLS"}, "security_protocol must be one of"),
        ({"TRACKGUARD_KAFKA_SASL_MECHANISM": "GSSAPI"}, "sasl_mechanism must be one of"),
    ],
)
def test_kafka_security_that_cannot_work_is_refused_at_start(env, says):
    with pytest.raises(SettingsError, match=says):
        load(env=env)
