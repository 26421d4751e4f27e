# NixOS module: services.whisper-api (and the seed's services.whisper_api). The flake
# passes itself in (for the default package); nix/settings.nix says which service setting
# each option sets.
{ self }:
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.services.whisper-api;
  settingVariables = import ./settings.nix;
  system = pkgs.stdenv.hostPlatform.system;

  asVariable =
    value:
    if builtins.isBool value then
      (if value then "1" else "0")
    else if builtins.isList value then
      lib.concatStringsSep "," value
    else
      toString value;

  directEnvironment = lib.mapAttrs' (option: variable: lib.nameValuePair variable (asVariable cfg.${option})) (
    lib.filterAttrs (option: _: cfg.${option} != null && cfg.${option} != [ ]) settingVariables.direct
  );

  derivedEnvironment = {
    USE_GPU_IF_AVAILABLE = asVariable cfg.withCUDA;
    LOG_DIR = "${cfg.dataDir}/logs";
    # Hugging Face downloads (ALLOW_DOWNLOAD) are cached under HOME: the one writable place.
    HOME = cfg.dataDir;
  }
  // lib.optionalAttrs (cfg.apiKeysFile != null) {
    # systemd hands the file over as a credential; %d is the credentials directory.
    API_KEYS_FILE = "%d/api-keys";
  }
  // lib.optionalAttrs (cfg.role != "standalone") { QUEUE_BACKEND = "redis"; }
  // lib.optionalAttrs (cfg.redisPasswordFile != null) {
    REDIS_PASSWORD_FILE = "%d/redis-password";
  };

  # A job may run up to shutdownGraceSeconds after SIGTERM; then the server closes.
  stopTimeoutSeconds = builtins.ceil cfg.shutdownGraceSeconds + 30;
