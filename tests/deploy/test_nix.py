"""flake.nix and the NixOS module, checked with Debian's nix-instantiate (no nixpkgs needed).

The module is evaluated against tests/deploy/stub_lib.nix, a few builtins standing in for
nixpkgs' `lib`, so the unit it produces can be checked offline: its environment must load
as app/config/ Settings, and its hardening must hold.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from app.config import load_settings
from tests.deploy import REPO_ROOT, setting_variables

NIX_FILES = [REPO_ROOT / "flake.nix", *sorted((REPO_ROOT / "nix").glob("*.nix"))]
STUB_LIB = Path(__file__).with_name("stub_lib.nix")
FAKE_PACKAGE = "/nix/store/0000-whisper-api"
FAKE_CUDA_PACKAGE = "/nix/store/0000-whisper-api-cuda"

# Evaluates the module twice: once for its option declarations (their defaults), then
# with those defaults overridden by `overrides`, returning the systemd service it defines.
UNIT_EXPRESSION = f"""
{{ overrides }}:
let
  lib = import {STUB_LIB};
  system = "x86_64-linux";
  self = {{
    packages.${{system}} = {{ default = "{FAKE_PACKAGE}"; withCUDA = "{FAKE_CUDA_PACKAGE}"; }};
  }};
  module = import {REPO_ROOT}/nix/module.nix {{ inherit self; }};
  evaluate = cfg: module {{
    config.services.whisper-api = cfg;
    inherit lib;
    pkgs.stdenv.hostPlatform.system = system;
  }};
  declared = (evaluate {{ }}).options.services.whisper-api;
  defaults = builtins.mapAttrs (name: option: option.default)
    (builtins.removeAttrs declared [ "package" ]);
  withCUDA = overrides.withCUDA or false;
  cfg = defaults // {{ package = if withCUDA then self.packages.${{system}}.withCUDA
                                 else self.packages.${{system}}.default; }} // overrides;
  result = (evaluate cfg).config;
in {{
  enabled = result.condition;
  service = result.content.systemd.services.whisper-api;
  firewall = result.content.networking.firewall.allowedTCPPorts;
}}
"""


def nix_instantiate() -> str:
    """Debian's nix-instantiate (`make test-tools` installs nix-bin)."""
    found = shutil.which("nix-instantiate")
    assert found, "nix-instantiate is missing: run `make test-tools` (Debian package nix-bin)"
    return found


