# Just enough of `import nixpkgs { … }` to evaluate flake.nix's outputs offline: callPackage
# yields a placeholder store path that tells the CUDA build from the plain one.
{
  system,
  config ? { },
}:
{
  callPackage =
    _path: _arguments:
    if config.cudaSupport or false then
      "/nix/store/0000-whisper-api-cuda"
    else
      "/nix/store/0000-whisper-api";
}
