{
  description = "whisper-api: self-hosted speech-to-text, a fair queue in front of faster-whisper";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.11";

  outputs =
    { self, nixpkgs }:
    let
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems f;
      pkgsFor = system: import nixpkgs { inherit system; };
      # CUDA is unfree; `cudaSupport` makes CTranslate2 (and onnxruntime) build with it.
      cudaPkgsFor =
        system:
        import nixpkgs {
          inherit system;
          config = {
            allowUnfree = true;
            cudaSupport = true;
          };
        };
    in
    {
      packages = forAllSystems (
        system:
        let
          withCUDA = (cudaPkgsFor system).callPackage ./nix/package.nix { };
        in
        {
          default = (pkgsFor system).callPackage ./nix/package.nix { };
          inherit withCUDA;
          # The seed's name: `nix run .#whisper_api_withCUDA` keeps working.
          whisper_api_withCUDA = withCUDA;
        }
      );

      # `pkgs.whisper-api` in any nixpkgs; it uses CUDA where that nixpkgs has cudaSupport.
      overlays.default = final: _prev: {
        whisper-api = final.callPackage ./nix/package.nix { };
      };

      nixosModules.whisper-api = import ./nix/module.nix { inherit self; };
      # The seed's name for the same module (which also takes `services.whisper_api`).
      nixosModules.whisper_api = self.nixosModules.whisper-api;
      nixosModules.default = self.nixosModules.whisper-api;

      # `nix develop`: the service's dependencies from nixpkgs plus the test and lint tools;
      # run `pytest`, `ruff check app tests` and `mypy` there directly (`make test` would
      # build its own pip venv instead).
      devShells = forAllSystems (
        system:
        let
          pkgs = pkgsFor system;
        in
        {
          default = pkgs.mkShell {
            inputsFrom = [ self.packages.${system}.default ];
            packages = [
              (pkgs.python3.withPackages (
                ps: with ps; [
                  pytest
                  pytest-asyncio
                  pytest-timeout
                  httpx
                  jiwer
                  pyyaml
                  mypy
                ]
              ))
              pkgs.ruff
              pkgs.hadolint
              pkgs.gnumake
              pkgs.nix
            ];
          };
        }
      );
    };
}