in
{
  # The seed's option path: `services.whisper_api = { … }` still configures this module
  # (NixOS warns that it was renamed).
  imports = [
    (lib.mkRenamedOptionModule [ "services" "whisper_api" ] [ "services" "whisper-api" ])
  ];

  options.services.whisper-api = {
    enable = lib.mkEnableOption "whisper-api, a self-hosted speech-to-text service";

    withCUDA = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = ''
        Run on an NVIDIA GPU: use the CUDA build of the package (float16 by default)
        and allow the unit to open the NVIDIA devices. Needs the NVIDIA driver
        (`hardware.nvidia`) on the host.
      '';
    };

    package = lib.mkOption {
      type = lib.types.package;
      default =
        if cfg.withCUDA then self.packages.${system}.withCUDA else self.packages.${system}.default;
      defaultText = lib.literalExpression "whisper-api.packages.\${system}.default (withCUDA when withCUDA is set)";
      description = "The whisper-api package to run.";
    };

    listen = lib.mkOption {
      type = lib.types.str;
      default = "127.0.0.1";
      example = "0.0.0.0";
      description = "Address to bind (LISTEN); keep loopback behind a reverse proxy.";
    };

    port = lib.mkOption {
      type = lib.types.port;
      default = 3001;
      description = "TCP port (PORT).";
    };

    openFirewall = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = "Open `port` in the firewall.";
    };

    loadModelOnStartup = lib.mkOption {
      type = lib.types.bool;
      default = true;
      description = "Load the model at start-up instead of on the first job (LOAD_MODEL_ON_STARTUP).";
    };

    unloadModelAfterSeconds = lib.mkOption {
      type = lib.types.nullOr (lib.types.either lib.types.ints.unsigned lib.types.float);
      default = null;
      example = 600;
      description = ''
        Unload a model this many seconds after its last job; 0 = right after each job,
        null = never (UNLOAD_MODEL_AFTER_S).
      '';
    };

    maxModel = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = null;
      example = "large-v3";
      description = ''
        The largest model allowed (MAX_MODEL). Without it: the largest that fits free
        VRAM on a GPU, `cpuFallbackModel` on a CPU.
      '';
    };

    cpuFallbackModel = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = null;
      example = "small";
      description = "The model to aim for on a CPU (CPU_FALLBACK_MODEL; service default: medium).";
    };

    modelDir = lib.mkOption {
      type = lib.types.nullOr lib.types.path;
      default = null;
      example = "/srv/whisper-models";
      description = "Directory with CTranslate2 models in `<modelDir>/<name>/`, tried first (MODEL_DIR).";
    };

    allowDownload = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = ''
        Fetch missing models from the Hugging Face hub (ALLOW_DOWNLOAD). Off here, unlike
        the service's own default, so a NixOS host only runs models it was given.
      '';
    };

    maxTaskQueueSize = lib.mkOption {
      type = lib.types.nullOr lib.types.ints.positive;
      default = null;
      example = 32;
      description = "Waiting jobs accepted before uploads get 429 (MAX_TASK_QUEUE_SIZE; service default: 128).";
    };

    maxUploadMB = lib.mkOption {
      type = lib.types.nullOr lib.types.ints.positive;
      default = null;
      example = 200;
      description = "Largest upload in MB (MAX_UPLOAD_MB; service default: 512).";
    };

    deleteResultsAfterMinutes = lib.mkOption {
      type = lib.types.nullOr (lib.types.either lib.types.ints.positive lib.types.float);
      default = null;
      example = 30;
      description = "Minutes a finished result lives in RAM (DELETE_RESULTS_AFTER_M; service default: 60).";
    };

    refreshExpirationTimeOnUsage = lib.mkOption {
      type = lib.types.nullOr lib.types.bool;
      default = null;
      description = "Whether reading a result restarts its lifetime (REFRESH_EXPIRATION_TIME_ON_USAGE; service default: true).";
    };

    shutdownGraceSeconds = lib.mkOption {
      type = lib.types.either lib.types.ints.unsigned lib.types.float;
      default = 30;
      description = ''
        On stop, how long the running job may still take (SHUTDOWN_GRACE_S); waiting
        jobs fail at once. The unit's stop timeout is set 30 s longer.
      '';
    };

    authorizedMails = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      default = [ ];
      example = [ "admin@example.org" ];
      description = ''
        E-mails (sent by the authenticating reverse proxy as `X-Email`) allowed to
        download the logs (LOG_AUTHORIZED_MAILS).
      '';
    };

    logLevel = lib.mkOption {
      type = lib.types.nullOr (
        lib.types.enum [
          "DEBUG"
          "INFO"
          "WARNING"
          "ERROR"
          "CRITICAL"
        ]
      );
      default = null;
      description = "Log level (LOG_LEVEL; service default: INFO).";
    };

    logPrivacyMode = lib.mkOption {
      type = lib.types.nullOr lib.types.bool;
      default = null;
      description = ''
        Shorten task ids and drop client addresses, e-mails and query values from the
        logs (LOG_PRIVACY_MODE; service default: true).
      '';
    };

    trustedProxies = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      default = [ ];
      example = [
        "127.0.0.1"
        "10.0.0.0/8"
      ];
      description = ''
        Addresses or networks of reverse proxies whose forwarded headers are believed
        (TRUSTED_PROXIES); empty = none.
      '';
    };

    apiKeysFile = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = null;
      example = "/run/secrets/whisper-api-keys";
      description = ''
        File with the API keys clients must send (API_KEYS_FILE). Give a path outside
        the Nix store (e.g. from sops-nix or agenix): systemd hands it to the service as
        a credential, so it may stay readable by root only.
      '';
    };

    role = lib.mkOption {
      type = lib.types.enum [
        "standalone"
        "api"
        "worker"
      ];
      default = "standalone";
      description = ''
        `standalone`: one process holds the queue and runs the model. Several machines
        (QUEUE_BACKEND=redis): `api` is an API node (HTTP, no model), `worker` runs
        `whisper-api worker` (models, no HTTP); both need `redisUrl`.
      '';
    };

    redisUrl = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = null;
      example = "rediss://queue.example.org:6380/0";
      description = ''
        The shared Redis of a cluster (REDIS_URL); rediss:// for TLS across a network.
        Run that Redis without persistence (`--save "" --appendonly no`).
      '';
    };

    redisPasswordFile = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = null;
      example = "/run/secrets/whisper-redis-password";
      description = ''
        File with the Redis password (REDIS_PASSWORD_FILE), handed over as a systemd
        credential like `apiKeysFile`.
      '';
    };

    environment = lib.mkOption {
      type = lib.types.attrsOf lib.types.str;
      default = { };
      example = {
        LOG_FILE = "";
        DEVELOP_MODE = "1";
      };
      description = ''
        Further settings (any variable of the README's table); they win over the options
        above. systemd expands `%` specifiers in these values: write `%%` for a `%`
        (e.g. in LOG_FORMAT).
      '';
    };

    user = lib.mkOption {
      type = lib.types.str;
      default = "whisper-api";
      description = "User the service runs as (created when left at the default).";
    };

    group = lib.mkOption {
      type = lib.types.str;
      default = "whisper-api";
      description = "Group the service runs as (created when left at the default).";
    };

    dataDir = lib.mkOption {
      type = lib.types.path;
      default = "/var/lib/whisper-api";
      description = "The only directory the service may write: its logs (dataDir/logs) and downloaded models.";
    };
  };

  config = lib.mkIf cfg.enable {
    users.users = lib.mkIf (cfg.user == "whisper-api") {
      whisper-api = {
        isSystemUser = true;
        group = cfg.group;
        home = cfg.dataDir;
        description = "whisper-api speech-to-text service";
      };
    };
    users.groups = lib.mkIf (cfg.group == "whisper-api") { whisper-api = { }; };

    systemd.tmpfiles.rules = [
      "d '${cfg.dataDir}' 0750 ${cfg.user} ${cfg.group} - -"
      "d '${cfg.dataDir}/logs' 0750 ${cfg.user} ${cfg.group} - -"
    ];

    networking.firewall.allowedTCPPorts = lib.mkIf cfg.openFirewall [ cfg.port ];

    systemd.services.whisper-api = {
      description = "whisper-api speech-to-text service";
      wantedBy = [ "multi-user.target" ];
      after = [ "network.target" ];
      environment = derivedEnvironment // directEnvironment // cfg.environment;

      serviceConfig = {
        ExecStart = "${lib.getExe cfg.package} ${if cfg.role == "worker" then "worker" else "serve"}";
        User = cfg.user;
        Group = cfg.group;
        WorkingDirectory = cfg.dataDir;
        Restart = "on-failure";
        RestartSec = 5;
        # SIGTERM drains: /readyz turns 503, uploads get 503, the running job may finish.
        KillSignal = "SIGTERM";
        TimeoutStopSec = stopTimeoutSeconds;
        LoadCredential =
          lib.optional (cfg.apiKeysFile != null) "api-keys:${cfg.apiKeysFile}"
          ++ lib.optional (cfg.redisPasswordFile != null) "redis-password:${cfg.redisPasswordFile}";

        # Hardening: the service reads its package and writes only dataDir.
        NoNewPrivileges = true;
        PrivateTmp = true;
        ProtectSystem = "strict";
        ProtectHome = true;
        ReadWritePaths = [ cfg.dataDir ];
        UMask = "0027";
        # [ "" ] renders as an empty assignment: no capabilities at all.
        CapabilityBoundingSet = if cfg.port < 1024 then [ "CAP_NET_BIND_SERVICE" ] else [ "" ];
        AmbientCapabilities = lib.optional (cfg.port < 1024) "CAP_NET_BIND_SERVICE";
        ProtectKernelTunables = true;
        ProtectKernelModules = true;
        ProtectKernelLogs = true;
        ProtectControlGroups = true;
        ProtectClock = true;
        ProtectHostname = true;
        ProtectProc = "invisible";
        RestrictNamespaces = true;
        RestrictRealtime = true;
        RestrictSUIDSGID = true;
        LockPersonality = true;
        SystemCallArchitectures = "native";
        RestrictAddressFamilies = [
          "AF_INET"
          "AF_INET6"
          "AF_UNIX"
          "AF_NETLINK"
        ];
        # MemoryDenyWriteExecute stays off: CTranslate2's CPU kernels (oneDNN) and CUDA
        # compile code at run time.

        # Devices: none but the standard pseudo-devices, plus the NVIDIA ones with CUDA.
        PrivateDevices = !cfg.withCUDA;
        DevicePolicy = "closed";
        DeviceAllow = lib.optionals cfg.withCUDA [
          "char-nvidiactl rw"
          "char-nvidia-frontend rw"
          "char-nvidia-uvm rw"
          "char-nvidia-caps rw"
        ];
      };
    };
  };
}
