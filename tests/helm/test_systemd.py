"""systemd unit files for the platform and `hivematrix systemd install`."""

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from hivematrix.cli import main
from hivematrix.common.registry import ServiceSpec, discover_services
from hivematrix.helm import apps, systemd

PYTHON = "/opt/hivematrix/bin/python"


def spec(name: str, port: int, *depends_on: str) -> ServiceSpec:
    return ServiceSpec(name=name, factory="hivematrix.template:create_app", port=port,
                       title=name.title(), depends_on=depends_on)


INSTALLED = {item.name: item for item in (
    spec("identity", 8080), spec("core", 5000, "identity"),
    spec("nexus", 8000, "identity", "core"), spec("template", 5040, "core", "ledger"),
    spec("ledger", 5050))}


def registry_for(home: Path, **overrides: dict[str, object]) -> apps.Registry:
    (home / "apps_registry.json").write_text(json.dumps({"services": {
        name: {"port": item.port, "depends_on": list(item.depends_on), **overrides.get(name, {})}
        for name, item in INSTALLED.items()} | {"gone": {"port": 5999}}}))
    return apps.Registry.load(home)


def lines(text: str) -> list[str]:
    return text.splitlines()


def test_one_unit_per_enabled_installed_service_and_a_target(tmp_path: Path) -> None:
    registry = registry_for(tmp_path, ledger={"enabled": False})
    texts = systemd.units(tmp_path, registry, INSTALLED, python=PYTHON, user="hive")
    assert list(texts) == ["hivematrix-identity.service", "hivematrix-core.service",
                           "hivematrix-template.service", "hivematrix-nexus.service",
                           "hivematrix.target"]
    core = lines(texts["hivematrix-core.service"])
    for line in ("Type=simple", "User=hive",
                 f"ExecStart={PYTHON} -m hivematrix.cli run core",
                 f'Environment="HIVEMATRIX_HOME={tmp_path}"', f"WorkingDirectory={tmp_path}",
                 "Restart=on-failure", "RestartSec=2", "NoNewPrivileges=yes", "PrivateTmp=yes",
                 "After=network.target hivematrix-identity.service",
                 "Wants=hivematrix-identity.service", "PartOf=hivematrix.target",
                 "WantedBy=hivematrix.target"):
        assert line in core
    # Dependencies in start order; the disabled ledger is no dependency of template.
    nexus = lines(texts["hivematrix-nexus.service"])
    assert "After=network.target hivematrix-identity.service hivematrix-core.service" in nexus
    template = lines(texts["hivematrix-template.service"])
    assert "After=network.target hivematrix-core.service" in template
    identity = lines(texts["hivematrix-identity.service"])
    assert "After=network.target" in identity
    assert not any(line.startswith("Wants=") for line in identity)

    target = lines(texts["hivematrix.target"])
    assert ("Wants=hivematrix-identity.service hivematrix-core.service "
            "hivematrix-template.service hivematrix-nexus.service") in target
    assert "WantedBy=multi-user.target" in target


def test_without_user_no_user_line(tmp_path: Path) -> None:
    texts = systemd.units(tmp_path, registry_for(tmp_path), INSTALLED, python=PYTHON)
    assert not any(line.startswith("User=") for line in lines(texts["hivematrix-core.service"]))


def test_paths_with_spaces_and_specials_are_quoted(tmp_path: Path) -> None:
    home = tmp_path / "hive matrix 100%"
    home.mkdir()
    texts = systemd.units(home, registry_for(home), INSTALLED,
                          python="/opt/my tools/bin/python")
    core = lines(texts["hivematrix-core.service"])
    assert 'ExecStart="/opt/my tools/bin/python" -m hivematrix.cli run core' in core
    assert f'Environment="HIVEMATRIX_HOME={tmp_path}/hive matrix 100%%"' in core
    # Path settings are taken verbatim by systemd: no quotes, only % doubled.
    assert f"WorkingDirectory={tmp_path}/hive matrix 100%%" in core


def test_escaping_of_single_values() -> None:
    assert systemd.exec_word("run") == "run"
    assert systemd.exec_word('a "b" $HOME\\') == '"a \\"b\\" $$HOME\\\\"'
    assert systemd.environment_assignment("X", 'a"b\\c%') == '"X=a\\"b\\\\c%%"'
    with pytest.raises(ValueError, match="control character"):
        systemd.exec_word("two\nlines")
    with pytest.raises(ValueError, match="absolute"):
        systemd.path_value("relative/home")


@pytest.mark.parametrize("python", ["python3", "/opt/a'b/python", "/opt/$x/python"])
def test_unrunnable_interpreter_paths_are_refused(tmp_path: Path, python: str) -> None:
    with pytest.raises(ValueError, match="python"):
        systemd.units(tmp_path, registry_for(tmp_path), INSTALLED, python=python)


def test_bad_user_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="user name"):
        systemd.units(tmp_path, registry_for(tmp_path), INSTALLED, python=PYTHON,
                      user="hive matrix")