def nix_eval(expression: str, *arguments: str) -> Any:
    """Evaluate a Nix expression strictly and return it as JSON."""
    result = subprocess.run(
        [nix_instantiate(), "--eval", "--strict", "--json", *arguments, "-E", expression],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def nix_value(value: object) -> str:
    """A Python value written as a Nix expression (just what the tests need)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[ " + " ".join(nix_value(item) for item in value) + " ]"
    if isinstance(value, dict):
        return "{ " + " ".join(f"{k} = {nix_value(v)};" for k, v in value.items()) + " }"
    raise TypeError(value)


def unit(**overrides: object) -> dict[str, Any]:
    """The systemd service the module defines with these option values."""
    result: dict[str, Any] = nix_eval(
        UNIT_EXPRESSION, "--arg", "overrides", nix_value({"enable": True, **overrides})
    )
    assert result["enabled"] is True
    return result


def declared_options() -> list[str]:
    """Names of the options under services.whisper-api."""
    names: list[str] = nix_eval(
        f"builtins.attrNames ((import {REPO_ROOT}/nix/module.nix {{ self = {{ }}; }}) "
        f"{{ config = {{ }}; lib = import {STUB_LIB}; pkgs = {{ }}; }})"
        ".options.services.whisper-api"
    )
    return names


def option_map() -> dict[str, Any]:
    """nix/settings.nix: option -> variable, in `direct` and `derived`, plus unit options."""
    mapping: dict[str, Any] = nix_eval(f"import {REPO_ROOT}/nix/settings.nix")
    return mapping


@pytest.mark.parametrize("path", NIX_FILES, ids=lambda path: path.name)
def test_nix_file_parses(path: Path) -> None:
    """Each Nix file parses with Debian's nix-instantiate."""
    result = subprocess.run(
        [nix_instantiate(), "--parse", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_flake_offers_the_packages_shell_overlay_and_module() -> None:
    """default and withCUDA packages, a dev shell, an overlay and nixosModules.whisper-api."""
    flake = (REPO_ROOT / "flake.nix").read_text()
    for output in (
        "packages = forAllSystems",
        "default = (pkgsFor system).callPackage ./nix/package.nix",
        "withCUDA = (cudaPkgsFor system).callPackage ./nix/package.nix",
        "overlays.default =",
        "nixosModules.whisper-api = import ./nix/module.nix",
        "devShells = forAllSystems",
    ):
        assert output in flake
    assert "cudaSupport = true;" in flake


def test_every_module_option_maps_to_a_real_setting() -> None:
    """Each option is a unit option or sets a variable that app/config/ reads."""
    mapping = option_map()
    settings = setting_variables()
    mapped = {**mapping["direct"], **mapping["derived"]}
    assert sorted(declared_options()) == sorted([*mapped, *mapping["unit"]])
    for option, variable in mapped.items():
        assert variable in settings, (option, variable)


def test_module_has_the_seed_options() -> None:
    """The seed's module options keep their names."""
    seed = {
        "enable",
        "withCUDA",
        "package",
        "listen",
        "port",
        "openFirewall",
        "loadModelOnStartup",
        "unloadModelAfterSeconds",
        "maxModel",
        "authorizedMails",
        "environment",
        "user",
        "group",
        "dataDir",
    }
    admin = {"apiKeysFile", "trustedProxies", "maxTaskQueueSize", "deleteResultsAfterMinutes"}
    assert seed | admin <= set(declared_options())


def test_module_environment_loads_as_settings() -> None:
    """The unit's environment is accepted by load_settings and means what the options say."""
    result = unit(
        port=8080,
        listen="0.0.0.0",
        maxModel="small",
        unloadModelAfterSeconds=600,
        deleteResultsAfterMinutes=0.5,
        maxTaskQueueSize=16,
        shutdownGraceSeconds=45,
        authorizedMails=["a@example.org", "b@example.org"],
        loadModelOnStartup=False,
        logLevel="DEBUG",
        trustedProxies=["127.0.0.1", "10.0.0.0/8"],
        apiKeysFile="/run/secrets/whisper-keys",
        environment={"DEVELOP_MODE": "1"},
    )
    environment: dict[str, str] = result["service"]["environment"]
    # %d is systemd's credentials directory, expanded only when the unit starts.
    settings = load_settings({k: v for k, v in environment.items() if k != "API_KEYS_FILE"})
    assert settings.port == 8080 and settings.listen == "0.0.0.0"
    assert settings.max_model == "small"
    assert settings.unload_model_after_s == 600
    assert settings.delete_results_after_m == 0.5
    assert settings.max_task_queue_size == 16
    assert settings.shutdown_grace_s == 45
    assert settings.log_authorized_mails == ("a@example.org", "b@example.org")
    assert settings.load_model_on_startup is False
    assert settings.log_level == "DEBUG"
    assert settings.develop_mode is True
    assert settings.use_gpu_if_available is False
    assert settings.allow_download is False
    assert settings.log_dir == "/var/lib/whisper-api/logs"
    assert settings.trusted_proxies == ("127.0.0.1/32", "10.0.0.0/8")
    assert environment["TRUSTED_PROXIES"] == "127.0.0.1,10.0.0.0/8"
    assert environment["API_KEYS_FILE"] == "%d/api-keys"  # systemd's credentials directory
    config = result["service"]["serviceConfig"]
    assert config["LoadCredential"] == ["api-keys:/run/secrets/whisper-keys"]
    assert config["TimeoutStopSec"] > 45
    assert config["ExecStart"] == f"{FAKE_PACKAGE}/bin/whisper-api serve"


def test_unset_options_leave_the_service_defaults() -> None:
    """Options left at null set no variable, so the service's own defaults apply."""
    environment = unit()["service"]["environment"]
    for variable in ("MAX_MODEL", "UNLOAD_MODEL_AFTER_S", "MAX_TASK_QUEUE_SIZE", "API_KEYS_FILE"):
        assert variable not in environment
    assert load_settings(environment).max_task_queue_size == 128


def test_unit_is_hardened_and_opens_the_gpu_only_with_cuda() -> None:
    """No new privileges, private /tmp, read-only system; NVIDIA devices only with withCUDA."""
    for with_cuda in (False, True):
        result = unit(withCUDA=with_cuda, openFirewall=with_cuda)
        config = result["service"]["serviceConfig"]
        assert config["NoNewPrivileges"] is True
        assert config["PrivateTmp"] is True
        assert config["ProtectSystem"] == "strict"
        assert config["ProtectHome"] is True
        assert config["ReadWritePaths"] == ["/var/lib/whisper-api"]
        assert config["DevicePolicy"] == "closed"
        assert config["CapabilityBoundingSet"] == [""]
        environment = result["service"]["environment"]
        assert environment["USE_GPU_IF_AVAILABLE"] == ("1" if with_cuda else "0")
        if with_cuda:
            assert config["PrivateDevices"] is False
            assert "char-nvidia-uvm rw" in config["DeviceAllow"]
            assert config["ExecStart"].startswith(FAKE_CUDA_PACKAGE + "/")
            assert result["firewall"]["content"] == [3001]
        else:
            assert config["PrivateDevices"] is True
            assert config["DeviceAllow"] == []
            assert result["firewall"]["condition"] is False


def test_readme_nixos_section_names_every_option() -> None:
    """The README's NixOS section documents each option of the module."""
    readme = (REPO_ROOT / "README.md").read_text()
    match = re.search(r"^### NixOS\n(.*?)(?=^##)", readme, flags=re.MULTILINE | re.DOTALL)
    assert match, "README has no NixOS section"
    for option in declared_options():
        assert f"`{option}`" in match.group(1), option


def test_worker_role_runs_the_cluster_worker_against_redis() -> None:
    """role = "worker": `whisper-api worker`, QUEUE_BACKEND=redis, the password as a credential."""
    result = unit(
        role="worker",
        redisUrl="rediss://queue.example.org:6380/0",
        redisPasswordFile="/run/secrets/redis-password",
    )
    environment: dict[str, str] = result["service"]["environment"]
    config = result["service"]["serviceConfig"]
    assert config["ExecStart"] == f"{FAKE_PACKAGE}/bin/whisper-api worker"
    assert config["LoadCredential"] == ["redis-password:/run/secrets/redis-password"]
    assert environment["REDIS_PASSWORD_FILE"] == "%d/redis-password"
    settings = load_settings({k: v for k, v in environment.items() if not v.startswith("%d")})
    assert settings.queue_backend == "redis"
    assert settings.redis_url == "rediss://queue.example.org:6380/0"
    assert "QUEUE_BACKEND" not in unit()["service"]["environment"]  # standalone by default
