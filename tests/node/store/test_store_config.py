"""``[store] url`` in node.toml: which backend a node opens, and errors that name the field."""

from __future__ import annotations

import pytest

from hashmesh.node.config.node import load_node_config
from hashmesh.node.config.toml_reader import ConfigError
from hashmesh.node.store.interface import describe, open_store
from hashmesh.node.store.sqlite import StoreError
from tests.conftest import NodeDir


def with_store(node_dir: NodeDir, section: str) -> None:
    node_dir.config_path.write_text(node_dir.config_path.read_text() + "\n" + section)


def test_no_store_section_and_sqlite_url_mean_the_file_in_data_dir(node_dir: NodeDir) -> None:
    assert load_node_config(node_dir.config_path).store_url is None
    with_store(node_dir, '[store]\nurl = "sqlite:"\n')
    config = load_node_config(node_dir.config_path)
    assert config.store_url is None and describe(config) == str(config.db_path)


def test_a_postgresql_url_is_kept_and_never_shown_with_its_password(node_dir: NodeDir) -> None:
    with_store(node_dir, '[store]\nurl = "postgresql://node:pw@db.example/hashmesh"\n')
    config = load_node_config(node_dir.config_path)
    assert config.store_url == "postgresql://node:pw@db.example/hashmesh"
    assert describe(config) == "postgresql://node:***@db.example/hashmesh"


@pytest.mark.parametrize(("section", "message"), [
    ('[store]\nurl = "mysql://db/x"\n', "node.toml: store.url: must be a postgresql:// URL"),
    ("[store]\nurl = 5\n", "node.toml: store.url: "),
    ('[store]\nuri = "postgresql://db/x"\n', "node.toml: store.uri: "),
])
def test_a_bad_store_section_is_refused_naming_the_field(node_dir: NodeDir, section: str,
                                                         message: str) -> None:
    with_store(node_dir, section)
    with pytest.raises(ConfigError) as raised:
        load_node_config(node_dir.config_path)
    assert str(raised.value).startswith(message) or message in str(raised.value)


def test_an_unreachable_server_is_one_error_naming_the_field(node_dir: NodeDir) -> None:
    with_store(node_dir, '[store]\nurl = "postgresql://node:pw@127.0.0.1:1/hashmesh"\n')
    with pytest.raises(StoreError, match=r"^store\.url: cannot connect to "
                                         r"postgresql://node:\*\*\*@127\.0\.0\.1:1/hashmesh"):
        open_store(load_node_config(node_dir.config_path))
