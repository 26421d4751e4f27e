"""The seed's names keep working: its NixOS configuration, flake package and pip commands.

The seed's NixOS users import `whisper_api.nixosModules.whisper_api`, configure
`services.whisper_api` and run `nix run .#whisper_api_withCUDA`; its pip users start
`whisper_api` or `uvicorn whisper_api:app`. The configuration is evaluated unchanged through
the real flake.nix (with stand-ins for nixpkgs, as in test_nix.py); the commands are started.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.config import load_settings
from tests.deploy import REPO_ROOT
from tests.deploy.test_nix import FAKE_CUDA_PACKAGE, STUB_LIB, nix_eval
from tests.server_process import Server, free_port

STUB_NIXPKGS = Path(__file__).with_name("stub_nixpkgs")

# The seed's configuration, word for word (issue 28; only the line is wrapped).
SEED_CONFIGURATION = """{
  imports = [ whisper_api.nixosModules.whisper_api ];
  services.whisper_api = { enable = true; withCUDA = true; loadModelOnStartup = true;
    listen = "0.0.0.0"; openFirewall = true; };
}"""

# flake.nix's outputs with `nixpkgs` standing in, then a small module evaluation: the seed's
# module imports the flake's module, whose renamed-option declarations move the seed's
# definitions to where the options are; unknown options are reported, as NixOS would.
SEED_EXPRESSION = f"""
let
  lib = import {STUB_LIB};
  system = "x86_64-linux";
  nixpkgs = {{ outPath = {STUB_NIXPKGS}; inherit lib; }};
  whisper_api = (import {REPO_ROOT}/flake.nix).outputs {{ self = whisper_api; inherit nixpkgs; }};
  seed = {SEED_CONFIGURATION};
  call = module: if builtins.isFunction module then module {{
    config = evaluated;
    inherit lib;
    pkgs.stdenv.hostPlatform.system = system;
  }} else module;
  flakeModule = call (builtins.head seed.imports);
  renames = builtins.filter (m: (m._type or "") == "renamed") flakeModule.imports;
  at = path: set: builtins.foldl' (s: name: s.${{name}} or {{ }}) set path;
  moved = builtins.foldl' (defs: rename: defs // {{
    services = (defs.services or {{ }}) // {{
      ${{builtins.elemAt rename.to 1}} = at rename.from seed;
    }};
  }}) (builtins.removeAttrs seed [ "imports" ]) renames;
  definitions = moved.services.whisper-api;
  declared = flakeModule.options.services.whisper-api;
  defaults = builtins.mapAttrs (name: option: option.default) declared;
  evaluated.services.whisper-api = defaults // definitions;
  unit = flakeModule.config;
in {{
  renames = map (rename: {{ inherit (rename) from to; }}) renames;
  unknownOptions = builtins.filter (name: !(declared ? ${{name}})) (builtins.attrNames definitions);
  enabled = unit.condition;
  service = unit.content.systemd.services.whisper-api;
  firewall = unit.content.networking.firewall.allowedTCPPorts;
  packages = whisper_api.packages.${{system}};
}}
"""


@pytest.fixture(scope="module")
def seed() -> dict[str, Any]:
    """The seed's configuration evaluated through flake.nix and nix/module.nix."""
    result: dict[str, Any] = nix_eval(SEED_EXPRESSION)
    return result


def test_seed_configuration_evaluates_unchanged(seed: dict[str, Any]) -> None:
    """services.whisper_api is renamed to services.whisper-api, and every seed option exists."""
    assert seed["renames"] == [
        {"from": ["services", "whisper_api"], "to": ["services", "whisper-api"]}
    ]
    assert seed["unknownOptions"] == []
    flake = (REPO_ROOT / "flake.nix").read_text()
    assert "nixosModules.whisper_api = self.nixosModules.whisper-api;" in flake
    assert seed["enabled"] is True


def test_seed_configuration_runs_the_cuda_build_open_to_the_network(seed: dict[str, Any]) -> None:
    """The seed's options mean what they meant: CUDA, a model loaded at start, 0.0.0.0, firewall."""
    service = seed["service"]
    assert service["serviceConfig"]["ExecStart"] == f"{FAKE_CUDA_PACKAGE}/bin/whisper-api serve"
    assert "char-nvidia-uvm rw" in service["serviceConfig"]["DeviceAllow"]
    settings = load_settings(service["environment"])
    assert settings.use_gpu_if_available is True
    assert settings.load_model_on_startup is True
    assert settings.listen == "0.0.0.0"
    assert seed["firewall"] == {"_type": "if", "condition": True, "content": [3001]}


def test_flake_offers_the_seed_package_name(seed: dict[str, Any]) -> None:
    """`nix run .#whisper_api_withCUDA` builds the same CUDA package as `.#withCUDA`."""
    packages = seed["packages"]
    assert packages["whisper_api_withCUDA"] == packages["withCUDA"] == FAKE_CUDA_PACKAGE
    assert packages["default"] != FAKE_CUDA_PACKAGE


def _start(command: list[str], tmp_path: Path, **env: str) -> Server:
    log_path = tmp_path / "seed-command.out"
    environment = {
        **os.environ,
        "LOG_FILE": "",
        "ALLOW_DOWNLOAD": "0",
        "USE_GPU_IF_AVAILABLE": "0",
        "LOAD_MODEL_ON_STARTUP": "0",
        "CPU_FALLBACK_MODEL": "tiny.en",
        **env,
    }
    with log_path.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=tmp_path, env=environment, stdout=out, stderr=subprocess.STDOUT
        )
    port = env.get("PORT") or command[command.index("--port") + 1]
    return Server(process, f"http://127.0.0.1:{port}", log_path)


def test_seed_command_whisper_api_honours_port_and_listen(tmp_path: Path) -> None:
    """`whisper_api` (the seed's console script) serves on PORT and LISTEN."""
    script = Path(sys.executable).with_name("whisper_api")
    assert script.is_file(), "the whisper_api console script is not installed: make install"
    port = free_port()
    server = _start([str(script)], tmp_path, PORT=str(port), LISTEN="127.0.0.1")
    try:
        server.wait_ready()
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).json() == {"status": "ok"}
    finally:
        assert server.stop() == 0


def test_seed_command_uvicorn_whisper_api_app(tmp_path: Path) -> None:
    """`uvicorn whisper_api:app` serves the service configured by the environment."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "whisper_api:app", "--host", "127.0.0.1"]
    server = _start([*command, "--port", str(port)], tmp_path, MAX_TASK_QUEUE_SIZE="7")
    try:
        server.wait_ready()
        status = httpx.get(server.url + "/api/v1/decoder_status", timeout=10).json()
        assert status["max_task_queue_size"] == 7
    finally:
        server.stop()
