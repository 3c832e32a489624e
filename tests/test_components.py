"""`layra-rollback components`: the component map proposed from a compose file
(fixtures in tests/fixtures/compose/, layra.yml from Layra's own docker-compose.yml)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from pyinfra_deploys.cli import main
from pyinfra_deploys.components import load, propose
from pyinfra_deploys.config import LAYRA_COMPONENTS, components_from

FIXTURES = Path(__file__).parent / "fixtures" / "compose"
LAYRA_CACHES = LAYRA_COMPONENTS["redis"]["flush_patterns"]


def proposal_for(name: str):
    return propose(load(FIXTURES / name))


def run(name: str | Path, *options: str):
    return CliRunner().invoke(main, ["components", "--compose", str(FIXTURES / name), *options])


def test_layras_compose_file_gives_layras_components():
    assert proposal_for("layra.yml").components == {
        "mysql": {"engine": "mysql", "service": "mysql", "user": "root",
                  "password_key": "MYSQL_ROOT_PASSWORD", "databases_key": "MYSQL_DATABASE"},
        "mongodb": {"engine": "mongo", "service": "mongodb", "password_key": "MONGODB_ROOT_PASSWORD",
                    "user_key": "MONGODB_ROOT_USERNAME", "databases": []},
        "redis": {"engine": "redis", "service": "redis", "password_key": "REDIS_PASSWORD",
                  "flush_patterns": LAYRA_CACHES, "rdb": False},
        "kafka": {"engine": "volumes", "services": ["kafka"]},
        "minio": {"engine": "volumes", "services": ["minio"]},
        "milvus": {"engine": "volumes", "services": ["milvus-standalone", "milvus-etcd", "milvus-minio"],
                   "milvus": {"client_service": "backend", "uri": "http://milvus-standalone:19530"}},
    }


def test_layras_volume_sets_and_milvus_settings_match_the_default_map():
    proposed = proposal_for("layra.yml").components
    for name in ("kafka", "minio", "milvus"):
        assert proposed[name] == LAYRA_COMPONENTS[name]


def test_layras_mysql_database_and_mongodb_user_are_read_from_the_env_file_keys_that_feed_them():
    proposal = proposal_for("layra.yml")
    assert "databases_key MYSQL_DATABASE (feeds MYSQL_DATABASE)" in proposal.why["mysql"]
    assert "user_key MONGODB_ROOT_USERNAME (feeds MONGO_INITDB_ROOT_USERNAME)" in proposal.why["mongodb"]


def test_a_mongodb_whose_compose_file_names_no_database_is_left_to_fill_in():
    assert proposal_for("layra.yml").todo == [
        "mongodb: databases: no MONGO_INITDB_DATABASE: name the databases to back up, or the env-file key "
        "holding one as databases_key (none are until you do)"]


def test_layras_application_volumes_are_reported_unclassified_as_one_shared_set():
    unclassified = proposal_for("layra.yml").unclassified
    assert list(unclassified) == ["python-sandbox, model-weights-init, backend, model-server"]
    reason = unclassified["python-sandbox, model-weights-init, backend, model-server"]
    assert "named volume sandbox_volume, model_weights, mysql_migrations" in reason


def test_layras_stateless_services_are_listed_and_bind_mounts_noted():
    proposal = proposal_for("layra.yml")
    assert proposal.stateless == ["kafka-init", "unoserver", "frontend", "nginx"]
    assert proposal.binds["nginx"] == ["./frontend/nginx.conf:/etc/nginx/nginx.conf"]


def test_layras_output_explains_each_choice_and_exits_3_for_the_unclassified_volumes():
    result = run("layra.yml")
    assert result.exit_code == 3
    assert ("#   milvus: image milvusdb/milvus:v2.5.6 -> volumes set with milvus-etcd, milvus-minio "
            "(depends_on); volumes milvus_data, milvus_etcd, milvus_minio;") in result.output
    assert "#   redis: image redis:7.2.5 -> redis engine; password_key REDIS_PASSWORD (feeds --requirepass);" in result.output
    assert "#   kafka-init, unoserver, frontend, nginx\n" in result.output


@pytest.mark.parametrize("fixture", ["layra.yml", "depends_on_list.yml", "shared_volume.yml", "engines.yml"])
def test_the_yaml_output_round_trips_into_components_from(fixture):
    result = run(fixture)
    proposed = yaml.safe_load(result.stdout)
    assert proposed == {"layra_components": proposal_for(fixture).components}
    assert [c.name for c in components_from(proposed)] == list(proposed["layra_components"])


def test_the_json_output_is_the_map_alone_with_the_comments_on_stderr():
    result = run("layra.yml", "--format", "json")
    assert json.loads(result.stdout) == {"layra_components": proposal_for("layra.yml").components}
    assert result.stderr.startswith("# To fill in")
    assert result.exit_code == 3


def test_depends_on_as_a_list_or_a_mapping_gives_the_same_sets():
    listed, mapped = proposal_for("depends_on_list.yml"), proposal_for("depends_on_mapping.yml")
    assert listed.components == mapped.components
    assert listed.components["milvus"]["services"] == ["milvus-standalone", "milvus-etcd", "milvus-minio"]


def test_kafka_takes_its_zookeeper_but_a_mysql_it_depends_on_stays_its_own_component():
    components = proposal_for("depends_on_list.yml").components
    assert components["kafka"] == {"engine": "volumes", "services": ["kafka", "zookeeper"]}
    assert components["mysql"]["databases"] == ["app"]
    assert run("depends_on_list.yml").exit_code == 0


def test_a_shared_named_volume_joins_services_into_one_set():
    proposal = proposal_for("shared_volume.yml")
    assert proposal.components == {
        "minio": {"engine": "volumes", "services": ["minio", "minio-gateway"]},
        "etcd": {"engine": "volumes", "services": ["etcd"]},
    }
    assert "with minio-gateway (shared volume objects)" in proposal.why["minio"][0]


def test_an_unknown_stateful_service_is_reported_with_its_volume_and_exit_3():
    result = run("unknown_stateful.yml")
    assert result.exit_code == 3
    assert "#   postgres: no engine I know (image postgres:16); named volume pgdata;" in result.output
    assert "#   adminer, nginx\n" in result.output


def test_a_volume_service_with_only_a_bind_mount_cannot_be_archived():
    proposal = proposal_for("bind_only.yml")
    assert proposal.components == {}
    assert "bind mounts ./minio-data:/data are not archived" in proposal.unclassified["minio"]


def test_mariadb_percona_valkey_and_a_service_known_by_name_are_classified():
    components = proposal_for("engines.yml").components
    assert components == {
        "db": {"engine": "mysql", "service": "db", "user": "root", "password_key": "DB_ROOT_PASSWORD",
               "databases": ["shop"]},
        "analytics": {"engine": "mysql", "service": "analytics", "user": "root", "databases": []},
        "mongodb": {"engine": "mongo", "service": "mongo", "databases": []},
        "redis": {"engine": "redis", "service": "cache", "password_key": "CACHE_PASSWORD",
                  "flush_patterns": LAYRA_CACHES, "rdb": True},
        "qdrant": {"engine": "qdrant", "service": "vectors"},
    }


def test_a_literal_password_is_never_printed_and_asks_for_a_password_key():
    result = run("engines.yml")
    assert "not-a-variable" not in result.output
    assert "#   analytics: no ${VAR} feeds MYSQL_ROOT_PASSWORD or MARIADB_ROOT_PASSWORD: add password_key" in result.output


def test_redis_with_appendonly_and_a_volume_is_state_and_qdrant_mentions_the_volume_engine():
    why = proposal_for("engines.yml").why
    assert "rdb: true: --appendonly yes keeps its data in volume cache_data: state" in why["redis"]
    assert "or {engine: volumes, services: [vectors]} when it may stop (volume qdrant_storage)" in why["qdrant"]


@pytest.mark.parametrize("fixture, message", [
    ("missing.yml", "cannot read {path}: No such file or directory"),
    ("not_yaml.yml", "{path} is not YAML (line 2, column 10): expected ',' or ']', but got ':'"),
    ("no_services.yml", "{path} has no `services:` mapping: not a compose file"),
    ("bad_field.yml", "{path}: service 'db' is not valid compose: 'str' object has no attribute 'items'"),
])
def test_an_unreadable_or_invalid_compose_file_exits_2_naming_the_problem(fixture, message):
    result = run(fixture)
    assert result.exit_code == 2
    assert result.stderr == f"Error: {message.format(path=FIXTURES / fixture)}\n"


def test_help_says_what_it_reads_cannot_know_and_its_exit_codes():
    help_text = CliRunner().invoke(main, ["components", "--help"]).output
    for words in ("Reads FILE only", "What a compose file cannot tell", "databases:",
                  "0  every service classified", "2  FILE missing", "3  some service could not be classified"):
        assert words in help_text


def test_users_and_database_names_fed_by_env_variables_become_user_key_and_databases_key():
    proposal = proposal_for("names_from_env.yml")
    assert proposal.components["mysql"] == {"engine": "mysql", "service": "mariadb", "user": "root",
                                            "password_key": "DB_ROOT_PASSWORD", "databases_key": "SHOP_DB"}
    assert proposal.components["mongodb"] == {"engine": "mongo", "service": "mongo",
                                              "password_key": "MONGO_ADMIN_PASSWORD", "user_key": "MONGO_ADMIN",
                                              "databases_key": "MONGO_APP_DB"}
    assert proposal.todo == []