def test_dependency_cycle_is_refused(tmp_path: Path) -> None:
    registry = registry_for(tmp_path, identity={"depends_on": ["nexus"]})
    with pytest.raises(ValueError, match="dependency cycle"):
        systemd.units(tmp_path, registry, INSTALLED, python=PYTHON)


def test_install_units_writes_world_readable_files(tmp_path: Path) -> None:
    texts = systemd.units(tmp_path, registry_for(tmp_path), INSTALLED, python=PYTHON)
    written = systemd.install_units(tmp_path / "units", texts)
    assert [path.name for path in written] == list(texts)
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
        assert path.read_text() == texts[path.name]
    assert sorted(os.listdir(tmp_path / "units")) == sorted(texts)  # no temporary files left


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_systemd_accepts_the_units(tmp_path: Path) -> None:
    folder = tmp_path / "python 100%"
    folder.mkdir()
    (folder / "py thon").symlink_to(sys.executable)
    home = tmp_path / "home dir"
    home.mkdir()
    texts = systemd.units(home, registry_for(home), INSTALLED, python=str(folder / "py thon"))
    units = systemd.install_units(tmp_path / "units", texts)
    verify = subprocess.run(["systemd-analyze", "verify", "--man=no", *map(str, units)],
                            capture_output=True, text=True, timeout=60, check=False)
    complaints = [line for line in (verify.stdout + verify.stderr).splitlines()
                  if "hivematrix" in line]
    assert complaints == []


def test_systemd_install_command(hm_home: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    output = tmp_path / "units"
    refused = runner.invoke(main, ["systemd", "install", "--output", str(output)])
    assert refused.exit_code == 1 and "run `hivematrix init` first" in refused.output
    assert runner.invoke(main, ["update-config"]).exit_code == 0

    result = runner.invoke(main, ["systemd", "install", "--output", str(output),
                                  "--user", "hivematrix"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "systemctl daemon-reload && systemctl enable --now hivematrix.target" in result.output
    # Every service is enabled by default, KnowledgeTree among them, and it needs the
    # embedded FalkorDB: that gets a unit too.
    services = discover_services()
    assert "falkordb" in services["knowledgetree"].depends_on
    assert sorted(path.name for path in output.iterdir()) == sorted(
        [f"hivematrix-{name}.service" for name in [*services, "falkordb"]]
        + ["hivematrix.target"])
    template = (output / "hivematrix-template.service").read_text()
    assert f"ExecStart={sys.executable} -m hivematrix.cli run template" in template or \
        f'ExecStart="{sys.executable}" -m hivematrix.cli run template' in template
    assert "User=hivematrix" in template
    assert "After=network.target hivematrix-core.service" in template

    # Disabling a service drops its unit from the target and flags the old file.
    registry = json.loads((hm_home / "apps_registry.json").read_text())
    registry["services"]["template"]["enabled"] = False
    (hm_home / "apps_registry.json").write_text(json.dumps(registry))
    again = runner.invoke(main, ["systemd", "install", "--output", str(output)])
    assert again.exit_code == 0 and "stale" in again.output
    assert "template" not in (output / "hivematrix.target").read_text()
    assert "hivematrix-falkordb.service" in (output / "hivematrix.target").read_text()

    # With KnowledgeTree disabled nothing needs FalkorDB: out of the target as well.
    registry["services"]["knowledgetree"]["enabled"] = False
    (hm_home / "apps_registry.json").write_text(json.dumps(registry))
    third = runner.invoke(main, ["systemd", "install", "--output", str(output)])
    assert third.exit_code == 0, third.output
    target = (output / "hivematrix.target").read_text()
    assert "knowledgetree" not in target and "falkordb" not in target


def test_a_configured_falkordb_gets_a_unit_before_what_needs_it(hm_home: Path,
                                                                tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["update-config"]).exit_code == 0
    set_graph = runner.invoke(main, ["config", "set", "databases.graph",
                                     json.dumps({"backend": "falkordb", "port": 6391})])
    assert set_graph.exit_code == 0, set_graph.output
    output = tmp_path / "units"
    result = runner.invoke(main, ["systemd", "install", "--output", str(output)],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    unit = (output / "hivematrix-falkordb.service").read_text()
    assert "-m hivematrix.cli run falkordb" in unit and "Restart=on-failure" in unit
    assert "hivematrix-falkordb.service" in (output / "hivematrix.target").read_text()
    # A service declaring the dependency is ordered after it.
    home = tmp_path / "kb-home"
    home.mkdir()
    (home / "apps_registry.json").write_text(json.dumps({"services": {
        "core": {"port": 5000}, "kb": {"port": 5020, "depends_on": ["core", "falkordb"]}}}))
    specs = {"core": spec("core", 5000), "kb": spec("kb", 5020, "core", "falkordb")}
    texts = systemd.units(home, apps.Registry.load(home), specs, python=PYTHON,
                          embedded={"falkordb": "embedded graph store"})
    assert "After=network.target hivematrix-falkordb.service hivematrix-core.service" in texts[
        "hivematrix-kb.service"]
    assert "After=network.target\n" in texts["hivematrix-core.service"]  # not held up by it
