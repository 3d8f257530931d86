"""apps_registry.json, services.json generated from it, start order, `hivematrix update-config`."""

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from hivematrix.cli import main
from hivematrix.common.registry import ServiceSpec, discover_services
from hivematrix.helm import apps
from hivematrix.nexus.directory import ServiceDirectory


def spec(name: str, port: int, *depends_on: str, **fields: object) -> ServiceSpec:
    return ServiceSpec(name=name, factory="hivematrix.template:create_app", port=port,
                       title=name.title(), depends_on=depends_on, **fields)  # type: ignore[arg-type]


def specs(*items: ServiceSpec) -> dict[str, ServiceSpec]:
    return {item.name: item for item in items}


def sync(home: Path, *items: ServiceSpec) -> apps.Registry:
    return apps.sync_registry(home, specs(*items), sources={})


def write_registry(home: Path, services: dict[str, dict[str, object]]) -> None:
    (home / "apps_registry.json").write_text(json.dumps({"services": services}))


def ports(registry: apps.Registry) -> dict[str, int]:
    return {name: entry.port for name, entry in registry.services.items()}


def invoke(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


# --- sync_registry -------------------------------------------------------------------------

def test_new_services_get_their_own_ports_and_are_saved(tmp_path: Path) -> None:
    registry = sync(tmp_path, spec("alpha", 5001), spec("beta", 5002, "alpha"))
    assert ports(registry) == {"alpha": 5001, "beta": 5002}
    assert registry.report.added == {"alpha": 5001, "beta": 5002}
    saved = json.loads((tmp_path / "apps_registry.json").read_text())["services"]
    assert saved["beta"] == {"port": 5002, "enabled": True, "depends_on": ["alpha"],
                             "source": "unknown"}
    assert list(saved) == ["alpha", "beta"]


def test_registry_is_seeded_from_an_existing_services_json(tmp_path: Path) -> None:
    (tmp_path / "services.json").write_text(json.dumps({
        "alpha": {"url": "http://127.0.0.1:6101", "port": 6101},
        "beta": {"url": "http://127.0.0.1:6102"},  # port only in the URL
        "retired": {"url": "http://127.0.0.1:6103", "port": 6103},
    }))
    registry = sync(tmp_path, spec("alpha", 5001), spec("beta", 5002), spec("gamma", 6101))
    assert registry.report.read_services_json
    # gamma's default is alpha's chosen port: it moves to the first free one from 5100.
    assert ports(registry) == {"alpha": 6101, "beta": 6102, "retired": 6103, "gamma": 5100}
    assert registry.report.relocated == {"gamma": (6101, 5100)}
    # Listed with a URL but not installed here: a service run elsewhere, still published.
    assert registry.services["retired"].url == "http://127.0.0.1:6103"
    assert registry.services["retired"].source == "external"
    assert registry.missing == []


def test_an_entry_whose_package_is_gone_is_kept_but_not_published(tmp_path: Path) -> None:
    write_registry(tmp_path, {"alpha": {"port": 6001}, "gone": {"port": 6002}})
    registry = sync(tmp_path, spec("alpha", 6001))
    assert registry.missing == ["gone"]
    assert "gone" in json.loads((tmp_path / "apps_registry.json").read_text())["services"]
    document = apps.write_service_documents(tmp_path, registry, {"alpha": spec("alpha", 6001)})
    assert list(document) == ["alpha"]


def test_taken_default_port_gets_lowest_free_port_from_5100(tmp_path: Path) -> None:
    write_registry(tmp_path, {"alpha": {"port": 5040}, "old": {"port": 5100},
                              "older": {"port": 5102}})
    registry = sync(tmp_path, spec("alpha", 5040), spec("beta", 5040), spec("gamma", 5040),
                    spec("delta", 5101))
    # delta keeps its own default although 5101 is the next free one; the others fill around.
    assert ports(registry) == {"alpha": 5040, "old": 5100, "older": 5102, "beta": 5103,
                               "gamma": 5104, "delta": 5101}
    assert registry.report.relocated == {"beta": (5040, 5103), "gamma": (5040, 5104)}
    # Deterministic: the same start gives the same ports.
    write_registry(tmp_path, {"alpha": {"port": 5040}, "old": {"port": 5100},
                              "older": {"port": 5102}})
    again = sync(tmp_path, spec("gamma", 5040), spec("delta", 5101), spec("beta", 5040),
                 spec("alpha", 5040))
    assert ports(again) == ports(registry)


def test_operator_choices_are_kept_and_depends_on_follows_the_package(tmp_path: Path) -> None:
    write_registry(tmp_path, {"alpha": {"port": 6001, "enabled": False, "depends_on": ["x"],
                                        "source": "git+https://example.org/alpha.git@v2"}})
    registry = sync(tmp_path, spec("alpha", 5001, "beta"))
    entry = registry.services["alpha"]
    assert (entry.port, entry.enabled, entry.source) == (
        6001, False, "git+https://example.org/alpha.git@v2")
    assert entry.depends_on == ("beta",)
    assert registry.report.depends_on_changed == ["alpha"]
    assert registry.report.added == {}


def test_missing_package_is_kept_reported_and_not_published(tmp_path: Path) -> None:
    write_registry(tmp_path, {"alpha": {"port": 5001}, "gone": {"port": 5002}})
    installed = specs(spec("alpha", 5001), spec("beta", 5002))
    registry = apps.sync_registry(tmp_path, installed, sources={})
    assert registry.report.missing == ["gone"]
    # Its port stays reserved: beta, new, does not take it.
    assert ports(registry) == {"alpha": 5001, "gone": 5002, "beta": 5100}
    apps.write_service_documents(tmp_path, registry, installed)
    assert "gone" in json.loads((tmp_path / "apps_registry.json").read_text())["services"]
    assert set(json.loads((tmp_path / "services.json").read_text())) == {"alpha", "beta"}
    assert set(json.loads((tmp_path / "master_services.json").read_text())) == {"alpha", "beta"}


def test_disabled_services_are_not_published(tmp_path: Path) -> None:
    write_registry(tmp_path, {"alpha": {"port": 5001, "enabled": False}})
    installed = specs(spec("alpha", 5001), spec("beta", 5002))
    registry = apps.sync_registry(tmp_path, installed, sources={})
    assert list(apps.write_service_documents(tmp_path, registry, installed)) == ["beta"]


def test_hand_edited_services_json_port_is_adopted(tmp_path: Path) -> None:
    installed = specs(spec("alpha", 5001), spec("beta", 5002))
    registry = apps.sync_registry(tmp_path, installed, sources={})
    apps.write_service_documents(tmp_path, registry, installed)
    services = json.loads((tmp_path / "services.json").read_text())
    services["alpha"].update(port=6001, url="http://127.0.0.1:6001", proxy=False)
    (tmp_path / "services.json").write_text(json.dumps(services))

    registry = apps.sync_registry(tmp_path, installed, sources={})
    assert registry.report.adopted == {"alpha": (5001, 6001)}
    document = apps.write_service_documents(tmp_path, registry, installed)
    # An operator's own key is kept; Nexus honours it.
    assert document["alpha"]["port"] == 6001 and document["alpha"]["proxy"] is False
    assert apps.sync_registry(tmp_path, installed, sources={}).report.adopted == {}


def test_registry_edit_wins_over_an_untouched_services_json(tmp_path: Path) -> None:
    installed = specs(spec("alpha", 5001))
    apps.write_service_documents(tmp_path, apps.sync_registry(tmp_path, installed, sources={}),
                                 installed)
    saved = json.loads((tmp_path / "apps_registry.json").read_text())
    saved["services"]["alpha"]["port"] = 7001
    (tmp_path / "apps_registry.json").write_text(json.dumps(saved))
    registry = apps.sync_registry(tmp_path, installed, sources={})
    assert apps.write_service_documents(tmp_path, registry, installed)["alpha"]["port"] == 7001
    # A registry rewritten without the digest is trusted too.
    write_registry(tmp_path, {"alpha": {"port": 7002}})
    registry = apps.sync_registry(tmp_path, installed, sources={})
    assert apps.write_service_documents(tmp_path, registry, installed)["alpha"]["port"] == 7002


def test_port_conflicts_are_reported(tmp_path: Path) -> None:
    write_registry(tmp_path, {"alpha": {"port": 5001}, "beta": {"port": 5001}})
    registry = sync(tmp_path, spec("alpha", 5001), spec("beta", 5002))
    assert registry.report.conflicts == {5001: ["alpha", "beta"]}
    assert "port 5001 is used by alpha, beta" in registry.report.describe()


@pytest.mark.parametrize("entry", [{"port": "80"}, {"port": True}, {"port": 0},
                                   {"port": 5001, "enabled": "yes"},
                                   {"port": 5001, "depends_on": "core"}])
def test_invalid_registry_is_a_clear_error(tmp_path: Path, entry: dict[str, object]) -> None:
    write_registry(tmp_path, {"alpha": entry})
    with pytest.raises(ValueError, match=r"apps_registry.json: services\.alpha\."):
        sync(tmp_path, spec("alpha", 5001))


# --- services.json -------------------------------------------------------------------------

def test_services_json_describes_how_to_reach_and_run_each_service(tmp_path: Path) -> None:
    installed = specs(spec("beta", 5002, admin_only=True), spec("alpha", 5002, visible=False))
    registry = apps.sync_registry(tmp_path, installed, sources={})
    apps.write_service_documents(tmp_path, registry, installed)
    services = json.loads((tmp_path / "services.json").read_text())
    # Both want 5002: alpha has it by name, beta moves to 5100.
    assert list(services) == ["alpha", "beta"]
    import hivematrix.template

    assert services["beta"] == {
        "admin_only": True, "billing_or_admin_only": False,
        "path": str(Path(hivematrix.template.__file__).resolve().parent),
        "port": 5100, "run": [sys.executable, "-m", "hivematrix.cli", "run", "beta"],
        "title": "Beta", "url": "http://127.0.0.1:5100", "visible": True}
    assert json.loads((tmp_path / "master_services.json").read_text()) == {
        "alpha": {"url": "http://127.0.0.1:5002", "port": 5002},
        "beta": {"url": "http://127.0.0.1:5100", "port": 5100}}
    # Nexus reads it as before.
    directory = ServiceDirectory(tmp_path / "services.json")
    assert directory.get("beta").url == "http://127.0.0.1:5100"  # type: ignore[union-attr]
    assert [entry.name for entry in directory.navigation("admin")] == ["beta"]


def test_same_input_gives_the_same_bytes_whatever_the_order(tmp_path: Path) -> None:
    homes = [tmp_path / "one", tmp_path / "two"]
    entries = {"alpha": {"port": 5001, "enabled": True, "depends_on": [], "source": "builtin"},
               "beta": {"source": "builtin", "depends_on": [], "enabled": True, "port": 5002}}
    items = [spec("alpha", 5001), spec("beta", 5002), spec("gamma", 5001, "beta")]
    for home, order in zip(homes, (items, items[::-1]), strict=True):
        home.mkdir()
        write_registry(home, dict(entries) if order is items else dict(reversed(entries.items())))
        installed = specs(*order)
        apps.write_service_documents(home, apps.sync_registry(home, installed, sources={}),
                                     installed)
    for name in ("apps_registry.json", "services.json", "master_services.json"):
        assert (homes[0] / name).read_bytes() == (homes[1] / name).read_bytes()


# --- order ---------------------------------------------------------------------------------

def test_start_order_puts_dependencies_first_then_port_then_name() -> None:
    installed = specs(spec("nexus", 8000, "identity", "core"), spec("core", 5000, "identity"),
                      spec("identity", 8080), spec("template", 5040, "core"),
                      spec("zeta", 5040), spec("alpha", 5040))
    order = apps.start_order(installed, list(installed))
    # Whatever is ready goes lowest port first (then name): alpha and zeta need nothing.
    assert order == ["alpha", "zeta", "identity", "core", "template", "nexus"]
    assert apps.stop_order(installed, list(installed)) == order[::-1]
    assert apps.start_order(installed) == order


def test_start_order_ignores_dependencies_not_started() -> None:
    installed = specs(spec("core", 5000, "identity", "not-installed"),
                      spec("template", 5040, "core"), spec("identity", 8080))
    assert apps.start_order(installed, ["template", "core"]) == ["core", "template"]
    assert apps.start_order(installed, ["template"]) == ["template"]


def test_start_order_of_a_registry_skips_disabled_entries(tmp_path: Path) -> None:
    write_registry(tmp_path, {"identity": {"port": 8080, "enabled": False},
                              "core": {"port": 5000, "depends_on": ["identity"]},
                              "template": {"port": 4000, "depends_on": ["core"]}})
    registry = apps.Registry.load(tmp_path)
    assert apps.start_order(registry) == ["core", "template"]


def test_dependency_cycle_is_named() -> None:
    installed = specs(spec("a", 5001, "c"), spec("b", 5002, "a"), spec("c", 5003, "b"),
                      spec("free", 5000))
    with pytest.raises(ValueError, match=r"^dependency cycle: a -> c -> b -> a$"):
        apps.start_order(installed, list(installed))
    with pytest.raises(ValueError, match="unknown service"):
        apps.start_order(installed, ["nosuch"])


# --- the CLI -------------------------------------------------------------------------------

def test_update_config_twice_writes_identical_files(hm_home: Path) -> None:
    first = invoke("update-config")
    assert "added template on port 5040" in first
    names = ("apps_registry.json", "services.json", "master_services.json")
    before = {name: (hm_home / name).read_bytes() for name in names}
    assert "nothing to change" in invoke("update-config")
    assert {name: (hm_home / name).read_bytes() for name in names} == before
    registry = json.loads(before["apps_registry.json"])["services"]
    assert registry["template"] == {"depends_on": ["core"], "enabled": True, "port": 5040,
                                    "source": "builtin"}
    assert set(registry) == set(discover_services())


def test_update_config_reports_missing_packages(hm_home: Path) -> None:
    write_registry(hm_home, {"retired": {"port": 5999, "source": "retired==1.0"}})
    output = invoke("update-config")
    assert "retired: package not installed" in output
    assert "retired" not in json.loads((hm_home / "services.json").read_text())
    listing = invoke("list")
    assert "retired" in listing and "retired==1.0" in listing and "builtin" in listing


def test_update_config_rejects_a_broken_registry(hm_home: Path) -> None:
    (hm_home / "apps_registry.json").write_text("{not json")
    result = CliRunner().invoke(main, ["update-config"])
    assert result.exit_code == 1 and "apps_registry.json is not valid JSON" in result.output


def test_init_writes_the_registry(hm_home: Path) -> None:
    invoke("init")
    registry = apps.Registry.load(hm_home)
    assert set(registry.services) == set(discover_services())
    assert json.loads((hm_home / "services.json").read_text())["core"]["port"] == \
        registry.services["core"].port
