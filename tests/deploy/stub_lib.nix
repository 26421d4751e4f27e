# Just enough of nixpkgs' `lib`, built from builtins, to evaluate nix/module.nix without
# nixpkgs (the tests have no network): options keep their declaration, mkIf keeps its
# condition, and the list and attribute helpers behave like nixpkgs' own.
let
  pairs = set: map (name: { inherit name; value = set.${name}; }) (builtins.attrNames set);
in
{
  mkOption = declaration: declaration // { isOption = true; };
  mkEnableOption = name: {
    isOption = true;
    default = false;
    description = "Whether to enable ${name}.";
  };
  mkIf = condition: content: {
    _type = "if";
    inherit condition content;
  };
  literalExpression = text: text;
  # Types are never forced by the tests; any attribute access yields a placeholder.
  types = builtins.listToAttrs (
    map (name: { inherit name; value = name; }) [
      "bool"
      "str"
      "port"
      "path"
      "package"
      "float"
    ]
  ) // {
    ints = { unsigned = "unsigned"; positive = "positive"; };
    nullOr = type: "nullOr ${type}";
    either = a: b: "either";
    listOf = type: "listOf ${type}";
    attrsOf = type: "attrsOf ${type}";
    enum = values: "enum";
  };
  nameValuePair = name: value: { inherit name value; };
  mapAttrs' = f: set: builtins.listToAttrs (map (p: f p.name p.value) (pairs set));
  filterAttrs = keep: set: builtins.listToAttrs (builtins.filter (p: keep p.name p.value) (pairs set));
  concatStringsSep = builtins.concatStringsSep;
  optionalAttrs = condition: set: if condition then set else { };
  optional = condition: item: if condition then [ item ] else [ ];
  optionals = condition: items: if condition then items else [ ];
  getExe = package: "${package}/bin/whisper-api";
  genAttrs = names: f: builtins.listToAttrs (map (name: { inherit name; value = f name; }) names);
  # Kept as data: the tests move the definitions from `from` to `to` as NixOS would.
  mkRenamedOptionModule = from: to: {
    _type = "renamed";
    inherit from to;
  };
}
